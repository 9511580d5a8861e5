//! The order of a container process's security-critical steps, in one place.
//!
//! The init and every exec'd process run the same kind of steps — mounts,
//! `pivot_root` (or `chroot`), the guest's view, identity, capabilities,
//! `no_new_privs`, seccomp, the start barrier — and their **order** is what
//! keeps the container shut: the filter must go in after `no_new_privs` when
//! the spec sets it (else before the capabilities drop, which it needs), the
//! guest's view before the identity change (which loses the right to mount),
//! the executor's `prepare` before the pivot (the host's cache is reachable
//! until then), `Ready` only after every isolation step, the workload only
//! after the barrier.
//!
//! The steps are traits ([`ProcessSteps`], [`InitSteps`], [`ExecSteps`]); the
//! order is the functions [`init`], [`exec`] and [`become_process`], generic
//! over them. Production runs them with the real steps (`super::init`,
//! `super::exec`); the unit tests below run the very same functions with a
//! fake that records each call, so the sequence they check is the sequence
//! production runs, without root and without any syscall.
//!
//! A step with nothing to do for a spec (no seccomp profile, no terminal, no
//! hooks) is still called, and does nothing: the order has no branch a
//! test could miss, except where the order itself depends on the spec (the
//! filter's place, `chroot`, a workload in this process).

use super::StageFailure;

/// The facts that change the order (not only what a step does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Shape {
    /// `process.noNewPrivileges`: the filter goes in last, after it.
    pub no_new_privileges: bool,
    /// The container has no mount namespace of its own: its root is entered
    /// with `chroot`, and a guest's view is made before it.
    pub chroot: bool,
}

/// The steps that make this process the one `process` describes, after the
/// container around it exists: shared by the init and every exec'd process.
pub(crate) trait ProcessSteps {
    /// The identity part, ordered by [`become_process`].
    type Identity: IdentitySteps;
    fn identity(&mut self) -> &mut Self::Identity;
    /// Resolves and opens the entrypoint (`Executor::prepare`); whether the
    /// workload runs in this process.
    fn prepare_executor(&mut self) -> Result<bool, StageFailure>;
    /// `process.apparmorProfile`, `process.selinuxLabel` (through the host's
    /// `/proc` for the init).
    fn lsm_labels(&mut self) -> Result<(), StageFailure>;
    /// The pty from the container's devpts, when `process.terminal`.
    fn attach_terminal(&mut self) -> Result<(), StageFailure>;
    /// The guest's view of the container's files: no procfs.
    fn enter_guest_view(&mut self) -> Result<(), StageFailure>;
    /// `Executor::arm`: instantiates an in-process workload.
    fn arm_executor(&mut self) -> Result<(), StageFailure>;
    /// Lets the container see `/proc/self/exe` when that is harmless.
    fn show_exe(&mut self) -> Result<(), StageFailure>;
    /// Tells the caller it is ready and waits for its commit.
    fn report_ready(&mut self) -> Result<(), StageFailure>;
}

/// The steps that give this process its identity, the same for the init and
/// every exec'd process (`super::workload::Becoming` is the real one).
pub(crate) trait IdentitySteps {
    /// Reads whether `setgroups` is allowed, while `/proc` is still there.
    fn check_setgroups(&mut self) -> Result<(), StageFailure>;
    fn set_rlimits(&mut self) -> Result<(), StageFailure>;
    fn enter_cwd(&mut self) -> Result<(), StageFailure>;
    /// `linux.seccomp`, when the spec has a profile.
    fn load_seccomp(&mut self) -> Result<(), StageFailure>;
    /// Drops the bounding set, then sets the groups, gid and uid.
    fn set_user(&mut self) -> Result<(), StageFailure>;
    /// The effective, permitted, inheritable and ambient sets.
    fn set_capabilities(&mut self) -> Result<(), StageFailure>;
    fn set_no_new_privs(&mut self) -> Result<(), StageFailure>;
    fn set_umask(&mut self) -> Result<(), StageFailure>;
}

