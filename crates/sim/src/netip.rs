//! How PVE's firewall reads an address: `Net::IP->new` as pve-firewall's
//! `parse_address_list` calls it, with Net::IP's own acceptance rules and messages.
//!
//! Net::IP is more lenient and more particular than `std::net`: `1.2.3` and `10.1`
//! are IPv4 addresses (missing quads are zero), text after a first `/len` that is not
//! `/digits` is ignored (`10.0.0.1/24/3`, `10.0.0.0/-1`), a prefix must have no host
//! bits (`fe80::1/64` is refused), and a range takes its address family from its
//! first address (`10.0.0.1-fe80::1` → `Not a valid IPv4 address fe80::1`). Written
//! from Net::IP 1.26's documented and observed behaviour, not from its code.

/// An address (or range) Net::IP accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetIp {
    pub version: u8,
    pub first: u128,
    pub last: u128,
}

fn bits(v: u8) -> u32 {
    if v == 4 { 32 } else { 128 }
}

fn bin_string(x: u128, v: u8) -> String {
    let n = bits(v) as usize;
    format!("{x:0128b}")[128 - n..].to_string()
}

/// `ip_is_ipv4`: `Err` carries the message Net::IP records.
fn is_ipv4(ip: &str) -> Result<(), String> {
    if ip.is_empty() || !ip.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Err(format!("Invalid chars in IP {ip}"));
    }
    if ip.starts_with('.') {
        return Err(format!("Invalid IP {ip} - starts with a dot"));
    }
    if ip.ends_with('.') {
        return Err(format!("Invalid IP {ip} - ends with a dot"));
    }
    if !ip.contains('.') && num(ip) < 256.0 {
        return Ok(());
    }
    if ip.matches('.').count() > 3 {
        return Err(format!("Invalid IP address {ip}"));
    }
    if ip.contains("..") {
        return Err(format!("Empty quad in IP address {ip}"));
    }
    for q in ip.split('.') {
        if num(q) >= 256.0 {
            return Err(format!("Invalid quad in IP address {ip} - {q}"));
        }
    }
    Ok(())
}

/// Perl's numeric value of a digit string.
fn num(s: &str) -> f64 {
    s.parse::<f64>().unwrap_or(0.0)
}

/// Perl's `split /x/`: trailing empty fields are dropped.
fn perl_split(s: &str, sep: char) -> Vec<&str> {
    let mut v: Vec<&str> = s.split(sep).collect();
    while v.last().is_some_and(|x| x.is_empty()) {
        v.pop();
    }
    v
}

/// `ip_is_ipv6`. `Ok(false)` is a refusal that leaves no message (wrong colon count).
fn is_ipv6(ip: &str) -> Result<bool, String> {
    let mut n = ip.matches(':').count();
    if n == 0 || n >= 8 {
        return Ok(false);
    }
    let fields = perl_split(ip, ':');
    let total = n;
    for (i, f) in fields.iter().enumerate() {
        let k = i + 1;
        if f.is_empty() || (f.len() <= 4 && f.chars().all(|c| c.is_ascii_hexdigit())) {
            continue;
        }
        if k == total + 1 && is_ipv4(f).is_ok() {
            n += 1;
            continue;
        }
        return Err(format!("Invalid IP address {ip}"));
    }
    let b = ip.as_bytes();
    if b.len() >= 2 && b[0] == b':' && b[1] != b':' {
        return Err(format!("Invalid address {ip} (starts with :)"));
    }
    if b.len() >= 2 && b[b.len() - 1] == b':' && b[b.len() - 2] != b':' {
        return Err(format!("Invalid address {ip} (ends with :)"));
    }
    let doubles = b.windows(2).filter(|w| w == b"::").count();
    if doubles > 1 {
        return Err(format!("Invalid address {ip} (More than one :: pattern)"));
    }
    if n != 7 && !ip.contains("::") {
        return Err(format!("Invalid number of octets {ip}"));
    }
    Ok(true)
}

/// `ip_get_version`: `Err("")` when neither test left a message.
fn version_of(ip: &str) -> Result<u8, String> {
    let mut last = String::new();
    if !ip.contains(':') {
        match is_ipv4(ip) {
            Ok(()) => return Ok(4),
            Err(e) => last = e,
        }
    }
    match is_ipv6(ip) {
        Ok(true) => Ok(6),
        Ok(false) => Err(last),
        Err(e) => Err(e),
    }
}

