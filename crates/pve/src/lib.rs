//! labwright-pve.