/// The init's own steps, around [`ProcessSteps`].
pub(crate) trait InitSteps: ProcessSteps {
    /// Root in a new user namespace, the cgroup namespace, `oom_score_adj`.
    fn enter_namespaces(&mut self) -> Result<(), StageFailure>;
    /// The rootfs and the spec's mounts.
    fn mount_rootfs(&mut self) -> Result<(), StageFailure>;
    /// sysctls, hostname, domainname.
    fn kernel_settings(&mut self) -> Result<(), StageFailure>;
    fn session_keyring(&mut self) -> Result<(), StageFailure>;
    /// createRuntime (in the caller) and createContainer hooks.
    fn create_hooks(&mut self) -> Result<(), StageFailure>;
    /// `pivot_root` into the rootfs (or `chroot`).
    fn pivot_root(&mut self) -> Result<(), StageFailure>;
    /// Masked and read-only paths, the rootfs read-only.
    fn seal_rootfs(&mut self) -> Result<(), StageFailure>;
    /// Sleeps at the start barrier until `start`.
    fn wait_for_start(&mut self) -> Result<(), StageFailure>;
    fn start_hooks(&mut self) -> Result<(), StageFailure>;
}

/// The steps of a process exec'd into a running container, around
/// [`ProcessSteps`].
pub(crate) trait ExecSteps: ProcessSteps {
    /// Opens the container's root (and works from it, for a `chroot`).
    fn enter_root(&mut self) -> Result<(), StageFailure>;
    /// `chroot` into the init's root.
    fn chroot(&mut self) -> Result<(), StageFailure>;
}

/// The init, from Go to the hand-over to the executor.
pub(crate) fn init(steps: &mut impl InitSteps, shape: Shape) -> Result<(), StageFailure> {
    steps.enter_namespaces()?;
    steps.mount_rootfs()?;
    let in_process = steps.prepare_executor()?;
    steps.kernel_settings()?;
    steps.lsm_labels()?;
    steps.session_keyring()?;
    steps.create_hooks()?;
    // A chroot's `/` is no mount point to make a slave of: the guest's view is
    // made first, from the namespace's root.
    if in_process && shape.chroot {
        steps.enter_guest_view()?;
    }
    steps.pivot_root()?;
    // The pty comes from the container's devpts, so after the pivot; before
    // the read-only and masked paths, as runc orders it.
    steps.attach_terminal()?;
    steps.seal_rootfs()?;
    steps.identity().check_setgroups()?;
    if in_process && !shape.chroot {
        steps.enter_guest_view()?;
    }
    become_process(steps.identity(), shape)?;
    steps.arm_executor()?;
    steps.show_exe()?;
    steps.report_ready()?;
    steps.wait_for_start()?;
    steps.start_hooks()
}

/// A process exec'd into a running container, from Go to the hand-over.
pub(crate) fn exec(steps: &mut impl ExecSteps, shape: Shape) -> Result<(), StageFailure> {
    steps.enter_root()?;
    let in_process = steps.prepare_executor()?;
    steps.lsm_labels()?;
    steps.identity().check_setgroups()?;
    if shape.chroot {
        if in_process {
            steps.enter_guest_view()?;
        }
        steps.chroot()?;
    }
    steps.attach_terminal()?;
    if in_process && !shape.chroot {
        steps.enter_guest_view()?;
    }
    become_process(steps.identity(), shape)?;
    steps.arm_executor()?;
    steps.show_exe()?;
    steps.report_ready()
}

