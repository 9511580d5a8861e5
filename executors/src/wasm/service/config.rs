//! A service's settings, read from (and taken out of) `process.env`.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `WASMTIME_HTTP_PROXY_SOCKET_ADDR` | `0.0.0.0:8080` | the address to listen on (`IP:PORT`, `[IPv6]:PORT`) |
//! | `WASMTIME_HTTP_BACKLOG` | 1024 | the listen backlog |
//! | `AMPHI_HTTP_TIMEOUT` | 60 s | the most a request may take, from its arrival to the end of its handler: past it, 504 (or, once the response has begun, the connection is cut) and its instance is dropped |
//! | `AMPHI_HTTP_MAX_BODY` | none | the largest request body taken: a larger one is answered 413 without instantiating the guest |
//! | `AMPHI_HTTP_MAX_CONCURRENCY` | 1000 | the most requests handled at once: one more is answered 503 (with `retry-after: 1`) at once, never queued |
//! | `AMPHI_HTTP_GRACE` | 10 s | after SIGTERM or SIGINT, how long requests in flight may take to finish |
//!
//! The first two are the names runwasi's wasmtime shim reads, so images and pod
//! specs made for it run unchanged. Durations are a number of seconds, or a
//! number followed by `s` or `ms` (`60`, `1.5s`, `250ms`); sizes a number of
//! bytes, or followed by `k`, `m` or `g` (powers of 1024). Every one of these
//! variables is consumed: the guest sees the rest of `process.env`.

use std::net::SocketAddr;
use std::time::Duration;

/// The address a service listens on by default.
pub const DEFAULT_ADDR: &str = "0.0.0.0:8080";
/// The listen backlog by default.
pub const DEFAULT_BACKLOG: u32 = 1024;
/// A request's time limit by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// The requests handled at once by default.
pub const DEFAULT_MAX_CONCURRENCY: usize = 1000;
/// The grace period for requests in flight after SIGTERM, by default.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(10);

/// The names of the variables a service consumes.
pub const ADDR_VAR: &str = "WASMTIME_HTTP_PROXY_SOCKET_ADDR";
pub const BACKLOG_VAR: &str = "WASMTIME_HTTP_BACKLOG";
pub const TIMEOUT_VAR: &str = "AMPHI_HTTP_TIMEOUT";
pub const MAX_BODY_VAR: &str = "AMPHI_HTTP_MAX_BODY";
pub const MAX_CONCURRENCY_VAR: &str = "AMPHI_HTTP_MAX_CONCURRENCY";
pub const GRACE_VAR: &str = "AMPHI_HTTP_GRACE";
const CONSUMED: [&str; 6] = [ADDR_VAR, BACKLOG_VAR, TIMEOUT_VAR, MAX_BODY_VAR, MAX_CONCURRENCY_VAR, GRACE_VAR];

/// A malformed service variable: the message names it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("process.env {name}={value:?}: {reason}")]
pub struct ConfigError {
    pub name: &'static str,
    pub value: String,
    pub reason: &'static str,
}

/// What a service runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceConfig {
    pub addr: SocketAddr,
    pub backlog: u32,
    pub timeout: Duration,
    pub max_body: Option<u64>,
    pub max_concurrency: usize,
    pub grace: Duration,
}

impl ServiceConfig {
    /// Takes the service's variables out of `env` (pairs from `process.env`) and
    /// reads them; what is left is the guest's environment.
    pub fn take_from(env: &mut Vec<(String, String)>) -> Result<Self, ConfigError> {
        let mut config = Self {
            addr: DEFAULT_ADDR.parse().expect("the default address parses"),
            backlog: DEFAULT_BACKLOG,
            timeout: DEFAULT_TIMEOUT,
            max_body: None,
            max_concurrency: DEFAULT_MAX_CONCURRENCY,
            grace: DEFAULT_GRACE,
        };
        // The last of repeated entries wins, as for a shell's environment.
        let mut taken: Vec<(String, String)> = Vec::new();
        env.retain(|(key, value)| {
            let consumed = CONSUMED.contains(&key.as_str());
            if consumed {
                taken.push((key.clone(), value.clone()));
            }
            !consumed
        });
        for (key, value) in taken {
            let error = |name: &'static str, reason: &'static str| ConfigError { name, value: value.clone(), reason };
            match key.as_str() {
                ADDR_VAR => {
                    config.addr = value.trim().parse().map_err(|_| error(ADDR_VAR, "not an IP:PORT socket address"))?;
                }
                BACKLOG_VAR => {
                    config.backlog = value
                        .trim()
                        .parse()
                        .ok()
                        .filter(|&n: &u32| n > 0 && n <= i32::MAX as u32)
                        .ok_or_else(|| error(BACKLOG_VAR, "not a positive whole number"))?;
                }
                TIMEOUT_VAR => {
                    config.timeout = parse_duration(&value, false).ok_or_else(|| error(TIMEOUT_VAR, DURATION))?
                }
                GRACE_VAR => config.grace = parse_duration(&value, true).ok_or_else(|| error(GRACE_VAR, DURATION))?,
                MAX_BODY_VAR => {
                    config.max_body = Some(
                        parse_size(&value)
                            .ok_or_else(|| error(MAX_BODY_VAR, "not a size (bytes, or a number with k, m or g)"))?,
                    );
                }
                MAX_CONCURRENCY_VAR => {
                    config.max_concurrency = value
                        .trim()
                        .parse()
                        .ok()
                        .filter(|&n: &usize| n > 0)
                        .ok_or_else(|| error(MAX_CONCURRENCY_VAR, "not a positive whole number"))?;
                }
                _ => unreachable!("only consumed names are taken"),
            }
        }
        Ok(config)
    }
}

