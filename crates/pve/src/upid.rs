//! UPID parsing.
//!
//! A task must be polled on the node that runs it, and that node name is only
//! available inside the UPID, so every async call result goes through [`Upid::parse`].

use std::fmt;
use std::str::FromStr;

/// Why a string is not a UPID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid UPID '{upid}': {reason}")]
pub struct UpidError {
    /// The offending text.
    pub upid: String,
    /// What was wrong with it.
    pub reason: &'static str,
}

/// A parsed task id: `UPID:<node>:<pid>:<pstart>:<starttime>:<type>:<id>:<user>:`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Upid {
    raw: String,
    /// Node that runs the task (poll this node).
    pub node: String,
    /// Worker process id.
    pub pid: u32,
    /// Process start time in clock ticks (8 or 9 hex digits).
    pub pstart: u64,
    /// Task start, seconds since the epoch.
    pub starttime: u64,
    /// Task type, e.g. `qmcreate`, `qmstart`, `srvreload`.
    pub task_type: String,
    /// Task object id, e.g. the VMID; may be empty.
    pub id: String,
    /// User (or `user@realm!token`) that started the task.
    pub user: String,
}

fn is_hex(s: &str, min: usize, max: usize) -> bool {
    (min..=max).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn valid_node(s: &str) -> bool {
    let b = s.as_bytes();
    match (b.first(), b.last()) {
        (Some(f), Some(l)) => {
            f.is_ascii_alphanumeric()
                && l.is_ascii_alphanumeric()
                && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        }
        _ => false,
    }
}

fn valid_field(s: &str) -> bool {
    !s.contains(|c: char| c == ':' || c == '/' || c.is_whitespace())
}

impl Upid {
    /// Parse a UPID; the trailing `:` is required, as PVE always emits it.
    pub fn parse(s: &str) -> Result<Self, UpidError> {
        let err = |reason| UpidError {
            upid: s.to_string(),
            reason,
        };
        let body = s
            .strip_prefix("UPID:")
            .ok_or_else(|| err("missing 'UPID:' prefix"))?;
        let body = body
            .strip_suffix(':')
            .ok_or_else(|| err("missing trailing ':'"))?;
        let parts: Vec<&str> = body.split(':').collect();
        let [node, pid, pstart, starttime, task_type, id, user] = parts.as_slice() else {
            return Err(err("expected 8 ':'-separated fields"));
        };
        if !valid_node(node) {
            return Err(err("invalid node name"));
        }
        if !is_hex(pid, 8, 8) {
            return Err(err("pid must be 8 hex digits"));
        }
        if !is_hex(pstart, 8, 9) {
            return Err(err("pstart must be 8 or 9 hex digits"));
        }
        if !is_hex(starttime, 8, 8) {
            return Err(err("starttime must be 8 hex digits"));
        }
        if task_type.is_empty() || !valid_field(task_type) {
            return Err(err("invalid task type"));
        }
        if !valid_field(id) {
            return Err(err("invalid task id"));
        }
        if user.is_empty() || !valid_field(user) {
            return Err(err("invalid user"));
        }
        let hex = |h: &str| u64::from_str_radix(h, 16).map_err(|_| err("bad hex number"));
        Ok(Self {
            raw: s.to_string(),
            node: (*node).to_string(),
            pid: u32::from_str_radix(pid, 16).map_err(|_| err("bad pid"))?,
            pstart: hex(pstart)?,
            starttime: hex(starttime)?,
            task_type: (*task_type).to_string(),
            id: (*id).to_string(),
            user: (*user).to_string(),
        })
    }

    /// The UPID text exactly as PVE sent it.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// Whether the task was started by an API token (`user@realm!token`).
    pub fn is_token(&self) -> bool {
        self.user.contains('!')
    }
}

impl FromStr for Upid {
    type Err = UpidError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for Upid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl AsRef<str> for Upid {
    fn as_ref(&self) -> &str {
        &self.raw
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_examples() {
        let u = Upid::parse("UPID:node1:000FF1FD:10F9374C:630D702C:vzdump:110:root@pam:")
            .expect("valid");
        assert_eq!(u.node, "node1");
        assert_eq!(u.pid, 0x000F_F1FD);
        assert_eq!(u.starttime, 0x630D_702C);
        assert_eq!(u.task_type, "vzdump");
        assert_eq!(u.id, "110");
        assert_eq!(u.user, "root@pam");
        assert!(!u.is_token());

        let u = Upid::parse("UPID:node:0017C594:0ADB2769:63EC5455:imgcopy::root@pam:")
            .expect("empty id");
        assert_eq!(u.id, "");

        let u = Upid::parse("UPID:pve-mp:00000ACD:1006AE8AB:679A423B:qmclone:112:capmox@pve!capi:")
            .expect("9-digit pstart and token user");
        assert_eq!(u.pstart, 0x1_006A_E8AB);
        assert!(u.is_token());
        assert_eq!(u.to_string(), u.as_str());
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "UPID:node1:000FF1FD:10F9374C:630D702C:vzdump:110:root@pam",
            "UPID:node1:FF1FD:10F9374C:630D702C:vzdump:110:root@pam:",
            "UPID:-node:000FF1FD:10F9374C:630D702C:vzdump:110:root@pam:",
            "UPID:node1:000FF1FD:10F9374C:630D702C::110:root@pam:",
            "UPID:node1:000FF1FD:10F9374C:630D702C:vzdump:110::",
            "UPID:node1:000FF1FD:10F9374C:630D702C:vz dump:110:root@pam:",
            "TASK:node1:000FF1FD:10F9374C:630D702C:vzdump:110:root@pam:",
            "UPID:node1:000FF1FD:10F9374C:630D702C:vzdump:110:root@pam:extra:",
        ] {
            assert!(Upid::parse(bad).is_err(), "{bad} should be rejected");
        }
    }
}
