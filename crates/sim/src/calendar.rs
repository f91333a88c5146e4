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
/// A parse failure: the input left at the failure point and nom's error kind.
type Fail<'a> = (&'a str, &'static str);
type Res<'a, T> = Result<(&'a str, T), Fail<'a>>;

fn weekday(i: &str) -> Res<'_, ()> {
    let end = i
        .find(|c: char| !c.is_ascii_alphabetic())
        .unwrap_or(i.len());
    if end == 0 {
        return Err((i, "Nom(Alpha)"));
    }
    let word = &i[..end];
    const DAYS: &[&str] = &[
        "monday",
        "mon",
        "tuesday",
        "tue",
        "wednesday",
        "wed",
        "thursday",
        "thu",
        "friday",
        "fri",
        "saturday",
        "sat",
        "sunday",
        "sun",
    ];
    if DAYS.contains(&word.to_ascii_lowercase().as_str()) {
        Ok((&i[end..], ()))
    } else {
        Err((word, "Context(\"weekday\")"))
    }
}

fn weekday_range(i: &str) -> Res<'_, ()> {
    let (i, ()) = weekday(i)?;
    if let Some(r) = i.strip_prefix("..")
        && let Ok((r, ())) = weekday(r)
    {
        return Ok((r, ()));
    }
    Ok((i, ()))
}

/// `separated_list1(tag(","), p)`: a failing element after a comma ends the list
/// before that comma.
fn list1<'a>(i: &'a str, p: &dyn Fn(&'a str) -> Res<'a, ()>) -> Res<'a, ()> {
    let (mut i, ()) = p(i)?;
    while let Some(r) = i.strip_prefix(',') {
        match p(r) {
            Ok((r, ())) => i = r,
            Err(_) => break,
        }
    }
    Ok((i, ()))
}

/// `parse_time_comp(max)`: digits below `max`.
fn comp(i: &str, max: u64) -> Res<'_, u64> {
    let end = i.find(|c: char| !c.is_ascii_digit()).unwrap_or(i.len());
    if end == 0 {
        return Err((i, "Nom(Digit)"));
    }
    let v: u64 = i[..end].parse().map_err(|_| (i, "Nom(MapRes)"))?;
    if v >= max {
        return Err((&i[end..], "Context(\"time value too large\")"));
    }
    Ok((&i[end..], v))
}

/// `N`, `N..M`, `N/R`, `N..M/R`.
fn date_time_comp(i: &str, max: u64) -> Res<'_, ()> {
    let (i, v) = comp(i, max)?;
    if let Some(r) = i.strip_prefix("..")
        && let Ok((r, end)) = comp(r, max)
    {
        if v > end {
            return Err((r, "Context(\"range start is bigger than end\")"));
        }
        if let Some(t) = r.strip_prefix('/') {
            return comp(t, max).map(|(t, _)| (t, ()));
        }
        return Ok((r, ()));
    }
    if let Some(t) = i.strip_prefix('/') {
        return comp(t, max).map(|(t, _)| (t, ()));
    }
    Ok((i, ()))
}

/// `*`, `*/R` (R > 0) or a comma list of components.
fn comp_list(i: &str, max: u64) -> Res<'_, ()> {
    if let Some(rest) = i.strip_prefix('*') {
        if let Some(t) = rest.strip_prefix('/') {
            let (n, rep) = comp(t, max)?;
            if rep > 0 {
                return Ok((n, ()));
            }
        }
        return Ok((rest, ()));
    }
    list1(i, &|x| date_time_comp(x, max))
}

fn date_spec(i: &str) -> Res<'_, ()> {
    let ymd = comp_list(i, 2200).and_then(|(r, ())| {
        let r = r.strip_prefix('-').ok_or((r, "Nom(Tag)"))?;
        let (r, ()) = comp_list(r, 13)?;
        let r = r.strip_prefix('-').ok_or((r, "Nom(Tag)"))?;
        comp_list(r, 32)
    });
    if ymd.is_ok() {
        return ymd;
    }
    let md = comp_list(i, 13).and_then(|(r, ())| {
        let r = r.strip_prefix('-').ok_or((r, "Nom(Tag)"))?;
        comp_list(r, 32)
    });
    md.map_err(|_| (i, "Context(\"invalid date spec\")"))
}

