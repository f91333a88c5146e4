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

use std::io::Cursor;

use hadris_iso::joliet::JolietLevel;
use hadris_iso::read::PathSeparator;
use hadris_iso::rrip::RripOptions;
use hadris_iso::write::options::{BaseIsoLevel, CreationFeatures, IsoFormatOptions};
use hadris_iso::write::{InputEntry, InputMetadata, InputTree, IsoImageWriter};
use sha2::{Digest, Sha256};

/// Volume label of the seed (shown by `camcontrol`/`isoinfo`, not read by the importer).
pub const VOLUME_LABEL: &str = "LW_ROUTER_SEED";

/// Path of the configuration inside the seed, where the importer reads it.
pub const CONFIG_PATH: &str = "conf/config.xml";

const SECTOR: usize = 2048;

#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("cannot write the router seed ISO: {0}")]
    Iso(String),
}

/// A built seed ISO.
#[derive(Clone, Debug)]
pub struct RouterSeed {
    pub bytes: Vec<u8>,
    /// SHA-256 (hex) of the `config.xml` inside: the seed's identity. The ISO bytes
    /// carry the writer's timestamps, so two builds of one config differ there.
    pub config_sha256: String,
}

impl RouterSeed {
    /// File name on the ISO storage, `lw-router-<vmid>-<hash8>.iso`: a new config
    /// gets a new name, an unchanged one is found already uploaded.
    pub fn file_name(&self, vmid: u32) -> String {
        format!("lw-router-{vmid}-{}.iso", &self.config_sha256[..8])
    }
}

/// Packs `config_xml` as `/conf/config.xml` on an ISO 9660 image (Rock Ridge, Joliet).
pub fn seed_iso(config_xml: &str) -> Result<RouterSeed, SeedError> {
    let meta = InputMetadata {
        mode: Some(0o444),
        uid: Some(0),
        gid: Some(0),
        ..InputMetadata::default()
    };
    let dir_meta = InputMetadata {
        mode: Some(0o555),
        ..meta
    };
    let Some((dir, file)) = CONFIG_PATH.split_once('/') else {
        return Err(SeedError::Iso("bad config path".into()));
    };
    let tree = InputTree::new(
        PathSeparator::ForwardSlash,
        vec![
            InputEntry::directory(
                dir,
                vec![InputEntry::file(file, config_xml.as_bytes().to_vec()).with_metadata(meta)],
            )
            .with_metadata(dir_meta),
        ],
    );
    let options = IsoFormatOptions {
        volume_name: VOLUME_LABEL.to_string(),
        system_id: None,
        volume_set_id: None,
        publisher_id: None,
        preparer_id: None,
        application_id: Some("LABWRIGHT".to_string()),
        sector_size: SECTOR,
        features: CreationFeatures {
            filenames: BaseIsoLevel::Level1 {
                supports_lowercase: false,
                supports_rrip: true,
            },
            long_filenames: false,
            joliet: Some(JolietLevel::Level3),
            rock_ridge: Some(RripOptions {
                enabled: true,
                relocate_deep_dirs: false,
                preserve_permissions: true,
                preserve_ownership: true,
                preserve_timestamps: false,
                preserve_symlinks: false,
                preserve_devices: false,
            }),
            el_torito: None,
            hybrid_boot: None,
        },
        path_separator: PathSeparator::ForwardSlash,
        strict_charset: false,
    };
    let out = IsoImageWriter::create(Cursor::new(Vec::new()), tree, options)
        .map_err(|e| SeedError::Iso(e.to_string()))?;
    let mut bytes = out.into_inner();
    let sectors = bytes
        .get(16 * SECTOR + 80..16 * SECTOR + 84)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or_else(|| SeedError::Iso("the image has no primary volume descriptor".into()))?;
    // Exactly the declared volume: readers that check the size agree on it.
    bytes.resize(sectors as usize * SECTOR, 0);
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
