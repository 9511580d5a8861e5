//! `ociVersion`: a SemVer 2.0.0 version whose major is 1, the only one amphi
//! implements.

use super::SpecError;

/// Refuses an `ociVersion` that is missing, not SemVer, or not of major 1.
pub fn check(v: &str) -> Result<(), SpecError> {
    if v.is_empty() {
        return Err(SpecError::new("ociVersion", "missing"));
    }
    match semver_major(v) {
        None => Err(SpecError::new("ociVersion", format!("{v:?} is not a semantic version like \"1.2.0\""))),
        Some(1) => Ok(()),
        Some(_) => {
            Err(SpecError::new("ociVersion", format!("version {v:?} is not supported (the major version must be 1)")))
        }
    }
}

/// The major version of a SemVer 2.0.0 string, or `None` if it is not one.
fn semver_major(v: &str) -> Option<u64> {
    let (rest, build) = match v.split_once('+') {
        Some((rest, build)) => (rest, Some(build)),
        None => (v, None),
    };
    let (core, pre) = match rest.split_once('-') {
        Some((core, pre)) => (core, Some(pre)),
        None => (rest, None),
    };
    if !build.is_none_or(|b| identifiers(b, false)) || !pre.is_none_or(|p| identifiers(p, true)) {
        return None;
    }
    let mut parts = core.split('.');
    let major = number(parts.next()?)?;
    number(parts.next()?)?;
    number(parts.next()?)?;
    if parts.next().is_some() {
        return None;
    }
    Some(major)
}

/// A SemVer numeric identifier: digits, no leading zero.
fn number(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0')) {
        return None;
    }
    s.parse().ok()
}

/// Dot-separated SemVer identifiers; pre-release numeric ones have no leading zero.
fn identifiers(s: &str, pre_release: bool) -> bool {
    s.split('.').all(|id| {
        !id.is_empty()
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !(pre_release && id.len() > 1 && id.starts_with('0') && id.bytes().all(|b| b.is_ascii_digit()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn semver_versions_of_major_1_pass() {
        for v in ["1.0.0", "1.0.2-dev", "1.2.1+build.5", "1.0.0-rc.1", "1.0.0-0.3.7"] {
            check(v).unwrap();
        }
    }

    #[test]
    fn what_is_not_semver_is_named() {
        for v in ["1.0", "v1.0.0", "1.0.0.0", "01.0.0", "1.0.0-", "1.0.0-01", "1.0.0+", "1.a.0", "latest"] {
            assert_eq!(
                check(v).unwrap_err().to_string(),
                format!("config.json: ociVersion: {v:?} is not a semantic version like \"1.2.0\"")
            );
        }
        assert_eq!(check("").unwrap_err().to_string(), "config.json: ociVersion: missing");
    }

    #[test]
    fn other_majors_are_not_supported() {
        for v in ["2.0.0", "0.5.0"] {
            assert!(check(v).unwrap_err().reason.contains("major version must be 1"), "{v}");
        }
    }
}