/// rlimits, cwd, then the identity change that drops the privileges every
/// earlier step needed, and the seccomp filter: last when `noNewPrivileges`
/// is set; without it the kernel wants CAP_SYS_ADMIN to load a filter, so (as
/// runc does) it goes in just before the capabilities are dropped.
pub(crate) fn become_process(steps: &mut impl IdentitySteps, shape: Shape) -> Result<(), StageFailure> {
    steps.set_rlimits()?;
    steps.enter_cwd()?;
    if !shape.no_new_privileges {
        steps.load_seccomp()?;
    }
    steps.set_user()?;
    steps.set_capabilities()?;
    if shape.no_new_privileges {
        steps.set_no_new_privs()?;
    }
    steps.set_umask()?;
    if shape.no_new_privileges {
        steps.load_seccomp()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::Stage;

    /// Records every step it is asked for; answers `prepare_executor` with
    /// `in_process` and fails the step named `fail_at`.
    #[derive(Debug, Default)]
    struct Recorder {
        in_process: bool,
        fail_at: Option<&'static str>,
        steps: Vec<&'static str>,
    }

    impl Recorder {
        fn new(in_process: bool) -> Self {
            Self { in_process, ..Self::default() }
        }

        fn step(&mut self, name: &'static str) -> Result<(), StageFailure> {
            self.steps.push(name);
            match self.fail_at {
                Some(failing) if failing == name => Err(StageFailure::new(Stage::Init, name, None, "refused")),
                _ => Ok(()),
            }
        }
    }

    impl ProcessSteps for Recorder {
        type Identity = Self;
        fn identity(&mut self) -> &mut Self {
            self
        }
        fn prepare_executor(&mut self) -> Result<bool, StageFailure> {
            self.step("prepare")?;
            Ok(self.in_process)
        }
        fn lsm_labels(&mut self) -> Result<(), StageFailure> {
            self.step("lsm")
        }
        fn attach_terminal(&mut self) -> Result<(), StageFailure> {
            self.step("terminal")
        }
        fn enter_guest_view(&mut self) -> Result<(), StageFailure> {
            self.step("guest view")
        }
        fn arm_executor(&mut self) -> Result<(), StageFailure> {
            self.step("arm")
        }
        fn show_exe(&mut self) -> Result<(), StageFailure> {
            self.step("show exe")
        }
        fn report_ready(&mut self) -> Result<(), StageFailure> {
            self.step("ready")
        }
    }

    impl IdentitySteps for Recorder {
        fn check_setgroups(&mut self) -> Result<(), StageFailure> {
            self.step("setgroups?")
        }
        fn set_rlimits(&mut self) -> Result<(), StageFailure> {
            self.step("rlimits")
        }
        fn enter_cwd(&mut self) -> Result<(), StageFailure> {
            self.step("cwd")
        }
        fn load_seccomp(&mut self) -> Result<(), StageFailure> {
            self.step("seccomp")
        }
        fn set_user(&mut self) -> Result<(), StageFailure> {
            self.step("user")
        }
        fn set_capabilities(&mut self) -> Result<(), StageFailure> {
            self.step("capabilities")
        }
        fn set_no_new_privs(&mut self) -> Result<(), StageFailure> {
            self.step("no_new_privs")
        }
        fn set_umask(&mut self) -> Result<(), StageFailure> {
            self.step("umask")
        }
    }

    impl InitSteps for Recorder {
        fn enter_namespaces(&mut self) -> Result<(), StageFailure> {
            self.step("namespaces")
        }
        fn mount_rootfs(&mut self) -> Result<(), StageFailure> {
            self.step("mounts")
        }
        fn kernel_settings(&mut self) -> Result<(), StageFailure> {
            self.step("sysctl/hostname")
        }
        fn session_keyring(&mut self) -> Result<(), StageFailure> {
            self.step("keyring")
        }
        fn create_hooks(&mut self) -> Result<(), StageFailure> {
            self.step("create hooks")
        }
        fn pivot_root(&mut self) -> Result<(), StageFailure> {
            self.step("pivot")
        }
        fn seal_rootfs(&mut self) -> Result<(), StageFailure> {
            self.step("seal")
        }
        fn wait_for_start(&mut self) -> Result<(), StageFailure> {
            self.step("barrier")
        }
        fn start_hooks(&mut self) -> Result<(), StageFailure> {
            self.step("start hooks")
        }
    }

    impl ExecSteps for Recorder {
        fn enter_root(&mut self) -> Result<(), StageFailure> {
            self.step("root")
        }
        fn chroot(&mut self) -> Result<(), StageFailure> {
            self.step("chroot")
        }
    }

    const NNP: Shape = Shape { no_new_privileges: true, chroot: false };
    const NO_NNP: Shape = Shape { no_new_privileges: false, chroot: false };

    fn init_steps(in_process: bool, shape: Shape) -> Vec<&'static str> {
        let mut recorder = Recorder::new(in_process);
        init(&mut recorder, shape).expect("the fake fails nothing");
        recorder.steps
    }

    fn exec_steps(in_process: bool, shape: Shape) -> Vec<&'static str> {
        let mut recorder = Recorder::new(in_process);
        exec(&mut recorder, shape).expect("the fake fails nothing");
        recorder.steps
    }

    #[test]
    fn init_filters_last_with_no_new_privileges() {
        let expected = [
            "namespaces",
            "mounts",
            "prepare",
            "sysctl/hostname",
            "lsm",
            "keyring",
            "create hooks",
            "pivot",
            "terminal",
            "seal",
            "setgroups?",
            "rlimits",
            "cwd",
            "user",
            "capabilities",
            "no_new_privs",
            "umask",
            "seccomp",
            "arm",
            "show exe",
            "ready",
            "barrier",
            "start hooks",
        ];
        assert_eq!(init_steps(false, NNP), expected);
    }

    #[test]
    fn init_filters_before_dropping_capabilities_without_no_new_privileges() {
        let expected = [
            "namespaces",
            "mounts",
            "prepare",
            "sysctl/hostname",
            "lsm",
            "keyring",
            "create hooks",
            "pivot",
            "terminal",
            "seal",
            "setgroups?",
            "rlimits",
            "cwd",
            "seccomp",
            "user",
            "capabilities",
            "umask",
            "arm",
            "show exe",
            "ready",
            "barrier",
            "start hooks",
        ];
        assert_eq!(init_steps(false, NO_NNP), expected);
    }

    #[test]
    fn in_process_init_enters_the_guest_view_before_the_identity_change() {
        let expected = [
            "namespaces",
            "mounts",
            "prepare",
            "sysctl/hostname",
            "lsm",
            "keyring",
            "create hooks",
            "pivot",
            "terminal",
            "seal",
            "setgroups?",
            "guest view",
            "rlimits",
            "cwd",
            "user",
            "capabilities",
            "no_new_privs",
            "umask",
            "seccomp",
            "arm",
            "show exe",
            "ready",
            "barrier",
            "start hooks",
        ];
        assert_eq!(init_steps(true, NNP), expected);
    }

    #[test]
    fn in_process_init_of_a_chroot_enters_the_guest_view_before_the_pivot() {
        let expected = [
            "namespaces",
            "mounts",
            "prepare",
            "sysctl/hostname",
            "lsm",
            "keyring",
            "create hooks",
            "guest view",
            "pivot",
            "terminal",
            "seal",
            "setgroups?",
            "rlimits",
            "cwd",
            "user",
            "capabilities",
            "no_new_privs",
            "umask",
            "seccomp",
            "arm",
            "show exe",
            "ready",
            "barrier",
            "start hooks",
        ];
        assert_eq!(init_steps(true, Shape { chroot: true, ..NNP }), expected);
        // A native workload in a chroot: no guest's view at all.
        assert!(!init_steps(false, Shape { chroot: true, ..NNP }).contains(&"guest view"));
    }

    #[test]
    fn exec_steps_in_order() {
        let expected = [
            "root",
            "prepare",
            "lsm",
            "setgroups?",
            "terminal",
            "rlimits",
            "cwd",
            "user",
            "capabilities",
            "no_new_privs",
            "umask",
            "seccomp",
            "arm",
            "show exe",
            "ready",
        ];
        assert_eq!(exec_steps(false, NNP), expected);
        let without_nnp = [
            "root",
            "prepare",
            "lsm",
            "setgroups?",
            "terminal",
            "rlimits",
            "cwd",
            "seccomp",
            "user",
            "capabilities",
            "umask",
            "arm",
            "show exe",
            "ready",
        ];
        assert_eq!(exec_steps(false, NO_NNP), without_nnp);
    }

    #[test]
    fn exec_into_a_chroot_enters_the_guest_view_then_the_root() {
        let expected = [
            "root",
            "prepare",
            "lsm",
            "setgroups?",
            "guest view",
            "chroot",
            "terminal",
            "rlimits",
            "cwd",
            "user",
            "capabilities",
            "no_new_privs",
            "umask",
            "seccomp",
            "arm",
            "show exe",
            "ready",
        ];
        assert_eq!(exec_steps(true, Shape { chroot: true, ..NNP }), expected);
        let native = exec_steps(false, Shape { chroot: true, ..NNP });
        assert!(!native.contains(&"guest view"), "{native:?}");
        let in_namespace = exec_steps(true, NNP);
        let at = |name| in_namespace.iter().position(|s| *s == name).expect(name);
        assert_eq!(at("guest view"), at("terminal") + 1, "{in_namespace:?}");
    }

    #[test]
    fn a_failed_step_is_the_last() {
        for failing in ["mounts", "pivot", "user", "seccomp", "ready"] {
            let mut recorder = Recorder { fail_at: Some(failing), ..Recorder::new(false) };
            let failure = init(&mut recorder, NNP).expect_err(failing);
            assert_eq!(failure.step, failing);
            assert_eq!(recorder.steps.last(), Some(&failing), "{:?}", recorder.steps);
        }
    }
}
