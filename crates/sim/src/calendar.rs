//! A small parser for PVE calendar events (systemd-like, formats.md §7.6). It only decides
//! valid/invalid and produces error texts in the shape proxmox-time uses.

const KEYWORDS: &[&str] = &[
    "minutely",
    "hourly",
    "daily",
    "weekly",
    "monthly",
    "yearly",
    "annually",
    "quarterly",
    "semiannually",
    "semi-annually",
];
const DAYS: &[(&str, &str)] = &[
    ("mon", "monday"),
    ("tue", "tuesday"),
    ("wed", "wednesday"),
    ("thu", "thursday"),
    ("fri", "friday"),
    ("sat", "saturday"),
    ("sun", "sunday"),
];

fn is_day(s: &str) -> bool {
    let l = s.to_ascii_lowercase();
    DAYS.iter().any(|(a, b)| *a == l || *b == l)
}

/// A component list like `1,2..5,*/15` with values below `bound`.
fn component(s: &str, bound: u32) -> bool {
    !s.is_empty()
        && s.split(',').all(|item| {
            let (base, rep) = match item.split_once('/') {
                Some((b, r)) => (b, Some(r)),
                None => (item, None),
            };
            if let Some(r) = rep
                && r.parse::<u32>().map_or(true, |r| r == 0) {
                    return false;
                }
            if base == "*" {
                return true;
            }
            if let Some((a, b)) = base.split_once("..") {
                return matches!((a.parse::<u32>(), b.parse::<u32>()), (Ok(a), Ok(b)) if a < bound && b < bound && a <= b);
            }
            base.parse::<u32>().is_ok_and(|n| n < bound)
        })
}

fn time_ok(t: &str) -> bool {
    let parts: Vec<&str> = t.split(':').collect();
    match parts.as_slice() {
        [m] => component(m, 60),
        // `25:00` is minute 25, second 0 when it cannot be hour:minute.
        [h, m] => (component(h, 24) || component(h, 60)) && component(m, 60),
        [h, m, s] => component(h, 24) && component(m, 60) && component(s, 60),
        _ => false,
    }
}

fn date_ok(d: &str) -> bool {
    let parts: Vec<&str> = d.split('-').collect();
    match parts.as_slice() {
        [m, d] => component(m, 13) && component(d, 32),
        [y, m, d] => component(y, 2200) && component(m, 13) && component(d, 32),
        _ => false,
    }
}

/// Parses an event; `Err` is the text after `invalid calendar event '<v>' - `.
pub fn parse(v: &str) -> Result<(), String> {
    let mut s = v.trim();
    if let Some(x) = s.strip_suffix("UTC") {
        s = x.trim_end();
    }
    if s.is_empty() {
        return Err("unable to parse calendar event - event is empty\n".into());
    }
    if KEYWORDS.contains(&s) {
        return Ok(());
    }
    let mut rest = s;
    let mut any = false;
    if rest.starts_with(|c: char| c.is_ascii_alphabetic()) {
        let end = rest.find(' ').unwrap_or(rest.len());
        let days = &rest[..end];
        let ok = days.split(',').all(|d| match d.split_once("..") {
            Some((a, b)) => is_day(a) && is_day(b),
            None => is_day(d),
        });
        if !ok {
            return Err(format!(
                "unable to parse calendar event at '{rest}' - Context(\"weekday\")\n"
            ));
        }
        any = true;
        rest = rest[end..].trim_start();
    }
    let tokens: Vec<&str> = rest.split_whitespace().collect();
    match tokens.as_slice() {
        [] => {}
        [t] if t.contains('-') => {
            if !date_ok(t) {
                return Err(format!(
                    "unable to parse calendar event at '{t}' - Context(\"date or time specification\")\n"
                ));
            }
            any = true;
        }
        [t] => {
            if !time_ok(t) {
                return Err(format!(
                    "unable to parse calendar event at '{t}' - Nom(Eof)\n"
                ));
            }
            any = true;
        }
        [d, t] => {
            if !date_ok(d) {
                return Err(format!(
                    "unable to parse calendar event at '{d}' - Context(\"date or time specification\")\n"
                ));
            }
            if !time_ok(t) {
                return Err(format!(
                    "unable to parse calendar event at '{t}' - Nom(Eof)\n"
                ));
            }
            any = true;
        }
        _ => {
            return Err(format!(
                "unable to parse calendar event at '{rest}' - Nom(Eof)\n"
            ));
        }
    }
    if !any {
        return Err(format!(
            "unable to parse calendar event at '{s}' - Nom(Eof)\n"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn calendar_examples_from_formats_md() {
        for ok in [
            "sat 02:00",
            "mon..fri 22:30",
            "*/15",
            "daily",
            "02:00 UTC",
            "Mon",
            "fri..mon 3:00",
            "*-*-* 00:00:00",
            "25:00",
        ] {
            assert!(parse(ok).is_ok(), "{ok}");
        }
        for bad in ["foo", "sat 2:61", "2024-13-01", "12:00:60", "*/0", ""] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert!(
            parse("foo")
                .err()
                .unwrap_or_default()
                .contains("Context(\"weekday\")")
        );
    }
}
