//! The NoCloud seed ISO (`cidata`), written in pure Rust with hadris-iso.
//!
//! PVE's upload API takes `iso` content but not `snippets`, so a custom user-data
//! reaches the node as an ISO attached as a CD-ROM; no SSH to the host is needed.
//! All ISO code lives here because hadris-iso 3.0 will change the API (pinned `=2.5`).
//!
//! The writer stamps "now" into the volume descriptors and directory records. Re-plans
//! must be stable and the seed's hash must only move when its content does, so after
//! writing, every timestamp is overwritten with [`FIXED_TIME`] by walking the
//! structures (Rock Ridge `TF` entries are not written at all).

use std::fmt;
use std::io::Cursor;

use hadris_iso::joliet::JolietLevel;
use hadris_iso::read::PathSeparator;
use hadris_iso::rrip::RripOptions;
use hadris_iso::write::options::{BaseIsoLevel, CreationFeatures, IsoFormatOptions};
use hadris_iso::write::{InputEntry, InputMetadata, InputTree, IsoImageWriter};
use sha2::{Digest, Sha256};

use crate::Error;
use crate::render::Seed;

/// The volume label cloud-init's NoCloud datasource looks for.
pub const VOLUME_LABEL: &str = "cidata";

/// 2000-01-01 00:00:00 UTC, written into every timestamp of the ISO.
pub const FIXED_TIME: FixedTime = FixedTime {
    year: 2000,
    month: 1,
    day: 1,
};

/// The date stamped into the seed (midnight UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedTime {
    pub year: u16,
    pub month: u8,
    pub day: u8,
}

const SECTOR: usize = 2048;

/// A built seed ISO. It contains the auth key, so `Debug` shows only its size and hash.
pub struct SeedIso {
    bytes: Vec<u8>,
    sha256: String,
    file_name: String,
}

impl SeedIso {
    /// The image, for the upload. Contains the secret.
    pub fn expose_bytes(&self) -> &[u8] {
        &self.bytes
    }
    /// Moves the image out (e.g. into a multipart upload body).
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
    /// SHA-256 of the image (hex): PVE's upload takes it as `checksum` with
    /// `checksum-algorithm=sha256` and refuses a corrupted transfer. It is a hash of
    /// secret-bearing bytes: pass it to PVE, do not print it in plans.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }
    /// File name on the ISO storage (`lw-seed-<vmid>-<hash8>.iso`), the same as the
    /// plan's [`crate::SeedPlan::volume_file`].
    pub fn file_name(&self) -> &str {
        &self.file_name
    }
    pub fn len(&self) -> usize {
        self.bytes.len()
    }
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

impl fmt::Debug for SeedIso {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SeedIso")
            .field("file_name", &self.file_name)
            .field("len", &self.bytes.len())
            .finish_non_exhaustive()
    }
}

/// Builds the `cidata` ISO of a rendered seed: `user-data`, `meta-data` and
/// `network-config` at the root, with Rock Ridge and Joliet names so the dashes and
/// lower case survive (plain ISO 9660 would show `USER_DAT`). Same seed, same bytes.
pub fn build_iso(seed: &Seed) -> Result<SeedIso, Error> {
    let bytes = iso_bytes(&[
        ("meta-data", seed.plan.meta_data.as_bytes()),
        ("network-config", seed.network_config.as_bytes()),
        ("user-data", seed.user_data.expose().as_bytes()),
    ])?;
    let sha256 = hex::encode(Sha256::digest(&bytes));
    Ok(SeedIso {
        bytes,
        sha256,
        file_name: seed.plan.volume_file.clone(),
    })
}

/// Writes a `cidata` ISO holding `files` at the root, with fixed timestamps.
pub fn iso_bytes(files: &[(&str, &[u8])]) -> Result<Vec<u8>, Error> {
    labelled_iso(VOLUME_LABEL, files)
}

/// Writes an ISO named `label` holding `files` (a name may sit in one folder,
/// `conf/config.xml`), with fixed timestamps: the same files give the same bytes.
/// Also used for the router's configuration seed (`labwright-router`).
pub fn labelled_iso(label: &str, files: &[(&str, &[u8])]) -> Result<Vec<u8>, Error> {
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
    let mut entries: Vec<InputEntry> = Vec::new();
    let mut dirs: Vec<(String, Vec<InputEntry>)> = Vec::new();
    for (name, data) in files {
        let file = |n: &str| InputEntry::file(n, data.to_vec()).with_metadata(meta);
        match name.split_once('/') {
            None => entries.push(file(name)),
            Some((d, f)) if !f.contains('/') && !d.is_empty() && !f.is_empty() => {
                match dirs.iter_mut().find(|(x, _)| x == d) {
                    Some((_, list)) => list.push(file(f)),
                    None => dirs.push((d.to_string(), vec![file(f)])),
                }
            }
            Some(_) => return Err(Error::Iso(format!("`{name}`: one folder level at most"))),
        }
    }
    for (d, list) in dirs {
        entries.push(InputEntry::directory(d, list).with_metadata(dir_meta));
    }
    let tree = InputTree::new(PathSeparator::ForwardSlash, entries);
    let rock_ridge = RripOptions {
        enabled: true,
        relocate_deep_dirs: false,
        preserve_permissions: true,
        preserve_ownership: true,
        // No TF entries: they would carry the build time.
        preserve_timestamps: false,
        preserve_symlinks: false,
        preserve_devices: false,
    };
    let options = IsoFormatOptions {
        volume_name: label.to_string(),
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
            rock_ridge: Some(rock_ridge),
            el_torito: None,
            hybrid_boot: None,
        },
        path_separator: PathSeparator::ForwardSlash,
        strict_charset: false,
    };
    let out = IsoImageWriter::create(Cursor::new(Vec::new()), tree, options)
        .map_err(|e| Error::Iso(e.to_string()))?;
    let mut bytes = out.into_inner();
    let volume_sectors = u32_le(&bytes, 16 * SECTOR + 80)
        .ok_or_else(|| Error::Iso("the image has no primary volume descriptor".into()))?;
    // The writer may stop short of the declared volume size (or leave slack after
    // it); make the file exactly the volume so every reader sees the same length.
    bytes.resize(volume_sectors as usize * SECTOR, 0);
    normalise_timestamps(&mut bytes)?;
    Ok(bytes)
}

