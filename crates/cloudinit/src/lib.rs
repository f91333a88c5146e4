//! cloud-init NoCloud seeds for labwright guests.
//!
//! A VM with a `bootstrap` block that boots a cloud image gets a seed: `user-data`,
//! `meta-data` and `network-config`, packed into a `cidata` ISO that the engine
//! uploads to the node's ISO storage and attaches as a CD-ROM. That way guests are set
//! up on first boot without SSH to the host and without a person at a console.
//!
//! Two renderings exist on purpose:
//! - [`plan_seed`] reads no secret and gives the documents as plans, dry-runs and logs
//!   show them (`<redacted:env:NAME>` where the auth key goes), with the instance-id
//!   and the seed's file name;
//! - [`render_seed`] resolves the auth key through a [`SecretResolver`] and returns a
//!   [`Seed`] whose user-data can only be read through an explicit `expose()`;
//!   [`build_iso`] turns it into the image.
//!
//! Both give the same instance-id and file name, so the plan names the exact volume
//! apply will upload.
//!
//! # How the engine uses a seed
//! 1. **plan**: for each VM where [`needs_seed`] holds, [`plan_seed`] (MACs from the
//!    scanned config, if the VM exists). A new VM gets a "seed" step; an existing VM
//!    whose applied instance-id differs is a visible *re-seed* (reboot, first-boot
//!    downtime), never a rebuild. Show `user_data_redacted`, never the real one.
//! 2. **apply** (VM created, not yet started): read the MACs PVE assigned from the VM
//!    config, [`render_seed`] with [`EnvFileResolver`], [`build_iso`]; upload with
//!    `POST /nodes/{node}/storage/{storage}/upload` (multipart: `content=iso`,
//!    `filename=<volume_file>`, `checksum=<sha256>`, `checksum-algorithm=sha256`, then
//!    the file), wait for the task; set `ide2=<storage>:iso/<volume_file>,media=cdrom`
//!    and keep `boot=order=scsi0` (the CD is found by its label, not booted); start.
//!    A re-seed does the same on the existing VM and reboots it.
//! 3. **validate** passes: `delete=ide2` on the VM config, then
//!    `DELETE /nodes/{node}/storage/{storage}/content/<storage>:iso/<volume_file>`.
//!    Until then the auth key sits in that file on the node. The user-data makes
//!    cloud-init stay off on boots without a seed, so detaching is safe.

pub mod iso;
pub mod render;
pub mod secret;

pub use iso::{SeedIso, VOLUME_LABEL, build_iso, iso_bytes, labelled_iso};
pub use render::{
    Seed, SeedOptions, SeedPlan, SensitiveText, naas_dirs, needs_seed, plan_seed, render_seed,
};
pub use secret::{EnvFileResolver, SecretError, SecretResolver, SecretValue};

/// Why a seed could not be rendered or built. No variant ever holds a secret value:
/// secret problems carry the reference (`env:NAME`) only.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("VM {vm} has no bootstrap block; it gets no seed")]
    NoBootstrap { vm: String },
    #[error(
        "VM {vm}: `bootstrap` needs `os.cloudImage` (found {os}); HAOS and installer ISOs do not run cloud-init"
    )]
    NotCloudImage { vm: String, os: String },
    #[error(
        "VM {vm} joins Tailscale but no auth key reference is set (bootstrap.tailscale.authKey or tailscale.authKey)"
    )]
    NoAuthKey { vm: String },
    #[error(
        "VM {vm}: advertised route `{route}` is neither a segment in networks.segments nor a CIDR"
    )]
    UnknownRoute { vm: String, route: String },
    #[error("VM {vm}: route `{route}` has host bits set; advertise the network {network}")]
    RouteNotNetwork {
        vm: String,
        route: String,
        network: String,
    },
    #[error("VM {vm}: {what} `{value}` is not valid: {why}")]
    Invalid {
        vm: String,
        what: String,
        value: String,
        why: String,
    },
    #[error(
        "VM {vm}: the MAC address of {slot} is not known; create the VM first (PVE assigns it) and pass it in SeedOptions::nic_macs"
    )]
    MacUnknown { vm: String, slot: String },
    #[error("VM {vm}: Tailscale auth key: {source}")]
    Secret {
        vm: String,
        #[source]
        source: SecretError,
    },
    #[error("could not write the {doc} document as YAML")]
    Yaml { doc: &'static str },
    #[error("could not build the seed ISO: {0}")]
    Iso(String),
}
