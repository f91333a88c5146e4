//! Users, roles, API tokens and ACLs (`/access`), for setting up labwright's own
//! least-privilege token with an administrator's login.

use std::collections::BTreeSet;

use serde::Deserialize;
use serde_json::Value;

use crate::client::{PveClient, seg};
use crate::de;
use crate::error::Error;
use crate::params::Params;
use crate::secret::Secret;

/// An entry of `GET /access/roles`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RoleEntry {
    pub roleid: String,
    /// Comma-separated privileges (PVE 8+).
    #[serde(default)]
    pub privs: Option<String>,
    /// Built-in role.
    #[serde(default, deserialize_with = "de::opt_bool")]
    pub special: Option<bool>,
}

/// An entry of `GET /access/users`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct UserEntry {
    pub userid: String,
    #[serde(default, deserialize_with = "de::opt_bool")]
    pub enable: Option<bool>,
}

/// An entry of `GET /access/users/{userid}/token`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TokenEntry {
    pub tokenid: String,
    #[serde(default, deserialize_with = "de::opt_bool")]
    pub privsep: Option<bool>,
}

/// The reply of `POST /access/users/{userid}/token/{tokenid}`: the only time PVE
/// shows the secret.
#[derive(Debug, Clone, Deserialize)]
pub struct NewToken {
    #[serde(rename = "full-tokenid")]
    pub full_tokenid: String,
    pub value: Secret,
}

/// An entry of `GET /access/acl`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct AclEntry {
    pub path: String,
    /// User, group or token id.
    pub ugid: String,
    /// `user`, `group` or `token`.
    #[serde(rename = "type")]
    pub kind: String,
    pub roleid: String,
    #[serde(default, deserialize_with = "de::opt_bool")]
    pub propagate: Option<bool>,
}

/// Who an ACL entry is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AclSubject<'a> {
    User(&'a str),
    Token(&'a str),
}

impl PveClient {
    /// `GET /access/roles`.
    pub async fn roles(&self) -> Result<Vec<RoleEntry>, Error> {
        self.get("/access/roles", Params::new()).await
    }

    /// `GET /access/roles/{roleid}`: the role's privileges.
    pub async fn role_privileges(&self, roleid: &str) -> Result<BTreeSet<String>, Error> {
        let v: Value = self
            .get(&format!("/access/roles/{}", seg(roleid)), Params::new())
            .await?;
        Ok(v.as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default())
    }

    /// `POST /access/roles` (create) or `PUT /access/roles/{roleid}` (replace the
    /// privileges).
    pub async fn role_set(
        &self,
        roleid: &str,
        privs: &BTreeSet<String>,
        create: bool,
    ) -> Result<(), Error> {
        let list = privs.iter().cloned().collect::<Vec<_>>().join(",");
        if create {
            let _: Value = self
                .post(
                    "/access/roles",
                    Params::new().set("roleid", roleid).set("privs", list),
                )
                .await?;
        } else {
            let _: Value = self
                .put(
                    &format!("/access/roles/{}", seg(roleid)),
                    Params::new().set("privs", list),
                )
                .await?;
        }
        Ok(())
    }

    /// `GET /access/users`.
    pub async fn users(&self) -> Result<Vec<UserEntry>, Error> {
        self.get("/access/users", Params::new()).await
    }

    /// `POST /access/users` (no password: the user logs in only through its tokens).
    pub async fn user_create(&self, userid: &str, comment: &str) -> Result<(), Error> {
        let _: Value = self
            .post(
                "/access/users",
                Params::new().set("userid", userid).set("comment", comment),
            )
            .await?;
        Ok(())
    }

    /// `GET /access/users/{userid}/token`.
    pub async fn user_tokens(&self, userid: &str) -> Result<Vec<TokenEntry>, Error> {
        self.get(
            &format!("/access/users/{}/token", seg(userid)),
            Params::new(),
        )
        .await
    }

    /// `POST /access/users/{userid}/token/{tokenid}` with privilege separation.
    pub async fn token_create(
        &self,
        userid: &str,
        tokenid: &str,
        comment: &str,
    ) -> Result<NewToken, Error> {
        self.post(
            &format!("/access/users/{}/token/{}", seg(userid), seg(tokenid)),
            Params::new().set("privsep", 1).set("comment", comment),
        )
        .await
    }

    /// `DELETE /access/users/{userid}/token/{tokenid}` (its ACLs go with it).
    pub async fn token_delete(&self, userid: &str, tokenid: &str) -> Result<(), Error> {
        let _: Value = self
            .delete(
                &format!("/access/users/{}/token/{}", seg(userid), seg(tokenid)),
                Params::new(),
            )
            .await?;
        Ok(())
    }

    /// `GET /access/acl`.
    pub async fn acl(&self) -> Result<Vec<AclEntry>, Error> {
        self.get("/access/acl", Params::new()).await
    }

    /// `PUT /access/acl`: grants `role` on `path` to one user or token.
    pub async fn acl_grant(
        &self,
        path: &str,
        role: &str,
        who: AclSubject<'_>,
        propagate: bool,
    ) -> Result<(), Error> {
        let p = Params::new()
            .set("path", path)
            .set("roles", role)
            .set("propagate", if propagate { 1 } else { 0 });
        let p = match who {
            AclSubject::User(u) => p.set("users", u),
            AclSubject::Token(t) => p.set("tokens", t),
        };
        let _: Value = self.put("/access/acl", p).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_replies_as_pve_sends_them() {
        let t: NewToken = serde_json::from_value(serde_json::json!({
            "full-tokenid": "labwright@pve!lab",
            "info": {"privsep": "1"},
            "value": "8d0c8a2e-canary"
        }))
        .expect("decodes");
        assert_eq!(t.full_tokenid, "labwright@pve!lab");
        assert!(!format!("{t:?}").contains("canary"));
        let a: Vec<AclEntry> = serde_json::from_value(serde_json::json!([
            {"path": "/vms", "ugid": "labwright@pve!lab", "type": "token", "roleid": "LabwrightOperator", "propagate": 1}
        ]))
        .expect("decodes");
        assert_eq!(a[0].propagate, Some(true));
        assert_eq!(a[0].kind, "token");
    }
}
