//! The probe's command line, parsed by hand: the probe must build fast and stay
//! small, and its flags are few.

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;
use std::time::Duration;

pub const USAGE: &str = "\
usage: amphi-probe [FLAG]...
Prints one JSON object describing the process and its view of the system, then
acts on the flags in this order: --stdout, --stderr, --seize-exe, --sleep,
--wait-signal, --exit.
  --check PATH        also report on PATH (repeatable)
  --write PATH:TEXT   write TEXT to PATH before the report (repeatable)
  --no-report         print no report
  --pretty            indent the report (default: one line)
  --stdout TEXT       print TEXT and a newline on stdout (repeatable)
  --stderr TEXT       print TEXT and a newline on stderr (repeatable)
  --seize-exe PATH    attack the executable of another process through
                      /proc/<pid>/exe (CVE-2019-5736) and report to PATH
  --sleep SECS        sleep (fractions allowed); 0 sleeps until killed
  --wait-signal       block until SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2
                      or SIGALRM, print {\"signal\":NAME,\"number\":N}, exit 128+N
  --exit N            exit with status N (default 0, or 1 if a --write failed)
  --help              print this help";

/// How long `--sleep` sleeps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sleep {
    For(Duration),
    Forever,
}

/// The parsed command line.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub report: bool,
    pub pretty: bool,
    pub checks: Vec<PathBuf>,
    pub writes: Vec<(PathBuf, Vec<u8>)>,
    pub stdout: Vec<OsString>,
    pub stderr: Vec<OsString>,
    pub seize_exe: Option<PathBuf>,
    pub sleep: Option<Sleep>,
    pub wait_signal: bool,
    pub exit: Option<u8>,
    pub help: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            report: true,
            pretty: false,
            checks: Vec::new(),
            writes: Vec::new(),
            stdout: Vec::new(),
            stderr: Vec::new(),
            seize_exe: None,
            sleep: None,
            wait_signal: false,
            exit: None,
            help: false,
        }
    }
}

/// Parses the arguments after the program name. Accepts `--flag VALUE` and
/// `--flag=VALUE`.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Options, String> {
    let mut options = Options::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = split_inline(&arg);
        let mut value = |name: &str| -> Result<OsString, String> {
            match &inline {
                Some(v) => Ok(v.clone()),
                None => args.next().ok_or_else(|| format!("{name} needs a value")),
            }
        };
        match flag.as_str() {
            "--check" => options.checks.push(value("--check")?.into()),
            "--write" => options.writes.push(parse_write(&value("--write")?)?),
            "--no-report" => options.report = false,
            "--pretty" => options.pretty = true,
            "--stdout" => options.stdout.push(value("--stdout")?),
            "--stderr" => options.stderr.push(value("--stderr")?),
            "--seize-exe" => options.seize_exe = Some(value("--seize-exe")?.into()),
            "--sleep" => options.sleep = Some(parse_sleep(&value("--sleep")?)?),
            "--wait-signal" => options.wait_signal = true,
            "--exit" => options.exit = Some(parse_exit(&value("--exit")?)?),
            "--help" | "-h" => options.help = true,
            _ => return Err(format!("unknown flag {}", arg.to_string_lossy())),
        }
        if inline.is_some() && matches!(flag.as_str(), "--no-report" | "--pretty" | "--wait-signal" | "--help" | "-h") {
            return Err(format!("{flag} takes no value"));
        }
    }
    Ok(options)
}

/// `--flag=value` → (`--flag`, Some(`value`)); anything else → (arg, None).
fn split_inline(arg: &OsString) -> (String, Option<OsString>) {
    let bytes = arg.as_bytes();
    if bytes.starts_with(b"--")
        && let Some(eq) = bytes.iter().position(|&b| b == b'=')
    {
        let flag = String::from_utf8_lossy(&bytes[..eq]).into_owned();
        return (flag, Some(OsString::from_vec(bytes[eq + 1..].to_vec())));
    }
    (arg.to_string_lossy().into_owned(), None)
}

fn parse_write(value: &OsString) -> Result<(PathBuf, Vec<u8>), String> {
    let bytes = value.as_bytes();
    let colon = bytes
        .iter()
        .position(|&b| b == b':')
        .ok_or_else(|| format!("--write {}: expected PATH:TEXT", value.to_string_lossy()))?;
    if colon == 0 {
        return Err(format!("--write {}: the path is empty", value.to_string_lossy()));
    }
    Ok((PathBuf::from(OsString::from_vec(bytes[..colon].to_vec())), bytes[colon + 1..].to_vec()))
}

fn parse_sleep(value: &OsString) -> Result<Sleep, String> {
    let text = value.to_string_lossy();
    let secs: f64 = text.parse().map_err(|_| format!("--sleep {text}: not a number of seconds"))?;
    if secs == 0.0 {
        return Ok(Sleep::Forever);
    }
    Duration::try_from_secs_f64(secs).map(Sleep::For).map_err(|_| format!("--sleep {text}: out of range"))
}

fn parse_exit(value: &OsString) -> Result<u8, String> {
    let text = value.to_string_lossy();
    text.parse().map_err(|_| format!("--exit {text}: not a status between 0 and 255"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    #[test]
    fn no_flags_means_report_and_exit_zero() {
        assert_eq!(parse(args(&[])).expect("parses"), Options::default());
    }

    #[test]
    fn every_flag_in_both_forms() {
        let options = parse(args(&[
            "--check",
            "/etc",
            "--check=/dev/null",
            "--write",
            "/tmp/a:hello:world",
            "--no-report",
            "--pretty",
            "--stdout",
            "out",
            "--stderr=err",
            "--seize-exe=/tmp/seized",
            "--sleep",
            "0.25",
            "--wait-signal",
            "--exit=7",
        ]))
        .expect("parses");
        assert_eq!(options.checks, [PathBuf::from("/etc"), PathBuf::from("/dev/null")]);
        assert_eq!(options.writes, [(PathBuf::from("/tmp/a"), b"hello:world".to_vec())]);
        assert!(!options.report && options.pretty && options.wait_signal);
        assert_eq!(options.stdout, [OsString::from("out")]);
        assert_eq!(options.stderr, [OsString::from("err")]);
        assert_eq!(options.seize_exe, Some(PathBuf::from("/tmp/seized")));
        assert_eq!(options.sleep, Some(Sleep::For(Duration::from_millis(250))));
        assert_eq!(options.exit, Some(7));
    }

    #[test]
    fn sleep_zero_is_forever() {
        assert_eq!(parse(args(&["--sleep", "0"])).expect("parses").sleep, Some(Sleep::Forever));
    }

    #[test]
    fn bad_flags_are_refused_with_the_flag_named() {
        for (list, message) in [
            (&["--bogus"][..], "unknown flag --bogus"),
            (&["--exit"], "--exit needs a value"),
            (&["--exit", "256"], "--exit 256: not a status between 0 and 255"),
            (&["--sleep", "-1"], "--sleep -1: out of range"),
            (&["--sleep", "soon"], "--sleep soon: not a number of seconds"),
            (&["--write", "nocolon"], "--write nocolon: expected PATH:TEXT"),
            (&["--write", ":text"], "--write :text: the path is empty"),
            (&["--pretty=yes"], "--pretty takes no value"),
        ] {
            assert_eq!(parse(args(list)), Err(message.to_owned()), "{list:?}");
        }
    }
}
