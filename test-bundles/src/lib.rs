//! Test bundles.