/// `ip_expand_address`: the full form (`10.1.0.0`, `fe80:0000:…`).
fn expand(ip: &str, v: u8) -> Result<String, String> {
    if v == 4 {
        let quads = perl_split(ip, '.');
        if quads.len() > 4 {
            return Err(format!("Not a valid IPv address {ip}"));
        }
        let mut clean = vec![];
        for q in &quads {
            if q.is_empty() || q.len() > 3 || !q.chars().all(|c| c.is_ascii_digit()) {
                return Err(format!("Not a valid IPv4 address {ip}"));
            }
            clean.push(num(q) as u64);
        }
        while clean.len() < 4 {
            clean.push(0);
        }
        return Ok(clean
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join("."));
    }
    if ip.matches("::").count() > 1 {
        return Err("Too many :: in ip".into());
    }
    let marked = ip.replacen("::", ":!:", 1);
    let fields = perl_split(&marked, ':');
    let mut num_fields = fields.len();
    let mut out: Vec<String> = vec![];
    for f in &fields {
        if f.contains('.') {
            let q = expand(f, 4)?;
            let b = v4_bits(&q);
            out.push(format!("{:04x}:{:04x}", (b >> 16) & 0xffff, b & 0xffff));
            num_fields += 1;
        } else {
            out.push(format!("{}{f}", "0".repeat(4usize.saturating_sub(f.len()))));
        }
    }
    if let Some(i) = out.iter().position(|x| x == "000!") {
        let zeros = 9usize.saturating_sub(num_fields);
        out[i] = vec!["0000"; zeros].join(":");
    }
    Ok(out.join(":").to_lowercase())
}

/// `ip_iptobin` for an expanded IPv4 address: quads are packed as bytes (Perl's
/// `pack 'C'` keeps the low 8 bits).
fn v4_bits(expanded: &str) -> u128 {
    expanded
        .split('.')
        .fold(0u128, |acc, q| (acc << 8) | (num(q) as u64 as u128 & 0xff))
}

/// `ip_iptobin` for an expanded IPv6 address; `pack 'H'` reads a letter as
/// `(ord + 9) & 0xf` and anything else as `ord & 0xf`.
fn v6_bits(expanded: &str) -> Result<u128, String> {
    let hex: String = expanded.chars().filter(|c| *c != ':').collect();
    if hex.chars().count() != 32 {
        return Err(format!("Bad IP address {hex}"));
    }
    Ok(hex.chars().fold(0u128, |acc, c| {
        let o = c as u32;
        let nib = if c.is_ascii_alphabetic() {
            (o + 9) & 0xf
        } else {
            o & 0xf
        };
        (acc << 4) | u128::from(nib)
    }))
}

fn to_bits(expanded: &str, v: u8) -> Result<u128, String> {
    if v == 4 {
        Ok(v4_bits(expanded))
    } else {
        v6_bits(expanded)
    }
}

/// `ip_check_prefix` (`shown` is the length as written, leading zeros included).
fn check_prefix(bin: u128, len: u64, shown: &str, v: u8) -> Result<(), String> {
    let n = u64::from(bits(v));
    if len > n {
        return Err(format!(
            "Prefix length {shown} is longer than IP address ({n})"
        ));
    }
    let host = if len == n {
        0
    } else {
        (u128::MAX >> (128 - n + len)) & bin
    };
    if host != 0 {
        return Err(format!("Invalid prefix {}/{shown}", bin_string(bin, v)));
    }
    Ok(())
}

fn last_of_prefix(bin: u128, len: u64, v: u8) -> u128 {
    let n = u64::from(bits(v));
    if len >= n {
        bin
    } else {
        bin | (u128::MAX >> (128 - n + len))
    }
}

/// `Net::IP->new($data)`: the accepted address or range, or Net::IP's error text.
pub fn parse(data: &str) -> Result<NetIp, String> {
    let (begin, end, v) = normalize(data)?;
    let first = to_bits(&begin, v)?;
    let end = end.unwrap_or_else(|| begin.clone());
    let ev = version_of(&end)?;
    if ev != v {
        return Err(format!(
            "Begin and End addresses have different IP versions - {begin} - {end}"
        ));
    }
    let last = to_bits(&end, v)?;
    if first > last {
        return Err(format!(
            "Begin address is greater than End address {begin} - {end}"
        ));
    }
    Ok(NetIp {
        version: v,
        first,
        last,
    })
}

