//! `hooks`: what the spec says of each hook before any runs (running them is
//! [`crate::hooks`]'s).

use oci_spec::runtime::Hooks;

use super::SpecError;

/// Every hook has an absolute path, a positive timeout if any, and an env of
/// `KEY=VALUE` entries ([`super::process::env`]'s rule).
pub fn check(h: &Hooks) -> Result<(), SpecError> {
    let lists = [
        ("prestart", h.prestart()),
        ("createRuntime", h.create_runtime()),
        ("createContainer", h.create_container()),
        ("startContainer", h.start_container()),
        ("poststart", h.poststart()),
        ("poststop", h.poststop()),
    ];
    for (name, list) in lists {
        for (i, hook) in list.iter().flatten().enumerate() {
            let field = |what: &str| format!("hooks.{name}[{i}].{what}");
            if !hook.path().is_absolute() {
                return Err(SpecError::new(field("path"), format!("{:?} is not an absolute path", hook.path())));
            }
            if let Some(t) = hook.timeout()
                && t <= 0
            {
                return Err(SpecError::new(field("timeout"), format!("{t} is not a positive number of seconds")));
            }
            super::process::env(&field("env"), hook.env().as_deref().unwrap_or_default())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(hooks: serde_json::Value) -> SpecError {
        check(&serde_json::from_value(hooks).unwrap()).unwrap_err()
    }

    #[test]
    fn hooks_need_absolute_paths_and_positive_timeouts() {
        let err = refused(serde_json::json!({"createRuntime": [{"path": "hook"}]}));
        assert_eq!(err.to_string(), r#"config.json: hooks.createRuntime[0].path: "hook" is not an absolute path"#);
        let err =
            refused(serde_json::json!({"poststop": [{"path": "/bin/true"}, {"path": "/bin/true", "timeout": 0}]}));
        assert_eq!(err.to_string(), "config.json: hooks.poststop[1].timeout: 0 is not a positive number of seconds");
        let err = refused(serde_json::json!({"prestart": [{"path": "/bin/true", "env": ["X"]}]}));
        assert_eq!(err.field, "hooks.prestart[0].env[0]");
        check(
            &serde_json::from_value(serde_json::json!({"poststart": [{"path": "/bin/true", "timeout": 5}]})).unwrap(),
        )
        .unwrap();
    }
}
