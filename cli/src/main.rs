//! `amphi`: runc's command line over amphi's runtime and executors.
//!
//! `main` parses the flags (clap), installs the logger, resolves the flags into
//! validated options and only then calls the libraries, so a flag error stops
//! before any side effect. An error is reported exactly once: to the log when
//! `--log` is given (during `create` amphi's stdout and stderr belong to the
//! container), else to stderr as `amphi: <error chain>`. The exit status is 1 for
//! an error, and the container's own status for `run`.
//!
//! The process stays single-threaded until the container process exists: it
//! forks, and a thread would break the child.
//!
//! The commands that make a container process (`create`, `run`, `exec`) first
//! make sure amphi runs from an image no container can write, re-executing
//! itself from one if need be, before they log or open anything
//! ([`amphi_runtime::run_from_sealed_image`]).

mod args;
mod cache_location;
mod commands;
mod logging;
mod rootless;

use std::process::ExitCode;

use clap::Parser;

/// What `--version` prints.
pub const VERSION_TEXT: &str = concat!("version ", env!("CARGO_PKG_VERSION"), "\nspec: 1.2.1");

fn main() -> ExitCode {
    let cli = args::Cli::parse();
    let to_file = cli.log.is_some();
    // Before the log is opened: a re-execution keeps no descriptor of ours.
    let sealed = if makes_stages(&cli.command) { run_from_sealed_image() } else { Ok(()) };
    if let Err(e) = logging::init(cli.log.as_deref(), cli.log_format, cli.debug) {
        report(&e, false);
        return ExitCode::FAILURE;
    }
    if let Err(e) = sealed {
        report(&e, to_file);
        return ExitCode::FAILURE;
    }
    match commands::dispatch(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            report(&e, to_file);
            ExitCode::FAILURE
        }
    }
}

/// Whether `command` clones the stages of a container process, whose
/// `/proc/<pid>/exe` a container can reach.
fn makes_stages(command: &args::Command) -> bool {
    matches!(command, args::Command::Create(_) | args::Command::Run(_) | args::Command::Exec(_))
}

/// Returns once amphi runs from a protected image; re-executes it from one
/// otherwise (the same argv and environment).
fn run_from_sealed_image() -> anyhow::Result<()> {
    use std::os::unix::ffi::OsStringExt;
    let argv = std::env::args_os()
        .map(|arg| std::ffi::CString::new(arg.into_vec()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| anyhow::anyhow!("an argument holds a NUL byte"))?;
    amphi_runtime::run_from_sealed_image(&argv)?;
    Ok(())
}

/// Reports the error that ends the command, once.
fn report(error: &anyhow::Error, to_log: bool) {
    let message = one_line(error);
    if to_log {
        logging::error(&message);
    } else {
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "amphi: {message}");
    }
}

/// The error and its causes on one line (`a: b: c`). The library errors name
/// their cause in their own message, so a cause already said is not repeated.
fn one_line(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let said = cause.to_string();
        if text.is_empty() {
            text = said;
        } else if !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
    }
    text.replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_already_said_are_not_repeated() {
        let io = std::io::Error::from_raw_os_error(libc::ENOENT);
        let error = anyhow::Error::new(io).context("open /x: No such file or directory (os error 2)");
        assert_eq!(one_line(&error), "open /x: No such file or directory (os error 2)");
        let error = anyhow::anyhow!("inner").context("outer");
        assert_eq!(one_line(&error), "outer: inner");
    }
}
