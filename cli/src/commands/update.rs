//! update: new resource limits for a live container.

use std::io::Read;
use std::path::Path;

use amphi_runtime::ContainerId;
use amphi_runtime::container::{self, ResourceFlags};
use amphi_runtime::state::Store;
use anyhow::Context;
use oci_spec::runtime::LinuxResources;

use crate::args::UpdateArgs;

pub fn update(store: &Store, args: UpdateArgs) -> anyhow::Result<u8> {
    let id = ContainerId::new(&args.id)?;
    let mut resources = match &args.resources {
        Some(path) => read_resources(path)?,
        None => LinuxResources::default(),
    };
    let bytes = |flag: &str, value: &Option<String>| -> anyhow::Result<Option<i64>> {
        value.as_deref().map(|v| parse_bytes(v).with_context(|| format!("--{flag} {v:?}"))).transpose()
    };
    let flags = ResourceFlags {
        memory: bytes("memory", &args.memory)?,
        memory_swap: bytes("memory-swap", &args.memory_swap)?,
        memory_reservation: bytes("memory-reservation", &args.memory_reservation)?,
        cpu_shares: args.cpu_shares,
        cpu_quota: args.cpu_quota,
        cpu_period: args.cpu_period,
        cpuset_cpus: args.cpuset_cpus,
        cpuset_mems: args.cpuset_mems,
        pids_limit: args.pids_limit,
        blkio_weight: args.blkio_weight,
    };
    flags.apply_to(&mut resources);
    container::update(store, &id, &resources)?;
    Ok(0)
}

/// A LinuxResources JSON from `path`, or from stdin for `-`.
fn read_resources(path: &Path) -> anyhow::Result<LinuxResources> {
    let name = if path == Path::new("-") { "stdin".to_owned() } else { path.display().to_string() };
    let mut bytes = Vec::new();
    if path == Path::new("-") {
        std::io::stdin().read_to_end(&mut bytes).context("--resources -: read stdin")?;
    } else {
        bytes = std::fs::read(path).with_context(|| format!("--resources {name}"))?;
    }
    parse_resources(&bytes).map_err(|e| anyhow::anyhow!("--resources {name}: not a LinuxResources JSON: {e}"))
}

fn parse_resources(bytes: &[u8]) -> Result<LinuxResources, String> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." { inner.to_string() } else { format!("{path}: {inner}") }
    })
}

/// A size in bytes as runc takes it: a number with an optional unit `k`, `m`,
/// `g`, `t` or `p` (powers of 1024, upper or lower case, optionally followed by
/// `b` or `ib`), or `-1` for unlimited.
fn parse_bytes(text: &str) -> anyhow::Result<i64> {
    let text = text.trim();
    if text == "-1" {
        return Ok(-1);
    }
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().map_err(|_| anyhow::anyhow!("not a size (like 512, 64k, 1.5g or -1)"))?;
    let unit = unit.trim_start().to_ascii_lowercase();
    let unit = unit.strip_suffix("ib").or_else(|| unit.strip_suffix('b')).unwrap_or(&unit);
    let shift = match unit {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        "p" => 50,
        _ => anyhow::bail!("unknown unit {unit:?} (use k, m, g, t or p)"),
    };
    let bytes = number * 2f64.powi(shift);
    if !bytes.is_finite() || bytes > i64::MAX as f64 {
        anyhow::bail!("too large");
    }
    Ok(bytes as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_runcs_suffixes() {
        assert_eq!(parse_bytes("4096").unwrap(), 4096);
        assert_eq!(parse_bytes("64k").unwrap(), 64 << 10);
        assert_eq!(parse_bytes("64K").unwrap(), 64 << 10);
        assert_eq!(parse_bytes("64kb").unwrap(), 64 << 10);
        assert_eq!(parse_bytes("64KiB").unwrap(), 64 << 10);
        assert_eq!(parse_bytes("10m").unwrap(), 10 << 20);
        assert_eq!(parse_bytes("2g").unwrap(), 2 << 30);
        assert_eq!(parse_bytes("1.5g").unwrap(), 3 << 29);
        assert_eq!(parse_bytes("1t").unwrap(), 1 << 40);
        assert_eq!(parse_bytes("1 m").unwrap(), 1 << 20);
        assert_eq!(parse_bytes("-1").unwrap(), -1);
        for bad in ["", "m", "10x", "-5", "1e3", "10mm", "99999999999p"] {
            assert!(parse_bytes(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn malformed_resources_name_the_field() {
        let err = parse_resources(br#"{"memory": {"limit": "lots"}}"#).unwrap_err();
        assert!(err.starts_with("memory.limit: invalid type"), "{err}");
        let err = parse_resources(b"{not json").unwrap_err();
        assert!(err.contains("line 1"), "{err}");
        assert!(!err.contains('\n'));
        let ok = parse_resources(br#"{"pids": {"limit": 7}}"#).unwrap();
        assert_eq!(ok.pids().unwrap().limit(), 7);
    }
}
