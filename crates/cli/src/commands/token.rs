//! `labwright token create`: labwright's own least-privilege API token, set up once
//! with an administrator's login.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use labwright_engine::preflight::privileges;
use labwright_pve::api::access::AclSubject;
use labwright_pve::{ClientConfig, Credentials, PveClient, Secret, TlsMode};
use serde::Serialize;

use super::common;
use crate::cli::GlobalArgs;
use crate::{exit, target, ui};

/// What to do when a token lacks privileges (doctor, apply).
pub const FIX_HINT: &str = "run `labwright token create` once with an administrator login: it makes the LabwrightOperator role with every privilege labwright needs and a token that holds it (docs/privileges.md lists them), or grant the missing ones to the token";

/// The role labwright's token holds.
const ROLE: &str = "LabwrightOperator";

/// Manage labwright's own API token on the node.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  labwright token create --target env\n  labwright token create --target lab --password-file ~/.pve-root-pw --rotate"
)]
pub struct TokenArgs {
    #[command(subcommand)]
    pub command: TokenCommand,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create (or bring up to date) the LabwrightOperator role, the user, a
    /// privilege-separated API token and their ACLs, and write the token into
    /// labwright's config.
    ///
    /// Run once with an administrator's login: the password is asked on the terminal
    /// or read from --password-file (never a flag value). The role holds exactly the
    /// privileges labwright needs (docs/privileges.md); the ACLs grant it to the user
    /// and to the token on the paths labwright works on. The token goes into
    /// `$XDG_CONFIG_HOME/labwright/config.toml` as a profile (`--profile`), its secret
    /// into a file next to it that only you can read; it is printed nowhere. Run it
    /// again: the role is brought up to date and nothing else changes; `--rotate`
    /// replaces the token's secret.
    Create(CreateArgs),
}

/// `token create`'s options.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  LABWRIGHT_PVE_URL=https://proxmox:8006 LABWRIGHT_PVE_FINGERPRINT=AA:BB:… labwright token create\n  labwright token create --target lab --rotate\n  labwright token create --user admin@pve --password-file ~/.pve-admin-pw --profile home"
)]
pub struct CreateArgs {
    /// The administrator who logs in (ticket auth).
    #[arg(long, value_name = "USER@REALM", default_value = "root@pam")]
    pub user: String,
    /// Read the administrator's password from this file (mode 0600) instead of
    /// asking on the terminal.
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// The user labwright works as.
    #[arg(long, value_name = "USER@REALM", default_value = "labwright@pve")]
    pub user_id: String,
    /// The token's name.
    #[arg(long, value_name = "NAME", default_value = "labwright")]
    pub token_name: String,
    /// The profile in config.toml to write (default: the `--target` profile, else
    /// `lab`).
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,
    /// Replace the token (a new secret) when it exists already.
    #[arg(long)]
    pub rotate: bool,
}

pub fn run(args: &TokenArgs, g: &GlobalArgs) -> anyhow::Result<ExitCode> {
    match &args.command {
        TokenCommand::Create(a) => create(a, g),
    }
}

/// What happened to one piece.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    Created,
    Updated,
    Rotated,
    Unchanged,
}

