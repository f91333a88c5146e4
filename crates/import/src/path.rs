//! Paths into the imported document (`vmProvision[2].cpu.cores`). Kept apart from the
//! spec crate's `YamlPath` because these are printed into the output for people and
//! tests to read back: a key that is not a plain word is quoted (`payload["a b"]`).

use std::fmt;

use labwright_spec::YamlPath;
use labwright_spec::path::Seg;

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Path(pub Vec<PSeg>);

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PSeg {
    Key(String),
    Index(usize),
}

impl Path {
    pub fn root() -> Path {
        Path(Vec::new())
    }
    pub fn key(&self, k: &str) -> Path {
        let mut p = self.clone();
        p.0.push(PSeg::Key(k.to_string()));
        p
    }
    pub fn index(&self, i: usize) -> Path {
        let mut p = self.clone();
        p.0.push(PSeg::Index(i));
        p
    }
    /// True when `self` is `other` or lies under it.
    pub fn starts_with(&self, other: &Path) -> bool {
        self.0.len() >= other.0.len() && self.0[..other.0.len()] == other.0[..]
    }
    /// The same path in the spec crate's form, for positions in the input file.
    pub fn to_yaml_path(&self) -> YamlPath {
        YamlPath(
            self.0
                .iter()
                .map(|s| match s {
                    PSeg::Key(k) => Seg::Key(k.clone()),
                    PSeg::Index(i) => Seg::Index(*i),
                })
                .collect(),
        )
    }
    /// The path with indices erased (`vmProvision[].cpu.cores`): what naasctl's schema
    /// is written against.
    pub fn shape(&self) -> String {
        let mut out = String::new();
        for s in &self.0 {
            match s {
                PSeg::Key(k) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(k);
                }
                PSeg::Index(_) => out.push_str("[]"),
            }
        }
        out
    }
    /// The first key (the naasctl family), if any.
    pub fn family(&self) -> &str {
        match self.0.first() {
            Some(PSeg::Key(k)) => k,
            _ => "",
        }
    }
}

/// A key printed bare when it is a plain word, else quoted.
fn plain_key(k: &str) -> bool {
    !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(root)");
        }
        for (i, s) in self.0.iter().enumerate() {
            match s {
                PSeg::Key(k) if !plain_key(k) => {
                    let q = serde_json::to_string(k).map_err(|_| fmt::Error)?;
                    write!(f, "[{q}]")?
                }
                PSeg::Key(k) if i == 0 => f.write_str(k)?,
                PSeg::Key(k) => write!(f, ".{k}")?,
                PSeg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_and_quotes() {
        let p = Path::root()
            .key("vmProvision")
            .index(2)
            .key("cpu")
            .key("cores");
        assert_eq!(p.to_string(), "vmProvision[2].cpu.cores");
        assert_eq!(p.shape(), "vmProvision[].cpu.cores");
        let q = Path::root().key("crud").key("a b");
        assert_eq!(q.to_string(), "crud[\"a b\"]");
        assert!(p.starts_with(&Path::root().key("vmProvision").index(2)));
        assert!(!p.starts_with(&Path::root().key("vmProvision").index(1)));
    }
}
