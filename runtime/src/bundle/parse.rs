//! `config.json` bytes to a [`Spec`], with errors a person can act on.
//!
//! The good path is one plain `serde_json` parse. A failure is parsed again with
//! `serde_path_to_error` to learn where it happened, and serde's message is
//! rewritten: `unknown variant `RLIMIT_FOO`, expected one of ...` (sixteen names)
//! becomes `process.rlimits[0].type: unknown rlimit type "RLIMIT_FOO"`.

use std::fmt::Write as _;
use std::path::Path;

use oci_spec::runtime::Spec;
use serde_json::error::Category;
use serde_path_to_error::Segment;

use super::BundleError;

/// Lists of allowed values up to this long are worth printing.
const SHORT_LIST: usize = 8;

pub(super) fn spec(path: &Path, bytes: &[u8]) -> Result<Spec, BundleError> {
    serde_json::from_slice(bytes).map_err(|err| explain(path, bytes, err))
}

fn explain(path: &Path, bytes: &[u8], plain: serde_json::Error) -> BundleError {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return BundleError::Empty { path: path.to_owned() };
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    // The same input fails the same way; when it does not (trailing characters
    // are found by the plain parse's end check), the plain error is the answer.
    let (segments, err) = match serde_path_to_error::deserialize::<_, Spec>(&mut de) {
        Ok(_) => (Vec::new(), plain),
        Err(err) => {
            let segments: Vec<Segment> = err.path().iter().cloned().collect();
            (segments, err.into_inner())
        }
    };
    match err.classify() {
        Category::Data => {
            let msg = without_position(&err);
            let (field, reason) = data_reason(&segments, &msg);
            BundleError::field(field, reason)
        }
        Category::Eof => BundleError::Syntax {
            path: path.to_owned(),
            line: err.line(),
            column: err.column(),
            msg: {
                let msg = without_position(&err);
                // serde_json says `EOF while parsing a string`.
                let what = msg.strip_prefix("EOF ").unwrap_or(&msg);
                format!("unexpected end of file {what} (is the file truncated?)")
            },
        },
        Category::Syntax | Category::Io => BundleError::Syntax {
            path: path.to_owned(),
            line: err.line(),
            column: err.column(),
            msg: without_position(&err),
        },
    }
}

/// serde_json's message without its ` at line L column C` tail.
fn without_position(err: &serde_json::Error) -> String {
    let text = err.to_string();
    let tail = format!(" at line {} column {}", err.line(), err.column());
    match text.strip_suffix(&tail) {
        Some(msg) => msg.to_owned(),
        None => text,
    }
}

/// The JSON path of a data error and a short reason for it.
fn data_reason(segments: &[Segment], msg: &str) -> (String, String) {
    let mut field = render(segments);
    if let Some(name) = msg.strip_prefix("missing field `").and_then(|m| m.strip_suffix('`')) {
        if !field.is_empty() {
            field.push('.');
        }
        field.push_str(name);
        return (field, "missing".into());
    }
    if field.is_empty() {
        field.push_str("top level");
    }
    if let Some(rest) = msg.strip_prefix("unknown variant `")
        && let Some((value, expected)) = rest.split_once('`')
    {
        let mut reason = format!("unknown {} {value:?}", what(segments));
        // `expected `a``, `expected `a` or `b``, `expected one of `a`, `b`, ...`:
        // the names are every other backtick-delimited piece.
        let names: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
        match names.len() {
            0 => {}
            1 => {
                let _ = write!(reason, " (expected {})", names[0]);
            }
            n if n <= SHORT_LIST => {
                let _ = write!(reason, " (expected one of {})", names.join(", "));
            }
            _ => {}
        }
        return (field, reason);
    }
    // oci-spec's capability parser: `no variant for {input} (converted to {name})`.
    if let Some(rest) = msg.strip_prefix("no variant for ") {
        let input = rest.split_once(" (converted to").map_or(rest, |(input, _)| input);
        return (field, format!("unknown capability {input:?}"));
    }
    (field, msg.replace('\n', "\\n"))
}

/// What the value at this path is, for `unknown <what> "value"`.
fn what(segments: &[Segment]) -> &'static str {
    let names: Vec<&str> = segments
        .iter()
        .filter_map(|s| match s {
            Segment::Map { key } | Segment::Enum { variant: key } => Some(key.as_str()),
            Segment::Seq { .. } | Segment::Unknown => None,
        })
        .collect();
    match names.as_slice() {
        [.., "rlimits", "type"] => "rlimit type",
        [.., "namespaces", "type"] => "namespace type",
        [.., "capabilities", _] => "capability",
        [.., "scheduler", "policy"] => "scheduler policy",
        [.., "scheduler", "flags"] => "scheduler flag",
        [.., "ioPriority", "class"] => "io priority class",
        [.., "personality", "domain"] => "personality domain",
        [.., "personality", "flags"] => "personality flag",
        [.., "devices", "type"] => "device type",
        [.., "seccomp", "defaultAction"] | [.., "syscalls", "action"] => "seccomp action",
        [.., "seccomp", "architectures"] => "seccomp architecture",
        [.., "seccomp", "flags"] => "seccomp flag",
        [.., "args", "op"] => "seccomp operator",
        [.., "memoryPolicy", "mode"] => "memory policy mode",
        [.., "memoryPolicy", "flags"] => "memory policy flag",
        _ => "value",
    }
}

