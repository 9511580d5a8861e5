//! What limits the container: `linux.cgroupsPath`, `linux.resources` and
//! `linux.intelRdt`.
//!
//! A cgroup path may not climb with `..`. Resources are refused where the cgroup
//! files would refuse them later with a bare `EINVAL`, and where runc refuses
//! early (a swap limit without a memory limit, or below it). The resctrl group
//! (`closID`) is a plain name. Where the cgroup is and how it is written is
//! [`crate::cgroups`]'s.

use std::path::Component;

use oci_spec::runtime::{Linux, LinuxDeviceType, LinuxResources};

use super::SpecError;

type Result<T = ()> = std::result::Result<T, SpecError>;

fn field(name: impl Into<String>, reason: impl Into<String>) -> SpecError {
    SpecError::new(name, reason)
}

/// `linux.cgroupsPath`, then `linux.resources`.
pub fn check(linux: &Linux) -> Result {
    if let Some(p) = linux.cgroups_path()
        && p.components().any(|c| c == Component::ParentDir)
    {
        return Err(field("linux.cgroupsPath", format!("{p:?} must not contain \"..\"")));
    }
    match linux.resources() {
        Some(r) => check_resources(r),
        None => Ok(()),
    }
}

/// `linux.intelRdt.closID` names a resctrl group: a plain name.
pub fn check_intel_rdt(linux: &Linux) -> Result {
    if let Some(id) = linux.intel_rdt().as_ref().and_then(|r| r.clos_id().as_deref())
        && (id == "." || id == ".." || id.contains('/'))
    {
        return Err(field("linux.intelRdt.closID", format!("{id:?} is not a plain name")));
    }
    Ok(())
}

fn check_resources(r: &LinuxResources) -> Result {
    if let Some(m) = r.memory() {
        let limits = [
            ("limit", m.limit()),
            ("reservation", m.reservation()),
            ("swap", m.swap()),
            ("kernel", m.kernel()),
            ("kernelTCP", m.kernel_tcp()),
        ];
        for (name, value) in limits {
            if let Some(v) = value
                && v < -1
            {
                return Err(field(
                    format!("linux.resources.memory.{name}"),
                    format!("{v} is not a limit (-1 is unlimited)"),
                ));
            }
        }
        if let Some(s) = m.swappiness()
            && s > 100
        {
            return Err(field("linux.resources.memory.swappiness", format!("{s} is above 100")));
        }
        // `swap` is memory plus swap, as in cgroup v1's memory.memsw.limit_in_bytes.
        let (limit, swap) = (m.limit().unwrap_or(0), m.swap().unwrap_or(0));
        if swap > 0 {
            if limit <= 0 {
                return Err(field("linux.resources.memory.swap", "a swap limit needs a memory limit"));
            }
            if swap < limit {
                return Err(field(
                    "linux.resources.memory.swap",
                    format!("{swap} is below the memory limit {limit} (it counts memory plus swap)"),
                ));
            }
        }
    }
    if let Some(c) = r.cpu() {
        for (name, list) in [("cpus", c.cpus()), ("mems", c.mems())] {
            if let Some(list) = list.as_deref()
                && !cpu_list(list)
            {
                return Err(field(
                    format!("linux.resources.cpu.{name}"),
                    format!("{list:?} is not a list like \"0-3,6\""),
                ));
            }
        }
        if let Some(q) = c.quota()
            && q < -1
        {
            return Err(field("linux.resources.cpu.quota", format!("{q} is not a quota (-1 is unlimited)")));
        }
        if let Some(p) = c.period()
            && p != 0
            && !(1000..=1_000_000).contains(&p)
        {
            return Err(field("linux.resources.cpu.period", format!("{p} is not between 1000 and 1000000 (µs)")));
        }
        if let Some(idle) = c.idle()
            && idle != 0
            && idle != 1
        {
            return Err(field("linux.resources.cpu.idle", format!("{idle} is not 0 or 1")));
        }
    }
    if let Some(b) = r.block_io() {
        weight("linux.resources.blockIO.weight", b.weight())?;
        weight("linux.resources.blockIO.leafWeight", b.leaf_weight())?;
        for (i, d) in b.weight_device().iter().flatten().enumerate() {
            weight(&format!("linux.resources.blockIO.weightDevice[{i}].weight"), d.weight())?;
            weight(&format!("linux.resources.blockIO.weightDevice[{i}].leafWeight"), d.leaf_weight())?;
        }
    }
    for (i, d) in r.devices().iter().flatten().enumerate() {
        if matches!(d.typ(), Some(LinuxDeviceType::U | LinuxDeviceType::P)) {
            return Err(field(format!("linux.resources.devices[{i}].type"), "a device rule must be of type a, b or c"));
        }
        if let Some(access) = d.access().as_deref()
            && !access.chars().all(|c| matches!(c, 'r' | 'w' | 'm'))
        {
            return Err(field(
                format!("linux.resources.devices[{i}].access"),
                format!("{access:?} is not made of r, w and m"),
            ));
        }
    }
    for (i, h) in r.hugepage_limits().iter().flatten().enumerate() {
        if !page_size(h.page_size()) {
            return Err(field(
                format!("linux.resources.hugepageLimits[{i}].pageSize"),
                format!("{:?} is not a size like \"2MB\"", h.page_size()),
            ));
        }
    }
    for key in r.unified().iter().flat_map(|u| u.keys()) {
        if key.is_empty() || key == "." || key == ".." || key.contains('/') {
            return Err(field(format!("linux.resources.unified[{key:?}]"), "is not a cgroup file name"));
        }
    }
    Ok(())
}

