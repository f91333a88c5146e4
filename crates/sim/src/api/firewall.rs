//! Firewall configuration at cluster, node and VM level.
use std::sync::Arc;

use super::missing;
use crate::server::{ApiError, Inner, Reply, Req};

pub fn dispatch(_inner: &Arc<Inner>, r: &Req) -> Result<Reply, ApiError> {
    Err(missing(r))
}
