//! Where the wasm compile cache lives: decided here, by one function, and
//! nowhere else (the executors take the result; no library reads the
//! environment for it).
//!
//! 1. `--wasm-cache DIR`;
//! 2. else `$AMPHI_WASM_CACHE`, when set and not empty;
//! 3. else, for root, `/var/lib/amphi/cache`;
//! 4. else, for any other user, `$XDG_CACHE_HOME/amphi/wasm`, else
//!    `~/.cache/amphi/wasm`, else no cache (`/var/lib/amphi` is root's).
//!
//! Resolving a location has no side effect: the commands resolve it after the
//! bundle is loaded and checked, and the directory is only made (and opened,
//! on the host) when a wasm workload asks for it over the stage channel.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use amphi_executors::cache::CacheConfig;

use crate::rootless::Env;

/// The environment variable that moves the cache (the flag wins over it).
pub const ENV_VAR: &str = "AMPHI_WASM_CACHE";

/// Root's cache when neither the flag nor the environment names one.
pub const ROOT_DEFAULT: &str = "/var/lib/amphi/cache";

/// `$AMPHI_WASM_CACHE` of this process, when set and not empty (read once,
/// into [`Env`]).
pub fn from_environment() -> Option<OsString> {
    std::env::var_os(ENV_VAR).filter(|v| !v.is_empty())
}

/// The cache `flag` and `env` name (see the module docs).
pub fn resolve(flag: Option<&Path>, env: &Env) -> CacheConfig {
    if let Some(dir) = flag.map(Path::to_owned).or_else(|| env.wasm_cache.as_ref().map(PathBuf::from)) {
        return CacheConfig::at(dir);
    }
    if env.euid == 0 {
        return CacheConfig::at(ROOT_DEFAULT);
    }
    let base = match (&env.xdg_cache_home, &env.home) {
        (Some(cache), _) => Some(PathBuf::from(cache)),
        (None, Some(home)) => Some(Path::new(home).join(".cache")),
        (None, None) => None,
    };
    base.map_or_else(CacheConfig::disabled, |b| CacheConfig::at(b.join("amphi").join("wasm")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(euid: u32) -> Env {
        Env { euid, ..Env::default() }
    }

    #[test]
    fn the_flag_wins_then_the_environment() {
        let mut root = env(0);
        root.wasm_cache = Some("/from/env".into());
        assert_eq!(resolve(Some(Path::new("/flag")), &root), CacheConfig::at("/flag"));
        assert_eq!(resolve(None, &root), CacheConfig::at("/from/env"));
        let mut user = env(1000);
        user.home = Some("/home/u".into());
        user.wasm_cache = Some("/from/env".into());
        assert_eq!(resolve(None, &user), CacheConfig::at("/from/env"));
        assert_eq!(resolve(Some(Path::new("/flag")), &user), CacheConfig::at("/flag"));
    }

    #[test]
    fn roots_default_is_under_var_lib() {
        assert_eq!(resolve(None, &env(0)), CacheConfig::at(ROOT_DEFAULT));
        let mut root = env(0);
        root.home = Some("/root".into());
        assert_eq!(resolve(None, &root), CacheConfig::at(ROOT_DEFAULT), "root's home is not used");
    }

    #[test]
    fn a_users_default_is_under_their_home() {
        let mut user = env(1000);
        assert_eq!(resolve(None, &user), CacheConfig::disabled(), "no home: no cache");
        user.home = Some("/home/u".into());
        assert_eq!(resolve(None, &user), CacheConfig::at("/home/u/.cache/amphi/wasm"));
        user.xdg_cache_home = Some("/c".into());
        assert_eq!(resolve(None, &user), CacheConfig::at("/c/amphi/wasm"));
    }
}