/// `ip_normalize`: (first address, last address when not single, version).
fn normalize(data: &str) -> Result<(String, Option<String>, u8), String> {
    // Prefix: `^(\S+?)(/\S+)$`.
    if !data.chars().any(char::is_whitespace)
        && let Some(slash) = data.get(1..).and_then(|d| d.find('/')).map(|i| i + 1)
        && slash + 1 < data.len()
    {
        let (ip, mut len) = (&data[..slash], &data[slash..]);
        let v = version_of(ip)?;
        let ip = expand(ip, v)?;
        let mut bin = to_bits(&ip, v)?;
        while let Some(rest) = len.strip_prefix('/') {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            let after = &rest[digits.len()..];
            if digits.is_empty() || !(after.is_empty() || after.starts_with(',')) {
                break;
            }
            let clen: u64 = digits.parse().unwrap_or(u64::MAX);
            check_prefix(bin, clen, &digits, v)?;
            bin = last_of_prefix(bin, clen, v);
            if let Some(more) = after.strip_prefix(',') {
                bin = bin.wrapping_add(1);
                len = more;
            } else {
                len = after;
            }
        }
        let end = if v == 4 {
            let b = bin as u32;
            std::net::Ipv4Addr::from(b).to_string()
        } else {
            (0..8)
                .rev()
                .map(|i| format!("{:04x}", (bin >> (i * 16)) & 0xffff))
                .collect::<Vec<_>>()
                .join(":")
        };
        return Ok((ip, Some(end), v));
    }
    // Range: `^(.+?)\s*\-\s*(.+)$`.
    if let Some(dash) = data.char_indices().skip(1).find(|(_, c)| *c == '-') {
        let (a, b) = (data[..dash.0].trim_end(), data[dash.0 + 1..].trim_start());
        if !b.is_empty() {
            let v = version_of(a)?;
            let a = expand(a, v)?;
            let b = expand(b, v)?;
            return Ok((a, Some(b), v));
        }
    }
    let v = version_of(data)?;
    Ok((expand(data, v)?, None, v))
}

/// pve-firewall's `parse_address_list` after its ipset/alias shortcuts: a comma list
/// of Net::IP addresses of one family, or one range. Returns the IP version.
pub fn address_list(s: &str) -> Result<u8, String> {
    let elems = perl_split(s, ',');
    if elems.join(",") != s {
        return Err("extraneous commas in list".into());
    }
    let mut version = None;
    let mut range = false;
    for e in &elems {
        let ip = parse(e).map_err(|err| format!("invalid IP address: {err}"))?;
        if e.contains('-') {
            range = true;
        }
        if version.is_some_and(|v| v != ip.version) {
            return Err(format!(
                "detected mixed ipv4/ipv6 addresses in address list '{s}'"
            ));
        }
        version = Some(ip.version);
    }
    if range && elems.len() > 1 {
        return Err("you can't use a range in a list".into());
    }
    Ok(version.unwrap_or(4))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Answers of Net::IP 1.26 (Debian's libnet-ip-perl, what PVE 9 ships).
    #[test]
    fn net_ip_answers() {
        let ok = |s: &str, v: u8| assert_eq!(parse(s).map(|x| x.version), Ok(v), "{s}");
        let err = |s: &str, m: &str| assert_eq!(parse(s).err().as_deref(), Some(m), "{s}");
        ok("1.2.3", 4);
        ok("10.0.0.1/24/3", 4);
        ok("10.0.0.0/-1", 4);
        ok("10.1", 4);
        ok("1", 4);
        ok("01.2.3.4", 4);
        ok("::1", 6);
        ok("fe80::/64", 6);
        ok("fe80::1-fe80::5", 6);
        ok("::ffff:1.2.3.4", 6);
        ok("10.0.0.1-10.0.0.9", 4);
        err(
            "fe80::1/64",
            "Invalid prefix 11111110100000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000001/64",
        );
        err("10.0.0.1-fe80::1", "Not a valid IPv4 address fe80::1");
        err("fe80::zz", "Invalid IP address fe80::zz");
        err(
            "10.0.0.1/24",
            "Invalid prefix 00001010000000000000000000000001/24",
        );
        err("256.1.1.1", "Invalid quad in IP address 256.1.1.1 - 256");
        err(
            "10.0.0.5-10.0.0.1",
            "Begin address is greater than End address 10.0.0.5 - 10.0.0.1",
        );
        err(
            "1.2.3.4/33",
            "Prefix length 33 is longer than IP address (32)",
        );
        err("abc", "Invalid chars in IP abc");
        err("1..2", "Empty quad in IP address 1..2");
        err(
            "1.2.3.4/0",
            "Invalid prefix 00000001000000100000001100000100/0",
        );
    }
}
