//! amphi's own diagnostics: `--log FILE` (or stderr), `--log-format text|json`.
//!
//! The JSON format is runc's: one object per line with `level`, `msg` and `time`
//! (RFC 3339), plus the event's other fields. containerd's shim decodes every line
//! of the log and shows the user the last one whose level is `error`, so a failing
//! command logs its error exactly once, as one line.

use std::fmt::Write as _;
use std::fs::OpenOptions;
use std::path::Path;
use std::sync::Mutex;

use anyhow::Context;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Installs the global subscriber. Without `--log`, lines go to stderr.
pub fn init(log: Option<&Path>, format: LogFormat, debug: bool) -> anyhow::Result<()> {
    let level = if debug { Level::DEBUG } else { Level::WARN };
    // libcgroups warns about every controller a host does not mount; that is
    // not news to the user of a container, so only its errors are shown.
    let filter = Targets::new().with_default(level).with_target("libcgroups", Level::ERROR);
    let layer = tracing_subscriber::fmt::layer().event_format(Line { format });
    let registry = tracing_subscriber::registry();
    match log {
        Some(path) => {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("open log file {}", path.display()))?;
            registry.with(layer.with_writer(Mutex::new(file)).with_filter(filter)).try_init()
        }
        None => registry.with(layer.with_writer(std::io::stderr).with_filter(filter)).try_init(),
    }
    .map_err(|e| anyhow::anyhow!("install logger: {e}"))
}

/// Logs the error that ends the command: the one line containerd will show.
pub fn error(message: &str) {
    tracing::error!("{message}");
}

struct Line {
    format: LogFormat,
}

impl<S, N> FormatEvent<S, N> for Line
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> std::fmt::Result {
        let mut fields = Fields::default();
        event.record(&mut fields);
        // The container id (and other span fields) give every line its context.
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                if let Some(stored) = span.extensions().get::<tracing_subscriber::fmt::FormattedFields<N>>() {
                    // Span fields are formatted `key=value key=value`; the
                    // values amphi puts there (container ids) hold no spaces.
                    for pair in stored.fields.as_str().split_ascii_whitespace() {
                        if let Some((key, value)) = pair.split_once('=') {
                            fields.extra.push((key.to_owned(), value.trim_matches('"').to_owned()));
                        }
                    }
                }
            }
        }
        let level = event.metadata().level().as_str().to_ascii_lowercase();
        let time = amphi_runtime::timestamp::now();
        match self.format {
            LogFormat::Json => {
                let mut line = String::with_capacity(96 + fields.message.len());
                line.push_str("{\"level\":");
                json_string(&mut line, &level);
                line.push_str(",\"msg\":");
                json_string(&mut line, &fields.message);
                line.push_str(",\"time\":");
                json_string(&mut line, &time);
                for (key, value) in &fields.extra {
                    line.push(',');
                    json_string(&mut line, key);
                    line.push(':');
                    json_string(&mut line, value);
                }
                line.push('}');
                writeln!(writer, "{line}")
            }
            LogFormat::Text => {
                write!(writer, "{time} {level:<5} {}", fields.message)?;
                for (key, value) in &fields.extra {
                    write!(writer, " {key}={value}")?;
                }
                writeln!(writer)
            }
        }
    }
}

#[derive(Default)]
struct Fields {
    message: String,
    extra: Vec<(String, String)>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_owned();
        } else {
            self.extra.push((field.name().to_owned(), value.to_owned()));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        } else {
            self.extra.push((field.name().to_owned(), format!("{value:?}")));
        }
    }
}

/// Appends `text` as a JSON string literal.
fn json_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_escape_what_json_requires() {
        let mut out = String::new();
        json_string(&mut out, "a \"b\" \\ c\nd\u{1}");
        assert_eq!(out, r#""a \"b\" \\ c\nd\u0001""#);
        let parsed: String = serde_json::from_str(&out).unwrap();
        assert_eq!(parsed, "a \"b\" \\ c\nd\u{1}");
    }
}