/// A block I/O weight: 0 (unset) or 10 to 1000.
fn weight(name: &str, value: Option<u16>) -> Result {
    match value {
        Some(w) if w != 0 && !(10..=1000).contains(&w) => Err(field(name, format!("{w} is not between 10 and 1000"))),
        _ => Ok(()),
    }
}

/// The kernel's cpu/node list syntax: `0-3,6,8-15:2/4`.
fn cpu_list(list: &str) -> bool {
    let num =
        |s: &str| if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) { s.parse::<u32>().ok() } else { None };
    let list = list.trim();
    list.is_empty()
        || list.split(',').all(|item| {
            let (range, stride) = match item.trim().split_once(':') {
                Some((range, stride)) => (range, Some(stride)),
                None => (item.trim(), None),
            };
            let range_ok = match range.split_once('-') {
                Some((a, b)) => num(a).zip(num(b)).is_some_and(|(a, b)| a <= b),
                None => num(range).is_some() && stride.is_none(),
            };
            let stride_ok = stride.is_none_or(|s| {
                s.split_once('/').is_some_and(|(u, g)| num(u).is_some() && num(g).is_some_and(|g| g > 0))
            });
            range_ok && stride_ok
        })
}

/// A huge page size as runc and the cgroup file names write it: `64KB`, `2MB`, `1GB`.
fn page_size(s: &str) -> bool {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    digits > 0 && matches!(&s[digits..], "B" | "KB" | "MB" | "GB" | "TB" | "PB")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resources(json: serde_json::Value) -> LinuxResources {
        serde_json::from_value(json).unwrap()
    }

    fn passes(json: serde_json::Value) -> bool {
        check_resources(&resources(json)).is_ok()
    }

    fn refused(json: serde_json::Value, field: &str) -> String {
        let err = check_resources(&resources(json)).unwrap_err().to_string();
        assert_eq!(err.lines().count(), 1, "not one line: {err}");
        assert!(err.starts_with(&format!("config.json: {field}: ")), "expected field {field}: {err}");
        err
    }

    #[test]
    fn memory_oddities() {
        let m = |v| serde_json::json!({"memory": v});
        refused(m(serde_json::json!({"limit": -2})), "linux.resources.memory.limit");
        refused(m(serde_json::json!({"swap": 1000})), "linux.resources.memory.swap");
        let err = refused(m(serde_json::json!({"limit": 2000, "swap": 1000})), "linux.resources.memory.swap");
        assert!(err.contains("below the memory limit 2000"), "{err}");
        refused(m(serde_json::json!({"swappiness": 101})), "linux.resources.memory.swappiness");
        for ok in [
            serde_json::json!({"limit": -1}),
            serde_json::json!({"limit": 1000, "swap": -1}),
            serde_json::json!({"limit": 1000, "swap": 1000}),
        ] {
            assert!(passes(m(ok.clone())), "{ok}");
        }
    }

    #[test]
    fn cpu_oddities() {
        let c = |v| serde_json::json!({"cpu": v});
        for bad in ["0-", "3-1", "a", "0,,1", "0-3:2", "1:1/2"] {
            refused(c(serde_json::json!({"cpus": bad})), "linux.resources.cpu.cpus");
        }
        for ok in ["", "0", "0-3,6", "0-7:2/4", "0-1\n"] {
            assert!(passes(c(serde_json::json!({"cpus": ok, "mems": "0"}))), "{ok:?}");
        }
        refused(c(serde_json::json!({"mems": "x"})), "linux.resources.cpu.mems");
        refused(c(serde_json::json!({"quota": -5})), "linux.resources.cpu.quota");
        refused(c(serde_json::json!({"period": 10})), "linux.resources.cpu.period");
        refused(c(serde_json::json!({"idle": 2})), "linux.resources.cpu.idle");
    }

    #[test]
    fn block_io_weights() {
        let b = |v| serde_json::json!({"blockIO": v});
        refused(b(serde_json::json!({"weight": 5})), "linux.resources.blockIO.weight");
        refused(b(serde_json::json!({"leafWeight": 1001})), "linux.resources.blockIO.leafWeight");
        refused(
            b(serde_json::json!({"weightDevice": [{"major": 8, "minor": 0, "weight": 2000}]})),
            "linux.resources.blockIO.weightDevice[0].weight",
        );
        assert!(passes(b(serde_json::json!({"weight": 500}))));
    }

    #[test]
    fn device_rules() {
        let d = |v| serde_json::json!({"devices": [{"allow": false, "access": "rwm"}, v]});
        refused(
            d(serde_json::json!({"allow": true, "type": "c", "access": "rwx"})),
            "linux.resources.devices[1].access",
        );
        refused(d(serde_json::json!({"allow": true, "type": "p"})), "linux.resources.devices[1].type");
    }

    #[test]
    fn hugepage_and_unified_keys() {
        refused(
            serde_json::json!({"hugepageLimits": [{"pageSize": "2M", "limit": 1}]}),
            "linux.resources.hugepageLimits[0].pageSize",
        );
        refused(serde_json::json!({"unified": {"../cpu.max": "1"}}), "linux.resources.unified[\"../cpu.max\"]");
    }

    fn linux(json: serde_json::Value) -> Linux {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn cgroups_path_cannot_climb() {
        let err = check(&linux(serde_json::json!({"cgroupsPath": "/a/../../b"}))).unwrap_err();
        assert_eq!(err.to_string(), r#"config.json: linux.cgroupsPath: "/a/../../b" must not contain "..""#);
        check(&linux(serde_json::json!({"cgroupsPath": "/a/b"}))).unwrap();
        check(&linux(serde_json::json!({"cgroupsPath": "system.slice:amphi:x"}))).unwrap();
    }

    #[test]
    fn resources_are_checked_after_the_cgroups_path() {
        let both = serde_json::json!({"cgroupsPath": "../x", "resources": {"memory": {"swappiness": 101}}});
        assert_eq!(check(&linux(both)).unwrap_err().field, "linux.cgroupsPath");
        let err = check(&linux(serde_json::json!({"resources": {"memory": {"swappiness": 101}}}))).unwrap_err();
        assert_eq!(err.field, "linux.resources.memory.swappiness");
    }

    #[test]
    fn intel_rdt_clos_id_is_a_plain_name() {
        for bad in ["../x", ".", "..", "a/b"] {
            let err = check_intel_rdt(&linux(serde_json::json!({"intelRdt": {"closID": bad}}))).unwrap_err();
            assert_eq!(err.field, "linux.intelRdt.closID", "{bad}");
        }
        check_intel_rdt(&linux(serde_json::json!({"intelRdt": {"closID": "gold"}}))).unwrap();
    }
}
