//! `features`: the runtime-spec features document (`features.md`), saying what
//! this build of amphi recognizes on this host.
//!
//! Every list is what the code accepts, not a wish: the mount options are those
//! the mount plan ([`crate::plan::mounts::MountOptions`]) carries out itself, the
//! seccomp lists those the profile compiler takes, the capabilities those the
//! running kernel knows. Host-dependent answers (`apparmor`, `selinux`,
//! `supportedFlags`) are read from the host each time.

use std::collections::HashMap;

use oci_spec::runtime::{
    Apparmor, Arch, Cgroup, Features, IDMap, IntelRdt, LinuxFeature, LinuxNamespaceType, LinuxSeccompAction,
    MountExtensions, NetDevices, Seccomp, Selinux,
};

use crate::hooks::HookKind;
use crate::sys::seccomp as sys_seccomp;

/// The oldest spec version amphi runs (the major version must be 1).
pub(crate) const OCI_VERSION_MIN: &str = "1.0.0";
/// The spec version amphi implements.
pub(crate) const OCI_VERSION_MAX: &str = "1.2.1";

/// The mount options amphi recognizes (filesystem data such as `mode=755` is
/// passed through as well and is not listed, as the spec asks).
pub(crate) const MOUNT_OPTIONS: &[&str] = &[
    "acl",
    "async",
    "atime",
    "bind",
    "defaults",
    "dev",
    "diratime",
    "dirsync",
    "exec",
    "iversion",
    "lazytime",
    "loud",
    "mand",
    "noacl",
    "noatime",
    "nodev",
    "nodiratime",
    "noexec",
    "noiversion",
    "nolazytime",
    "nomand",
    "norelatime",
    "nostrictatime",
    "nosuid",
    "nosymfollow",
    "private",
    "ratime",
    "rbind",
    "rdev",
    "rdiratime",
    "relatime",
    "rexec",
    "rnoatime",
    "rnodev",
    "rnodiratime",
    "rnoexec",
    "rnorelatime",
    "rnostrictatime",
    "rnosuid",
    "rnosymfollow",
    "ro",
    "rprivate",
    "rrelatime",
    "rro",
    "rrw",
    "rshared",
    "rslave",
    "rstrictatime",
    "rsuid",
    "rsymfollow",
    "runbindable",
    "rw",
    "shared",
    "silent",
    "slave",
    "strictatime",
    "suid",
    "symfollow",
    "sync",
    "unbindable",
];

/// The seccomp comparison operators the profile compiler takes.
const SECCOMP_OPERATORS: &[&str] =
    &["SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT", "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"];

/// The seccomp filter flags of the runtime-spec, with their kernel bits.
const SECCOMP_FLAGS: &[(&str, u32)] = &[
    ("SECCOMP_FILTER_FLAG_TSYNC", sys_seccomp::FLAG_TSYNC),
    ("SECCOMP_FILTER_FLAG_LOG", sys_seccomp::FLAG_LOG),
    ("SECCOMP_FILTER_FLAG_SPEC_ALLOW", sys_seccomp::FLAG_SPEC_ALLOW),
    ("SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV", sys_seccomp::FLAG_WAIT_KILLABLE_RECV),
];

/// The features document. `potentially_unsafe` are the annotation keys (or
/// prefixes ending in `.`) that change what runs, which a caller should not
/// pass through from an untrusted image (the executors' selection keys);
/// `annotations` are the implementation's own (version, executors).
pub fn features(potentially_unsafe: &[&str], mut annotations: HashMap<String, String>) -> Features {
    if let Ok(version) = libseccomp::ScmpVersion::current() {
        annotations.insert("io.github.seccomp.libseccomp.version".into(), version.to_string());
    }
    let mut linux = LinuxFeature::default();
    linux.set_namespaces(Some(vec![
        LinuxNamespaceType::Cgroup,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Mount,
        LinuxNamespaceType::Network,
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Time,
        LinuxNamespaceType::User,
        LinuxNamespaceType::Uts,
    ]));
    linux.set_capabilities(Some(capabilities()));
    let mut cgroup = Cgroup::default();
    cgroup.set_v1(Some(true)).set_v2(Some(true)).set_systemd(Some(false)).set_systemd_user(Some(false));
    cgroup.set_rdma(Some(false));
    linux.set_cgroup(Some(cgroup));
    linux.set_seccomp(Some(seccomp()));
    let mut apparmor = Apparmor::default();
    apparmor.set_enabled(Some(apparmor_enabled()));
    linux.set_apparmor(Some(apparmor));
    let mut selinux = Selinux::default();
    selinux.set_enabled(Some(std::path::Path::new("/sys/fs/selinux/enforce").exists()));
    linux.set_selinux(Some(selinux));
    let mut intel_rdt = IntelRdt::default();
    intel_rdt.set_enabled(Some(false));
    linux.set_intel_rdt(Some(intel_rdt));
    let mut idmap = IDMap::default();
    idmap.set_enabled(Some(false));
    let mut extensions = MountExtensions::default();
    extensions.set_idmap(Some(idmap));
    linux.set_mount_extensions(Some(extensions));
    let mut net_devices = NetDevices::default();
    net_devices.set_enabled(Some(false));
    linux.set_net_devices(Some(net_devices));

    let mut features = Features::default();
    features
        .set_oci_version_min(OCI_VERSION_MIN.to_owned())
        .set_oci_version_max(OCI_VERSION_MAX.to_owned())
        .set_hooks(Some(HookKind::ALL.iter().map(|k| k.as_str().to_owned()).collect()))
        .set_mount_options(Some(MOUNT_OPTIONS.iter().map(|o| (*o).to_owned()).collect()))
        .set_linux(Some(linux))
        .set_annotations(Some(annotations))
        .set_potentially_unsafe_config_annotations(Some(potentially_unsafe.iter().map(|a| (*a).to_owned()).collect()));
    features
}

