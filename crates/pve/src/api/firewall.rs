//! Firewall: options, rules, aliases, ipsets, security groups (all synchronous).
//!
//! Rules are addressed by position, which shifts on every insert (POST always
//! inserts at the top). Callers should re-list after each change and pass the
//! list `digest` so a concurrent edit fails instead of hitting the wrong rule.

use indexmap::IndexMap;
use serde::Deserialize;

use crate::client::{PveClient, seg};
use crate::de;
use crate::error::Error;
use crate::params::Params;

/// Where a firewall object lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FirewallScope {
    /// Datacenter (`/cluster/firewall`).
    Cluster,
    /// A node (`/nodes/{node}/firewall`): options and rules only.
    Node(String),
    /// A VM (`/nodes/{node}/qemu/{vmid}/firewall`).
    Vm {
        /// Node.
        node: String,
        /// VMID.
        vmid: u32,
    },
    /// A security group's rules (`/cluster/firewall/groups/{group}`).
    Group(String),
}

impl FirewallScope {
    fn base(&self) -> String {
        match self {
            Self::Cluster => "/cluster/firewall".into(),
            Self::Node(n) => format!("/nodes/{}/firewall", seg(n)),
            Self::Vm { node, vmid } => format!("/nodes/{}/qemu/{vmid}/firewall", seg(node)),
            Self::Group(g) => format!("/cluster/firewall/groups/{}", seg(g)),
        }
    }

    fn rules_path(&self) -> String {
        match self {
            Self::Group(_) => self.base(),
            _ => format!("{}/rules", self.base()),
        }
    }

    fn options_path(&self) -> Result<String, Error> {
        match self {
            Self::Group(g) => Err(Error::Config(format!(
                "security group '{g}' has no options"
            ))),
            _ => Ok(format!("{}/options", self.base())),
        }
    }

    fn cluster_or_vm(&self, what: &str) -> Result<String, Error> {
        match self {
            Self::Cluster | Self::Vm { .. } => Ok(format!("{}/{what}", self.base())),
            other => Err(Error::Config(format!(
                "firewall {what} exist only at cluster or VM scope, not {other:?}"
            ))),
        }
    }
}

/// Firewall options: key → value as strings, plus the digest.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FirewallOptions {
    /// Config digest.
    pub digest: Option<String>,
    /// `enable`, `policy_in`, `policy_out`, `log_level_in`, …
    pub values: IndexMap<String, String>,
}

impl<'de> Deserialize<'de> for FirewallOptions {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut values = de::string_map(d)?;
        let digest = values.shift_remove("digest");
        Ok(Self { digest, values })
    }
}

impl FirewallOptions {
    /// `enable` as a boolean.
    pub fn enabled(&self) -> Option<bool> {
        self.values
            .get("enable")
            .and_then(|v| de::value_to_bool(&serde_json::Value::String(v.clone())))
    }
}

/// A firewall rule, as listed and as sent.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct FirewallRule {
    /// Position (listing only).
    #[serde(default, deserialize_with = "de::opt_u32")]
    pub pos: Option<u32>,
    /// `in`, `out`, `forward` or `group`.
    #[serde(rename = "type")]
    pub rule_type: String,
    /// `ACCEPT`, `DROP`, `REJECT`, or the group name for `type=group`.
    pub action: String,
    /// Enabled. PVE creates rules *disabled* unless `enable=1` is sent.
    #[serde(default, deserialize_with = "de::opt_bool")]
    pub enable: Option<bool>,
    /// Macro (`SSH`, `HTTPS`, …).
    #[serde(default, rename = "macro")]
    pub macro_name: Option<String>,
    /// Protocol.
    #[serde(default)]
    pub proto: Option<String>,
    /// Destination ports (`22`, `8000:8100`, `80,443`).
    #[serde(default, deserialize_with = "de::opt_string")]
    pub dport: Option<String>,
    /// Source ports.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub sport: Option<String>,
    /// Source (CIDR, range, `+ipset`, alias).
    #[serde(default)]
    pub source: Option<String>,
    /// Destination.
    #[serde(default)]
    pub dest: Option<String>,
    /// Interface (`vmbr0` on hosts, `netN` on VMs).
    #[serde(default)]
    pub iface: Option<String>,
    /// Log level.
    #[serde(default)]
    pub log: Option<String>,
    /// Comment (labwright keeps its stable rule id here).
    #[serde(default)]
    pub comment: Option<String>,
    /// ICMP type.
    #[serde(default, rename = "icmp-type", deserialize_with = "de::opt_string")]
    pub icmp_type: Option<String>,
    /// IP version derived by PVE (listing only).
    #[serde(default, deserialize_with = "de::opt_u32")]
    pub ipversion: Option<u32>,
    /// List digest (listing only).
    #[serde(default)]
    pub digest: Option<String>,
}