fn u32_le(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 4)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

/// Overwrites every timestamp the writer stamped with [`FIXED_TIME`]: the four dates
/// of each primary/supplementary volume descriptor and the recording date of every
/// directory record reachable from their root directories.
fn normalise_timestamps(img: &mut [u8]) -> Result<(), Error> {
    let bad = |what: &str| Error::Iso(format!("unexpected image layout: {what}"));
    let dec = dec_datetime(FIXED_TIME);
    let dir = dir_datetime(FIXED_TIME);
    let mut roots = Vec::new();
    let mut sector = 16;
    loop {
        let base = sector * SECTOR;
        let vd = img
            .get(base..base + SECTOR)
            .ok_or_else(|| bad("volume descriptor set runs past the end"))?;
        if &vd[1..6] != b"CD001" {
            return Err(bad("volume descriptor without CD001"));
        }
        match vd[0] {
            255 => break,
            1 | 2 => {
                for off in [813, 830] {
                    img[base + off..base + off + 17].copy_from_slice(&dec);
                }
                // Expiration and effective dates: "not specified" (digits '0', offset 0).
                for off in [847, 864] {
                    let mut unset = [b'0'; 17];
                    unset[16] = 0;
                    img[base + off..base + off + 17].copy_from_slice(&unset);
                }
                let root = base + 156;
                img[root + 18..root + 25].copy_from_slice(&dir);
                let extent = u32_le(img, root + 2).ok_or_else(|| bad("root record"))?;
                let len = u32_le(img, root + 10).ok_or_else(|| bad("root record"))?;
                roots.push((extent as usize, len as usize));
            }
            _ => {}
        }
        sector += 1;
        if sector > 64 {
            return Err(bad("no volume descriptor set terminator"));
        }
    }
    for (extent, len) in roots {
        walk_dir(img, extent, len, &dir, 0)?;
    }
    Ok(())
}

fn walk_dir(
    img: &mut [u8],
    extent: usize,
    len: usize,
    stamp: &[u8; 7],
    depth: usize,
) -> Result<(), Error> {
    let bad = |what: &str| Error::Iso(format!("unexpected image layout: {what}"));
    if depth > 8 {
        return Err(bad("directories nested too deep"));
    }
    let start = extent * SECTOR;
    let end = start + len;
    if end > img.len() {
        return Err(bad("directory extent past the end"));
    }
    let mut at = start;
    let mut children = Vec::new();
    while at < end {
        let rec_len = img[at] as usize;
        if rec_len == 0 {
            // Records do not cross sectors: skip the padding to the next one.
            at = (at / SECTOR + 1) * SECTOR;
            continue;
        }
        if rec_len < 34 || at + rec_len > end {
            return Err(bad("directory record length"));
        }
        img[at + 18..at + 25].copy_from_slice(stamp);
        let flags = img[at + 25];
        let name_len = img[at + 32] as usize;
        let is_dot = name_len == 1 && matches!(img[at + 33], 0 | 1);
        if flags & 0x02 != 0 && !is_dot {
            let e = u32_le(img, at + 2).ok_or_else(|| bad("child record"))?;
            let l = u32_le(img, at + 10).ok_or_else(|| bad("child record"))?;
            children.push((e as usize, l as usize));
        }
        at += rec_len;
    }
    for (e, l) in children {
        walk_dir(img, e, l, stamp, depth + 1)?;
    }
    Ok(())
}

fn dec_datetime(t: FixedTime) -> [u8; 17] {
    let s = format!("{:04}{:02}{:02}00000000", t.year, t.month, t.day);
    let mut out = [0u8; 17];
    out[..16].copy_from_slice(&s.as_bytes()[..16]);
    out
}

fn dir_datetime(t: FixedTime) -> [u8; 7] {
    [(t.year - 1900) as u8, t.month, t.day, 0, 0, 0, 0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_input_same_bytes_across_seconds() -> Result<(), Error> {
        let files: [(&str, &[u8]); 2] =
            [("meta-data", b"a: 1\n"), ("user-data", b"#cloud-config\n")];
        let a = iso_bytes(&files)?;
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let b = iso_bytes(&files)?;
        assert_eq!(a.len() % SECTOR, 0);
        assert!(a == b, "two builds a second apart differ");
        Ok(())
    }

    #[test]
    fn label_is_cidata() -> Result<(), Error> {
        let img = iso_bytes(&[("meta-data", b"x\n")])?;
        let label = &img[16 * SECTOR + 40..16 * SECTOR + 46];
        assert_eq!(label, b"cidata");
        Ok(())
    }
}