/// The document as JSON, without the `null`s oci-spec writes for the fields
/// amphi leaves unknown (the schema wants them absent).
pub fn to_json(features: &Features) -> serde_json::Value {
    let mut value = serde_json::to_value(features).unwrap_or_default();
    strip_nulls(&mut value);
    value
}

fn strip_nulls(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(strip_nulls);
        }
        serde_json::Value::Array(list) => list.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

/// Every capability the running kernel knows, as `CAP_*` names in kernel order.
fn capabilities() -> Vec<String> {
    let mut caps: Vec<_> = caps::runtime::thread_all_supported().into_iter().collect();
    caps.sort_by_key(|c| c.index());
    caps.iter().map(|c| c.to_string()).collect()
}

fn seccomp() -> Seccomp {
    use LinuxSeccompAction as A;
    let mut seccomp = Seccomp::default();
    seccomp
        .set_enabled(Some(true))
        .set_actions(Some(vec![
            A::ScmpActAllow,
            A::ScmpActErrno,
            A::ScmpActKill,
            A::ScmpActKillProcess,
            A::ScmpActKillThread,
            A::ScmpActLog,
            A::ScmpActNotify,
            A::ScmpActTrace,
            A::ScmpActTrap,
        ]))
        .set_operators(Some(SECCOMP_OPERATORS.iter().map(|o| (*o).to_owned()).collect()))
        .set_archs(Some(archs()))
        .set_known_flags(Some(SECCOMP_FLAGS.iter().map(|(name, _)| (*name).to_owned()).collect()))
        .set_supported_flags(Some(
            SECCOMP_FLAGS
                .iter()
                .filter(|(_, bit)| sys_seccomp::filter_flags_supported(*bit))
                .map(|(name, _)| (*name).to_owned())
                .collect(),
        ));
    seccomp
}

/// The architectures the runtime-spec names (the profile compiler takes a few
/// more that oci-spec knows, which the spec's schema does not list).
fn archs() -> Vec<Arch> {
    use Arch as A;
    vec![
        A::ScmpArchX86,
        A::ScmpArchX86_64,
        A::ScmpArchX32,
        A::ScmpArchArm,
        A::ScmpArchAarch64,
        A::ScmpArchMips,
        A::ScmpArchMips64,
        A::ScmpArchMips64n32,
        A::ScmpArchMipsel,
        A::ScmpArchMipsel64,
        A::ScmpArchMipsel64n32,
        A::ScmpArchPpc,
        A::ScmpArchPpc64,
        A::ScmpArchPpc64le,
        A::ScmpArchS390,
        A::ScmpArchS390x,
        A::ScmpArchParisc,
        A::ScmpArchParisc64,
        A::ScmpArchRiscv64,
    ]
}

fn apparmor_enabled() -> bool {
    std::fs::read_to_string("/sys/module/apparmor/parameters/enabled").is_ok_and(|s| s.trim() == "Y")
        && std::path::Path::new("/sys/kernel/security/apparmor").exists()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::mounts::MountOptions;

    #[test]
    fn every_listed_mount_option_is_recognized_not_passed_as_data() {
        for option in MOUNT_OPTIONS {
            let parsed = MountOptions::parse(&[(*option).to_owned()])
                .unwrap_or_else(|e| panic!("{option}: refused by the mount plan: {e}"));
            assert!(parsed.data.is_empty(), "{option} is treated as filesystem data");
        }
    }

    #[test]
    fn the_document_has_no_nulls_and_the_required_fields() {
        let json = to_json(&features(&["run.oci.handler"], HashMap::from([("a".into(), "b".into())])));
        assert_eq!(json["ociVersionMin"], OCI_VERSION_MIN);
        assert_eq!(json["ociVersionMax"], OCI_VERSION_MAX);
        assert_eq!(json["potentiallyUnsafeConfigAnnotations"], serde_json::json!(["run.oci.handler"]));
        assert_eq!(json["annotations"]["a"], "b");
        assert_eq!(json["hooks"].as_array().unwrap().len(), 6);
        assert!(!json.to_string().contains("null"), "{json}");
        let linux = &json["linux"];
        assert!(linux["namespaces"].as_array().unwrap().contains(&"network".into()));
        assert!(linux["capabilities"].as_array().unwrap().contains(&"CAP_SYS_ADMIN".into()));
        assert_eq!(linux["seccomp"]["archs"][1], "SCMP_ARCH_X86_64");
        assert!(linux["seccomp"]["actions"].as_array().unwrap().contains(&"SCMP_ACT_KILL_PROCESS".into()));
        assert_eq!(linux["mountExtensions"]["idmap"]["enabled"], false);
        let supported = linux["seccomp"]["supportedFlags"].as_array().unwrap();
        let known = linux["seccomp"]["knownFlags"].as_array().unwrap();
        assert!(supported.iter().all(|f| known.contains(f)));
    }
}
