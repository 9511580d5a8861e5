//! The default `config.json` that `amphi spec` writes.
