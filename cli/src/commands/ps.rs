//! ps: the processes of a container, as pids or as the host's ps table.

use std::io::Write;

use amphi_runtime::ContainerId;
use amphi_runtime::container;
use amphi_runtime::state::Store;
use anyhow::Context;

use crate::args::{PsArgs, PsFormat};

pub fn ps(store: &Store, args: PsArgs) -> anyhow::Result<u8> {
    let id = ContainerId::new(&args.id)?;
    let pids = container::ps(store, &id)?;
    let out = match args.format {
        PsFormat::Json => {
            if !args.ps_args.is_empty() {
                anyhow::bail!("ps: ps arguments cannot be used with --format json");
            }
            format!("{}\n", serde_json::to_string(&pids).context("encode the pids")?)
        }
        PsFormat::Table => {
            let ps_args = if args.ps_args.is_empty() { vec!["-ef".to_owned()] } else { args.ps_args };
            let output = std::process::Command::new("ps")
                .args(&ps_args)
                .stdin(std::process::Stdio::null())
                .output()
                .context("ps: run the host's ps")?;
            if !output.status.success() {
                let stderr = String::from_utf8_lossy(&output.stderr);
                anyhow::bail!("ps {}: {} ({})", ps_args.join(" "), stderr.trim().replace('\n', "; "), output.status);
            }
            container_rows(&String::from_utf8_lossy(&output.stdout), &pids)?
        }
    };
    std::io::stdout().write_all(out.as_bytes()).context("write to stdout")?;
    Ok(0)
}

/// The header of a `ps` table and the rows whose PID column is one of `pids`.
fn container_rows(table: &str, pids: &[i32]) -> anyhow::Result<String> {
    let mut lines = table.lines();
    let header = lines.next().unwrap_or_default();
    let column = header
        .split_whitespace()
        .position(|field| field == "PID")
        .ok_or_else(|| anyhow::anyhow!("ps: the ps output has no PID column: {header:?}"))?;
    let mut out = format!("{header}\n");
    for line in lines {
        let pid = line.split_whitespace().nth(column).and_then(|p| p.parse::<i32>().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            out.push_str(line);
            out.push('\n');
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "\
UID          PID    PPID  C STIME TTY          TIME CMD
root           1       0  0 10:00 ?        00:00:01 /sbin/init
root         420     400  0 10:01 ?        00:00:00 /bin/amphi-probe --sleep 0
root         421     420  0 10:01 ?        00:00:00 sleep 1000
";

    #[test]
    fn keeps_the_header_and_the_containers_rows() {
        let out = container_rows(TABLE, &[420, 421]).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("UID"));
        assert!(lines[1].contains("amphi-probe") && lines[2].contains("sleep 1000"));
        // A pid that appears in another column (PPID 420 of 421) does not count.
        let only_sleep = container_rows(TABLE, &[421]).unwrap();
        assert_eq!(only_sleep.lines().count(), 2);
    }

    #[test]
    fn a_table_without_a_pid_column_is_refused() {
        let err = container_rows("USER COMMAND\nroot init\n", &[1]).unwrap_err().to_string();
        assert!(err.contains("no PID column"), "{err}");
    }
}