impl FirewallRule {
    /// Wire parameters (without `pos`/`digest`, which the call adds).
    pub fn to_params(&self) -> Params {
        Params::new()
            .set("type", self.rule_type.as_str())
            .set("action", self.action.as_str())
            .set_opt("enable", self.enable)
            .set_opt("macro", self.macro_name.as_deref())
            .set_opt("proto", self.proto.as_deref())
            .set_opt("dport", self.dport.as_deref())
            .set_opt("sport", self.sport.as_deref())
            .set_opt("source", self.source.as_deref())
            .set_opt("dest", self.dest.as_deref())
            .set_opt("iface", self.iface.as_deref())
            .set_opt("log", self.log.as_deref())
            .set_opt("comment", self.comment.as_deref())
            .set_opt("icmp-type", self.icmp_type.as_deref())
    }
}

/// An alias (`name → cidr`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct FirewallAlias {
    /// Name.
    pub name: String,
    /// IP or CIDR.
    pub cidr: String,
    /// Comment.
    #[serde(default)]
    pub comment: Option<String>,
    /// Digest.
    #[serde(default)]
    pub digest: Option<String>,
}

/// An IP set.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct IpSet {
    /// Name.
    pub name: String,
    /// Comment.
    #[serde(default)]
    pub comment: Option<String>,
    /// Digest.
    #[serde(default)]
    pub digest: Option<String>,
}

/// An IP set entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct IpSetEntry {
    /// IP, CIDR or alias.
    pub cidr: String,
    /// Comment.
    #[serde(default)]
    pub comment: Option<String>,
    /// Negated entry.
    #[serde(default, deserialize_with = "de::opt_bool")]
    pub nomatch: Option<bool>,
    /// Digest.
    #[serde(default)]
    pub digest: Option<String>,
}

/// A security group.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SecurityGroup {
    /// Name (max 18 characters).
    pub group: String,
    /// Comment.
    #[serde(default)]
    pub comment: Option<String>,
    /// Digest.
    #[serde(default)]
    pub digest: Option<String>,
}

fn unit(r: Result<serde_json::Value, Error>) -> Result<(), Error> {
    r.map(|_| ())
}

impl PveClient {
    // ---- options -------------------------------------------------------------

    /// `GET …/firewall/options`.
    pub async fn firewall_options(&self, scope: &FirewallScope) -> Result<FirewallOptions, Error> {
        self.get(&scope.options_path()?, Params::new()).await
    }

    /// `PUT …/firewall/options`.
    pub async fn firewall_set_options(
        &self,
        scope: &FirewallScope,
        options: Params,
        delete: &[&str],
        digest: Option<&str>,
    ) -> Result<(), Error> {
        let mut p = options.set_opt("digest", digest);
        if !delete.is_empty() {
            p.insert("delete", delete.join(","));
        }
        unit(self.put(&scope.options_path()?, p).await)
    }

    // ---- rules ---------------------------------------------------------------

    /// List rules (`GET …/rules`, or the group's rules).
    pub async fn firewall_rules(&self, scope: &FirewallScope) -> Result<Vec<FirewallRule>, Error> {
        self.get(&scope.rules_path(), Params::new()).await
    }

    /// Create a rule. PVE inserts new rules at the top (position 0); behaviour.md
    /// reports `pos` as ignored on create, so to place a rule create it and then
    /// [`PveClient::firewall_rule_move`] it. Send `enable: Some(true)`: PVE creates
    /// rules disabled otherwise.
    pub async fn firewall_rule_create(
        &self,
        scope: &FirewallScope,
        rule: &FirewallRule,
        pos: Option<u32>,
        digest: Option<&str>,
    ) -> Result<(), Error> {
        let p = rule
            .to_params()
            .set_opt("pos", pos)
            .set_opt("digest", digest);
        unit(self.post(&scope.rules_path(), p).await)
    }

