//! Rendering the three NoCloud documents of a VM from the spec.
//!
//! The user-data is a `#cloud-config` document that only uses the modules `users`,
//! `apt` (sources), `packages`, `write_files` and `runcmd`, so that the simulator can
//! apply it and a reviewer can read it. Every `runcmd` entry is one shell line (every
//! value in it is validated to hold no shell syntax) and is idempotent, because a
//! re-seed (a new instance-id) runs all of them again on a machine that is already set
//! up. The lines are, in this order and in exactly these forms:
//!
//! | command | when |
//! |---|---|
//! | `systemctl enable --now qemu-guest-agent` | always |
//! | `sysctl -p /etc/sysctl.d/99-labwright-forwarding.conf` | Tailscale advertises routes |
//! | `systemctl enable --now tailscaled` | Tailscale |
//! | `if tailscale status >/dev/null 2>&1; then tailscale set --hostname=H --advertise-routes=R --accept-routes=B; else tailscale up --authkey=file:/run/labwright/tailscale-authkey --hostname=H [--advertise-routes=R] [--accept-routes]; fi; rm -f /run/labwright/tailscale-authkey` | Tailscale |
//! | `systemctl enable --now docker` | Docker |
//! | `usermod -aG docker USER` | Docker, per user |
//! | `install -d -m 0755 -o USER -g GROUP DIR…` | `/opt/naas` layout |
//!
//! cloud-init joins all `runcmd` lines into one script, so no line may `exit`: it
//! would skip the lines after it. A failed step shows in the cloud-init log and, more
//! to the point, in `validate`, which checks the result inside the guest.
//!
//! The Tailscale join runs `tailscale up` only when `tailscale status` says the node is
//! not logged in, and `tailscale set` otherwise, so a re-seed never re-authenticates.
//! The auth key is not on the command line: `write_files` puts it in a root-only file
//! under `/run` (tmpfs) and `tailscale up --authkey=file:PATH` reads it; the join
//! removes the file whether or not it succeeded.

use std::collections::BTreeMap;
use std::fmt;

use labwright_spec::Spec;
use labwright_spec::model::{OsSource, Vm};
use labwright_spec::types::{Cidr, SecretRef};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use labwright_spec::model::NaasLayout;

use crate::Error;
use crate::secret::{SecretResolver, SecretValue, check_token};

/// Where the auth key is written in the guest: tmpfs, root-only, removed after the join.
pub const AUTHKEY_PATH: &str = "/run/labwright/tailscale-authkey";
/// The sysctl drop-in that turns on IP forwarding for a subnet router.
pub const FORWARDING_SYSCTL_PATH: &str = "/etc/sysctl.d/99-labwright-forwarding.conf";
/// ds-identify's policy file: with `notfound=disabled` a boot without a seed attached
/// leaves the guest as it is.
pub const DS_IDENTIFY_PATH: &str = "/etc/cloud/ds-identify.cfg";
/// Restricts the datasources searched to local media (no metadata-URL timeouts).
pub const DATASOURCE_CFG_PATH: &str = "/etc/cloud/cloud.cfg.d/90-labwright-datasource.cfg";
/// Every Tailscale join line starts with this guard.
pub const TAILSCALE_JOIN_PREFIX: &str = "if tailscale status >/dev/null 2>&1; then tailscale set";

/// Tailscale's package signing key (pkgs.tailscale.com), fetched by cloud-init from the
/// keyserver and pinned by fingerprint, so a tampered repository is refused by apt.
pub const TAILSCALE_KEY_FINGERPRINT: &str = "2596A99EAAB33821893C0A79458CA832957F5868";
/// Docker's release signing key (download.docker.com), pinned the same way.
pub const DOCKER_KEY_FINGERPRINT: &str = "9DC858229FC7DD38854AE2D88D81803C0EBFCD88";
/// The keyserver cloud-init asks for the two keys above (cloud-init's own default).
pub const KEYSERVER: &str = "keyserver.ubuntu.com";

/// The Docker Engine packages, as Docker's Debian install guide lists them.
pub const DOCKER_PACKAGES: [&str; 3] = ["docker-ce", "docker-ce-cli", "containerd.io"];
pub const COMPOSE_PACKAGE: &str = "docker-compose-plugin";

