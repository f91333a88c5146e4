//! Storage configuration and content, disks and ZFS, backup jobs.
use std::sync::Arc;

use super::missing;
use crate::server::{ApiError, Inner, Reply, Req};
use crate::state::{Obj, State};

pub fn dispatch(_inner: &Arc<Inner>, r: &Req) -> Result<Reply, ApiError> {
    Err(missing(r))
}

/// Is a storage available on `node` (its `nodes` restriction)?
pub fn storage_on_node(cfg: &Obj, node: &str) -> bool {
    match cfg.get("nodes").and_then(serde_json::Value::as_str) {
        Some(list) => crate::formats::split_list(list).iter().any(|n| n == node),
        None => true,
    }
}

/// (total, used) bytes of a storage on a node.
pub fn usage(st: &State, node: &str, id: &str, cfg: &Obj) -> (u64, u64) {
    let used: u64 = st.volumes.iter().filter(|v| v.storage == id && (v.node == node || cfg.get("shared").is_some())).map(|v| v.size).sum();
    let total = match cfg.get("type").and_then(serde_json::Value::as_str) {
        Some("lvmthin") => 374_538_764_288,
        Some("zfspool") => 3_770_000_000_000,
        _ => 100_861_726_720,
    };
    (total, used.min(total))
}
