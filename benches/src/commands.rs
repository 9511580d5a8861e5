//! Commands that run no workload: `--version`, `state`, `list`, `kill`. They
//! show what a runtime pays on every call for its binary alone (a large binary,
//! a re-exec from a sealed copy, a linked-in engine). And `exec` of `/bin/true`
//! into the running container: the cost of joining a container, which is where
//! a runtime pays for protecting its binary from the container.

use std::process::Stdio;

use crate::cli::Plan;
use crate::lifecycle::ms;
use crate::memory::{start_idle, stop_idle};
use crate::process::{reap_orphans, timed};
use crate::report::{Results, Unit};
use crate::runtime::Bench;
use crate::workload::{CacheChoice, Idle, Workloads};

pub const SECTION: &str = "commands";

/// Per round and OCI runtime: `--version`; then, with one running idle
/// container, `state ID`, `list`, `exec ID /bin/true`, `kill ID KILL` (the
/// container is then waited for and deleted outside the timing).
pub fn measure(plan: &Plan, bench: &mut Bench, workloads: &Workloads, results: &mut Results) -> anyhow::Result<()> {
    for round in 0..plan.warmup + plan.iterations {
        let warming = round < plan.warmup;
        for index in crate::lifecycle::rotated(bench.runtimes.len(), round) {
            let runtime = &bench.runtimes[index];
            if !runtime.active() || !runtime.is_oci() {
                continue;
            }
            let Some((bundle, _)) = workloads.idle_bundle(runtime, Idle::Native) else { continue };
            let name = runtime.name.clone();
            let id = bench.new_id(&name);
            let out = bench.work.join("commands.out");
            let bench = &*bench;
            let times = bench.in_view(index, |runtime| -> anyhow::Result<Vec<(&str, f64)>> {
                let mut times = Vec::new();
                let mut version = std::process::Command::new(&runtime.path);
                version.arg("--version").stdout(Stdio::null());
                times.push(("--version", ms(timed(&mut version, &bench.err)?)));
                let container =
                    start_idle(runtime, &bundle, &CacheChoice::None, &id, &bench.err, &out, &bench.work, Idle::Native)?;
                let measured = (|| -> anyhow::Result<()> {
                    times.push(("state", ms(timed(&mut runtime.oci(&[], ["state", id.as_str()]), &bench.err)?)));
                    times.push(("list", ms(timed(&mut runtime.oci(&[], ["list"]), &bench.err)?)));
                    let mut exec = runtime.oci(&[], ["exec", id.as_str(), "/bin/true"]);
                    times.push(("exec", ms(timed(&mut exec, &bench.err)?)));
                    times.push(("kill", ms(timed(&mut runtime.oci(&[], ["kill", id.as_str(), "KILL"]), &bench.err)?)));
                    Ok(())
                })();
                stop_idle(runtime, &container, &bench.err)?;
                measured.map(|()| times)
            })?;
            let times = results.keep(&name, "no workload", "commands", times)?.unwrap_or_else(|| {
                // A gap (NaN) keeps run i in round i.
                ["--version", "state", "list", "exec", "kill"].into_iter().map(|m| (m, f64::NAN)).collect()
            });
            if !warming {
                for (measure, value) in times {
                    results.push(SECTION, "none", measure, &name, Unit::Ms, value);
                }
            }
        }
        reap_orphans();
    }
    Ok(())
}
