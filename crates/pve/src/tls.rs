//! TLS trust for PVE nodes: system roots, a CA file, a pinned leaf fingerprint, or
//! (only on explicit request) no verification.
//!
//! PVE's default certificate is signed by a per-cluster CA, so most homelabs either
//! ship `pve-root-ca.pem` or pin the leaf's SHA-256. Unlike Proxmox's own client, a
//! configured pin here *must* match: a valid chain never overrides it, otherwise a
//! pin would add no protection against a CA-issued impostor.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};

use crate::error::Error;

/// A SHA-256 certificate fingerprint.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 32]);

/// Why a fingerprint string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid SHA-256 fingerprint '{input}': {reason}")]
pub struct FingerprintParseError {
    /// What was given.
    pub input: String,
    /// What is wrong.
    pub reason: &'static str,
}

impl Fingerprint {
    /// Parse `AA:BB:…`, `aa:bb:…` or bare hex (64 digits); surrounding whitespace is ignored.
    pub fn parse(s: &str) -> Result<Self, FingerprintParseError> {
        let err = |reason| FingerprintParseError {
            input: s.to_string(),
            reason,
        };
        let t = s.trim();
        let t = t
            .strip_prefix("sha256:")
            .or_else(|| t.strip_prefix("SHA256:"))
            .unwrap_or(t);
        let hexdigits: String = if t.contains(':') {
            let groups: Vec<&str> = t.split(':').collect();
            if groups.iter().any(|g| g.len() != 2) {
                return Err(err("with ':' separators every group must be 2 hex digits"));
            }
            groups.concat()
        } else {
            t.to_string()
        };
        if hexdigits.len() != 64 {
            return Err(err("expected 32 bytes (64 hex digits)"));
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(&hexdigits, &mut out).map_err(|_| err("not hexadecimal"))?;
        Ok(Self(out))
    }

    /// Fingerprint of a DER certificate.
    pub fn of_der(der: &[u8]) -> Self {
        Self(Sha256::digest(der).into())
    }

    /// The raw digest.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for Fingerprint {
    /// `AA:BB:…`, the form PVE shows (`ssl_fingerprint`, `pvenode cert info`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|b| format!("{b:02X}")).collect();
        f.write_str(&parts.join(":"))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

impl FromStr for Fingerprint {
    type Err = FingerprintParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// How to trust the server certificate.
#[derive(Debug, Clone, Default)]
pub enum TlsMode {
    /// The platform's trust store.
    #[default]
    SystemRoots,
    /// Only the CA certificates in this PEM file (e.g. `/etc/pve/pve-root-ca.pem`).
    CaFile(PathBuf),
    /// Only the CA certificates in this PEM text.
    CaPem(String),
    /// The leaf certificate's SHA-256 must equal this; no fallback to chain checks.
    Fingerprint(Fingerprint),
    /// No verification at all. Only when the user asked (`--insecure`); logged loudly.
    Insecure,
}

/// The last pin mismatch seen by a verifier, so the client can report expected vs
/// got even though reqwest flattens the TLS error.
#[derive(Debug, Default)]
pub(crate) struct PinReport {
    pub(crate) last_mismatch: Mutex<Option<Fingerprint>>,
}

/// The handshake-signature half of a verifier, the same for every verifier here: even
/// when the certificate is pinned or not checked, the server must prove it holds the
/// certificate's key.
macro_rules! handshake_signatures_checked {
    () => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                message,
                cert,
                dss,
                &self.provider.signature_verification_algorithms,
            )
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                message,
                cert,
                dss,
                &self.provider.signature_verification_algorithms,
            )
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.provider
                .signature_verification_algorithms
                .supported_schemes()
        }
    };
}

/// Accepts exactly one leaf certificate (by SHA-256) and still checks the handshake
/// signature, which proves the server holds that certificate's key.
#[derive(Debug)]
pub(crate) struct PinnedVerifier {
    expected: Fingerprint,
    provider: Arc<CryptoProvider>,
    report: Arc<PinReport>,
}

/// Error carried inside rustls when the pin does not match.
#[derive(Debug, thiserror::Error)]
#[error("certificate fingerprint mismatch: expected {expected}, got {got}")]
pub struct PinMismatch {
    /// The configured pin.
    pub expected: Fingerprint,
    /// What the server presented.
    pub got: Fingerprint,
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let got = Fingerprint::of_der(end_entity.as_ref());
        if got == self.expected {
            return Ok(ServerCertVerified::assertion());
        }
        if let Ok(mut slot) = self.report.last_mismatch.lock() {
            *slot = Some(got);
        }
        Err(rustls::Error::InvalidCertificate(
            rustls::CertificateError::Other(rustls::OtherError(Arc::new(PinMismatch {
                expected: self.expected,
                got,
            }))),
        ))
    }

    handshake_signatures_checked!();
}

/// Accepts any certificate but still checks handshake signatures (`--insecure`).
#[derive(Debug)]
struct InsecureVerifier {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for InsecureVerifier {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    handshake_signatures_checked!();
}

/// Walk an error chain, stepping into `io::Error` payloads, and return the first
/// rustls error.
fn find_rustls_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(r) = err.downcast_ref::<rustls::Error>() {
            return Some(r);
        }
        cur = match err
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => err.source(),
        };
    }
    None
}

