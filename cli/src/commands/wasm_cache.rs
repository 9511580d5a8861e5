//! wasm-cache list | prune: the compiled-module cache.

use std::io::Write;
use std::time::{Duration, SystemTime};

use amphi_executors::cache::Cache;
use anyhow::Context;

use super::Globals;
use crate::args::{WasmCacheAction, WasmCacheArgs};

pub fn wasm_cache(globals: &Globals, args: WasmCacheArgs) -> anyhow::Result<u8> {
    let Some(dir) = globals.wasm_cache().dir else { anyhow::bail!("the wasm cache is disabled") };
    let cache = Cache::open(&dir)?;
    let mut out = String::new();
    match args.action {
        WasmCacheAction::List => {
            let now = SystemTime::now();
            out.push_str("MODULE (sha256)                                                    KIND        SIZE   LAST USED  STATE\n");
            for entry in cache.list()? {
                let kind = entry.kind.map(|k| format!("{k:?}").to_lowercase()).unwrap_or_else(|| "?".into());
                let age = now.duration_since(entry.last_used).unwrap_or_default();
                let state = if entry.intact { "ok" } else { "corrupt" };
                out.push_str(&format!(
                    "{:<66} {:<9} {:>8}  {:>9}  {state}\n",
                    entry.module,
                    kind,
                    entry.size,
                    format!("{} ago", human(age))
                ));
            }
        }
        WasmCacheAction::Prune { older_than } => {
            let older_than = older_than.as_deref().map(parse_duration).transpose()?;
            let report = cache.prune(older_than)?;
            out.push_str(&format!("removed {} entries, {} bytes\n", report.removed, report.freed_bytes));
        }
    }
    std::io::stdout().write_all(out.as_bytes()).context("write to stdout")?;
    Ok(0)
}

/// `30s`, `10m`, `12h`, `7d` (or plain seconds).
fn parse_duration(text: &str) -> anyhow::Result<Duration> {
    let bad = || anyhow::anyhow!("--older-than {text:?}: expected a number with s, m, h or d");
    let (number, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => text.split_at(i),
        None => (text, "s"),
    };
    let n: u64 = number.parse().map_err(|_| bad())?;
    let seconds = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return Err(bad()),
    };
    Ok(Duration::from_secs(seconds))
}

fn human(age: Duration) -> String {
    let s = age.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86_400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(parse_duration("7d").unwrap(), Duration::from_secs(7 * 86_400));
        assert_eq!(parse_duration("5").unwrap(), Duration::from_secs(5));
        assert!(parse_duration("x").is_err());
        assert!(parse_duration("5w").is_err());
    }
}
