//! spec: writes a default config.json.

use std::io::Write;

use anyhow::Context;

use crate::args::SpecArgs;

pub fn spec(args: SpecArgs) -> anyhow::Result<u8> {
    let path = args.bundle.join("config.json");
    let spec = if args.rootless {
        amphi_runtime::default_spec::rootless_spec()
    } else {
        amphi_runtime::default_spec::default_spec()
    };
    let mut text =
        serde_json::to_string_pretty(&amphi_runtime::default_spec::to_stable_json(&spec)).context("encode spec")?;
    text.push('\n');
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .with_context(|| format!("{}: cannot write (remove it first if it exists)", path.display()))?;
    file.write_all(text.as_bytes()).with_context(|| format!("write {}", path.display()))?;
    Ok(0)
}
