//! labwright-engine.
