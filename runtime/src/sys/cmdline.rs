//! Forgetting the caller's command line and environment.
//!
//! Every stage is a clone of the amphi process that made it, so its memory
//! starts with that caller's `argv` and `envp` strings, which the kernel shows
//! as `/proc/<pid>/cmdline` (to anyone who can see the process) and
//! `/proc/<pid>/environ`. The init of a wasm container stays amphi for the
//! container's whole life: without this, the host's environment (secrets
//! included) and command line (host paths) would live on inside the container.
//! [`forget_caller`] overwrites both areas in place through `/proc/self/mem`
//! (the process's own memory; the kernel lets any process write its own): the
//! command line becomes the stage's name, the environment zeros, so `getenv`
//! finds nothing afterwards.

use std::io;
use std::os::unix::fs::FileExt;

/// The process's argument and environment areas, from `/proc/self/stat`
/// (fields 48 to 51).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Areas {
    arg_start: u64,
    arg_end: u64,
    env_start: u64,
    env_end: u64,
}

fn parse_areas(stat: &str) -> Option<Areas> {
    // Fields are counted from the last `)` (the command name may hold spaces):
    // the first one after it is field 3.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    let areas = Areas { arg_start: field(48)?, arg_end: field(49)?, env_start: field(50)?, env_end: field(51)? };
    (areas.arg_start <= areas.arg_end && areas.env_start <= areas.env_end).then_some(areas)
}

/// Overwrites this process's command line with `title` (cut to fit, the rest
/// zeros) and its environment with zeros. Call it where `/proc` is the host's
/// (a stage's first step), before any container path is touched.
pub fn forget_caller(title: &[u8]) -> io::Result<()> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    let areas =
        parse_areas(&stat).ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "malformed /proc/self/stat"))?;
    let mem = std::fs::OpenOptions::new().write(true).open("/proc/self/mem")?;
    let arg_len = usize::try_from(areas.arg_end - areas.arg_start).unwrap_or(0);
    if arg_len > 0 {
        let mut args = vec![0u8; arg_len];
        // Keep the last byte a NUL, so the kernel reads only this area.
        let keep = title.len().min(arg_len - 1);
        args[..keep].copy_from_slice(&title[..keep]);
        mem.write_all_at(&args, areas.arg_start)?;
    }
    let env_len = usize::try_from(areas.env_end - areas.env_start).unwrap_or(0);
    if env_len > 0 {
        mem.write_all_at(&vec![0u8; env_len], areas.env_start)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_areas_after_a_name_with_spaces() {
        let mut stat = String::from("42 (a (b) c) S");
        for n in 4..=52 {
            stat.push_str(&format!(" {n}"));
        }
        let areas = parse_areas(&stat).expect("parsed");
        assert_eq!(areas, Areas { arg_start: 48, arg_end: 49, env_start: 50, env_end: 51 });
    }

    #[test]
    fn a_short_stat_is_refused() {
        assert_eq!(parse_areas("1 (x) S 1 2 3"), None);
    }

    #[test]
    fn forgetting_clears_what_proc_shows() {
        // In a child, so the test process keeps its own environment.
        let out = std::process::Command::new(std::env::current_exe().expect("test binary"))
            .args(["--exact", "sys::cmdline::tests::child_forgets", "--nocapture", "--test-threads=1"])
            .env("AMPHI_CMDLINE_CHILD", "1")
            .env("AMPHI_SECRET", "hunter2")
            .output()
            .expect("run the child");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stdout).contains("forgot"), "{}", String::from_utf8_lossy(&out.stdout));
    }

    #[test]
    #[expect(clippy::print_stdout, reason = "the child tells its parent test what it saw")]
    fn child_forgets() {
        if std::env::var_os("AMPHI_CMDLINE_CHILD").is_none() {
            return;
        }
        forget_caller(b"amphi:test").expect("forget");
        let environ = std::fs::read("/proc/self/environ").expect("environ");
        let cmdline = std::fs::read("/proc/self/cmdline").expect("cmdline");
        assert!(environ.iter().all(|&b| b == 0), "environ still holds {:?}", String::from_utf8_lossy(&environ));
        assert!(cmdline.starts_with(b"amphi:test\0"), "{:?}", String::from_utf8_lossy(&cmdline));
        assert!(std::env::var_os("AMPHI_SECRET").is_none(), "getenv still finds the secret");
        println!("forgot");
    }
}
