//! Worker tasks: UPIDs, realistic durations, logs, exit statuses, VM flocks.

use std::sync::Arc;

use crate::server::Inner;
use crate::state::{State, Task};
use crate::util::now;

/// What a task does when its time is up: `Ok(log lines)` or `Err(exit status text)`.
pub type Work = Box<dyn FnOnce(&mut State) -> Result<Vec<String>, String> + Send>;

/// Options of a task.
pub struct Spec {
    pub node: String,
    pub kind: &'static str,
    pub id: String,
    pub user: String,
    /// Nominal duration in seconds (scaled by the time scale).
    pub secs: f64,
    /// Flocks the worker takes first: (key, path shown in the error, timeout secs).
    pub locks: Vec<(String, String, f64)>,
    /// The fault kind used when fault injection fails this task.
    pub fail_text: Option<String>,
    /// A config `lock:` value set on this VM while the task runs (snapshot, rollback…).
    pub config_lock: Option<(u32, &'static str)>,
}

fn upid(node: &str, pid: u32, pstart: u64, start: u64, kind: &str, id: &str, user: &str) -> String {
    format!("UPID:{node}:{pid:08X}:{pstart:08X}:{start:08X}:{kind}:{id}:{user}:")
}

/// Registers a task and runs it in the background; returns the UPID at once.
pub fn spawn(inner: &Arc<Inner>, spec: Spec, work: Work) -> String {
    let start = now();
    let (upid, pid) = inner.with_state(|st| {
        st.next_pid = st.next_pid.wrapping_add(1).max(1000);
        let pid = st.next_pid;
        let boot = st.nodes.get(&spec.node).map_or(0, |n| n.boot_time);
        let pstart = start.saturating_sub(boot) * 100;
        let upid = upid(
            &spec.node, pid, pstart, start, spec.kind, &spec.id, &spec.user,
        );
        st.tasks.push(Task {
            upid: upid.clone(),
            node: spec.node.clone(),
            pid,
            pstart,
            starttime: start,
            r#type: spec.kind.to_string(),
            id: spec.id.clone(),
            user: spec.user.clone(),
            running: true,
            exitstatus: None,
            endtime: None,
            log: vec![],
        });
        if st.tasks.len() > 2000 {
            let drop = st.tasks.len() - 2000;
            let mut removed = 0;
            st.tasks.retain(|t| {
                if removed < drop && !t.running {
                    removed += 1;
                    false
                } else {
                    true
                }
            });
        }
        (upid, pid)
    });
    let _ = pid;
    // Tasks that set a config lock (snapshot, rollback, snapshot-delete) hold the VM's
    // flock only while they check and set `lock:` (pve-guest-common's
    // AbstractConfig::snapshot_* "prepare" step); the long part runs under the config
    // lock alone, so a stop arriving meanwhile fails with "VM is locked (snapshot)"
    // instead of waiting. When the flocks are free the prepare step happens at once.
    let mut prepared = None;
    if let Some(cl) = spec.config_lock {
        let taken = match inner.flocks.lock() {
            Ok(mut f) if spec.locks.iter().all(|(k, _, _)| !f.contains_key(k)) => {
                for (k, _, _) in &spec.locks {
                    f.insert(k.clone(), 0);
                }
                true
            }
            _ => false,
        };
        if taken {
            prepared = Some(inner.with_state(|st| set_config_lock(st, cl)));
            if let Ok(mut f) = inner.flocks.lock() {
                for (k, _, _) in &spec.locks {
                    f.remove(k);
                }
            }
        }
    }
    let inner2 = inner.clone();
    let id = upid.clone();
    tokio::spawn(async move {
        let f = &inner2.faults();
        let mut secs = spec.secs;
        if f.slow_task_rate > 0.0 && inner2.roll() < f.slow_task_rate {
            secs *= if f.slow_task_factor > 0.0 {
                f.slow_task_factor
            } else {
                10.0
            };
        }
        let fail = f.task_failure_rate > 0.0 && inner2.roll() < f.task_failure_rate;
        let mut guards = Vec::new();
        let mut lock_err = None;
        if prepared.is_none() {
            for (key, shown, timeout) in &spec.locks {
                match inner2.flock(key, *timeout).await {
                    Ok(g) => guards.push(g),
                    Err(()) => {
                        lock_err = Some(if let Some(name) = shown.strip_prefix("cfs:") {
                            format!("cfs-lock '{name}' error: got lock request timeout")
                        } else {
                            format!("can't lock file '{shown}' - got timeout")
                        });
                        break;
                    }
                }
            }
            if lock_err.is_none()
                && let Some(cl) = spec.config_lock
            {
                prepared = Some(inner2.with_state(|st| set_config_lock(st, cl)));
                guards.clear();
            }
        }
        let mut own_lock = spec.config_lock;
        if let Some(Err(e)) = prepared {
            lock_err = Some(e);
            own_lock = None;
        }
        let result = match lock_err {
            Some(e) => Err(e),
            None => {
                if spec.kind == "download" {
                    // pve-storage's download worker logs its progress as it goes:
                    // clients follow it through the task log.
                    for step in 1..=5u32 {
                        tokio::time::sleep(inner2.scaled(secs / 5.0)).await;
                        inner2.with_state(|st| {
                            if let Some(t) = st.tasks.iter_mut().find(|t| t.upid == id) {
                                t.log.push(format!(
                                    "downloaded {} of 100 units ({:.2}%)",
                                    step * 20,
                                    f64::from(step * 20)
                                ));
                            }
                        });
                    }
                } else {
                    tokio::time::sleep(inner2.scaled(secs)).await;
                }
                inner2.with_state(|st| {
                    release_config_lock(st, own_lock);
                    // A task stopped through `DELETE …/tasks/{upid}` does no more work.
                    if st.tasks.iter().any(|t| t.upid == id && !t.running) {
                        return Err("received interrupt".to_string());
                    }
                    if fail {
                        Err(spec
                            .fail_text
                            .clone()
                            .unwrap_or_else(|| "command failed: exit code 1".into()))
                    } else {
                        work(st)
                    }
                })
            }
        };
        if own_lock.is_some() {
            inner2.with_state(|st| release_config_lock(st, own_lock));
        }
        if result.is_err() && spec.kind == "qmcreate" {
            inner2.with_state(|st| forget_failed_create(st, &spec.id));
        }
        drop(guards);
        finish(&inner2, &id, result);
        inner2.persist();
    });
    upid
}

/// The prepare step of a config-locked task: refuse when the VM is locked already
/// (`VM is locked (…)`), otherwise set this task's lock.
fn set_config_lock(st: &mut State, (vmid, lock): (u32, &'static str)) -> Result<(), String> {
    let Some(vm) = st.vms.get_mut(&vmid) else {
        return Ok(());
    };
    if let Some(l) = vm.conf.get("lock") {
        return Err(format!("VM is locked ({l})"));
    }
    vm.conf.insert("lock".into(), lock.into());
    Ok(())
}

/// Drops the config lock a task set, unless someone else's lock replaced it.
fn release_config_lock(st: &mut State, lock: Option<(u32, &'static str)>) {
    if let Some((vmid, lock)) = lock
        && let Some(vm) = st.vms.get_mut(&vmid)
        && vm.conf.get("lock").map(String::as_str) == Some(lock)
    {
        vm.conf.shift_remove("lock");
    }
}

/// A create that fails (injected fault, lock timeout, interrupt) cleans up after itself
/// as qemu-server does: the half-made config (`lock: create`) and its volumes go. Only
/// a crash of the node leaves a `lock: create` guest behind.
fn forget_failed_create(st: &mut State, id: &str) {
    if let Ok(vmid) = id.parse::<u32>()
        && st
            .vms
            .get(&vmid)
            .is_some_and(|vm| vm.conf.get("lock").map(String::as_str) == Some("create"))
    {
        st.vms.remove(&vmid);
        st.volumes.retain(|v| v.vmid != Some(vmid));
    }
}

/// Marks a task stopped with its log and exit status.
pub fn finish(inner: &Inner, upid: &str, result: Result<Vec<String>, String>) {
    inner.with_state(|st| {
        if let Some(t) = st.tasks.iter_mut().find(|t| t.upid == upid) {
            if !t.running {
                return;
            }
            t.running = false;
            t.endtime = Some(now());
            match result {
                Ok(lines) => {
                    t.log.extend(lines);
                    t.log.push("TASK OK".into());
                    t.exitstatus = Some("OK".into());
                }
                Err(e) => {
                    let e1 = e.replace('\n', " ");
                    t.log.push(format!("TASK ERROR: {e1}"));
                    t.exitstatus = Some(e1);
                }
            }
        }
    });
}

/// After a restart no worker is alive: mark running tasks as failed and drop the
/// config locks they held.
pub fn recover_after_restart(st: &mut State) {
    for t in st.tasks.iter_mut().filter(|t| t.running) {
        t.running = false;
        t.endtime = Some(now());
        t.exitstatus = Some("unexpected status".into());
        if let Ok(vmid) = t.id.parse::<u32>()
            && let Some(vm) = st.vms.get_mut(&vmid)
        {
            vm.conf.shift_remove("lock");
        }
    }
}

/// The VM flock as qemu-server names it.
pub fn vm_lock(vmid: u32, timeout: f64) -> (String, String, f64) {
    (
        format!("vm-{vmid}"),
        format!("/var/lock/qemu-server/lock-{vmid}.conf"),
        timeout,
    )
}

/// The storage allocation lock (a local flock; shared storages use a cluster lock).
pub fn storage_lock(storage: &str, shared: bool) -> (String, String, f64) {
    let shown = if shared {
        format!("cfs:storage-{storage}")
    } else {
        format!("/var/lock/pve-manager/pve-storage-{storage}")
    };
    (format!("storage-{storage}"), shown, 10.0)
}