    /// Update the rule at `pos`; `delete` clears fields.
    pub async fn firewall_rule_update(
        &self,
        scope: &FirewallScope,
        pos: u32,
        rule: &FirewallRule,
        delete: &[&str],
        digest: Option<&str>,
    ) -> Result<(), Error> {
        let mut p = rule.to_params().set_opt("digest", digest);
        if !delete.is_empty() {
            p.insert("delete", delete.join(","));
        }
        unit(self.put(&format!("{}/{pos}", scope.rules_path()), p).await)
    }

    /// Move the rule at `pos` to `moveto` (other fields are ignored by PVE).
    pub async fn firewall_rule_move(
        &self,
        scope: &FirewallScope,
        pos: u32,
        moveto: u32,
        digest: Option<&str>,
    ) -> Result<(), Error> {
        let p = Params::new()
            .set("moveto", moveto)
            .set_opt("digest", digest);
        unit(self.put(&format!("{}/{pos}", scope.rules_path()), p).await)
    }

    /// Delete the rule at `pos`.
    pub async fn firewall_rule_delete(
        &self,
        scope: &FirewallScope,
        pos: u32,
        digest: Option<&str>,
    ) -> Result<(), Error> {
        unit(
            self.delete(
                &format!("{}/{pos}", scope.rules_path()),
                Params::new().set_opt("digest", digest),
            )
            .await,
        )
    }

    // ---- aliases -------------------------------------------------------------

    /// `GET …/aliases` (cluster or VM).
    pub async fn firewall_aliases(
        &self,
        scope: &FirewallScope,
    ) -> Result<Vec<FirewallAlias>, Error> {
        self.get(&scope.cluster_or_vm("aliases")?, Params::new())
            .await
    }

    /// `POST …/aliases`.
    pub async fn firewall_alias_create(
        &self,
        scope: &FirewallScope,
        name: &str,
        cidr: &str,
        comment: Option<&str>,
    ) -> Result<(), Error> {
        let p = Params::new()
            .set("name", name)
            .set("cidr", cidr)
            .set_opt("comment", comment);
        unit(self.post(&scope.cluster_or_vm("aliases")?, p).await)
    }

    /// `PUT …/aliases/{name}`; `rename` renames it.
    pub async fn firewall_alias_update(
        &self,
        scope: &FirewallScope,
        name: &str,
        cidr: &str,
        comment: Option<&str>,
        rename: Option<&str>,
        digest: Option<&str>,
    ) -> Result<(), Error> {
        let p = Params::new()
            .set("cidr", cidr)
            .set_opt("comment", comment)
            .set_opt("rename", rename)
            .set_opt("digest", digest);
        let path = format!("{}/{}", scope.cluster_or_vm("aliases")?, seg(name));
        unit(self.put(&path, p).await)
    }

    /// `DELETE …/aliases/{name}`.
    pub async fn firewall_alias_delete(
        &self,
        scope: &FirewallScope,
        name: &str,
        digest: Option<&str>,
    ) -> Result<(), Error> {
        let path = format!("{}/{}", scope.cluster_or_vm("aliases")?, seg(name));
        unit(
            self.delete(&path, Params::new().set_opt("digest", digest))
                .await,
        )
    }

    // ---- ipsets --------------------------------------------------------------

    /// `GET …/ipset` (cluster or VM).
    pub async fn firewall_ipsets(&self, scope: &FirewallScope) -> Result<Vec<IpSet>, Error> {
        self.get(&scope.cluster_or_vm("ipset")?, Params::new())
            .await
    }

    /// `POST …/ipset`.
    pub async fn firewall_ipset_create(
        &self,
        scope: &FirewallScope,
        name: &str,
        comment: Option<&str>,
    ) -> Result<(), Error> {
        let p = Params::new().set("name", name).set_opt("comment", comment);
        unit(self.post(&scope.cluster_or_vm("ipset")?, p).await)
    }

    /// `DELETE …/ipset/{name}`; `force` deletes a non-empty set.
    pub async fn firewall_ipset_delete(
        &self,
        scope: &FirewallScope,
        name: &str,
        force: bool,
    ) -> Result<(), Error> {
        let mut p = Params::new();
        if force {
            p.insert("force", true);
        }
        let path = format!("{}/{}", scope.cluster_or_vm("ipset")?, seg(name));
        unit(self.delete(&path, p).await)
    }

