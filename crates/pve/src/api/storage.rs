//! Storage config, per-node status and content, uploads and downloads.

use reqwest::Method;
use serde::Deserialize;

use super::{Extra, opt_upid_from, upid_from};
use crate::client::{Body, PveClient, seg};
use crate::de;
use crate::error::Error;
use crate::params::Params;
use crate::upid::Upid;

/// An entry of `GET /storage` (storage.cfg).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct StorageConfig {
    /// Storage id.
    pub storage: String,
    /// Plugin type (`dir`, `zfspool`, `lvmthin`, `pbs`, …).
    #[serde(default, rename = "type")]
    pub storage_type: String,
    /// Content types, comma-separated.
    #[serde(default)]
    pub content: Option<String>,
    /// Directory path.
    #[serde(default)]
    pub path: Option<String>,
    /// ZFS pool.
    #[serde(default)]
    pub pool: Option<String>,
    /// Restrict to nodes.
    #[serde(default)]
    pub nodes: Option<String>,
    /// Shared.
    #[serde(default, deserialize_with = "de::opt_bool")]
    pub shared: Option<bool>,
    /// Disabled.
    #[serde(default, deserialize_with = "de::opt_bool")]
    pub disable: Option<bool>,
    /// Retention (property string).
    #[serde(default, rename = "prune-backups")]
    pub prune_backups: Option<crate::vmconfig::PruneBackups>,
    /// Config digest.
    #[serde(default)]
    pub digest: Option<String>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

/// An entry of `GET /nodes/{node}/storage`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct StorageStatus {
    /// Storage id.
    pub storage: String,
    /// Plugin type.
    #[serde(default, rename = "type")]
    pub storage_type: String,
    /// Content types.
    #[serde(default)]
    pub content: Option<String>,
    /// Active on this node.
    #[serde(default, deserialize_with = "de::opt_bool")]
    pub active: Option<bool>,
    /// Enabled.
    #[serde(default, deserialize_with = "de::opt_bool")]
    pub enabled: Option<bool>,
    /// Shared.
    #[serde(default, deserialize_with = "de::opt_bool")]
    pub shared: Option<bool>,
    /// Total bytes.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub total: Option<u64>,
    /// Used bytes.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub used: Option<u64>,
    /// Available bytes.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub avail: Option<u64>,
    /// Used fraction.
    #[serde(default, deserialize_with = "de::opt_f64")]
    pub used_fraction: Option<f64>,
}

/// An entry of `GET /nodes/{node}/storage/{storage}/content`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct StorageContent {
    /// Volume id (`local:iso/x.iso`).
    pub volid: String,
    /// Content type (`iso`, `images`, `backup`, …).
    #[serde(default)]
    pub content: Option<String>,
    /// Format (`raw`, `qcow2`, `iso`, …).
    #[serde(default)]
    pub format: Option<String>,
    /// Size in bytes.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub size: Option<u64>,
    /// Used bytes.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub used: Option<u64>,
    /// Owner VMID.
    #[serde(default, deserialize_with = "de::opt_u32")]
    pub vmid: Option<u32>,
    /// Creation time.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub ctime: Option<u64>,
    /// Notes.
    #[serde(default)]
    pub notes: Option<String>,
    /// Protected backup.
    #[serde(default, deserialize_with = "de::opt_bool")]
    pub protected: Option<bool>,
}

/// A file to upload (`POST …/upload`, multipart).
#[derive(Clone)]
pub struct UploadRequest {
    /// `iso`, `vztmpl` or `import`.
    pub content: String,
    /// Target file name.
    pub filename: String,
    /// File bytes.
    pub data: Vec<u8>,
    /// Optional `(algorithm, hex digest)`, e.g. `("sha256", "…")`.
    pub checksum: Option<(String, String)>,
}

impl std::fmt::Debug for UploadRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UploadRequest")
            .field("content", &self.content)
            .field("filename", &self.filename)
            .field("bytes", &self.data.len())
            .finish()
    }
}

/// `POST …/download-url` parameters.
#[derive(Debug, Clone, Default)]
pub struct DownloadUrlRequest {
    /// Source URL.
    pub url: String,
    /// Target file name (extension must fit the content type).
    pub filename: String,
    /// `iso`, `vztmpl` or `import`.
    pub content: String,
    /// Expected checksum.
    pub checksum: Option<String>,
    /// `md5`, `sha1`, `sha224`, `sha256`, `sha384`, `sha512`.
    pub checksum_algorithm: Option<String>,
    /// Decompression (`gz`, `lzo`, `zst`, `bz2`).
    pub compression: Option<String>,
    /// Verify the source's TLS certificate (PVE default on).
    pub verify_certificates: Option<bool>,
}

