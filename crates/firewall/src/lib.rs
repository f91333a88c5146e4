//! labwright-firewall.
