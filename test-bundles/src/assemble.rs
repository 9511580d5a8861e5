//! The bundles themselves: what goes in each rootfs and each config.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::bundle::write_bundle;
use crate::{Bundle, Error, install};

/// The probe's file name, in the target directory and in the rootfs's `/bin`.
pub const PROBE_NAME: &str = "amphi-probe";

/// Where the probe sits inside the probe bundle's rootfs.
pub const PROBE_IN_ROOTFS: &str = "/bin/amphi-probe";

/// The hostname of the probe bundle.
pub const PROBE_HOSTNAME: &str = "probe-host";

/// The hostname of the busybox bundle.
pub const BUSYBOX_HOSTNAME: &str = "busybox-host";

/// Debian's static busybox (package `busybox-static`).
pub const HOST_BUSYBOX: &str = "/bin/busybox";

/// The busybox applets the busybox bundle links in `/bin`; each is in the
/// `busybox --list` of Debian's `busybox-static`.
pub const BUSYBOX_APPLETS: &[&str] = &[
    "[", "cat", "chmod", "cp", "cut", "date", "dd", "df", "echo", "env", "false", "grep", "head", "hostname", "id",
    "kill", "ln", "ls", "mkdir", "mount", "mv", "nproc", "printf", "ps", "pwd", "readlink", "rm", "sed", "seq",
    "setsid", "sh", "sleep", "stat", "sync", "tail", "test", "timeout", "touch", "tr", "true", "tty", "umount",
    "uname", "wc", "whoami",
];

/// The hostname of the wasm bundle.
pub const WASM_HOSTNAME: &str = "wasm-host";

/// Where the wasm programs sit inside the wasm bundle's rootfs.
pub const WASM_DIR_IN_ROOTFS: &str = "/wasm";

/// Where the wasm bundle's escaping symlinks point on the host: a real module
/// there, so a runtime that followed them out of the rootfs would run it.
pub const ESCAPE_TARGET: &str = "/tmp/amphi-escape-target";

/// Every bundle [`build_all`] makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundles {
    /// `<out>/probe`: the probe alone at `/bin/amphi-probe`, reporting and exiting.
    pub probe: Bundle,
    /// `<out>/busybox`: busybox and its applets in `/bin`, running `/bin/true`.
    pub busybox: Bundle,
    /// `<out>/wasm`: busybox, the probe and every wasm fixture in `/wasm`, running
    /// `/wasm/hello.wasm` with no annotation (chosen by content).
    pub wasm: Bundle,
}

/// Builds every bundle under `out` with the probe binary at `probe` and the
/// host's busybox. Quick when nothing changed: files already in place are not
/// copied again.
pub fn build_all(out: &Path, probe: &Path) -> Result<Bundles, Error> {
    Ok(Bundles {
        probe: build_probe(&out.join("probe"), probe)?,
        busybox: build_busybox(&out.join("busybox"), Path::new(HOST_BUSYBOX))?,
        wasm: build_wasm(&out.join("wasm"), Path::new(HOST_BUSYBOX), probe)?,
    })
}

/// Where the probe is built: next to `amphi` in the same target directory (both
/// are workspace binaries).
pub fn probe_path_next_to(amphi_bin: &Path) -> PathBuf {
    amphi_bin.with_file_name(PROBE_NAME)
}

/// The probe bundle at `dir`: a rootfs holding only `/bin/amphi-probe` (copied
/// from `probe`) and the empty directories `proc`, `dev`, `sys`, `tmp`; the
/// default config with no terminal, `args` `["/bin/amphi-probe"]` and the
/// hostname `probe-host`.
pub fn build_probe(dir: &Path, probe: &Path) -> Result<Bundle, Error> {
    if !probe.is_file() {
        return Err(Error::ProbeMissing { path: probe.to_owned() });
    }
    let rootfs = dir.join("rootfs");
    skeleton(&rootfs)?;
    install::copy(probe, &rootfs.join("bin").join(PROBE_NAME), 0o755)?;
    write_bundle(dir, &config(&[PROBE_IN_ROOTFS], PROBE_HOSTNAME)?)
}

