//! Disk sizes as PVE writes them (`32G`, `512M`, `4194304`).
//!
//! PVE normalises `size=` on output to the largest exact binary unit, so the client
//! must do the same before comparing desired and observed sizes.

/// A size string PVE would reject (`32GB`, `-1G`, `32g`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("value does not look like a valid disk size: {0}")]
pub struct SizeError(pub String);

const UNITS: [(char, u32); 4] = [('K', 1), ('M', 2), ('G', 3), ('T', 4)];

/// Parse `^(\d+(\.\d+)?)([KMGT](iB)?)?$` into bytes (powers of 1024, fractions truncated).
pub fn parse_disk_size(s: &str) -> Result<u64, SizeError> {
    let err = || SizeError(s.to_string());
    let num_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(num_end);
    let exp = match unit {
        "" => 0,
        u => {
            let letter = u.chars().next().ok_or_else(err)?;
            let rest = &u[letter.len_utf8()..];
            if !(rest.is_empty() || rest == "iB") {
                return Err(err());
            }
            UNITS
                .iter()
                .find(|(c, _)| *c == letter)
                .map(|(_, e)| *e)
                .ok_or_else(err)?
        }
    };
    let (int_part, frac_part) = match num.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (num, None),
    };
    if int_part.is_empty() || !int_part.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err());
    }
    let mult: u128 = 1u128 << (10 * exp);
    let int: u128 = int_part.parse().map_err(|_| err())?;
    let mut total = int.checked_mul(mult).ok_or_else(err)?;
    if let Some(f) = frac_part {
        if f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err());
        }
        // Only the first 30 digits can matter for a u64 result.
        let f = &f[..f.len().min(30)];
        let frac: u128 = f.parse().map_err(|_| err())?;
        let denom = 10u128.pow(u32::try_from(f.len()).map_err(|_| err())?);
        total = total
            .checked_add(frac.checked_mul(mult).ok_or_else(err)? / denom)
            .ok_or_else(err)?;
    }
    u64::try_from(total).map_err(|_| err())
}

/// Print bytes with the largest unit that divides exactly (`T`, `G`, `M`, `K`), as PVE does.
pub fn format_disk_size(bytes: u64) -> String {
    if bytes == 0 {
        return "0".to_string();
    }
    for (c, e) in UNITS.iter().rev() {
        let m = 1u64 << (10 * e);
        if bytes.is_multiple_of(m) {
            return format!("{}{c}", bytes / m);
        }
    }
    bytes.to_string()
}

/// Canonical spelling of a size (`1024M` → `1G`, `1.5TiB` → `1536G`).
pub fn normalize_disk_size(s: &str) -> Result<String, SizeError> {
    parse_disk_size(s).map(format_disk_size)
}

/// Bytes for a whole number of GiB (the unit of `STORAGE:SIZE` disk allocation).
pub fn gib(n: u64) -> u64 {
    n.saturating_mul(1 << 30)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_documented_examples() {
        assert_eq!(parse_disk_size("32G"), Ok(32 << 30));
        assert_eq!(parse_disk_size("1.5TiB"), Ok(3 << 39));
        assert_eq!(parse_disk_size("4194304"), Ok(4 << 20));
        assert_eq!(parse_disk_size("0.5K"), Ok(512));
        assert_eq!(parse_disk_size("1.0001K"), Ok(1024));
        for bad in [
            "32GB",
            "-1G",
            "32g",
            "",
            "G",
            "1.G",
            ".5G",
            "1KiBx",
            "1e3",
            "99999999999999999999T",
        ] {
            assert!(parse_disk_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn formats_largest_exact_unit() {
        assert_eq!(format_disk_size(32 << 30), "32G");
        assert_eq!(format_disk_size(512 << 20), "512M");
        assert_eq!(format_disk_size(4 << 20), "4M");
        assert_eq!(format_disk_size(1536 << 30), "1536G");
        assert_eq!(format_disk_size(1000), "1000");
        assert_eq!(normalize_disk_size("1024M"), Ok("1G".to_string()));
        assert_eq!(normalize_disk_size("1.5TiB"), Ok("1536G".to_string()));
    }
}
