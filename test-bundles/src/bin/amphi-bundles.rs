//! `amphi-bundles build --out DIR [--probe PATH] [--busybox PATH]`: builds the
//! test bundles under `DIR` and prints one `NAME<TAB>BUNDLE-DIR` line per bundle.
//! The probe defaults to the `amphi-probe` next to this binary (both are built
//! into the same target directory); busybox to the host's `/bin/busybox`.

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use amphi_test_bundles::{Bundle, HOST_BUSYBOX, PROBE_NAME, build_busybox, build_probe, build_wasm};

const USAGE: &str = "usage: amphi-bundles build --out DIR [--probe PATH] [--busybox PATH]";

#[derive(Debug)]
struct Options {
    out: PathBuf,
    probe: PathBuf,
    busybox: PathBuf,
}

fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Options, String> {
    let mut args = args.into_iter();
    if args.next().as_deref() != Some("build".as_ref()) {
        return Err("expected the command `build`".into());
    }
    let (mut out, mut probe, mut busybox) = (None, None, None);
    while let Some(flag) = args.next() {
        let slot = match flag.to_str() {
            Some("--out") => &mut out,
            Some("--probe") => &mut probe,
            Some("--busybox") => &mut busybox,
            _ => return Err(format!("unknown flag {}", flag.display())),
        };
        let value = args.next().ok_or_else(|| format!("{} needs a value", flag.display()))?;
        *slot = Some(PathBuf::from(value));
    }
    let probe = match probe {
        Some(probe) => probe,
        None => std::env::current_exe()
            .map_err(|e| format!("find this program to find the probe next to it: {e}"))?
            .with_file_name(PROBE_NAME),
    };
    Ok(Options {
        out: out.ok_or("--out is required")?,
        probe,
        busybox: busybox.unwrap_or_else(|| PathBuf::from(HOST_BUSYBOX)),
    })
}

fn build(options: &Options) -> Result<Vec<(&'static str, Bundle)>, amphi_test_bundles::Error> {
    Ok(vec![
        ("probe", build_probe(&options.out.join("probe"), &options.probe)?),
        ("busybox", build_busybox(&options.out.join("busybox"), &options.busybox)?),
        ("wasm", build_wasm(&options.out.join("wasm"), &options.busybox, &options.probe)?),
    ])
}

fn main() -> ExitCode {
    let options = match parse(std::env::args_os().skip(1)) {
        Ok(options) => options,
        Err(error) => {
            let _ = writeln!(std::io::stderr(), "amphi-bundles: {error}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match build(&options) {
        Ok(bundles) => {
            let mut stdout = std::io::stdout().lock();
            for (name, bundle) in bundles {
                if writeln!(stdout, "{name}\t{}", bundle.dir().display()).is_err() {
                    return ExitCode::FAILURE;
                }
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            let _ = writeln!(std::io::stderr(), "amphi-bundles: {error}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    #[test]
    fn build_takes_out_probe_and_busybox() {
        let options = parse(args(&["build", "--out", "/o", "--probe", "/p", "--busybox", "/b"])).expect("parses");
        assert_eq!((options.out.as_path(), options.probe.as_path()), (Path::new("/o"), Path::new("/p")));
        assert_eq!(options.busybox, Path::new("/b"));
        let defaults = parse(args(&["build", "--out", "/o"])).expect("parses");
        assert_eq!(defaults.probe.file_name(), Some(PROBE_NAME.as_ref()));
        assert_eq!(defaults.busybox, Path::new(HOST_BUSYBOX));
    }

    #[test]
    fn bad_command_lines_are_refused() {
        assert_eq!(parse(args(&[])).expect_err("no command"), "expected the command `build`");
        assert_eq!(parse(args(&["build"])).expect_err("no out"), "--out is required");
        assert_eq!(parse(args(&["build", "--out"])).expect_err("no value"), "--out needs a value");
        assert_eq!(parse(args(&["build", "-x"])).expect_err("unknown"), "unknown flag -x");
    }
}
