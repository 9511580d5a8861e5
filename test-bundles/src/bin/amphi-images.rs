//! `amphi-images build --out DIR [--probe PATH]`: writes the test images as OCI
//! layout archives under `DIR` (for `ctr images import`) and prints one
//! `IMAGE-NAME<TAB>ARCHIVE` line per image. The probe defaults to the
//! `amphi-probe` next to this binary.

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use amphi_test_bundles::{ImageSources, PROBE_NAME, build_images};

const USAGE: &str = "usage: amphi-images build --out DIR [--probe PATH]";

fn parse(args: impl IntoIterator<Item = OsString>) -> Result<(PathBuf, PathBuf), String> {
    let mut args = args.into_iter();
    if args.next().as_deref() != Some("build".as_ref()) {
        return Err("expected the command `build`".into());
    }
    let (mut out, mut probe) = (None, None);
    while let Some(flag) = args.next() {
        let slot = match flag.to_str() {
            Some("--out") => &mut out,
            Some("--probe") => &mut probe,
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
    Ok((out.ok_or("--out is required")?, probe))
}

fn main() -> ExitCode {
    let (out, probe) = match parse(std::env::args_os().skip(1)) {
        Ok(parsed) => parsed,
        Err(message) => {
            let _ = writeln!(std::io::stderr(), "amphi-images: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match build_images(&out, &ImageSources::with_probe(probe)) {
        Ok(images) => {
            let mut stdout = std::io::stdout().lock();
            for image in images.all() {
                let _ = writeln!(stdout, "{}\t{}", image.name, image.path.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "amphi-images: {e}");
            ExitCode::FAILURE
        }
    }
}
