//! Checks made before anything is written (`labwright doctor`, the start of apply):
//! does the token hold the privileges the plan needs, is there room for the planned
//! disks, does the spec need the node's shell.

pub mod privileges;
pub mod space;

/// Whether the spec needs the node's shell (ZFS datasets, sanoid), for doctor.
pub fn spec_needs_host(spec: &labwright_spec::Spec) -> bool {
    crate::storage::needs_host(spec)
}
