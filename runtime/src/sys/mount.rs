//! Mount syscalls that `nix` does not wrap: `pivot_root`, `mount_setattr`.
