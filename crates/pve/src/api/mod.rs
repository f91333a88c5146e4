//! Typed endpoint wrappers.
