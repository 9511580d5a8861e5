//! features: the runtime-spec features document.

use std::collections::HashMap;
use std::io::Write;

use amphi_runtime::container::features;
use anyhow::Context;

pub fn features() -> anyhow::Result<u8> {
    let annotations = HashMap::from([
        ("io.amphi.version".to_owned(), env!("CARGO_PKG_VERSION").to_owned()),
        ("io.amphi.executors".to_owned(), "native,wasm".to_owned()),
    ]);
    let document = features::features(amphi_executors::select::WASM_ANNOTATIONS, annotations);
    let mut out = serde_json::to_string_pretty(&features::to_json(&document)).context("encode the features")?;
    out.push('\n');
    std::io::stdout().write_all(out.as_bytes()).context("write the features")?;
    Ok(0)
}