fn time_spec(i: &str) -> Res<'_, ()> {
    let mut r = i;
    if let Ok((h, ())) = comp_list(i, 24)
        && let Some(h) = h.strip_prefix(':')
    {
        r = h;
    }
    let (r, ()) = comp_list(r, 60)?;
    if let Some(s) = r.strip_prefix(':')
        && let Ok((s, ())) = comp_list(s, 60)
    {
        return Ok((s, ()));
    }
    Ok((r, ()))
}

fn space0(i: &str) -> &str {
    i.trim_start_matches([' ', '\t'])
}

/// proxmox-time's `parse_calendar_event_incomplete` under `all_consuming`: optional
/// parts that fail are skipped (nom's `opt`), so most mistakes surface as input left
/// over (`Nom(Eof)`) at the point where parsing stopped.
fn event(v: &str) -> Result<(), Fail<'_>> {
    let mut i = v;
    if let Some(n) = i.strip_suffix("UTC") {
        i = n.trim_end_matches(' ');
    }
    let mut any = false;
    if i.starts_with(|c: char| c.is_ascii_alphabetic()) {
        if KEYWORDS.contains(&i) {
            return Ok(());
        }
        let (n, ()) = list1(i, &weekday_range)?;
        any = true;
        i = space0(n);
    }
    if let Ok((n, ())) = date_spec(i) {
        any = true;
        i = space0(n);
    }
    if let Ok((n, ())) = time_spec(i) {
        any = true;
        i = n;
    }
    if !any {
        return Err((i, "Context(\"date or time specification\")"));
    }
    if !i.is_empty() {
        return Err((i, "Nom(Eof)"));
    }
    Ok(())
}

/// Parses an event; `Err` is the text after `invalid calendar event '<v>' - `.
pub fn parse(v: &str) -> Result<(), String> {
    let s = v.trim();
    if s.is_empty() {
        return Err("unable to parse calendar event - event is empty\n".into());
    }
    event(s).map_err(|(at, kind)| format!("unable to parse calendar event at '{at}' - {kind}\n"))
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

    /// The text quoted is what proxmox-time had left when it stopped (issue 16's
    /// differential against PVE's own parser; formats.md §7.6).
    #[test]
    fn error_quotes_the_text_left_at_the_failure_point() {
        for (ev, at, kind) in [
            ("12:00:60", ":60", "Nom(Eof)"),
            ("*/0", "/0", "Nom(Eof)"),
            ("24:00:00", ":00", "Nom(Eof)"),
            ("daily 02:00", "daily", "Context(\"weekday\")"),
            ("mon-fri 02:00", "-fri 02:00", "Nom(Eof)"),
            ("foo", "foo", "Context(\"weekday\")"),
            ("sat 2:61", "2:61", "Nom(Eof)"),
            (
                "2024-13-01",
                "2024-13-01",
                "Context(\"date or time specification\")",
            ),
            ("mon,foo", ",foo", "Nom(Eof)"),
            ("mon..foo", "..foo", "Nom(Eof)"),
            ("12:", "12:", "Context(\"date or time specification\")"),
        ] {
            assert_eq!(
                parse(ev).err().as_deref(),
                Some(format!("unable to parse calendar event at '{at}' - {kind}\n").as_str()),
                "{ev}"
            );
        }
        for ok in [
            "mon 24:00",
            "2024-01-01",
            "*-*-1 0:0",
            "mon,wed..fri 1,2..5/2:00",
            "hourly UTC",
        ] {
            assert!(parse(ok).is_ok(), "{ok}");
        }
    }
}
