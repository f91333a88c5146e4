//! Image URLs and checksums: what the node can fetch and unpack itself.

/// What PVE's `download-url` can decompress, and only into ISO content
/// (pve-storage `decompressor_info('iso', …)`): an `import` image must be plain.
pub const NODE_DECOMPRESSES: [&str; 4] = ["gz", "lzo", "zst", "bz2"];

/// Compression suffixes seen on published images.
pub(crate) const COMPRESSED: [&str; 8] = ["xz", "gz", "zst", "bz2", "lzo", "zip", "7z", "lz4"];

/// The file name on the node, from an image URL (cloud image or HAOS, `import` content).
/// A compressed image is refused: the node cannot decompress into `import`.
pub(crate) fn image_file(url: &str) -> Result<String, String> {
    let path = url.split(['?', '#']).next().unwrap_or_default();
    let name = path.rsplit('/').next().unwrap_or_default();
    if let Some((_, ext)) = name.rsplit_once('.')
        && COMPRESSED.contains(&ext)
    {
        return Err(format!(
            "`{name}` is {ext}-compressed and PVE's download-url cannot decompress into `import` content (it decompresses gz, lzo, zst and bz2, for ISO storage only); decompress it once, serve the plain image on your LAN and point the URL there (docs/runbooks/install-haos.md)"
        ));
    }
    let ok_ext = [".qcow2", ".raw", ".vmdk", ".img"]
        .iter()
        .any(|e| name.ends_with(e));
    let ok_chars = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+'));
    if !ok_ext || !ok_chars {
        return Err(format!(
            "the image URL must end in a file name like `x.qcow2`, `x.raw`, `x.img` or `x.vmdk`; got `{name}`"
        ));
    }
    // PVE's import content takes .qcow2/.raw/.vmdk/.ova; a raw `.img` is stored as .raw.
    Ok(match name.strip_suffix(".img") {
        Some(stem) => format!("{stem}.raw"),
        None => name.to_string(),
    })
}

/// The decompression the node does for an installer ISO fetched from `url`, or why it
/// cannot: `Ok(None)` for a plain file.
pub(crate) fn iso_compression(url: &str) -> Result<Option<String>, String> {
    let path = url.split(['?', '#']).next().unwrap_or_default();
    let name = path.rsplit('/').next().unwrap_or_default();
    match name.rsplit_once('.') {
        Some((_, ext)) if NODE_DECOMPRESSES.contains(&ext) => Ok(Some(ext.to_string())),
        Some((_, ext)) if COMPRESSED.contains(&ext) => Err(format!(
            "`{name}` is {ext}-compressed; PVE's download-url decompresses only gz, lzo, zst and bz2"
        )),
        _ => Ok(None),
    }
}

/// `sha512:<hex>` → (`sha512`, `<hex>`).
pub(crate) fn checksum_parts(s: &str) -> Result<(String, String), String> {
    let (algo, hex) = s
        .split_once(':')
        .ok_or_else(|| format!("checksum `{s}` is not `<algorithm>:<hex>`"))?;
    let algo = algo.trim().to_ascii_lowercase();
    let want_len = match algo.as_str() {
        "md5" => 32,
        "sha1" => 40,
        "sha224" => 56,
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ => return Err(format!("checksum algorithm `{algo}` is not one PVE checks")),
    };
    let hex = hex.trim().to_ascii_lowercase();
    if hex.len() != want_len || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!(
            "the {algo} checksum must be {want_len} hex digits (got {})",
            hex.len()
        ));
    }
    Ok((algo, hex))
}
