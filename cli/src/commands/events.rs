//! events: resource usage once (`--stats`) or as a stream, with OOM events.

use std::io::Write;
use std::time::Duration;

use amphi_runtime::ContainerId;
use amphi_runtime::container::{self, Event};
use amphi_runtime::state::Store;
use anyhow::Context;

use crate::args::EventsArgs;

pub fn events(store: &Store, args: EventsArgs) -> anyhow::Result<u8> {
    let id = ContainerId::new(&args.id)?;
    let interval = parse_duration(&args.interval).with_context(|| format!("--interval {:?}", args.interval))?;
    if args.stats {
        let event = container::stats(store, &id)?;
        print(&event).context("write the stats")?;
        return Ok(0);
    }
    container::events(store, &id, interval, &mut |event| print(event))?;
    Ok(0)
}

/// One event per line, flushed at once (a reader follows the stream).
fn print(event: &Event) -> std::io::Result<()> {
    let mut line = serde_json::to_string(event).map_err(std::io::Error::other)?;
    line.push('\n');
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(line.as_bytes())?;
    stdout.flush()
}

/// A Go duration (`5s`, `500ms`, `1m30s`, `1.5h`): one or more numbers, each with
/// a unit of `ns`, `us` (or `µs`), `ms`, `s`, `m` or `h`. It must be positive.
fn parse_duration(text: &str) -> anyhow::Result<Duration> {
    let bad = || anyhow::anyhow!("not a duration like 5s, 500ms or 1m30s");
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let split = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(bad)?;
        let (number, after) = rest.split_at(split);
        let number: f64 = number.parse().map_err(|_| bad())?;
        let unit_len = after.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        let scale = match unit {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += number * scale;
        rest = next;
    }
    let duration = Duration::try_from_secs_f64(total).map_err(|_| bad())?;
    if duration.is_zero() {
        anyhow::bail!("must be longer than 0");
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_as_go_writes_them() {
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1.5h").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("250us").unwrap(), Duration::from_micros(250));
        for bad in ["", "5", "s", "5x", "0s", "-1s", "1m30"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