/// What the engine knows beyond the spec. MAC addresses are assigned by PVE when a
/// NIC is created without one, so the engine passes what it observed on the node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeedOptions {
    /// NIC slot (`net0`) → MAC address as PVE reports it.
    pub nic_macs: BTreeMap<String, String>,
}

/// Text that contains a secret (the real user-data). `Debug` shows only its length and
/// there is no `Display`: reading it takes an explicit [`SensitiveText::expose`].
pub struct SensitiveText(String);

impl SensitiveText {
    /// The text with the secret in it; only for the seed ISO.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SensitiveText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SensitiveText(<{} bytes, contains secrets>)",
            self.0.len()
        )
    }
}

/// Everything about a VM's seed that is safe to show: plans, dry-runs, logs. It needs
/// no secret, so `plan` works without `TAILSCALE_AUTHKEY` set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedPlan {
    pub vmid: u32,
    pub vm_name: String,
    /// `lw-<vmid>-<16 hex>`: a hash of the VM name, the redacted user-data and the
    /// network intent. A changed bootstrap changes it, and cloud-init then runs again.
    pub instance_id: String,
    /// The user-data with the auth key replaced by `<redacted:env:NAME>`.
    pub user_data_redacted: String,
    pub meta_data: String,
    /// The network-config with the MACs known so far (from the spec or
    /// [`SeedOptions::nic_macs`]); the others are shown as placeholders.
    pub network_config: String,
    /// The secret the real user-data needs, if any (shown as the reference).
    pub auth_key: Option<SecretRef>,
    /// File name of the seed on the node's ISO storage: `lw-seed-<vmid>-<hash8>.iso`,
    /// with the same hash as the instance-id, so plan can name it without secrets.
    pub volume_file: String,
}

impl SeedPlan {
    /// The PVE volume id on `storage` (`local:iso/lw-seed-100-0123abcd.iso`).
    pub fn volume_id(&self, storage: &str) -> String {
        format!("{storage}:iso/{}", self.volume_file)
    }
}

/// A VM's seed with the secret resolved: what goes into the ISO. `Debug` is safe.
#[derive(Debug)]
pub struct Seed {
    pub plan: SeedPlan,
    /// The real user-data (with the auth key).
    pub user_data: SensitiveText,
    /// The network-config with every MAC known.
    pub network_config: String,
}

impl Seed {
    /// Builds the seed ISO (same as [`crate::build_iso`]).
    pub fn iso(&self) -> Result<crate::SeedIso, Error> {
        crate::build_iso(self)
    }
}

/// True when this VM gets a NoCloud seed: it has a `bootstrap` block and boots a cloud
/// image. HAOS and installer ISOs do not run cloud-init.
pub fn needs_seed(vm: &Vm) -> bool {
    vm.bootstrap.is_some() && matches!(vm.os, Some(OsSource::CloudImage(_)))
}

/// The seed as a plan shows it: no secret is read.
pub fn plan_seed(spec: &Spec, vm: &Vm, opts: &SeedOptions) -> Result<SeedPlan, Error> {
    let model = Model::build(spec, vm)?;
    model.plan(opts)
}

/// The seed with the auth key resolved, ready for [`crate::build_iso`].
pub fn render_seed(
    spec: &Spec,
    vm: &Vm,
    opts: &SeedOptions,
    secrets: &dyn SecretResolver,
) -> Result<Seed, Error> {
    let model = Model::build(spec, vm)?;
    let plan = model.plan(opts)?;
    let network_config = model.network_config(opts, MacPolicy::Require)?;
    let user_data = match &model.tailscale {
        None => plan.user_data_redacted.clone(),
        Some(ts) => {
            let key = secrets
                .resolve(&ts.auth_key)
                .and_then(|k| check_token(&k).map(|()| k))
                .map_err(|source| Error::Secret {
                    vm: model.name.clone(),
                    source,
                })?;
            model.user_data(Some(&key))?
        }
    };
    Ok(Seed {
        plan,
        user_data: SensitiveText(user_data),
        network_config,
    })
}

