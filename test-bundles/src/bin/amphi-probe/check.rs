//! `--check PATH` (what the process can see and do at a path) and
//! `--write PATH:TEXT`.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

use serde_json::{Map, Value, json};

/// How much of a regular file `--check` shows.
const CONTENT_LIMIT: u64 = 4096;
/// How many directory entries `--check` lists.
const ENTRIES_LIMIT: usize = 200;

/// What the process sees at `path`:
/// `{"path", "exists", "type", "link_target", "mode", "uid", "gid", "size", "rdev",
/// "is_dir", "readable", "read_error", "writable", "write_error", "content",
/// "truncated", "binary", "entries"}`, each present when it applies. Opening never blocks
/// (`O_NONBLOCK`), so a fifo or a terminal cannot hang the probe, and the
/// writability test never changes a file: files are opened `O_WRONLY` without
/// truncation; directories get a file created and removed at once.
pub fn check(path: &Path) -> Value {
    let mut out = Map::new();
    out.insert("path".into(), json!(path.to_string_lossy()));
    let link_meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) => {
            out.insert("exists".into(), json!(false));
            if e.kind() != ErrorKind::NotFound {
                out.insert("error".into(), json!(format!("lstat {}: {e}", path.display())));
            }
            return Value::Object(out);
        }
    };
    out.insert("exists".into(), json!(true));
    if link_meta.file_type().is_symlink()
        && let Ok(target) = fs::read_link(path)
    {
        out.insert("link_target".into(), json!(target.to_string_lossy()));
    }
    // Everything else is about what the path leads to.
    let meta = match fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) => {
            out.insert("type".into(), json!("symlink"));
            out.insert("error".into(), json!(format!("stat {}: {e}", path.display())));
            return Value::Object(out);
        }
    };
    let file_type = meta.file_type();
    let kind = if file_type.is_dir() {
        "dir"
    } else if file_type.is_file() {
        "file"
    } else if file_type.is_char_device() {
        "char"
    } else if file_type.is_block_device() {
        "block"
    } else if file_type.is_fifo() {
        "fifo"
    } else if file_type.is_socket() {
        "socket"
    } else {
        "unknown"
    };
    out.insert("type".into(), json!(kind));
    out.insert("is_dir".into(), json!(file_type.is_dir()));
    out.insert("mode".into(), json!(meta.mode() & 0o7777));
    out.insert("uid".into(), json!(meta.uid()));
    out.insert("gid".into(), json!(meta.gid()));
    out.insert("size".into(), json!(meta.size()));
    if file_type.is_char_device() || file_type.is_block_device() {
        let rdev = meta.rdev();
        out.insert("rdev".into(), json!([nix::sys::stat::major(rdev), nix::sys::stat::minor(rdev)]));
    }

    let read =
        if file_type.is_dir() { read_dir(path, &mut out) } else { read_file(path, file_type.is_file(), &mut out) };
    insert_result(&mut out, "readable", "read_error", read);
    let write = if file_type.is_dir() { write_dir(path) } else { write_file(path) };
    insert_result(&mut out, "writable", "write_error", write);
    Value::Object(out)
}

fn insert_result(out: &mut Map<String, Value>, flag: &str, error_key: &str, result: Result<(), String>) {
    out.insert(flag.into(), json!(result.is_ok()));
    if let Err(error) = result {
        out.insert(error_key.into(), json!(error));
    }
}

fn open_nonblocking(path: &Path, write: bool) -> std::io::Result<File> {
    OpenOptions::new().read(!write).write(write).custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_NOCTTY).open(path)
}

fn read_file(path: &Path, regular: bool, out: &mut Map<String, Value>) -> Result<(), String> {
    let file = open_nonblocking(path, false).map_err(|e| format!("open {} for reading: {e}", path.display()))?;
    if regular {
        let mut content = Vec::new();
        file.take(CONTENT_LIMIT + 1).read_to_end(&mut content).map_err(|e| format!("read {}: {e}", path.display()))?;
        let truncated = content.len() as u64 > CONTENT_LIMIT;
        content.truncate(CONTENT_LIMIT as usize);
        match text(&content, truncated) {
            Some(text) => out.insert("content".into(), json!(text)),
            None => out.insert("binary".into(), json!(true)),
        };
        out.insert("truncated".into(), json!(truncated));
    }
    Ok(())
}

