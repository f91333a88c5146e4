//! labwright-policy.