impl Change {
    fn word(self) -> &'static str {
        match self {
            Change::Created => "created",
            Change::Updated => "updated",
            Change::Rotated => "rotated",
            Change::Unchanged => "unchanged",
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenReport {
    pub role: String,
    pub role_change: Change,
    pub privileges: Vec<String>,
    pub user: String,
    pub user_change: Change,
    pub token_id: String,
    pub token_change: Change,
    pub acl_paths: Vec<String>,
    pub acls_added: usize,
    pub config: String,
    pub profile: String,
    pub config_change: Change,
    pub changed: bool,
}

impl crate::print::Document for TokenReport {
    fn text(&self) -> String {
        let mut s = String::new();
        s.push_str(&format!(
            "role    {:<28} {} ({} privileges)\n",
            self.role,
            self.role_change.word(),
            self.privileges.len()
        ));
        s.push_str(&format!(
            "user    {:<28} {}\n",
            self.user,
            self.user_change.word()
        ));
        let hint = if self.token_change == Change::Unchanged {
            " (--rotate for a new secret)"
        } else {
            ""
        };
        s.push_str(&format!(
            "token   {:<28} {}{hint}\n",
            self.token_id,
            self.token_change.word()
        ));
        s.push_str(&format!(
            "acl     {:<28} {} entr{} added\n",
            self.acl_paths.join(" "),
            self.acls_added,
            if self.acls_added == 1 { "y" } else { "ies" }
        ));
        s.push_str(&format!(
            "config  {:<28} {} (profile `{}`)\n",
            self.config,
            self.config_change.word(),
            self.profile
        ));
        s.push_str(if self.changed {
            "\nDone. Check it with `labwright doctor --target "
        } else {
            "\nNothing changed. Check it with `labwright doctor --target "
        });
        s.push_str(&self.profile);
        s.push_str("`.\n");
        s
    }
}

fn password(args: &CreateArgs) -> anyhow::Result<Secret> {
    if let Some(p) = &args.password_file {
        let s = target::read_secret_file(p)
            .with_context(|| format!("--password-file {}", p.display()))?;
        if s.is_empty() {
            bail!("--password-file {} is empty", p.display());
        }
        return Ok(s);
    }
    // Never wait on a terminal a script cannot answer.
    if !std::io::stdin().is_terminal() {
        bail!(
            "cannot ask for the password of {} (stdin is not a terminal); use --password-file FILE (mode 0600)",
            args.user
        );
    }
    let pw = rpassword::prompt_password(format!("Password for {}: ", args.user)).map_err(|_| {
        anyhow::anyhow!(
            "cannot ask for the password of {} (no terminal); use --password-file FILE (mode 0600)",
            args.user
        )
    })?;
    if pw.is_empty() {
        bail!("no password given; nothing was changed");
    }
    Ok(Secret::from(pw))
}

fn create(args: &CreateArgs, g: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let name = target::target_name(&g.target);
    let profile = args.profile.clone().unwrap_or_else(|| {
        if matches!(name.as_str(), "sim" | "env") {
            "lab".into()
        } else {
            name.clone()
        }
    });
    if !profile
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        || profile.is_empty()
    {
        bail!("--profile `{profile}`: use letters, digits, `-` and `_`");
    }
    if !args.user_id.contains('@') {
        bail!(
            "--user-id `{}` must be user@realm (e.g. labwright@pve)",
            args.user_id
        );
    }
    if name == "sim" {
        ui::warn(
            "the embedded simulator gets a new address each run, so the profile will not reach it later; for a lasting one run `labwright sim` and use --target env",
        );
    }
    let pw = password(args)?;
    let rt = common::runtime()?;
    let report = rt.block_on(async {
        // The embedded simulator has to run for the login; other targets need only
        // their address and TLS settings (no token yet).
        let (url, tls, sim) = match target::endpoint(&g.target)? {
            Some((url, tls)) => (url, tls, None),
            None => {
                let c = target::connect(&g.target).await?;
                (c.config.base_url.clone(), c.config.tls.clone(), Some(c))
            }
        };
        let admin = PveClient::new(
            ClientConfig::new(url.clone(), Credentials::password(args.user.clone(), pw))
                .tls(tls.clone()),
        )
        .context("cannot set up the API client")?;
        let r = set_up(&admin, args, &url, &tls, &profile).await;
        if let Some(c) = sim {
            c.close().await;
        }
        r
    })?;
    crate::print::print(g, &report)?;
    if report.changed {
        ui::info(
            g,
            &format!(
                "the token's secret is in the file config.toml names for `{}`; it is shown nowhere else",
                report.profile
            ),
        );
    }
    Ok(ExitCode::from(exit::OK))
}

async fn set_up(
    admin: &PveClient,
    args: &CreateArgs,
    url: &str,
    tls: &TlsMode,
    profile: &str,
) -> anyhow::Result<TokenReport> {
    admin
        .login()
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("cannot log in to {url} as {}", args.user))?;
    let want = privileges::role_privileges();
    // The role: exactly the needed privileges.
    let roles = admin.roles().await.context("cannot list the roles")?;
    let role_change = if roles.iter().any(|r| r.roleid == ROLE) {
        let have = admin.role_privileges(ROLE).await?;
        if have == want {
            Change::Unchanged
        } else {
            admin.role_set(ROLE, &want, false).await?;
            Change::Updated
        }
    } else {
        admin.role_set(ROLE, &want, true).await?;
        Change::Created
    };
    let users = admin.users().await.context("cannot list the users")?;
    let user_change = if users.iter().any(|u| u.userid == args.user_id) {
        Change::Unchanged
    } else {
        admin
            .user_create(&args.user_id, "labwright (least-privilege automation user)")
            .await
            .with_context(|| format!("cannot create the user {}", args.user_id))?;
        Change::Created
    };
    let token_id = format!("{}!{}", args.user_id, args.token_name);
    let exists = admin
        .user_tokens(&args.user_id)
        .await?
        .iter()
        .any(|t| t.tokenid == args.token_name);
    let secret_file = secret_path(profile)?;
    let (token_change, secret) = match (exists, args.rotate) {
        (true, false) => {
            if !secret_file.exists() {
                bail!(
                    "the token {token_id} exists but its secret is not in {} (PVE shows a secret only once); run again with --rotate for a new one",
                    secret_file.display()
                );
            }
            (Change::Unchanged, None)
        }
        (true, true) => {
            admin.token_delete(&args.user_id, &args.token_name).await?;
            let t = admin
                .token_create(&args.user_id, &args.token_name, "labwright")
                .await?;
            (Change::Rotated, Some(t.value))
        }
        (false, _) => {
            let t = admin
                .token_create(&args.user_id, &args.token_name, "labwright")
                .await
                .with_context(|| format!("cannot create the token {token_id}"))?;
            (Change::Created, Some(t.value))
        }
    };
    // ACLs: the role for the user and for the token (a separated token holds the
    // intersection of both) on every path labwright needs; `/` itself without
    // propagation, so that nothing below it inherits more than its own entry gives.
    let paths = privileges::acl_paths();
    let acl = admin.acl().await.context("cannot read the ACLs")?;
    let mut added = 0;
    for p in &paths {
        let propagate = p != "/";
        for who in [
            AclSubject::User(&args.user_id),
            AclSubject::Token(&token_id),
        ] {
            let id = match who {
                AclSubject::User(u) | AclSubject::Token(u) => u,
            };
            let present = acl.iter().any(|a| {
                a.path == *p
                    && a.ugid == id
                    && a.roleid == ROLE
                    && a.propagate.unwrap_or(true) == propagate
            });
            if !present {
                admin
                    .acl_grant(p, ROLE, who, propagate)
                    .await
                    .with_context(|| format!("cannot grant {ROLE} on {p} to {id}"))?;
                added += 1;
            }
        }
    }
    let (config, config_change) = write_profile(profile, url, tls, &token_id, secret.as_ref())?;
    let changed = role_change != Change::Unchanged
        || user_change != Change::Unchanged
        || token_change != Change::Unchanged
        || added > 0
        || config_change != Change::Unchanged;
    Ok(TokenReport {
        role: ROLE.into(),
        role_change,
        privileges: want.into_iter().collect(),
        user: args.user_id.clone(),
        user_change,
        token_id,
        token_change,
        acl_paths: paths.into_iter().collect(),
        acls_added: added,
        config: config.display().to_string(),
        profile: profile.to_string(),
        config_change,
        changed,
    })
}

fn config_dir() -> anyhow::Result<PathBuf> {
    let p = target::config_path().context("cannot locate the config folder")?;
    Ok(p.parent().map(Path::to_path_buf).unwrap_or_default())
}

fn secret_path(profile: &str) -> anyhow::Result<PathBuf> {
    Ok(config_dir()?.join(format!("{profile}.token")))
}

/// Writes `bytes` to `path` through a temporary file in the same folder (mode
/// 0600), renamed over the old one: a reader never sees half a file.
fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id()
    ));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let result = (|| -> std::io::Result<()> {
        let mut f = opts.open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("cannot write {}", path.display()));
    }
    Ok(())
}

