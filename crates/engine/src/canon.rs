//! Canonical forms of observed config values, so that a value PVE prints differently
//! from how labwright wrote it (tag order, `machine: pc-q35-9.2`, `agent:
//! enabled=1,fstrim_cloned_disks=0`, MAC addresses in `net0`) compares equal, and a
//! second plan after apply is empty.

use labwright_pve::vmconfig::{AgentConfig, NetDevice};

/// The YAML spelling of an enum value (`virtio`, `zstd`).
pub fn enum_name<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

/// PVE's booleans are `0`/`1` in configs and parameters.
pub fn b01(v: bool) -> String {
    if v { "1".into() } else { "0".into() }
}

/// Estimated restart time of a guest (shutdown + boot), for downtime figures.
pub const REBOOT_SECONDS: u32 = 60;

/// Canonical tag list: lowercase, sorted, deduplicated, `;`-joined (PVE's order is
/// whatever the UI last wrote; comparing sorted sets avoids perpetual diffs).
pub fn canonical_tags<'a>(tags: impl IntoIterator<Item = &'a str>) -> String {
    let mut v: Vec<String> = tags
        .into_iter()
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect();
    v.sort();
    v.dedup();
    v.join(";")
}

/// Splits a PVE tag string (`a;b`, `a,b` or `a b`).
pub fn split_tags(s: &str) -> impl Iterator<Item = &str> {
    s.split([';', ',', ' ']).filter(|t| !t.is_empty())
}

fn bool01(v: &str) -> String {
    match v.trim() {
        "1" | "on" | "yes" | "true" => "1".into(),
        _ => "0".into(),
    }
}

/// PVE's value when a key is absent from the config.
pub fn pve_default(key: &str) -> Option<&'static str> {
    Some(match key {
        "sockets" => "1",
        "cores" => "1",
        "memory" => "512",
        "cpu" => "x86-64-v2-AES",
        "bios" => "seabios",
        "machine" => "pc",
        "scsihw" => "lsi",
        "ostype" => "other",
        "agent" | "onboot" | "protection" => "0",
        "description" | "startup" | "tags" => "",
        _ => return None,
    })
}

/// The canonical form of an observed value of `key`, for comparison with the desired
/// value. `desired` guides forms that depend on what was asked (a MAC is compared
/// only when the spec fixes one).
pub fn observed_value(key: &str, raw: Option<&str>, desired: &str) -> String {
    let Some(raw) = raw else {
        return pve_default(key).unwrap_or_default().to_string();
    };
    match key {
        "agent" => match AgentConfig::parse(raw) {
            Ok(a) => bool01(if a.enabled { "1" } else { "0" }),
            Err(_) => raw.to_string(),
        },
        "onboot" | "protection" => bool01(raw),
        "tags" => canonical_tags(split_tags(raw)),
        "machine" => {
            if raw.contains("q35") {
                "q35".into()
            } else {
                "pc".into()
            }
        }
        // labwright's `labwright-seed:` line is its own record, not drift (issue 5).
        "description" => crate::bootstrap::strip_seed_marker(raw).trim().to_string(),
        k if k.starts_with("hostpci") => crate::pci::canonical_hostpci(raw),
        k if k.starts_with("net") => match NetDevice::parse(raw) {
            Ok(n) => {
                let want_mac = desired
                    .split(',')
                    .next()
                    .is_some_and(|first| first.contains('='));
                let mut s = match (&n.macaddr, want_mac) {
                    (Some(mac), true) => format!("{}={}", n.model, mac.to_ascii_uppercase()),
                    _ => n.model.clone(),
                };
                s.push_str(&format!(",bridge={}", n.bridge.clone().unwrap_or_default()));
                s.push_str(&format!(
                    ",firewall={}",
                    bool01(if n.firewall == Some(true) { "1" } else { "0" })
                ));
                s
            }
            Err(_) => raw.to_string(),
        },
        _ => raw.trim().to_string(),
    }
}

/// How a config key change takes effect on a running VM (PVE's default hotplug set is
/// `network,disk,usb`): that is where a plan's downtime comes from.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Effect {
    /// Applied live, no downtime.
    Hotplug,
    /// Written as pending; applied at the next restart.
    NeedsReboot,
    /// Cannot be changed in place (the VM would have to be rebuilt).
    Recreate,
    /// Would lose data (disk shrink, disk removal, storage move).
    DataDestructive,
}

/// The effect of changing `key` on a running VM.
pub fn classify(key: &str) -> Effect {
    match key {
        "name" | "description" | "tags" | "onboot" | "protection" | "startup" => Effect::Hotplug,
        k if k.starts_with("net") => Effect::Hotplug,
        "cores" | "sockets" | "memory" | "cpu" | "bios" | "machine" | "scsihw" | "ostype"
        | "agent" => Effect::NeedsReboot,
        "vmid" => Effect::Recreate,
        _ => Effect::NeedsReboot,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_compare_as_sets() {
        assert_eq!(
            observed_value("tags", Some("tier-lan;env-lab;lw-managed"), ""),
            "env-lab;lw-managed;tier-lan"
        );
        assert_eq!(observed_value("tags", Some("B,a"), ""), "a;b");
    }

    #[test]
    fn net_ignores_generated_mac_unless_asked() {
        let raw = "virtio=BC:24:11:AA:BB:CC,bridge=vmbr0,firewall=1";
        assert_eq!(
            observed_value("net0", Some(raw), "virtio,bridge=vmbr0,firewall=1"),
            "virtio,bridge=vmbr0,firewall=1"
        );
        assert_eq!(
            observed_value(
                "net0",
                Some(raw),
                "virtio=BC:24:11:AA:BB:CC,bridge=vmbr0,firewall=1"
            ),
            "virtio=BC:24:11:AA:BB:CC,bridge=vmbr0,firewall=1"
        );
        assert_eq!(
            observed_value(
                "net0",
                Some("virtio=BC:24:11:AA:BB:CC,bridge=vmbr0"),
                "virtio,bridge=vmbr0,firewall=0"
            ),
            "virtio,bridge=vmbr0,firewall=0"
        );
    }

    #[test]
    fn defaults_fill_absent_keys() {
        assert_eq!(observed_value("onboot", None, "0"), "0");
        assert_eq!(
            observed_value("machine", Some("pc-q35-9.2+pve1"), "q35"),
            "q35"
        );
        assert_eq!(
            observed_value("agent", Some("enabled=1,fstrim_cloned_disks=1"), "1"),
            "1"
        );
        assert_eq!(observed_value("agent", Some("0"), "1"), "0");
    }

    #[test]
    fn classification() {
        assert_eq!(classify("memory"), Effect::NeedsReboot);
        assert_eq!(classify("net1"), Effect::Hotplug);
        assert_eq!(classify("tags"), Effect::Hotplug);
    }
}