/// A VM's bootstrap, checked and with names resolved, before any text is rendered.
struct Model {
    vmid: u32,
    name: String,
    hostname: String,
    user: Option<User>,
    packages: Vec<String>,
    tailscale: Option<TsModel>,
    docker: Option<DockerModel>,
    naas: Option<NaasModel>,
    nics: Vec<NicModel>,
}

struct User {
    name: String,
    ssh_keys: Vec<String>,
}

struct TsModel {
    auth_key: SecretRef,
    hostname: String,
    routes: Vec<Cidr>,
    accept_routes: bool,
}

struct DockerModel {
    compose: bool,
    users: Vec<String>,
}

struct NaasModel {
    owner_user: String,
    owner_group: String,
    dirs: Vec<String>,
}

struct NicModel {
    slot: String,
    mac: Option<String>,
    address: Option<Cidr>,
    gateway: Option<std::net::IpAddr>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum MacPolicy {
    /// Plans: an unknown MAC is shown as a placeholder.
    Placeholder,
    /// The ISO: every MAC must be known.
    Require,
}

impl Model {
    fn build(spec: &Spec, vm: &Vm) -> Result<Model, Error> {
        let name = vm.name.clone();
        let invalid = |what: &str, value: &str, why: &str| Error::Invalid {
            vm: name.clone(),
            what: what.to_string(),
            value: value.to_string(),
            why: why.to_string(),
        };
        let Some(bootstrap) = &vm.bootstrap else {
            return Err(Error::NoBootstrap { vm: name });
        };
        match &vm.os {
            Some(OsSource::CloudImage(_)) => {}
            other => {
                let os = match other {
                    Some(OsSource::HaosImage(_)) => "haosImage",
                    Some(OsSource::Iso(_)) => "iso",
                    Some(OsSource::OpnsenseImage(_)) => "opnsenseImage",
                    _ => "no os",
                };
                return Err(Error::NotCloudImage {
                    vm: name,
                    os: os.to_string(),
                });
            }
        }
        check_hostname(&vm.name).map_err(|why| invalid("VM name (hostname)", &vm.name, why))?;

        let user = match &bootstrap.user {
            None => None,
            Some(u) => {
                check_user(&u.name).map_err(|why| invalid("user name", &u.name, why))?;
                for k in &u.ssh_authorized_keys {
                    if k.trim().is_empty() || k.contains(['\n', '\r']) {
                        return Err(invalid(
                            "SSH key",
                            k.lines().next().unwrap_or(""),
                            "must be one non-empty line",
                        ));
                    }
                }
                Some(User {
                    name: u.name.clone(),
                    ssh_keys: u.ssh_authorized_keys.clone(),
                })
            }
        };

        let mut packages = Vec::new();
        for p in &bootstrap.packages {
            check_package(p).map_err(|why| invalid("package", p, why))?;
            if !packages.contains(p) {
                packages.push(p.clone());
            }
        }

        let tailscale = match &bootstrap.tailscale {
            None => None,
            Some(ts) => {
                let auth_key = ts
                    .auth_key
                    .clone()
                    .or_else(|| spec.tailscale.as_ref().and_then(|t| t.auth_key.clone()))
                    .ok_or_else(|| Error::NoAuthKey { vm: name.clone() })?;
                if auth_key.is_inline() {
                    return Err(Error::Secret {
                        vm: name.clone(),
                        source: crate::SecretError::Inline,
                    });
                }
                let hostname = ts.hostname.clone().unwrap_or_else(|| vm.name.clone());
                check_hostname(&hostname)
                    .map_err(|why| invalid("Tailscale hostname", &hostname, why))?;
                // Routes come from the VM's own list and from the tailnet-wide
                // `subnetRoutes` that name this VM (for the current phase): both say
                // the same thing and a spec may use either.
                let mut wanted: Vec<&str> =
                    ts.advertise_routes.iter().map(String::as_str).collect();
                if let Some(t) = &spec.tailscale {
                    for r in &t.subnet_routes {
                        if r.via == vm.name && r.phase <= spec.phase {
                            wanted.push(&r.route);
                        }
                    }
                }
                let mut routes = Vec::new();
                for r in wanted {
                    let cidr = resolve_route(spec, &vm.name, r)?;
                    if !routes.contains(&cidr) {
                        routes.push(cidr);
                    }
                }
                routes.sort();
                Some(TsModel {
                    auth_key,
                    hostname,
                    routes,
                    accept_routes: ts.accept_routes,
                })
            }
        };

        let docker = match &bootstrap.docker {
            None => None,
            Some(d) => {
                let mut users = Vec::new();
                for u in &d.users {
                    check_user(u).map_err(|why| invalid("docker user", u, why))?;
                    if !users.contains(u) {
                        users.push(u.clone());
                    }
                }
                Some(DockerModel {
                    compose: d.compose,
                    users,
                })
            }
        };

        let naas = match &bootstrap.naas {
            None => None,
            Some(n) => {
                let root = n.root.trim_end_matches('/');
                check_abs_path(root).map_err(|why| invalid("naas root", &n.root, why))?;
                let owner = n
                    .owner
                    .clone()
                    .or_else(|| user.as_ref().map(|u| format!("{0}:{0}", u.name)))
                    .unwrap_or_else(|| "root:root".to_string());
                let (ou, og) = match owner.split_once(':') {
                    Some((u, g)) => (u.to_string(), g.to_string()),
                    None => (owner.clone(), owner.clone()),
                };
                check_user(&ou).map_err(|why| invalid("naas owner", &owner, why))?;
                check_user(&og).map_err(|why| invalid("naas owner group", &owner, why))?;
                for s in &n.stacks {
                    check_stack(s).map_err(|why| invalid("stack name", s, why))?;
                }
                Some(NaasModel {
                    owner_user: ou,
                    owner_group: og,
                    dirs: naas_dirs(n),
                })
            }
        };

        let mut nics = Vec::new();
        for (slot, nic) in &vm.nics {
            let mac = match &nic.mac_address {
                Some(m) => Some(check_mac(m).map_err(|why| invalid("MAC address", m, why))?),
                None => None,
            };
            if nic.gateway.is_some() && nic.address.is_none() {
                return Err(invalid(
                    "gateway",
                    slot,
                    "a gateway needs a static `address` on the same NIC (DHCP brings its own)",
                ));
            }
            nics.push(NicModel {
                slot: slot.clone(),
                mac,
                address: nic.address,
                gateway: nic.gateway,
            });
        }

        Ok(Model {
            vmid: vm.vmid,
            name: vm.name.clone(),
            hostname: vm.name.clone(),
            user,
            packages,
            tailscale,
            docker,
            naas,
            nics,
        })
    }

