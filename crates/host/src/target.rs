//! Where the node's SSH is: `user@host[:port]`, with optional identity and
//! known_hosts files (defaults: the user's own ssh configuration).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::HostError;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SshTarget {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
    /// A private key to use instead of the agent's and ssh's defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<PathBuf>,
    /// A known_hosts file to check the host key against instead of `~/.ssh/known_hosts`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known_hosts: Option<PathBuf>,
}

impl SshTarget {
    /// Parses `user@host`, `user@host:port`, `host`, or `user@[v6addr]:port`.
    pub fn parse(value: &str) -> Result<SshTarget, HostError> {
        let bad = |why: &str| HostError::BadTarget {
            value: value.to_string(),
            why: why.to_string(),
        };
        let v = value.trim();
        if v.is_empty() {
            return Err(bad("it is empty"));
        }
        if v.chars().any(|c| c.is_whitespace()) {
            return Err(bad("it contains spaces"));
        }
        let (user, rest) = match v.rsplit_once('@') {
            Some((u, r)) if !u.is_empty() => (Some(u.to_string()), r),
            Some(_) => return Err(bad("the user before `@` is empty")),
            None => (None, v),
        };
        if rest.starts_with('-') {
            return Err(bad("a host cannot start with `-`"));
        }
        let (host, port) = if let Some(r) = rest.strip_prefix('[') {
            let (h, tail) = r.split_once(']').ok_or_else(|| bad("`[` without `]`"))?;
            let port = match tail.strip_prefix(':') {
                Some(p) => Some(p),
                None if tail.is_empty() => None,
                None => return Err(bad("text after `]` must be `:port`")),
            };
            (h.to_string(), port)
        } else {
            match rest.rsplit_once(':') {
                Some((h, p)) if !h.contains(':') => (h.to_string(), Some(p)),
                Some(_) => return Err(bad("an IPv6 address must be written in brackets")),
                None => (rest.to_string(), None),
            }
        };
        if host.is_empty() {
            return Err(bad("the host is empty"));
        }
        let port = match port {
            None => None,
            Some(p) => Some(
                p.parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| bad("the port must be a number from 1 to 65535"))?,
            ),
        };
        Ok(SshTarget {
            user,
            host,
            port,
            identity: None,
            known_hosts: None,
        })
    }

    /// `user@host:port` as written in messages.
    pub fn display(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let mut s = match &self.user {
            Some(u) => format!("{u}@{host}"),
            None => host,
        };
        if let Some(p) = self.port {
            s.push_str(&format!(":{p}"));
        }
        s
    }

    /// The same target as an `ssh` command line a person can try.
    pub fn cli(&self) -> String {
        let mut s = String::new();
        if let Some(p) = self.port {
            s.push_str(&format!("-p {p} "));
        }
        if let Some(i) = &self.identity {
            s.push_str(&format!("-i {} ", i.display()));
        }
        if let Some(k) = &self.known_hosts {
            s.push_str(&format!("-o UserKnownHostsFile={} ", k.display()));
        }
        match &self.user {
            Some(u) => s.push_str(&format!("{u}@{}", self.host)),
            None => s.push_str(&self.host),
        }
        s
    }
}

impl std::fmt::Display for SshTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_usual_forms() {
        let t = SshTarget::parse("root@192.168.1.10:2222").expect("valid");
        assert_eq!(
            (t.user.as_deref(), t.host.as_str(), t.port),
            (Some("root"), "192.168.1.10", Some(2222))
        );
        let t = SshTarget::parse("pve.lan").expect("valid");
        assert_eq!((t.user, t.host.as_str(), t.port), (None, "pve.lan", None));
        let t = SshTarget::parse("root@[fd00::10]:22").expect("valid");
        assert_eq!((t.host.as_str(), t.port), ("fd00::10", Some(22)));
        assert_eq!(t.display(), "root@[fd00::10]:22");
    }

    #[test]
    fn refuses_what_ssh_would_misread() {
        for (v, why) in [
            ("", "empty"),
            ("root@", "host is empty"),
            ("@host", "user before"),
            ("root@host:0", "port must be"),
            ("root@host:ssh", "port must be"),
            ("root@fd00::1", "brackets"),
            ("-oProxyCommand=x", "cannot start with"),
            ("root@a b", "spaces"),
        ] {
            let e = SshTarget::parse(v)
                .expect_err("must be refused")
                .to_string();
            assert!(e.contains(why), "{v:?}: {e}");
        }
    }
}