/// The busybox bundle at `dir`: `busybox` (copied from the host's static one) in
/// `/bin` with a symlink for each of [`BUSYBOX_APPLETS`], a minimal
/// `/etc/passwd` and `/etc/group` (root and nobody), and the default config with
/// no terminal, `args` `["/bin/true"]` and the hostname `busybox-host`.
pub fn build_busybox(dir: &Path, busybox: &Path) -> Result<Bundle, Error> {
    if !busybox.is_file() {
        return Err(Error::BusyboxMissing { path: busybox.to_owned() });
    }
    let rootfs = dir.join("rootfs");
    skeleton(&rootfs)?;
    let bin = rootfs.join("bin");
    install::copy(busybox, &bin.join("busybox"), 0o755)?;
    for applet in BUSYBOX_APPLETS {
        install::link(Path::new("busybox"), &bin.join(applet))?;
    }
    install::dir(&rootfs.join("etc"), 0o755)?;
    install::dir(&rootfs.join("root"), 0o700)?;
    install::file(
        &rootfs.join("etc/passwd"),
        b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        0o644,
    )?;
    install::file(&rootfs.join("etc/group"), b"root:x:0:\nnogroup:x:65534:\n", 0o644)?;
    write_bundle(dir, &config(&["/bin/true"], BUSYBOX_HOSTNAME)?)
}

/// The wasm bundle at `dir`: the busybox bundle's files (so native tools can be
/// exec'd into a wasm container), the probe, every wasm fixture in `/wasm`
/// (plus `/wasm/hello-noexec.wasm` without an execute bit), two symlinks that
/// point out of the rootfs (`/wasm/escape-absolute.wasm` to [`ESCAPE_TARGET`],
/// `/wasm/escape-relative.wasm` through `../../..`, both naming a module that
/// exists on the host), and the default config running `/wasm/hello.wasm`.
pub fn build_wasm(dir: &Path, busybox: &Path, probe: &Path) -> Result<Bundle, Error> {
    build_busybox(dir, busybox)?;
    let rootfs = dir.join("rootfs");
    install::copy(probe, &rootfs.join("bin").join(PROBE_NAME), 0o755)?;
    let wasm = rootfs.join(WASM_DIR_IN_ROOTFS.trim_start_matches('/'));
    install::dir(&wasm, 0o755)?;
    for name in amphi_wasm_fixtures::NAMES {
        install::copy(&amphi_wasm_fixtures::path(name), &wasm.join(name), 0o755)?;
    }
    install::copy(&amphi_wasm_fixtures::path("hello.wasm"), &wasm.join("hello-noexec.wasm"), 0o644)?;
    // The targets of the escaping links exist on the host.
    let escape = Path::new(ESCAPE_TARGET);
    install::dir(escape, 0o755)?;
    install::copy(&amphi_wasm_fixtures::path("hello.wasm"), &escape.join("hello.wasm"), 0o644)?;
    install::link(&escape.join("hello.wasm"), &wasm.join("escape-absolute.wasm"))?;
    let relative: PathBuf = std::iter::repeat_n("..", 12)
        .collect::<PathBuf>()
        .join(ESCAPE_TARGET.trim_start_matches('/'))
        .join("hello.wasm");
    install::link(&relative, &wasm.join("escape-relative.wasm"))?;
    write_bundle(dir, &config(&["/wasm/hello.wasm"], WASM_HOSTNAME)?)
}

/// The directories every test rootfs has: `bin` and the usual mount points.
pub(crate) fn skeleton(rootfs: &Path) -> Result<(), Error> {
    install::dir(rootfs, 0o755)?;
    for name in ["bin", "proc", "dev", "sys"] {
        install::dir(&rootfs.join(name), 0o755)?;
    }
    install::dir(&rootfs.join("tmp"), 0o1777)
}