    fn plan(&self, opts: &SeedOptions) -> Result<SeedPlan, Error> {
        let user_data_redacted = self.user_data(None)?;
        // The hash covers what the spec fixes, not the MACs PVE assigns later: the
        // instance-id (and so the seed's name) is the same in plan and in apply.
        let network_intent =
            self.network_config(&SeedOptions::default(), MacPolicy::Placeholder)?;
        let mut h = Sha256::new();
        h.update(b"labwright-nocloud-v1\0");
        h.update(self.name.as_bytes());
        h.update(b"\0");
        h.update(user_data_redacted.as_bytes());
        h.update(b"\0");
        h.update(network_intent.as_bytes());
        let digest = hex::encode(h.finalize());
        let instance_id = format!("lw-{}-{}", self.vmid, &digest[..16]);
        let meta_data = to_yaml(
            &json!({
                "instance-id": instance_id,
                "local-hostname": self.hostname,
            }),
            "meta-data",
        )?;
        Ok(SeedPlan {
            vmid: self.vmid,
            vm_name: self.name.clone(),
            volume_file: format!("lw-seed-{}-{}.iso", self.vmid, &digest[..8]),
            instance_id,
            user_data_redacted,
            meta_data,
            network_config: self.network_config(opts, MacPolicy::Placeholder)?,
            auth_key: self.tailscale.as_ref().map(|t| t.auth_key.clone()),
        })
    }

