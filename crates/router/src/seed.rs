//! The OPNsense seed: `config.xml` packed where the configuration importer looks.
//!
//! `opnsense-importer` (opnsense/core `src/sbin/opnsense-importer`) mounts the device
//! it is given — UFS on `s1a`/`p3`, MS-DOS on `s1`/`p1`, else the whole device as
//! ISO 9660 (`cd9660`, since 22.7) — and copies `/conf/config.xml` from it. An ISO
//! is what PVE can take through its upload API (content `iso`) and attach as a
//! CD-ROM without SSH to the node, and it is what this workspace already writes in
//! pure Rust (hadris-iso, as `labwright-cloudinit` does). Rock Ridge and Joliet keep
//! the lower-case names FreeBSD's `mount_cd9660` must find.
//!
//! The config holds no secret (no password hash, see the OPNsense backend), so the
//! seed may be shown and hashed freely.

use sha2::{Digest, Sha256};

/// Volume label of the seed (shown by `camcontrol`/`isoinfo`, not read by the importer).
pub const VOLUME_LABEL: &str = "LW_ROUTER_SEED";

/// Path of the configuration inside the seed, where the importer reads it.
pub const CONFIG_PATH: &str = "conf/config.xml";

#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("cannot write the router seed ISO: {0}")]
    Iso(String),
}

/// A built seed ISO.
#[derive(Clone, Debug)]
pub struct RouterSeed {
    pub bytes: Vec<u8>,
    /// SHA-256 (hex) of the `config.xml` inside: the seed's identity.
    pub config_sha256: String,
}

impl RouterSeed {
    /// File name on the ISO storage, `lw-router-<vmid>-<hash8>.iso`: a new config
    /// gets a new name, an unchanged one is found already uploaded.
    pub fn file_name(&self, vmid: u32) -> String {
        format!("lw-router-{vmid}-{}.iso", &self.config_sha256[..8])
    }
}

/// Packs `config_xml` as `/conf/config.xml` on an ISO 9660 image (Rock Ridge, Joliet),
/// written by the same code as the cloud-init seeds (fixed timestamps: one config,
/// one image).
pub fn seed_iso(config_xml: &str) -> Result<RouterSeed, SeedError> {
    let bytes =
        labwright_cloudinit::labelled_iso(VOLUME_LABEL, &[(CONFIG_PATH, config_xml.as_bytes())])
            .map_err(|e| SeedError::Iso(e.to_string()))?;
    Ok(RouterSeed {
        bytes,
        config_sha256: hex_sha256(config_xml.as_bytes()),
    })
}

fn hex_sha256(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}