/// Adds or updates `[targets.PROFILE]` in config.toml (keeping everything else, the
/// comments included) and, with a new secret, writes the secret file.
fn write_profile(
    profile: &str,
    url: &str,
    tls: &TlsMode,
    token_id: &str,
    secret: Option<&Secret>,
) -> anyhow::Result<(PathBuf, Change)> {
    let path = target::config_path().context("cannot locate the config folder")?;
    let secret_file = secret_path(profile)?;
    if let Some(s) = secret {
        write_atomic(&secret_file, format!("{}\n", s.expose()).as_bytes())?;
    }
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let mut doc: toml_edit::DocumentMut = text
        .parse()
        .with_context(|| format!("{} is not valid TOML; fix it first", path.display()))?;
    let targets = doc
        .entry("targets")
        .or_insert_with(|| {
            let mut t = toml_edit::Table::new();
            t.set_implicit(true);
            toml_edit::Item::Table(t)
        })
        .as_table_mut()
        .with_context(|| format!("{}: `targets` is not a table", path.display()))?;
    let entry = targets
        .entry(profile)
        .or_insert_with(|| toml_edit::Item::Table(toml_edit::Table::new()))
        .as_table_mut()
        .with_context(|| format!("{}: `targets.{profile}` is not a table", path.display()))?;
    entry["url"] = toml_edit::value(url);
    entry["token-id"] = toml_edit::value(token_id);
    entry["token-secret-file"] = toml_edit::value(secret_file.display().to_string());
    // The file is where the secret is now; other sources would win over it.
    entry.remove("token-secret-env");
    entry.remove("token-secret-command");
    match tls {
        TlsMode::Fingerprint(fp) => {
            entry["fingerprint"] = toml_edit::value(fp.to_string());
        }
        TlsMode::CaFile(p) => {
            entry["ca-file"] = toml_edit::value(p.display().to_string());
        }
        TlsMode::Insecure => {
            entry["insecure"] = toml_edit::value(true);
        }
        TlsMode::SystemRoots | TlsMode::CaPem(_) => {}
    }
    let new = doc.to_string();
    if new == text && secret.is_none() {
        return Ok((path, Change::Unchanged));
    }
    write_atomic(&path, new.as_bytes())?;
    Ok((
        path,
        if text.is_empty() {
            Change::Created
        } else {
            Change::Updated
        },
    ))
}
