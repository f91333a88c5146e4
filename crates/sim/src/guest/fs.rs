//! A guest's file system view: its own files, with virtiofs mounts showing folders of
//! the node. A path below a mount resolves to the node's files under the mapped
//! folder, so what the guest writes there is what `ssh node` sees, and vice versa.

use crate::fsmap::{self, Files};
use crate::state::GuestMount;

/// Which store a path lives in.
enum Loc {
    Guest(String),
    Host(String),
}

pub struct GuestFs<'a> {
    pub guest: &'a mut Files,
    /// The node's files (`None` when the node is unknown: mounts then show nothing).
    pub host: Option<&'a mut Files>,
    pub mounts: &'a [GuestMount],
}

impl GuestFs<'_> {
    /// The innermost mount holding `path` and the path relative to it.
    fn mount_of(&self, path: &str) -> Option<(&GuestMount, String)> {
        let p = fsmap::norm(path);
        self.mounts
            .iter()
            .filter(|m| p == m.target || p.starts_with(&format!("{}/", m.target)))
            .max_by_key(|m| m.target.len())
            .map(|m| (m, p[m.target.len()..].to_string()))
    }

    fn loc(&self, path: &str) -> Loc {
        match self.mount_of(path) {
            Some((m, rest)) if self.host.is_some() => {
                Loc::Host(fsmap::norm(&format!("{}/{rest}", m.host_path)))
            }
            _ => Loc::Guest(fsmap::norm(path)),
        }
    }

    fn store(&self, l: &Loc) -> (&Files, String) {
        match (l, &self.host) {
            (Loc::Host(p), Some(h)) => (h, p.clone()),
            (Loc::Host(p), None) | (Loc::Guest(p), _) => (self.guest, p.clone()),
        }
    }

    fn store_mut(&mut self, l: &Loc) -> (&mut Files, String) {
        match l {
            Loc::Host(p) => match self.host.as_deref_mut() {
                Some(h) => (h, p.clone()),
                None => (self.guest, p.clone()),
            },
            Loc::Guest(p) => (self.guest, p.clone()),
        }
    }

    pub fn is_mountpoint(&self, path: &str) -> bool {
        let p = fsmap::norm(path);
        self.mounts.iter().any(|m| m.target == p)
    }

    pub fn read(&self, path: &str) -> Option<String> {
        let l = self.loc(path);
        let (s, p) = self.store(&l);
        s.get(&p).cloned().filter(|_| p != "/")
    }

    pub fn is_file(&self, path: &str) -> bool {
        let l = self.loc(path);
        let (s, p) = self.store(&l);
        fsmap::is_file(s, &p)
    }

    pub fn is_dir(&self, path: &str) -> bool {
        if self.is_mountpoint(path) {
            return true;
        }
        let l = self.loc(path);
        let (s, p) = self.store(&l);
        fsmap::is_dir(s, &p)
    }

    pub fn exists(&self, path: &str) -> bool {
        self.is_file(path) || self.is_dir(path)
    }

    pub fn write(&mut self, path: &str, content: &str) {
        let l = self.loc(path);
        let (s, p) = self.store_mut(&l);
        fsmap::write(s, &p, content);
    }

    pub fn mkdir_p(&mut self, path: &str) {
        // The levels above a mount belong to the guest's own tree.
        if let Some((m, _)) = self.mount_of(path) {
            let target = m.target.clone();
            fsmap::mkdir_p(self.guest, &target);
        }
        let l = self.loc(path);
        let (s, p) = self.store_mut(&l);
        fsmap::mkdir_p(s, &p);
    }

    pub fn remove_tree(&mut self, path: &str) {
        let l = self.loc(path);
        let (s, p) = self.store_mut(&l);
        fsmap::remove_tree(s, &p);
    }

    /// Everything below `dir`, mounts included, as (relative path, content or `None`
    /// for a folder), sorted; `None` when `dir` is not a folder.
    pub fn tree(&self, dir: &str) -> Option<Vec<(String, Option<String>)>> {
        if !self.is_dir(dir) {
            return None;
        }
        let d = fsmap::norm(dir);
        let base = fsmap::dir_key(&d);
        let inner: Vec<String> = self
            .mounts
            .iter()
            .filter(|m| m.target.starts_with(&base) && m.target != d)
            .map(|m| m.target[base.len()..].to_string())
            .collect();
        let shadowed = |rel: &str| {
            inner
                .iter()
                .any(|m| rel == m || rel.starts_with(&format!("{m}/")))
        };
        let l = self.loc(&d);
        let (s, p) = self.store(&l);
        let mut out: Vec<(String, Option<String>)> = fsmap::tree(s, &p)
            .into_iter()
            .filter(|(rel, _)| !shadowed(rel))
            .collect();
        for m in &inner {
            out.push((m.clone(), None));
            for (rel, c) in self.tree(&format!("{d}/{m}")).unwrap_or_default() {
                out.push((format!("{m}/{rel}"), c));
            }
        }
        out.sort();
        out.dedup();
        Some(out)
    }

    /// The files below `dir` with their content (for `find -type f`).
    pub fn files_below(&self, dir: &str) -> Option<Vec<(String, String)>> {
        self.tree(dir).map(|t| {
            t.into_iter()
                .filter_map(|(rel, c)| c.map(|c| (rel, c)))
                .collect()
        })
    }

    /// `mv`: within one store a rename, across stores a copy and remove.
    pub fn rename(&mut self, from: &str, to: &str) -> bool {
        let (lf, lt) = (self.loc(from), self.loc(to));
        let same = matches!(
            (&lf, &lt),
            (Loc::Guest(_), Loc::Guest(_)) | (Loc::Host(_), Loc::Host(_))
        );
        if same {
            let (s, f) = self.store_mut(&lf);
            let t = match &lt {
                Loc::Guest(p) | Loc::Host(p) => p.clone(),
            };
            return fsmap::rename(s, &f, &t);
        }
        if self.is_file(from) {
            let c = self.read(from).unwrap_or_default();
            self.write(to, &c);
            self.remove_tree(from);
            return true;
        }
        let Some(entries) = self.tree(from) else {
            return false;
        };
        self.mkdir_p(to);
        for (rel, c) in entries {
            match c {
                Some(c) => self.write(&format!("{to}/{rel}"), &c),
                None => self.mkdir_p(&format!("{to}/{rel}")),
            }
        }
        self.remove_tree(from);
        true
    }

    pub fn list(&self, dir: &str) -> Vec<String> {
        let names: std::collections::BTreeSet<String> = self
            .tree(dir)
            .unwrap_or_default()
            .into_iter()
            .map(|(rel, _)| rel.split('/').next().unwrap_or("").to_string())
            .filter(|n| !n.is_empty())
            .collect();
        names.into_iter().collect()
    }
}
