//! A small, deterministic ustar writer: what an image layer and an OCI layout
//! archive need (directories, regular files, symbolic links), with every entry
//! owned by root and dated at the epoch, so the same content always makes the
//! same bytes and therefore the same digest.

use super::ImageError;

const BLOCK: usize = 512;

/// One entry of an archive. Paths are relative (`bin/busybox`), without a
/// leading `/`; a directory's path may end in `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Dir { path: String, mode: u32 },
    File { path: String, mode: u32, contents: Vec<u8> },
    Symlink { path: String, target: String },
}

impl Entry {
    pub fn path(&self) -> &str {
        match self {
            Entry::Dir { path, .. } | Entry::File { path, .. } | Entry::Symlink { path, .. } => path,
        }
    }
}

/// The archive holding `entries` in order, closed by the two zero blocks.
pub fn archive(entries: &[Entry]) -> Result<Vec<u8>, ImageError> {
    let mut out = Vec::new();
    for entry in entries {
        let (mode, size, kind, link) = match entry {
            Entry::Dir { mode, .. } => (*mode, 0, b'5', ""),
            Entry::File { mode, contents, .. } => (*mode, contents.len(), b'0', ""),
            Entry::Symlink { target, .. } => (0o777, 0, b'2', target.as_str()),
        };
        out.extend_from_slice(&header(entry.path(), mode, size, kind, link)?);
        if let Entry::File { contents, .. } = entry {
            out.extend_from_slice(contents);
            out.resize(out.len().next_multiple_of(BLOCK), 0);
        }
    }
    out.resize(out.len() + 2 * BLOCK, 0);
    Ok(out)
}

/// A ustar header block. A path longer than the 100-byte name field is split
/// at a `/` into the 155-byte prefix and the name.
fn header(path: &str, mode: u32, size: usize, kind: u8, link: &str) -> Result<[u8; BLOCK], ImageError> {
    let too_long = || ImageError::TarName { path: path.to_owned() };
    if path.is_empty() || path.starts_with('/') {
        return Err(ImageError::TarPath { path: path.to_owned() });
    }
    let (prefix, name) = if path.len() <= 100 {
        ("", path)
    } else {
        let split = path[..path.len().min(156)].rfind('/').ok_or_else(too_long)?;
        (&path[..split], &path[split + 1..])
    };
    if name.len() > 100 || prefix.len() > 155 || link.len() > 100 {
        return Err(too_long());
    }
    let mut block = [0u8; BLOCK];
    put(&mut block[0..100], name.as_bytes());
    octal(&mut block[100..108], u64::from(mode & 0o7777));
    octal(&mut block[108..116], 0);
    octal(&mut block[116..124], 0);
    octal(&mut block[124..136], size as u64);
    octal(&mut block[136..148], 0);
    block[156] = kind;
    put(&mut block[157..257], link.as_bytes());
    put(&mut block[257..263], b"ustar\0");
    put(&mut block[263..265], b"00");
    put(&mut block[265..297], b"root");
    put(&mut block[297..329], b"root");
    put(&mut block[345..500], prefix.as_bytes());
    // The checksum is the byte sum of the header with its own field as spaces.
    block[148..156].fill(b' ');
    let sum: u64 = block.iter().map(|b| u64::from(*b)).sum();
    octal(&mut block[148..155], sum);
    block[155] = b' ';
    Ok(block)
}

fn put(field: &mut [u8], bytes: &[u8]) {
    field[..bytes.len()].copy_from_slice(bytes);
}

/// `value` in octal, zero-padded to fill `field` less its closing NUL.
fn octal(field: &mut [u8], value: u64) {
    let width = field.len() - 1;
    let text = format!("{value:0width$o}");
    put(field, text.as_bytes());
    field[width] = 0;
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;

    fn sample() -> Vec<Entry> {
        let deep = format!("{}/leaf", "d".repeat(120));
        vec![
            Entry::Dir { path: "bin/".into(), mode: 0o755 },
            Entry::File { path: "bin/tool".into(), mode: 0o755, contents: b"#!/bin/sh\necho hi\n".to_vec() },
            Entry::Symlink { path: "bin/alias".into(), target: "tool".into() },
            Entry::File { path: "empty".into(), mode: 0o600, contents: Vec::new() },
            Entry::File { path: "big".into(), mode: 0o644, contents: vec![7; 1300] },
            Entry::File { path: deep, mode: 0o644, contents: b"deep".to_vec() },
        ]
    }

    #[test]
    fn blocks_are_whole_and_the_end_is_two_zero_blocks() {
        let bytes = archive(&sample()).expect("archive");
        assert_eq!(bytes.len() % BLOCK, 0);
        assert!(bytes[bytes.len() - 2 * BLOCK..].iter().all(|b| *b == 0));
        // 6 headers, file data of 1 + 0 + 3 + 1 blocks, 2 end blocks.
        assert_eq!(bytes.len(), (6 + 5 + 2) * BLOCK);
        assert_eq!(archive(&sample()).expect("again"), bytes, "the same entries make the same bytes");
    }

    #[test]
    fn the_system_tar_reads_it_back() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("sample.tar");
        std::fs::write(&path, archive(&sample()).expect("archive")).expect("write");
        let out = tmp.path().join("out");
        std::fs::create_dir(&out).expect("mkdir");
        let status = Command::new("tar").arg("-xf").arg(&path).arg("-C").arg(&out).status().expect("run tar");
        assert!(status.success());
        assert_eq!(std::fs::read(out.join("bin/tool")).expect("tool"), b"#!/bin/sh\necho hi\n");
        assert_eq!(std::fs::read_link(out.join("bin/alias")).expect("alias"), std::path::Path::new("tool"));
        assert_eq!(std::fs::read(out.join("big")).expect("big"), vec![7; 1300]);
        assert_eq!(std::fs::read(out.join(format!("{}/leaf", "d".repeat(120)))).expect("deep"), b"deep");
        let mode =
            std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(out.join("empty")).expect("stat").permissions());
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn absolute_and_overlong_names_are_refused() {
        let file = |path: &str| Entry::File { path: path.into(), mode: 0o644, contents: Vec::new() };
        let error = archive(&[file("/etc/passwd")]).expect_err("absolute");
        assert_eq!(error.to_string(), "tar entry /etc/passwd: the path must be relative and not empty");
        let long = "x".repeat(101);
        let error = archive(&[file(&long)]).expect_err("a name with no / to split at");
        assert!(error.to_string().starts_with("tar entry xxx"), "{error}");
    }
}