    /// The `#cloud-config` document; with `key: None` the auth key is redacted.
    fn user_data(&self, key: Option<&SecretValue>) -> Result<String, Error> {
        let mut doc = Map::new();
        doc.insert("hostname".into(), json!(self.hostname));
        doc.insert("preserve_hostname".into(), json!(false));
        doc.insert("manage_etc_hosts".into(), json!(true));
        match &self.user {
            None => {
                doc.insert("users".into(), json!(["default"]));
            }
            Some(u) => {
                let mut entry = Map::new();
                entry.insert("name".into(), json!(u.name));
                entry.insert("shell".into(), json!("/bin/bash"));
                entry.insert("groups".into(), json!(["sudo"]));
                entry.insert("sudo".into(), json!("ALL=(ALL) NOPASSWD:ALL"));
                entry.insert("lock_passwd".into(), json!(true));
                if !u.ssh_keys.is_empty() {
                    entry.insert("ssh_authorized_keys".into(), json!(u.ssh_keys));
                }
                doc.insert("users".into(), json!([Value::Object(entry)]));
            }
        }
        doc.insert("ssh_pwauth".into(), json!(false));
        doc.insert("disable_root".into(), json!(true));

        let mut sources = Map::new();
        if self.tailscale.is_some() {
            sources.insert(
                "tailscale.list".into(),
                json!({
                    "source": "deb [signed-by=$KEY_FILE] https://pkgs.tailscale.com/stable/debian $RELEASE main",
                    "keyid": TAILSCALE_KEY_FINGERPRINT,
                    "keyserver": KEYSERVER,
                }),
            );
        }
        if self.docker.is_some() {
            sources.insert(
                "docker.list".into(),
                json!({
                    "source": "deb [signed-by=$KEY_FILE] https://download.docker.com/linux/debian $RELEASE stable",
                    "keyid": DOCKER_KEY_FINGERPRINT,
                    "keyserver": KEYSERVER,
                }),
            );
        }
        if !sources.is_empty() {
            doc.insert("apt".into(), json!({ "sources": Value::Object(sources) }));
        }

        // curl: `validate` probes the LAN from here (Home Assistant's 8123, the spec's
        // HTTP checks); Debian's cloud images usually carry it, this makes sure.
        let mut packages = vec!["qemu-guest-agent".to_string(), "curl".to_string()];
        if self.tailscale.is_some() {
            packages.push("tailscale".into());
        }
        if let Some(d) = &self.docker {
            packages.extend(DOCKER_PACKAGES.iter().map(|p| p.to_string()));
            if d.compose {
                packages.push(COMPOSE_PACKAGE.into());
            }
        }
        for p in &self.packages {
            if !packages.contains(p) {
                packages.push(p.clone());
            }
        }
        doc.insert("package_update".into(), json!(true));
        doc.insert("package_upgrade".into(), json!(false));
        doc.insert("packages".into(), json!(packages));

        // Detaching the seed after validation must not make the next boot a "new
        // instance": without a datasource cloud-init would fall back to DataSourceNone,
        // regenerate SSH host keys and replace the network config with DHCP. With a
        // searched list (two entries, so ds-identify really looks) and
        // `notfound=disabled`, a boot without a seed runs no cloud-init at all, and a
        // boot with a new seed (a re-seed) runs it again.
        let mut files = vec![
            json!({
                "path": DS_IDENTIFY_PATH,
                "owner": "root:root",
                "permissions": "0644",
                "content": "# labwright: no seed attached means cloud-init stays off\npolicy: search,found=all,maybe=none,notfound=disabled\n",
            }),
            json!({
                "path": DATASOURCE_CFG_PATH,
                "owner": "root:root",
                "permissions": "0644",
                "content": "# labwright: seeds come from a cidata ISO\ndatasource_list: [NoCloud, ConfigDrive]\n",
            }),
        ];
        let mut runcmd: Vec<String> = vec!["systemctl enable --now qemu-guest-agent".into()];
        if let Some(ts) = &self.tailscale {
            if !ts.routes.is_empty() {
                files.push(json!({
                    "path": FORWARDING_SYSCTL_PATH,
                    "owner": "root:root",
                    "permissions": "0644",
                    "content": "# labwright: this VM is a Tailscale subnet router\nnet.ipv4.ip_forward = 1\nnet.ipv6.conf.all.forwarding = 1\n",
                }));
                runcmd.push(format!("sysctl -p {FORWARDING_SYSCTL_PATH}"));
            }
            let key_text = match key {
                Some(k) => k.expose().to_string(),
                None => format!("<redacted:{}>", ts.auth_key),
            };
            files.push(json!({
                "path": AUTHKEY_PATH,
                "owner": "root:root",
                "permissions": "0600",
                "content": key_text,
            }));
            runcmd.push("systemctl enable --now tailscaled".into());
            runcmd.push(ts.join_command());
        }
        if let Some(d) = &self.docker {
            runcmd.push("systemctl enable --now docker".into());
            for u in &d.users {
                runcmd.push(format!("usermod -aG docker {u}"));
            }
        }
        if let Some(n) = &self.naas {
            runcmd.push(format!(
                "install -d -m 0755 -o {} -g {} {}",
                n.owner_user,
                n.owner_group,
                n.dirs.join(" ")
            ));
        }
        doc.insert("write_files".into(), json!(files));
        doc.insert("runcmd".into(), json!(runcmd));

        let body = to_yaml(&Value::Object(doc), "user-data")?;
        Ok(format!(
            "#cloud-config\n# labwright NoCloud seed for VM {} ({}). Generated from the spec; edits are overwritten.\n{body}",
            self.vmid, self.name
        ))
    }