    /// `GET …/ipset/{name}`: the entries.
    pub async fn firewall_ipset_entries(
        &self,
        scope: &FirewallScope,
        name: &str,
    ) -> Result<Vec<IpSetEntry>, Error> {
        let path = format!("{}/{}", scope.cluster_or_vm("ipset")?, seg(name));
        self.get(&path, Params::new()).await
    }

    /// `POST …/ipset/{name}`: add an entry.
    pub async fn firewall_ipset_add(
        &self,
        scope: &FirewallScope,
        name: &str,
        cidr: &str,
        comment: Option<&str>,
        nomatch: bool,
    ) -> Result<(), Error> {
        let mut p = Params::new().set("cidr", cidr).set_opt("comment", comment);
        if nomatch {
            p.insert("nomatch", true);
        }
        let path = format!("{}/{}", scope.cluster_or_vm("ipset")?, seg(name));
        unit(self.post(&path, p).await)
    }

    /// `PUT …/ipset/{name}/{cidr}`: update an entry's comment/nomatch.
    pub async fn firewall_ipset_update(
        &self,
        scope: &FirewallScope,
        name: &str,
        cidr: &str,
        comment: Option<&str>,
        nomatch: Option<bool>,
        digest: Option<&str>,
    ) -> Result<(), Error> {
        let p = Params::new()
            .set_opt("comment", comment)
            .set_opt("nomatch", nomatch)
            .set_opt("digest", digest);
        let path = format!(
            "{}/{}/{}",
            scope.cluster_or_vm("ipset")?,
            seg(name),
            seg(cidr)
        );
        unit(self.put(&path, p).await)
    }

    /// `DELETE …/ipset/{name}/{cidr}`.
    pub async fn firewall_ipset_remove(
        &self,
        scope: &FirewallScope,
        name: &str,
        cidr: &str,
        digest: Option<&str>,
    ) -> Result<(), Error> {
        let path = format!(
            "{}/{}/{}",
            scope.cluster_or_vm("ipset")?,
            seg(name),
            seg(cidr)
        );
        unit(
            self.delete(&path, Params::new().set_opt("digest", digest))
                .await,
        )
    }

    // ---- security groups -----------------------------------------------------

    /// `GET /cluster/firewall/groups`.
    pub async fn firewall_groups(&self) -> Result<Vec<SecurityGroup>, Error> {
        self.get("/cluster/firewall/groups", Params::new()).await
    }

    /// `POST /cluster/firewall/groups`.
    pub async fn firewall_group_create(
        &self,
        group: &str,
        comment: Option<&str>,
    ) -> Result<(), Error> {
        let p = Params::new()
            .set("group", group)
            .set_opt("comment", comment);
        unit(self.post("/cluster/firewall/groups", p).await)
    }

    /// `DELETE /cluster/firewall/groups/{group}` (must be empty and unused).
    pub async fn firewall_group_delete(&self, group: &str) -> Result<(), Error> {
        unit(
            self.delete(
                &format!("/cluster/firewall/groups/{}", seg(group)),
                Params::new(),
            )
            .await,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_paths() {
        let vm = FirewallScope::Vm {
            node: "pve".into(),
            vmid: 100,
        };
        assert_eq!(vm.rules_path(), "/nodes/pve/qemu/100/firewall/rules");
        assert_eq!(
            FirewallScope::Group("web".into()).rules_path(),
            "/cluster/firewall/groups/web"
        );
        assert!(
            FirewallScope::Node("pve".into())
                .cluster_or_vm("ipset")
                .is_err()
        );
        assert!(FirewallScope::Group("g".into()).options_path().is_err());
    }

    #[test]
    fn rule_roundtrip_params() {
        let r: FirewallRule = serde_json::from_value(serde_json::json!({
            "pos": 0, "type": "in", "action": "ACCEPT", "enable": 1, "macro": "SSH",
            "source": "192.168.1.0/24", "dport": 22, "comment": "lw:mgmt-ssh", "digest": "abc"
        }))
        .expect("decodes");
        assert_eq!(r.enable, Some(true));
        assert_eq!(r.dport.as_deref(), Some("22"));
        let p = r.to_params();
        assert_eq!(p.get("enable"), Some("1"));
        assert_eq!(p.get("macro"), Some("SSH"));
        assert_eq!(p.get("pos"), None);
    }
}
