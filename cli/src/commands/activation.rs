//! Socket activation: descriptors passed to amphi by a service manager
//! (`LISTEN_FDS`, `LISTEN_PID`, as systemd sets them) go on to the container.

/// How many descriptors (from fd 3) were passed to this process: `LISTEN_FDS`
/// when `LISTEN_PID` names this process, else none (the variables were meant
/// for another process and merely inherited), as `sd_listen_fds` and runc read
/// them.
pub fn listen_fds() -> u32 {
    let fds = std::env::var("LISTEN_FDS").ok();
    let pid = std::env::var("LISTEN_PID").ok();
    parse(fds.as_deref(), pid.as_deref(), std::process::id())
}

fn parse(fds: Option<&str>, pid: Option<&str>, me: u32) -> u32 {
    if pid.and_then(|p| p.trim().parse::<u32>().ok()) != Some(me) {
        return 0;
    }
    fds.and_then(|n| n.trim().parse().ok()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_fds_meant_for_this_process_count() {
        assert_eq!(parse(Some("2"), Some("100"), 100), 2);
        assert_eq!(parse(Some("2"), Some("101"), 100), 0, "inherited from a parent");
        assert_eq!(parse(Some("2"), None, 100), 0);
        assert_eq!(parse(None, Some("100"), 100), 0);
        assert_eq!(parse(Some("x"), Some("100"), 100), 0);
        assert_eq!(parse(Some("-1"), Some("100"), 100), 0);
    }
}
