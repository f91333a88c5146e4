//! `rsync -aHAX --delete [--exclude=…] SRC/ DST/` inside a guest: copies files and
//! folders, deletes extras on the receiving side (except excluded paths), and with the
//! copy fault stops partway like a broken transfer.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{Ctx, Ran};
use crate::fsmap;

/// Does an rsync exclude pattern match `rel` (a path relative to the transfer root)?
/// `/x/` is anchored at the root; `x` matches a path component anywhere.
fn excluded(patterns: &[String], rel: &str) -> bool {
    patterns.iter().any(|p| {
        let anchored = p.starts_with('/');
        let pat = p.trim_start_matches('/').trim_end_matches('/');
        if pat.is_empty() {
            return false;
        }
        if anchored {
            rel == pat || rel.starts_with(&format!("{pat}/"))
        } else {
            let parts: Vec<&str> = rel.split('/').collect();
            let want: Vec<&str> = pat.split('/').collect();
            parts.windows(want.len()).any(|w| w == want.as_slice())
        }
    })
}

pub fn rsync(ctx: &mut Ctx<'_>, args: &[String]) -> Ran {
    if args.first().is_some_and(|a| a == "--version") {
        return (
            0,
            "rsync  version 3.2.7  protocol version 31\n".into(),
            String::new(),
        );
    }
    let (mut excludes, mut delete, mut pos) = (vec![], false, vec![]);
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        if let Some(p) = a.strip_prefix("--exclude=") {
            excludes.push(p.to_string());
        } else if a == "--exclude" {
            excludes.extend(args.get(i + 1).cloned());
            i += 1;
        } else if a == "--delete" || a.starts_with("--delete-") {
            delete = true;
        } else if !a.starts_with('-') {
            pos.push(a.clone());
        }
        i += 1;
    }
    let [src, dst] = pos.as_slice() else {
        return (
            1,
            String::new(),
            "rsync: a source and a destination are needed here\nrsync error: syntax or usage error (code 1) at main.c(1795) [client=3.2.7]\n".into(),
        );
    };
    let fault = ctx.copy_fault;
    let mut fs = ctx.fs();
    let src_n = fsmap::norm(src);
    if !fs.is_dir(&src_n) {
        return (
            23,
            String::new(),
            format!(
                "rsync: [sender] change_dir \"{src_n}\" failed: No such file or directory (2)\nrsync error: some files/attrs were not transferred (see previous errors) (code 23) at main.c(1338) [sender=3.2.7]\n"
            ),
        );
    }
    let root = if src.ends_with('/') {
        fsmap::norm(dst)
    } else {
        let leaf = src_n.rsplit('/').next().unwrap_or("");
        fsmap::norm(&format!("{dst}/{leaf}"))
    };
    let entries: Vec<(String, Option<String>)> = fs
        .tree(&src_n)
        .unwrap_or_default()
        .into_iter()
        .filter(|(rel, _)| !excluded(&excludes, rel))
        .collect();
    fs.mkdir_p(&root);
    if let Some(seed) = fault {
        // The connection breaks after a random part of the files.
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let n = entries.iter().filter(|(_, c)| c.is_some()).count();
        let k = if n >= 2 { rng.random_range(1..n) } else { 0 };
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut rng);
        let chosen: std::collections::BTreeSet<usize> = order[..k].iter().copied().collect();
        let (mut file_no, mut sent) = (0usize, 0usize);
        for (rel, c) in &entries {
            match c {
                None => fs.mkdir_p(&format!("{root}/{rel}")),
                Some(c) => {
                    if chosen.contains(&file_no) {
                        fs.write(&format!("{root}/{rel}"), c);
                        sent += c.len();
                    }
                    file_no += 1;
                }
            }
        }
        return (
            12,
            String::new(),
            format!(
                "rsync: connection unexpectedly closed ({} bytes received so far) [sender]\nrsync error: error in rsync protocol data stream (code 12) at io.c(231) [sender=3.2.7]\n",
                sent
            ),
        );
    }
    for (rel, c) in &entries {
        let path = format!("{root}/{rel}");
        match c {
            None => fs.mkdir_p(&path),
            Some(c) => {
                if fs.read(&path).as_deref() != Some(c.as_str()) {
                    fs.write(&path, c);
                }
            }
        }
    }
    if delete {
        let keep: std::collections::BTreeSet<&str> =
            entries.iter().map(|(r, _)| r.as_str()).collect();
        let extras: Vec<String> = fs
            .tree(&root)
            .unwrap_or_default()
            .into_iter()
            .map(|(r, _)| r)
            .filter(|r| !keep.contains(r.as_str()) && !excluded(&excludes, r))
            .collect();
        for r in extras {
            fs.remove_tree(&format!("{root}/{r}"));
        }
    }
    (0, String::new(), String::new())
}

#[cfg(test)]
mod tests {
    use super::excluded;

    #[test]
    fn exclude_patterns() {
        let p = vec!["/plex/media/".to_string(), "cache".to_string()];
        assert!(excluded(&p, "plex/media"));
        assert!(excluded(&p, "plex/media/movies/a.mkv"));
        assert!(!excluded(&p, "plex/mediaX"));
        assert!(!excluded(&p, "x/plex/media"));
        assert!(excluded(&p, "a/cache/b"));
        assert!(!excluded(&p, "a/cached"));
    }
}