fn quote_header(s: &str) -> String {
    s.replace(['"', '\r', '\n'], "_")
}

/// Build a `multipart/form-data` body; the file part goes last, as pveproxy streams it.
fn multipart(
    fields: &[(&str, &str)],
    file_field: &str,
    filename: &str,
    data: &[u8],
) -> (String, Vec<u8>) {
    use sha2::Digest;
    let boundary = format!(
        "----labwright-{}",
        hex::encode(&sha2::Sha256::digest(data)[..12])
    );
    let mut body = Vec::with_capacity(data.len() + 512);
    for (name, value) in fields {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{}\"\r\n\r\n{value}\r\n",
                quote_header(name)
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{}\"; filename=\"{}\"\r\nContent-Type: application/octet-stream\r\n\r\n",
            quote_header(file_field),
            quote_header(filename)
        )
        .as_bytes(),
    );
    body.extend_from_slice(data);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

impl PveClient {
    /// `GET /storage`.
    pub async fn storage_list(&self) -> Result<Vec<StorageConfig>, Error> {
        self.get("/storage", Params::new()).await
    }

    /// `GET /nodes/{node}/storage[?content=…]`.
    pub async fn node_storage_status(
        &self,
        node: &str,
        content: Option<&str>,
    ) -> Result<Vec<StorageStatus>, Error> {
        self.get(
            &format!("/nodes/{}/storage", seg(node)),
            Params::new().set_opt("content", content),
        )
        .await
    }

    /// `GET /nodes/{node}/storage/{storage}/content`.
    pub async fn storage_content(
        &self,
        node: &str,
        storage: &str,
        content: Option<&str>,
        vmid: Option<u32>,
    ) -> Result<Vec<StorageContent>, Error> {
        self.get(
            &format!("/nodes/{}/storage/{}/content", seg(node), seg(storage)),
            Params::new()
                .set_opt("content", content)
                .set_opt("vmid", vmid),
        )
        .await
    }

    /// `POST …/upload` (multipart; file-based storages only). Returns the `imgcopy` task.
    pub async fn storage_upload(
        &self,
        node: &str,
        storage: &str,
        upload: &UploadRequest,
    ) -> Result<Upid, Error> {
        let path = format!("/nodes/{}/storage/{}/upload", seg(node), seg(storage));
        let mut fields: Vec<(&str, &str)> = vec![("content", upload.content.as_str())];
        if let Some((algo, sum)) = &upload.checksum {
            fields.push(("checksum-algorithm", algo.as_str()));
            fields.push(("checksum", sum.as_str()));
        }
        let (content_type, bytes) = multipart(&fields, "filename", &upload.filename, &upload.data);
        let r = self
            .send(
                Method::POST,
                &path,
                Body::Multipart {
                    content_type,
                    bytes,
                },
            )
            .await?;
        upid_from("POST", &path, r.data)
    }

    /// `POST …/download-url`: the node fetches the file. Returns the `download` task.
    pub async fn storage_download_url(
        &self,
        node: &str,
        storage: &str,
        req: &DownloadUrlRequest,
    ) -> Result<Upid, Error> {
        let path = format!("/nodes/{}/storage/{}/download-url", seg(node), seg(storage));
        let p = Params::new()
            .set("url", req.url.as_str())
            .set("filename", req.filename.as_str())
            .set("content", req.content.as_str())
            .set_opt("checksum", req.checksum.as_deref())
            .set_opt("checksum-algorithm", req.checksum_algorithm.as_deref())
            .set_opt("compression", req.compression.as_deref())
            .set_opt("verify-certificates", req.verify_certificates);
        let r = self.request(Method::POST, &path, p).await?;
        upid_from("POST", &path, r.data)
    }

    /// `DELETE …/content/{volume}`; returns a task when PVE runs it in the background.
    pub async fn storage_delete_volume(
        &self,
        node: &str,
        storage: &str,
        volume: &str,
    ) -> Result<Option<Upid>, Error> {
        let path = format!(
            "/nodes/{}/storage/{}/content/{}",
            seg(node),
            seg(storage),
            seg(volume)
        );
        let r = self.request(Method::DELETE, &path, Params::new()).await?;
        opt_upid_from("DELETE", &path, r.data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_shape() {
        let (ct, body) = multipart(&[("content", "iso")], "filename", "seed.iso", b"DATA");
        let boundary = ct.split("boundary=").nth(1).expect("boundary");
        let text = String::from_utf8_lossy(&body);
        assert!(text.starts_with(&format!("--{boundary}\r\n")));
        assert!(text.contains("name=\"content\"\r\n\r\niso\r\n"));
        assert!(text.contains("filename=\"seed.iso\""));
        assert!(text.ends_with(&format!("DATA\r\n--{boundary}--\r\n")));
    }
}