    /// Netplan-style v2 network config. NICs are matched by MAC (cloud-init renames
    /// them to their PVE slot name, so `net0` in PVE is `net0` in the guest); DHCP
    /// unless the spec gives an address.
    fn network_config(&self, opts: &SeedOptions, macs: MacPolicy) -> Result<String, Error> {
        let mut ethernets = Map::new();
        for nic in &self.nics {
            let mac = match (&nic.mac, opts.nic_macs.get(&nic.slot)) {
                (Some(m), _) => m.clone(),
                (None, Some(m)) => check_mac(m).map_err(|why| Error::Invalid {
                    vm: self.name.clone(),
                    what: format!("observed MAC of {}", nic.slot),
                    value: m.clone(),
                    why: why.to_string(),
                })?,
                (None, None) if macs == MacPolicy::Placeholder => {
                    format!("<mac of {}, assigned by PVE>", nic.slot)
                }
                (None, None) => {
                    return Err(Error::MacUnknown {
                        vm: self.name.clone(),
                        slot: nic.slot.clone(),
                    });
                }
            };
            let mut e = Map::new();
            e.insert("match".into(), json!({ "macaddress": mac }));
            e.insert("set-name".into(), json!(nic.slot));
            match nic.address {
                None => {
                    e.insert("dhcp4".into(), json!(true));
                }
                Some(addr) => {
                    e.insert("dhcp4".into(), json!(false));
                    e.insert("addresses".into(), json!([addr.to_string()]));
                    if let Some(gw) = nic.gateway {
                        // `gatewayN` rather than a default route: Debian 12's ifupdown
                        // renderer turns it into a native `gateway` line, while a route
                        // becomes `route add`, which needs net-tools (not in the image).
                        let key = if gw.is_ipv4() { "gateway4" } else { "gateway6" };
                        e.insert(key.into(), json!(gw.to_string()));
                        // A static guest on a home LAN resolves through its router;
                        // the spec has no DNS field yet.
                        e.insert(
                            "nameservers".into(),
                            json!({ "addresses": [gw.to_string()] }),
                        );
                    }
                }
            }
            ethernets.insert(nic.slot.clone(), Value::Object(e));
        }
        to_yaml(
            &json!({ "network": { "version": 2, "ethernets": Value::Object(ethernets) } }),
            "network-config",
        )
    }
}

impl TsModel {
    /// The idempotent join: `set` on a logged-in node, `up` (with the key file) on a
    /// new one; the key file is removed either way.
    fn join_command(&self) -> String {
        let routes = self
            .routes
            .iter()
            .map(|r| r.to_string())
            .collect::<Vec<_>>()
            .join(",");
        let mut up = format!(
            "tailscale up --authkey=file:{AUTHKEY_PATH} --hostname={}",
            self.hostname
        );
        if !routes.is_empty() {
            up.push_str(&format!(" --advertise-routes={routes}"));
        }
        if self.accept_routes {
            up.push_str(" --accept-routes");
        }
        // `set` restates the full desired state: an empty `--advertise-routes=` clears
        // routes the spec no longer lists.
        let set = format!(
            "tailscale set --hostname={} --advertise-routes={routes} --accept-routes={}",
            self.hostname, self.accept_routes
        );
        let cmd = format!(
            "if tailscale status >/dev/null 2>&1; then {set}; else {up}; fi; rm -f {AUTHKEY_PATH}"
        );
        debug_assert!(cmd.starts_with(TAILSCALE_JOIN_PREFIX));
        cmd
    }
}

fn resolve_route(spec: &Spec, vm: &str, route: &str) -> Result<Cidr, Error> {
    let cidr = match spec.networks.segments.get(route) {
        Some(seg) => seg.cidr,
        None => route.parse::<Cidr>().map_err(|_| Error::UnknownRoute {
            vm: vm.to_string(),
            route: route.to_string(),
        })?,
    };
    if !cidr.is_network_address() {
        return Err(Error::RouteNotNetwork {
            vm: vm.to_string(),
            route: route.to_string(),
            network: Cidr(cidr.net().trunc()).to_string(),
        });
    }
    Ok(cidr)
}

fn to_yaml(v: &Value, doc: &'static str) -> Result<String, Error> {
    // Block scalars are off: a folded `>` scalar would re-wrap the long shell command,
    // and a double-quoted one round-trips exactly through any YAML parser.
    let opts = serde_saphyr::ser_options! { prefer_block_scalars: false };
    // The serializer's message is not forwarded: the user-data holds a secret.
    serde_saphyr::to_string_with_options(v, opts).map_err(|_| Error::Yaml { doc })
}

fn check_hostname(s: &str) -> Result<(), &'static str> {
    let ok = !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-');
    ok.then_some(()).ok_or(
        "a hostname is 1–63 lowercase letters, digits and `-`, not starting or ending with `-`",
    )
}

