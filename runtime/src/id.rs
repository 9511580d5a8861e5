//! Container ids: the name a container is known by, and the name of its state
//! directory, so an id must never be able to name a path outside `--root`.

use std::fmt;

/// Why a container id was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdError {
    /// The id is empty.
    #[error("container id is empty")]
    Empty,
    /// The id is longer than 1024 bytes.
    #[error("container id {0:?} is too long (at most 1024 bytes)")]
    TooLong(String),
    /// The id holds a character outside `[A-Za-z0-9_+.-]`.
    #[error("container id {0:?} is invalid: only letters, digits, '_', '+', '-' and '.' are allowed")]
    BadCharacter(String),
    /// The id is `.` or `..`.
    #[error("container id {0:?} is invalid: it names a directory")]
    Dots(String),
}

/// A validated container id: `[A-Za-z0-9_+.-]+`, neither `.` nor `..`
/// (the rule runc applies, so ids that work there work here).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContainerId(String);

impl ContainerId {
    /// Checks `id` against the rule above.
    pub fn new(id: &str) -> Result<Self, IdError> {
        if id.is_empty() {
            return Err(IdError::Empty);
        }
        if id.len() > 1024 {
            return Err(IdError::TooLong(id.to_owned()));
        }
        if id == "." || id == ".." {
            return Err(IdError::Dots(id.to_owned()));
        }
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '-' | '.');
        if !id.chars().all(allowed) {
            return Err(IdError::BadCharacter(id.to_owned()));
        }
        Ok(Self(id.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ContainerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for ContainerId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_runc_style_ids() {
        for id in ["c1", "a.b", "x_y-z+1", "0123456789abcdef", "..a", "a.."] {
            assert_eq!(ContainerId::new(id).unwrap().as_str(), id);
        }
    }

    #[test]
    fn refuses_ids_that_name_paths() {
        assert_eq!(ContainerId::new(""), Err(IdError::Empty));
        assert_eq!(ContainerId::new("."), Err(IdError::Dots(".".into())));
        assert_eq!(ContainerId::new(".."), Err(IdError::Dots("..".into())));
        assert!(matches!(ContainerId::new("a/b"), Err(IdError::BadCharacter(_))));
        assert!(matches!(ContainerId::new("../x"), Err(IdError::BadCharacter(_))));
        assert!(matches!(ContainerId::new("a b"), Err(IdError::BadCharacter(_))));
        assert!(matches!(ContainerId::new("a\0b"), Err(IdError::BadCharacter(_))));
        assert!(matches!(ContainerId::new(&"x".repeat(1025)), Err(IdError::TooLong(_))));
    }
}
