//! Certificates like PVE's: a cluster CA (`pve-root-ca.pem`) signing the node's leaf
//! certificate (`pve-ssl.pem`). Kept in the state folder so the fingerprint survives
//! restarts, as it does on a real node.

use std::path::Path;
use std::sync::Arc;

use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};

use crate::SimError;

pub struct CertSet {
    pub ca_pem: String,
    pub leaf_pem: String,
    pub key_pem: String,
}

impl CertSet {
    pub fn generate(node: &str, ip: &str) -> Result<CertSet, SimError> {
        let err = |e: rcgen::Error| SimError::Cert(e.to_string());
        let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "Proxmox Virtual Environment");
        dn.push(
            DnType::OrganizationalUnitName,
            uuid::Uuid::new_v4().to_string(),
        );
        dn.push(DnType::OrganizationName, "PVE Cluster Manager CA");
        ca.distinguished_name = dn;
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        // pve-cluster: the CA is valid for ten years, node certificates for two.
        let now = time::OffsetDateTime::now_utc() - time::Duration::minutes(10);
        ca.not_before = now;
        ca.not_after = now + time::Duration::days(3650);
        let ca_key = KeyPair::generate().map_err(err)?;
        let issuer = CertifiedIssuer::self_signed(ca, ca_key).map_err(err)?;

        let mut leaf = CertificateParams::new(vec![
            "localhost".to_string(),
            node.to_string(),
            format!("{node}.lan"),
        ])
        .map_err(err)?;
        for a in ["127.0.0.1", ip] {
            if let Ok(addr) = a.parse() {
                leaf.subject_alt_names.push(SanType::IpAddress(addr));
            }
        }
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationalUnitName, "PVE Cluster Node");
        dn.push(DnType::OrganizationName, "Proxmox Virtual Environment");
        dn.push(DnType::CommonName, format!("{node}.lan"));
        leaf.distinguished_name = dn;
        leaf.not_before = now;
        leaf.not_after = now + time::Duration::days(730);
        let leaf_key = KeyPair::generate().map_err(err)?;
        let cert = leaf.signed_by(&leaf_key, &issuer).map_err(err)?;
        Ok(CertSet {
            ca_pem: issuer.pem(),
            leaf_pem: cert.pem(),
            key_pem: leaf_key.serialize_pem(),
        })
    }

    pub fn load_or_generate(dir: Option<&Path>, node: &str, ip: &str) -> Result<CertSet, SimError> {
        let Some(dir) = dir else {
            return Self::generate(node, ip);
        };
        let p = |f: &str| dir.join(f);
        if let (Ok(ca_pem), Ok(leaf_pem), Ok(key_pem)) = (
            std::fs::read_to_string(p("pve-root-ca.pem")),
            std::fs::read_to_string(p("pve-ssl.pem")),
            std::fs::read_to_string(p("pve-ssl.key")),
        ) {
            return Ok(CertSet {
                ca_pem,
                leaf_pem,
                key_pem,
            });
        }
        let set = Self::generate(node, ip)?;
        let io = |e| SimError::State {
            path: dir.to_path_buf(),
            source: e,
        };
        std::fs::write(p("pve-root-ca.pem"), &set.ca_pem).map_err(io)?;
        std::fs::write(p("pve-ssl.pem"), &set.leaf_pem).map_err(io)?;
        crate::server::write_private(&p("pve-ssl.key"), &set.key_pem).map_err(io)?;
        Ok(set)
    }

    pub fn leaf_der(&self) -> Vec<u8> {
        pem_body(&self.leaf_pem)
    }

    /// SHA-256 of the leaf DER as `AA:BB:…`.
    pub fn fingerprint(&self) -> String {
        Sha256::digest(self.leaf_der())
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":")
    }

    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, SimError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let chain = vec![CertificateDer::from(self.leaf_der())];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pem_body(&self.key_pem)));
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| SimError::Tls(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| SimError::Tls(e.to_string()))?;
        // pveproxy speaks HTTP/1.1 only (reason phrases matter to PVE clients).
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(cfg))
    }
}

/// One entry of `GET /nodes/{node}/certificates/info`, read back from the certificate
/// itself (PVE::Certificate::get_certificate_info): names in OpenSSL's one-line form,
/// validity as epoch seconds, SANs, SHA-256 fingerprint and the PEM.
pub fn describe(pem: &str, filename: &str) -> Option<serde_json::Value> {
    use x509_parser::extensions::GeneralName;
    use x509_parser::oid_registry as oids;
    let der = pem_body(pem);
    let (_, cert) = x509_parser::parse_x509_certificate(&der).ok()?;
    let oneline = |name: &x509_parser::x509::X509Name<'_>| {
        let mut out = String::new();
        for rdn in name.iter() {
            for a in rdn.iter() {
                let oid = a.attr_type();
                let key = if *oid == oids::OID_X509_COMMON_NAME {
                    "CN"
                } else if *oid == oids::OID_X509_ORGANIZATION_NAME {
                    "O"
                } else if *oid == oids::OID_X509_ORGANIZATIONAL_UNIT {
                    "OU"
                } else if *oid == oids::OID_X509_COUNTRY_NAME {
                    "C"
                } else {
                    continue;
                };
                out.push_str(&format!("/{key}={}", a.as_str().unwrap_or("")));
            }
        }
        out
    };
    let fp = Sha256::digest(&der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":");
    let mut v = serde_json::json!({
        "filename": filename,
        "fingerprint": fp,
        "issuer": oneline(cert.issuer()),
        "subject": oneline(cert.subject()),
        "notbefore": cert.validity().not_before.timestamp(),
        "notafter": cert.validity().not_after.timestamp(),
        "public-key-type": match cert.public_key().parsed() {
            Ok(x509_parser::public_key::PublicKey::RSA(_)) => "rsaEncryption",
            Ok(x509_parser::public_key::PublicKey::EC(_)) => "id-ecPublicKey",
            _ => "unknown",
        },
        "public-key-bits": cert.public_key().parsed().map(|k| k.key_size()).unwrap_or(0),
        "pem": pem,
    });
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        let names: Vec<String> = san
            .value
            .general_names
            .iter()
            .filter_map(|g| match g {
                GeneralName::DNSName(d) => Some((*d).to_string()),
                GeneralName::IPAddress(b) => match b.len() {
                    4 => Some(std::net::Ipv4Addr::new(b[0], b[1], b[2], b[3]).to_string()),
                    16 => <[u8; 16]>::try_from(*b)
                        .ok()
                        .map(|a| std::net::Ipv6Addr::from(a).to_string()),
                    _ => None,
                },
                _ => None,
            })
            .collect();
        v["san"] = serde_json::json!(names);
    }
    Some(v)
}

/// The base64 body of the first PEM block.
pub fn pem_body(pem: &str) -> Vec<u8> {
    let b64: String = pem
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap_or_default()
}
