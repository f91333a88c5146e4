//! labwright-sim.
