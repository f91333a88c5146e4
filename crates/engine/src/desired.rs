//! The desired state for the lab's current phase, gathered from the kinds: what the
//! spec asks of the node in PVE's own terms, canonical so it compares with a scan.

use std::collections::BTreeMap;

use labwright_spec::Spec;

pub use crate::backup_job::DesiredBackupJob;
pub use crate::canon::{canonical_tags, split_tags};
pub use crate::vm::desired::{
    DEFAULT_VM_STORAGE, DesiredDisk, DesiredVm, LAB_TAG_PREFIX, OWNER_TAG, lab_tag,
};

/// Everything the spec asks for now (later phases are the spec's `deferred`).
#[derive(Clone, Debug, Default)]
pub struct Desired {
    pub node: String,
    pub vms: BTreeMap<u32, DesiredVm>,
    pub backup_jobs: BTreeMap<String, DesiredBackupJob>,
}

/// Builds the desired state of the current phase.
pub fn desired(spec: &Spec) -> Desired {
    let mut d = Desired {
        node: spec.node_name().to_string(),
        ..Desired::default()
    };
    for vm in spec.vms.iter().filter(|v| v.phase <= spec.phase) {
        d.vms
            .insert(vm.vmid, crate::vm::desired::vm_desired(spec, vm));
    }
    for job in spec.backup_jobs().filter(|j| j.phase <= spec.phase) {
        d.backup_jobs
            .insert(job.id.clone(), crate::backup_job::job_desired(spec, job));
    }
    d
}
