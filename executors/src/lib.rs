//! amphi executors.