const DURATION: &str = "not a duration (seconds, or a number with s or ms)";

/// `60`, `1.5s`, `250ms`; zero only where `zero_ok` (a grace period of none).
fn parse_duration(value: &str, zero_ok: bool) -> Option<Duration> {
    let value = value.trim();
    let (number, scale) = if let Some(ms) = value.strip_suffix("ms") {
        (ms, 1e-3)
    } else if let Some(s) = value.strip_suffix('s') {
        (s, 1.0)
    } else {
        (value, 1.0)
    };
    let seconds: f64 = number.trim().parse().ok()?;
    let seconds = seconds * scale;
    if !seconds.is_finite() || !(0.0..=1e9).contains(&seconds) || (seconds == 0.0 && !zero_ok) {
        return None;
    }
    Some(Duration::from_secs_f64(seconds))
}

/// `1048576`, `64k`, `10m`, `1g` (powers of 1024); zero is refused.
fn parse_size(value: &str) -> Option<u64> {
    let value = value.trim();
    let (number, shift) = match value.char_indices().last()? {
        (at, 'k' | 'K') => (&value[..at], 10),
        (at, 'm' | 'M') => (&value[..at], 20),
        (at, 'g' | 'G') => (&value[..at], 30),
        _ => (value, 0),
    };
    let number: u64 = number.trim().parse().ok()?;
    number.checked_mul(1 << shift).filter(|&bytes| bytes > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn defaults_without_variables_and_the_rest_is_left_for_the_guest() {
        let mut vars = env(&[("PATH", "/bin"), ("GREETING", "hi")]);
        let config = ServiceConfig::take_from(&mut vars).unwrap();
        assert_eq!(config.addr, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(config.backlog, DEFAULT_BACKLOG);
        assert_eq!(config.timeout, DEFAULT_TIMEOUT);
        assert_eq!(config.max_body, None);
        assert_eq!(config.max_concurrency, DEFAULT_MAX_CONCURRENCY);
        assert_eq!(config.grace, DEFAULT_GRACE);
        assert_eq!(vars, env(&[("PATH", "/bin"), ("GREETING", "hi")]));
    }

    #[test]
    fn every_variable_is_read_and_consumed() {
        let mut vars = env(&[
            ("A", "1"),
            (ADDR_VAR, "[::1]:9000"),
            (BACKLOG_VAR, "16"),
            (TIMEOUT_VAR, "250ms"),
            (MAX_BODY_VAR, "64k"),
            (MAX_CONCURRENCY_VAR, "8"),
            (GRACE_VAR, "0"),
            ("B", "2"),
        ]);
        let config = ServiceConfig::take_from(&mut vars).unwrap();
        assert_eq!(config.addr, "[::1]:9000".parse().unwrap());
        assert_eq!(config.backlog, 16);
        assert_eq!(config.timeout, Duration::from_millis(250));
        assert_eq!(config.max_body, Some(64 * 1024));
        assert_eq!(config.max_concurrency, 8);
        assert_eq!(config.grace, Duration::ZERO);
        assert_eq!(vars, env(&[("A", "1"), ("B", "2")]));
    }

    #[test]
    fn the_last_of_repeated_entries_wins() {
        let mut vars = env(&[(TIMEOUT_VAR, "5"), (TIMEOUT_VAR, "1.5s")]);
        assert_eq!(ServiceConfig::take_from(&mut vars).unwrap().timeout, Duration::from_millis(1500));
    }

    #[test]
    fn malformed_values_name_the_variable() {
        for (name, value) in [
            (ADDR_VAR, "8080"),
            (ADDR_VAR, "localhost:80"),
            (BACKLOG_VAR, "0"),
            (BACKLOG_VAR, "-1"),
            (TIMEOUT_VAR, "0"),
            (TIMEOUT_VAR, "soon"),
            (TIMEOUT_VAR, "-3s"),
            (MAX_BODY_VAR, "0"),
            (MAX_BODY_VAR, "10x"),
            (MAX_BODY_VAR, "99999999999g"),
            (MAX_CONCURRENCY_VAR, "0"),
            (GRACE_VAR, "inf"),
        ] {
            let mut vars = env(&[(name, value)]);
            let error = ServiceConfig::take_from(&mut vars).unwrap_err();
            assert_eq!(error.name, name, "{value}");
            let message = error.to_string();
            assert!(message.starts_with(&format!("process.env {name}=")), "{message}");
        }
    }
}