fn check_user(s: &str) -> Result<(), &'static str> {
    let ok = !s.is_empty()
        && s.len() <= 32
        && s.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    ok.then_some(())
        .ok_or("a user or group name is up to 32 of `a-z 0-9 _ -`, starting with a letter or `_`")
}

fn check_package(s: &str) -> Result<(), &'static str> {
    let ok = s.len() >= 2
        && s.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '+' | '-' | '.'));
    ok.then_some(())
        .ok_or("a Debian package name is lowercase letters, digits, `+`, `-` and `.`")
}

fn check_stack(s: &str) -> Result<(), &'static str> {
    let ok = !s.is_empty()
        && s != "."
        && s != ".."
        && s.len() <= 64
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    ok.then_some(())
        .ok_or("a stack name is one folder name: letters, digits, `.`, `_`, `-`")
}

fn check_abs_path(s: &str) -> Result<(), &'static str> {
    let ok = s.starts_with('/')
        && s.len() > 1
        && s[1..].split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        });
    ok.then_some(())
        .ok_or("an absolute path of plain folder names (letters, digits, `.`, `_`, `-`)")
}

fn check_mac(s: &str) -> Result<String, &'static str> {
    let parts: Vec<&str> = s.split(':').collect();
    let ok = parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()));
    if ok {
        Ok(s.to_ascii_lowercase())
    } else {
        Err("a MAC address is six hex pairs separated by `:`")
    }
}

/// The folders of the `/opt/naas` layout in creation order: the root, `stacks`,
/// `appdata`, `logs`, then each stack's folder under `stacks` and `appdata`. The seed
/// creates them and `validate` checks exactly these.
pub fn naas_dirs(n: &NaasLayout) -> Vec<String> {
    let root = n.root.trim_end_matches('/');
    let mut dirs = vec![
        root.to_string(),
        format!("{root}/stacks"),
        format!("{root}/appdata"),
        format!("{root}/logs"),
    ];
    for s in &n.stacks {
        for parent in ["stacks", "appdata"] {
            let d = format!("{root}/{parent}/{s}");
            if !dirs.contains(&d) {
                dirs.push(d);
            }
        }
    }
    dirs
}
