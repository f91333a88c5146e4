//! Router backends: each renders one [`RuleSet`] in its own configuration language.
//! nftables (a plain Debian router) and OPNsense (its `config.xml`), behind the same
//! trait, so both stay one compilation of the same model.

use crate::model::RuleSet;

pub mod nftables;
pub mod opnsense;

pub use nftables::Nftables;
pub use opnsense::Opnsense;

/// A way to configure a router from the rule model.
pub trait Backend {
    /// Short name (`nftables`).
    fn name(&self) -> &'static str;
    /// The rule set in the backend's configuration language; deterministic (the same
    /// rule set always gives the same text).
    fn render(&self, rules: &RuleSet) -> String;
}
