//! labwright-spec.