/// The content as text, or `None` for a binary file. A character cut in two by
/// the size limit does not make a file binary.
fn text(content: &[u8], truncated: bool) -> Option<&str> {
    match std::str::from_utf8(content) {
        Ok(text) => Some(text),
        Err(e) if truncated && e.error_len().is_none() => std::str::from_utf8(&content[..e.valid_up_to()]).ok(),
        Err(_) => None,
    }
}

fn read_dir(path: &Path, out: &mut Map<String, Value>) -> Result<(), String> {
    let entries = fs::read_dir(path).map_err(|e| format!("read directory {}: {e}", path.display()))?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| format!("read directory {}: {e}", path.display()))?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    names.truncate(ENTRIES_LIMIT);
    out.insert("entries".into(), json!(names));
    Ok(())
}

fn write_file(path: &Path) -> Result<(), String> {
    open_nonblocking(path, true).map(drop).map_err(|e| format!("open {} for writing: {e}", path.display()))
}

fn write_dir(path: &Path) -> Result<(), String> {
    let probe = path.join(format!(".amphi-probe-{}", std::process::id()));
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&probe)
        .map_err(|e| format!("create {}: {e}", probe.display()))?;
    fs::remove_file(&probe).map_err(|e| format!("remove {}: {e}", probe.display()))
}

/// `--write PATH:TEXT`: creates or truncates `path` and writes `text`.
pub fn write(path: &Path, text: &[u8]) -> Value {
    match fs::write(path, text) {
        Ok(()) => json!({ "path": path.to_string_lossy(), "ok": true }),
        Err(e) => json!({
            "path": path.to_string_lossy(),
            "ok": false,
            "error": format!("write {}: {e}", path.display()),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_is_text_unless_binary() {
        assert_eq!(text(b"hello\n", false), Some("hello\n"));
        assert_eq!(text("caf\u{e9}".as_bytes(), false), Some("caf\u{e9}"));
        // "é" cut in half by the size limit: the text up to it.
        assert_eq!(text(&"caf\u{e9}".as_bytes()[..4], true), Some("caf"));
        assert_eq!(text(&"caf\u{e9}".as_bytes()[..4], false), None);
        assert_eq!(text(b"\x7fELF\x02\x01\x01\xff\xfe", false), None);
    }

    #[test]
    fn check_reports_a_file_a_directory_and_a_missing_path() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let file = tmp.path().join("f");
        fs::write(&file, "content").expect("write");
        let report = check(&file);
        assert_eq!(report["exists"], true);
        assert_eq!(report["type"], "file");
        assert_eq!(report["content"], "content");
        assert_eq!(report["readable"], true);
        assert_eq!(report["writable"], true);
        assert_eq!(fs::read(&file).expect("read"), b"content", "the write test changed the file");

        let dir = check(tmp.path());
        assert_eq!(dir["is_dir"], true);
        assert_eq!(dir["entries"], json!(["f"]));
        assert_eq!(dir["writable"], true);
        assert_eq!(fs::read_dir(tmp.path()).expect("ls").count(), 1, "the write test left a file behind");

        let missing = check(&tmp.path().join("nope"));
        assert_eq!(missing, json!({"path": tmp.path().join("nope").to_string_lossy(), "exists": false}));

        let link = tmp.path().join("l");
        std::os::unix::fs::symlink("nope", &link).expect("symlink");
        let dangling = check(&link);
        assert_eq!(dangling["exists"], true);
        assert_eq!(dangling["link_target"], "nope");
        assert!(dangling["error"].as_str().expect("error").starts_with("stat "), "{dangling}");
    }
}