/// The path as a person writes it: `process.rlimits[0].type`, with map keys that
/// are not plain names quoted: `linux.sysctl["net.ipv4.ip_forward"]`.
fn render(segments: &[Segment]) -> String {
    let mut out = String::new();
    for segment in segments {
        match segment {
            Segment::Seq { index } => {
                let _ = write!(out, "[{index}]");
            }
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') && !key.is_empty() {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(key);
                } else {
                    let _ = write!(out, "[{key:?}]");
                }
            }
            Segment::Unknown => out.push_str(".?"),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(json: &str) -> String {
        let err = spec(Path::new("/b/config.json"), json.as_bytes()).unwrap_err().to_string();
        assert_eq!(err.lines().count(), 1, "not one line: {err}");
        err
    }

    #[test]
    fn unknown_rlimit_names_the_field_without_the_list() {
        let err = error(
            r#"{"ociVersion":"1.0.0","process":{"cwd":"/","user":{"uid":0,"gid":0},"rlimits":[{"type":"RLIMIT_FOO","soft":1,"hard":1}]}}"#,
        );
        assert_eq!(err, r#"config.json: process.rlimits[0].type: unknown rlimit type "RLIMIT_FOO""#);
    }

    #[test]
    fn unknown_namespace_lists_the_eight_types() {
        let err = error(r#"{"ociVersion":"1.0.0","linux":{"namespaces":[{"type":"pid"},{"type":"netwrok"}]}}"#);
        assert!(
            err.starts_with(
                r#"config.json: linux.namespaces[1].type: unknown namespace type "netwrok" (expected one of "#
            ),
            "{err}"
        );
        assert!(err.contains("network") && !err.contains('`'), "{err}");
    }

    #[test]
    fn unknown_capability_names_the_set_and_entry() {
        let err = error(
            r#"{"ociVersion":"1.0.0","process":{"cwd":"/","user":{"uid":0,"gid":0},"capabilities":{"bounding":["CAP_KILL","CAP_FLY"]}}}"#,
        );
        assert_eq!(err, r#"config.json: process.capabilities.bounding[1]: unknown capability "CAP_FLY""#);
    }

    #[test]
    fn missing_nested_field_is_named_in_full() {
        let err = error(r#"{"ociVersion":"1.0.0","process":{"cwd":"/"}}"#);
        assert_eq!(err, "config.json: process.user: missing");
    }

    #[test]
    fn wrong_type_keeps_serdes_reason_without_position() {
        let err = error(r#"{"ociVersion":"1.0.0","process":{"cwd":"/","user":{"uid":"root","gid":0}}}"#);
        assert!(err.starts_with("config.json: process.user.uid: invalid type: string \"root\""), "{err}");
        assert!(!err.contains("at line"), "{err}");
    }

    #[test]
    fn sysctl_keys_are_quoted_in_the_path() {
        let err = error(r#"{"ociVersion":"1.0.0","linux":{"sysctl":{"net.ipv4.ip_forward":1}}}"#);
        assert!(err.starts_with(r#"config.json: linux.sysctl["net.ipv4.ip_forward"]: invalid type"#), "{err}");
    }

    #[test]
    fn truncated_file_names_file_line_and_column() {
        let err = error("{\n  \"ociVersion\": \"1.0.0\",\n  \"process\": {\"cwd\": \"/\"");
        assert!(err.starts_with("/b/config.json: line 3, column "), "{err}");
        assert!(err.contains("unexpected end of file"), "{err}");
    }

    #[test]
    fn malformed_file_names_file_line_and_column() {
        let err = error("{\n  \"ociVersion\": \"1.0.0\",\n  \"root\": {\"path\" \"rootfs\"}\n}");
        assert_eq!(err, "/b/config.json: line 3, column 19: expected `:`");
    }

    #[test]
    fn trailing_garbage_is_a_syntax_error() {
        let err = error(r#"{"ociVersion":"1.0.0"} x"#);
        assert_eq!(err, "/b/config.json: line 1, column 24: trailing characters");
    }

    #[test]
    fn empty_file_says_so() {
        assert_eq!(error(" \n"), "/b/config.json: the file is empty");
    }

    #[test]
    fn top_level_array_is_named() {
        let err = error("\"spec\"");
        assert_eq!(err, "config.json: top level: invalid type: string \"spec\", expected struct Spec");
    }
}