/// A certificate the verifier rejected (unknown CA, wrong name, expired), as text.
/// Such errors are not retried: the next attempt would see the same certificate.
pub(crate) fn find_certificate_error(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    match find_rustls_error(e)? {
        rustls::Error::InvalidCertificate(c) => Some(format!("{c:?}")),
        _ => None,
    }
}

fn pin_mismatch_in(e: &rustls::Error) -> Option<&PinMismatch> {
    match e {
        rustls::Error::InvalidCertificate(rustls::CertificateError::Other(o)) => {
            o.0.downcast_ref::<PinMismatch>()
        }
        _ => None,
    }
}

/// Find our [`PinMismatch`] inside a transport error chain.
pub(crate) fn find_pin_mismatch<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> Option<&'a PinMismatch> {
    pin_mismatch_in(find_rustls_error(e)?)
}

/// Accepts any certificate but records the leaf fingerprint (trust-on-first-use
/// probing); handshake signatures are still checked.
#[derive(Debug)]
pub(crate) struct RecordingVerifier {
    pub(crate) seen: SeenFingerprint,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Ok(mut g) = self.seen.lock() {
            *g = Some(Fingerprint::of_der(end_entity.as_ref()));
        }
        Ok(ServerCertVerified::assertion())
    }

    handshake_signatures_checked!();
}

/// Where [`RecordingVerifier`] stores what it saw.
pub(crate) type SeenFingerprint = Arc<Mutex<Option<Fingerprint>>>;

/// A rustls config that accepts any server and records its leaf fingerprint.
pub(crate) fn recording_config() -> Result<(rustls::ClientConfig, SeenFingerprint), Error> {
    let provider = provider();
    let seen: SeenFingerprint = Arc::default();
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(format!("TLS protocol setup: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(RecordingVerifier {
            seen: seen.clone(),
            provider,
        }))
        .with_no_client_auth();
    Ok((config, seen))
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn roots_from_pem(pem: &[u8], origin: &str) -> Result<rustls::RootCertStore, Error> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| Error::Tls(format!("{origin}: cannot read PEM: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| Error::Tls(format!("{origin}: unusable CA certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(Error::Tls(format!("{origin}: no CA certificate found")));
    }
    Ok(roots)
}

/// Build the rustls client config for a mode; the returned report is filled on
/// pin mismatches.
pub(crate) fn build_rustls_config(
    mode: &TlsMode,
) -> Result<(rustls::ClientConfig, Arc<PinReport>), Error> {
    let provider = provider();
    let report = Arc::new(PinReport::default());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(format!("TLS protocol setup: {e}")))?;
    let config = match mode {
        TlsMode::SystemRoots => {
            let verifier = rustls_platform_verifier::Verifier::new(provider.clone())
                .map_err(|e| Error::Tls(format!("loading system trust store: {e}")))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(verifier))
                .with_no_client_auth()
        }
        TlsMode::CaFile(path) => {
            let pem = std::fs::read(path)
                .map_err(|e| Error::Tls(format!("reading CA file {}: {e}", path.display())))?;
            let roots = roots_from_pem(&pem, &path.display().to_string())?;
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        TlsMode::CaPem(pem) => {
            let roots = roots_from_pem(pem.as_bytes(), "CA PEM")?;
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        TlsMode::Fingerprint(fp) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinnedVerifier {
                expected: *fp,
                provider: provider.clone(),
                report: report.clone(),
            }))
            .with_no_client_auth(),
        TlsMode::Insecure => {
            // The caller warns the user (`PveClient::is_insecure`); a second warning
            // here would print the same thing twice.
            tracing::debug!(
                "TLS certificate verification is DISABLED (--insecure); anyone on the path can impersonate the Proxmox node"
            );
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(InsecureVerifier {
                    provider: provider.clone(),
                }))
                .with_no_client_auth()
        }
    };
    Ok((config, report))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "0b49e4aa01020304050607080910111213141516171819202122232425262728";

    #[test]
    fn fingerprint_forms() {
        let a = Fingerprint::parse(HEX).expect("bare lower");
        let b = Fingerprint::parse(&HEX.to_uppercase()).expect("bare upper");
        let colon: Vec<String> = HEX
            .as_bytes()
            .chunks(2)
            .map(|c| String::from_utf8_lossy(c).to_uppercase())
            .collect();
        let c = Fingerprint::parse(&colon.join(":")).expect("colons");
        let d = Fingerprint::parse(&format!("  {}\n", colon.join(":").to_lowercase())).expect("ws");
        assert_eq!(a, b);
        assert_eq!(a, c);
        assert_eq!(a, d);
        assert_eq!(a.to_string(), colon.join(":"));
        assert_eq!(Fingerprint::parse(&a.to_string()), Ok(a));
    }

    #[test]
    fn fingerprint_rejects() {
        for bad in [
            "",
            "AA:BB",
            &HEX[..62],
            &format!("{HEX}00"),
            "zz49e4aa01020304050607080910111213141516171819202122232425262728",
            "0:b49e4aa01020304050607080910111213141516171819202122232425262728",
        ] {
            assert!(Fingerprint::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn of_der_matches_sha256() {
        let fp = Fingerprint::of_der(b"abc");
        assert_eq!(
            hex::encode(fp.as_bytes()),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