/// `amphi spec`'s default config with no terminal, the given args and hostname.
pub(crate) fn config(args: &[&str], hostname: &str) -> Result<Value, Error> {
    let spec = amphi_runtime::default_spec::default_spec();
    let mut config =
        serde_json::to_value(&spec).map_err(|source| Error::Serialise { what: "the default spec", source })?;
    config["process"]["terminal"] = json!(false);
    config["process"]["args"] = json!(args);
    config["hostname"] = json!(hostname);
    Ok(config)
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    use super::*;

    /// Any file will do as the probe: the builder only copies it.
    fn fake_probe(dir: &Path) -> PathBuf {
        let path = dir.join("fake-probe");
        fs::write(&path, b"#!/bin/false\n").expect("write fake probe");
        path
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).expect("stat").permissions().mode() & 0o7777
    }

    #[test]
    fn probe_bundle_has_the_probe_and_a_runnable_config() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let bundle = build_probe(&tmp.path().join("probe"), &fake_probe(tmp.path())).expect("build");
        assert_eq!(bundle.dir(), tmp.path().join("probe"));
        assert_eq!(bundle.rootfs(), tmp.path().join("probe/rootfs"));
        let probe = bundle.rootfs().join("bin/amphi-probe");
        assert_eq!(fs::read(&probe).expect("probe copied"), b"#!/bin/false\n");
        assert_eq!(mode(&probe), 0o755);
        for dir in ["proc", "dev", "sys"] {
            assert_eq!(mode(&bundle.rootfs().join(dir)), 0o755, "{dir}");
        }
        assert_eq!(mode(&bundle.rootfs().join("tmp")), 0o1777);

        // The runtime's own loader accepts it.
        let loaded = amphi_runtime::Bundle::load(bundle.dir()).expect("amphi loads the bundle");
        assert_eq!(loaded.rootfs, bundle.rootfs());
        let process = loaded.spec.process().as_ref().expect("process");
        assert_eq!(process.args().as_deref(), Some(&["/bin/amphi-probe".to_owned()][..]));
        assert_eq!(process.terminal(), Some(false));
        assert_eq!(loaded.spec.hostname().as_deref(), Some("probe-host"));
        let config = bundle.config().expect("config");
        assert_eq!(config["root"]["path"], "rootfs", "the base bundle keeps a relative rootfs");
    }

    #[test]
    fn building_again_copies_and_writes_nothing() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let probe = fake_probe(tmp.path());
        let bundle = build_probe(&tmp.path().join("probe"), &probe).expect("build");
        let files = [bundle.config_path(), bundle.rootfs().join("bin/amphi-probe")];
        let before: Vec<(u64, i64)> =
            files.iter().map(|f| fs::metadata(f).map(|m| (m.ino(), m.mtime_nsec())).expect("stat")).collect();
        let again = build_probe(&tmp.path().join("probe"), &probe).expect("build again");
        assert_eq!(again, bundle);
        let after: Vec<(u64, i64)> =
            files.iter().map(|f| fs::metadata(f).map(|m| (m.ino(), m.mtime_nsec())).expect("stat")).collect();
        assert_eq!(before, after, "an up-to-date bundle was rewritten");

        fs::write(&probe, b"a new probe").expect("rebuild the probe");
        build_probe(&tmp.path().join("probe"), &probe).expect("build after change");
        assert_eq!(fs::read(&files[1]).expect("read"), b"a new probe");
    }

    #[test]
    fn a_missing_probe_says_how_to_build_it() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let error = build_probe(&tmp.path().join("probe"), &tmp.path().join("amphi-probe")).expect_err("no probe");
        assert!(error.to_string().contains("cargo build -p amphi-test-bundles --bin amphi-probe"), "{error}");
        assert!(!tmp.path().join("probe").exists(), "nothing is built without a probe");
    }

    #[test]
    fn busybox_bundle_links_every_applet() {
        let tmp = tempfile::tempdir().expect("tempdir");
        // A stand-in busybox: the builder copies it and links the applets to it.
        let busybox = tmp.path().join("busybox");
        fs::write(&busybox, b"busybox").expect("write");
        let bundle = build_busybox(&tmp.path().join("bb"), &busybox).expect("build");
        let bin = bundle.rootfs().join("bin");
        assert_eq!(fs::read(bin.join("busybox")).expect("busybox copied"), b"busybox");
        for applet in BUSYBOX_APPLETS {
            assert_eq!(fs::read_link(bin.join(applet)).expect("applet link"), Path::new("busybox"), "{applet}");
            assert_eq!(fs::read(bin.join(applet)).expect("link resolves"), b"busybox", "{applet}");
        }
        let passwd = fs::read_to_string(bundle.rootfs().join("etc/passwd")).expect("passwd");
        assert!(passwd.starts_with("root:x:0:0:"));
        let spec = bundle.spec().expect("config parses");
        let process = spec.process().as_ref().expect("process");
        assert_eq!(process.args().as_deref(), Some(&["/bin/true".to_owned()][..]));
        assert_eq!(spec.hostname().as_deref(), Some(BUSYBOX_HOSTNAME));
    }

    #[test]
    fn host_busybox_has_every_applet() {
        let Ok(output) = std::process::Command::new(HOST_BUSYBOX).arg("--list").output() else {
            assert_ne!(std::env::var("CI").as_deref(), Ok("true"), "{HOST_BUSYBOX} is missing");
            return;
        };
        let list = String::from_utf8(output.stdout).expect("utf-8");
        let applets: Vec<&str> = list.lines().collect();
        for applet in BUSYBOX_APPLETS {
            assert!(applets.contains(applet), "{HOST_BUSYBOX} has no {applet}");
        }
    }

    #[test]
    fn variants_share_the_rootfs_and_write_only_a_config() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let base = build_probe(&tmp.path().join("probe"), &fake_probe(tmp.path())).expect("build");
        let variant = base
            .variant(&tmp.path().join("variants/sleeper"), |config| {
                config["process"]["args"] = json!(["/bin/amphi-probe", "--sleep", "0"]);
            })
            .expect("variant");
        assert_eq!(variant.rootfs(), base.rootfs());
        let names: Vec<_> = fs::read_dir(variant.dir()).expect("ls").map(|e| e.expect("entry").file_name()).collect();
        assert_eq!(names, ["config.json"]);
        let config = variant.config().expect("config");
        assert_eq!(config["root"]["path"], json!(base.rootfs()));
        assert_eq!(config["process"]["args"], json!(["/bin/amphi-probe", "--sleep", "0"]));
        assert_eq!(config["hostname"], "probe-host", "the rest is the base's");
        let loaded = amphi_runtime::Bundle::load(variant.dir()).expect("amphi loads the variant");
        assert_eq!(loaded.rootfs, base.rootfs());

        let typed = base
            .variant_spec(&tmp.path().join("variants/typed"), |spec| {
                spec.set_hostname(Some("typed".into()));
            })
            .expect("typed variant");
        assert_eq!(typed.rootfs(), base.rootfs());
        assert_eq!(typed.spec().expect("spec").hostname().as_deref(), Some("typed"));
        assert_eq!(base.config().expect("base").get("hostname"), Some(&json!("probe-host")), "base untouched");

        // A variant of a variant still shares the one rootfs.
        let second = variant.variant(&tmp.path().join("variants/second"), |_| {}).expect("variant of variant");
        assert_eq!(second.rootfs(), base.rootfs());
    }

    #[test]
    fn probe_is_found_next_to_amphi() {
        assert_eq!(
            probe_path_next_to(Path::new("/w/target/x86_64-unknown-linux-gnu/debug/amphi")),
            Path::new("/w/target/x86_64-unknown-linux-gnu/debug/amphi-probe")
        );
    }
}
