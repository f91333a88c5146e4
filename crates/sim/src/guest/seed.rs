//! The data a naas guest holds before migration: when cloud-init makes
//! `/opt/naas/appdata`, the simulated apps fill it with a small, deterministic tree
//! (seeded from the VM id), so migrations have something real to copy and compare.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::fsmap::{self, Files};

pub const APPDATA: &str = "/opt/naas/appdata";

/// The sample files (path, content) of guest `vmid`.
pub fn sample(vmid: u32) -> Vec<(String, String)> {
    let mut rng = ChaCha8Rng::seed_from_u64(0x6e61_6173_0000_0000 ^ u64::from(vmid));
    let blob = |rng: &mut ChaCha8Rng, head: &str| {
        let lines = rng.random_range(24..90);
        let mut s = String::from(head);
        for _ in 0..lines {
            let bytes: [u8; 32] = rng.random();
            s.push_str(&hex::encode(bytes));
            s.push('\n');
        }
        s
    };
    let id: [u8; 16] = rng.random();
    let prefs = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<Preferences MachineIdentifier=\"{}\" FriendlyName=\"naas-{vmid}\" AcceptedEULA=\"1\" TranscoderTempDirectory=\"/transcode\"/>\n<!--\n",
        hex::encode(id)
    );
    let mut files = vec![(
        format!("{APPDATA}/plex/config/Preferences.xml"),
        blob(&mut rng, &prefs) + "-->\n",
    )];
    for name in [
        "Sintel (2010).mkv",
        "Tears of Steel (2012).mkv",
        "big_buck_bunny.mkv",
    ] {
        let c = blob(&mut rng, &format!("# movie {name}\n"));
        files.push((format!("{APPDATA}/plex/media/movies/{name}"), c));
    }
    for ep in ["S01E01.mkv", "S01E02.mkv"] {
        let c = blob(&mut rng, &format!("# episode {ep}\n"));
        files.push((format!("{APPDATA}/plex/media/tv/Show Name/{ep}"), c));
    }
    files.push((
        format!("{APPDATA}/jarvis/data.db"),
        blob(&mut rng, "-- jarvis state\n"),
    ));
    files
}

/// Fills `/opt/naas/appdata` once it exists and holds no files yet; `true` when it did.
pub fn plant(files: &mut Files, vmid: u32) -> bool {
    if !fsmap::is_dir(files, APPDATA)
        || fsmap::tree(files, APPDATA).iter().any(|(_, c)| c.is_some())
    {
        return false;
    }
    for (p, c) in sample(vmid) {
        fsmap::write(files, &p, &c);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_per_vm() {
        assert_eq!(sample(101), sample(101));
        assert_ne!(sample(101), sample(102));
        for (_, c) in sample(7) {
            assert!((1500..8000).contains(&c.len()), "{}", c.len());
        }
    }
}
