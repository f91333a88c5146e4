//! A file tree kept as a map: path → content, where a path ending in `/` marks a
//! directory. Guests and nodes both keep their files this way; these helpers give the
//! few file-system operations the simulated shells need.

use std::collections::BTreeMap;

/// Files by path.
pub type Files = BTreeMap<String, String>;

/// `/a/b/` → `/a/b`; `/` stays `/`; relative paths are taken from `/`.
pub fn norm(path: &str) -> String {
    let mut parts: Vec<&str> = vec![];
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    format!("/{}", parts.join("/"))
}

/// The directory key of a normalised path (`/a` → `/a/`, `/` → `/`).
pub fn dir_key(path: &str) -> String {
    if path == "/" {
        "/".into()
    } else {
        format!("{path}/")
    }
}

pub fn is_file(files: &Files, path: &str) -> bool {
    let p = norm(path);
    p != "/" && files.contains_key(&p)
}

/// A directory exists when it was made, or when anything lies below it.
pub fn is_dir(files: &Files, path: &str) -> bool {
    let key = dir_key(&norm(path));
    key == "/"
        || files.contains_key(&key)
        || files
            .range(key.clone()..)
            .next()
            .is_some_and(|(k, _)| k.starts_with(&key))
}

pub fn exists(files: &Files, path: &str) -> bool {
    is_file(files, path) || is_dir(files, path)
}

/// `mkdir -p`: every level exists afterwards.
pub fn mkdir_p(files: &mut Files, path: &str) {
    let p = norm(path);
    let mut acc = String::new();
    for seg in p.split('/').filter(|s| !s.is_empty()) {
        acc.push('/');
        acc.push_str(seg);
        files.entry(format!("{acc}/")).or_default();
    }
}

/// Writes a file, making its parent folders (like `install -D`).
pub fn write(files: &mut Files, path: &str, content: &str) {
    let p = norm(path);
    if let Some((parent, _)) = p.rsplit_once('/') {
        mkdir_p(files, parent);
    }
    files.insert(p, content.to_string());
}

/// Everything below `dir` as (relative path, content or `None` for a folder), sorted.
pub fn tree(files: &Files, dir: &str) -> Vec<(String, Option<String>)> {
    let key = dir_key(&norm(dir));
    files
        .range(key.clone()..)
        .take_while(|(k, _)| k.starts_with(&key))
        .filter(|(k, _)| **k != key)
        .map(|(k, v)| match k[key.len()..].strip_suffix('/') {
            Some(d) => (d.to_string(), None),
            None => (k[key.len()..].to_string(), Some(v.clone())),
        })
        .collect()
}

/// `rm -rf`: the path and everything below it.
pub fn remove_tree(files: &mut Files, path: &str) {
    let p = norm(path);
    if p == "/" {
        files.clear();
        return;
    }
    files.remove(&p);
    let key = dir_key(&p);
    let doomed: Vec<String> = files
        .range(key.clone()..)
        .take_while(|(k, _)| k.starts_with(&key))
        .map(|(k, _)| k.clone())
        .collect();
    for k in doomed {
        files.remove(&k);
    }
}

/// Moves a file or folder (`mv A B`); `false` when `from` does not exist.
pub fn rename(files: &mut Files, from: &str, to: &str) -> bool {
    let (f, t) = (norm(from), norm(to));
    if is_file(files, &f) {
        let c = files.remove(&f).unwrap_or_default();
        write(files, &t, &c);
        return true;
    }
    if !is_dir(files, &f) {
        return false;
    }
    let entries = tree(files, &f);
    remove_tree(files, &f);
    mkdir_p(files, &t);
    for (rel, c) in entries {
        match c {
            Some(c) => write(files, &format!("{t}/{rel}"), &c),
            None => mkdir_p(files, &format!("{t}/{rel}")),
        }
    }
    true
}

/// The names directly inside `dir`, sorted.
pub fn list(files: &Files, dir: &str) -> Vec<String> {
    let names: std::collections::BTreeSet<String> = tree(files, dir)
        .into_iter()
        .map(|(rel, _)| rel.split('/').next().unwrap_or("").to_string())
        .filter(|n| !n.is_empty())
        .collect();
    names.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_rename_and_remove() {
        let mut f = Files::new();
        write(&mut f, "/a/b/c.txt", "x");
        mkdir_p(&mut f, "/a/empty");
        assert!(is_dir(&f, "/a/b") && is_file(&f, "/a/b/c.txt") && !is_file(&f, "/a/b"));
        assert_eq!(list(&f, "/a"), vec!["b", "empty"]);
        assert!(rename(&mut f, "/a", "/z"));
        assert!(!exists(&f, "/a/b/c.txt"));
        assert_eq!(f.get("/z/b/c.txt").map(String::as_str), Some("x"));
        assert!(is_dir(&f, "/z/empty"));
        remove_tree(&mut f, "/z/b");
        assert!(!exists(&f, "/z/b/c.txt") && is_dir(&f, "/z/empty"));
        assert_eq!(norm("/x/../y//z/"), "/y/z");
    }
}
