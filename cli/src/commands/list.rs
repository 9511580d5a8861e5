//! list.

use std::io::Write;

use amphi_runtime::container::{self, ListEntry};
use amphi_runtime::state::Store;
use anyhow::Context;

use crate::args::{ListArgs, ListFormat};

pub fn list(store: &Store, args: ListArgs) -> anyhow::Result<u8> {
    let entries = container::list(store)?;
    let mut states = Vec::with_capacity(entries.len());
    for entry in entries {
        match entry {
            ListEntry::Ok(state) => states.push(state),
            ListEntry::Unreadable { id, error } => tracing::warn!(id = %id, "skipping container: {error}"),
        }
    }
    let mut out = String::new();
    if args.quiet {
        for state in &states {
            out.push_str(&state.state.id);
            out.push('\n');
        }
    } else {
        match args.format {
            ListFormat::Json => {
                out = serde_json::to_string(&states).context("encode list")?;
                out.push('\n');
            }
            ListFormat::Table => {
                let rows: Vec<[String; 6]> = states
                    .iter()
                    .map(|s| {
                        [
                            s.state.id.clone(),
                            s.pid().to_string(),
                            s.state.status.to_string(),
                            s.state.bundle.display().to_string(),
                            s.created.clone(),
                            s.owner.clone(),
                        ]
                    })
                    .collect();
                let header = ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"].map(String::from);
                let mut widths = header.clone().map(|h| h.len());
                for row in &rows {
                    for (w, cell) in widths.iter_mut().zip(row) {
                        *w = (*w).max(cell.len());
                    }
                }
                for row in std::iter::once(&header).chain(&rows) {
                    let cells: Vec<String> = row.iter().zip(widths).map(|(c, w)| format!("{c:<w$}")).collect();
                    out.push_str(cells.join("   ").trim_end());
                    out.push('\n');
                }
            }
        }
    }
    std::io::stdout().write_all(out.as_bytes()).context("write list")?;
    Ok(0)
}
