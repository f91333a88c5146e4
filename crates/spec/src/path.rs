//! Where each value of a YAML document sits. The model is plain data (so it compares
//! and round-trips cleanly); positions live beside it in a [`PathIndex`] keyed by the
//! value's path (`vms[0].tags[1]`), built from the parser's events.

use std::collections::HashMap;
use std::fmt;

use serde_saphyr::granit_parser::{Event, Parser, Span};

use crate::diag::SrcSpan;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// A path into the spec, printed as `vms[0].disks.scsi0.size`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct YamlPath(pub Vec<Seg>);

impl YamlPath {
    pub fn root() -> Self {
        YamlPath(Vec::new())
    }
    pub fn key(&self, k: impl Into<String>) -> Self {
        let mut p = self.clone();
        p.0.push(Seg::Key(k.into()));
        p
    }
    pub fn index(&self, i: usize) -> Self {
        let mut p = self.clone();
        p.0.push(Seg::Index(i));
        p
    }
    pub fn parent(&self) -> Option<YamlPath> {
        let mut p = self.clone();
        p.0.pop().map(|_| p)
    }
}

impl fmt::Display for YamlPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(root)");
        }
        for (i, s) in self.0.iter().enumerate() {
            match s {
                Seg::Key(k) if i == 0 => f.write_str(k)?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

impl serde::Serialize for YamlPath {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct Entry {
    key: Option<SrcSpan>,
    value: Option<SrcSpan>,
}

/// Positions of keys and values by path.
#[derive(Clone, Debug, Default)]
pub struct PathIndex {
    map: HashMap<YamlPath, Entry>,
}

enum Frame {
    Map {
        path: YamlPath,
        key: Option<(String, SrcSpan)>,
        start: SrcSpan,
    },
    Seq {
        path: YamlPath,
        next: usize,
        start: SrcSpan,
    },
    /// A complex (non-scalar) mapping key: its contents are not indexed.
    Skip(usize),
}

fn to_span(text: &str, s: &Span) -> SrcSpan {
    let char_to_byte = |m: &serde_saphyr::granit_parser::Marker| {
        m.byte_offset().unwrap_or_else(|| {
            text.char_indices()
                .nth(m.index())
                .map(|(b, _)| b)
                .unwrap_or(text.len())
        })
    };
    let start = char_to_byte(&s.start);
    let end = char_to_byte(&s.end).max(start);
    SrcSpan {
        line: s.start.line(),
        column: s.start.col() + 1,
        offset: start,
        len: end - start,
    }
}

impl PathIndex {
    /// Builds the index. A parse error simply ends the walk: the loader reports parse
    /// errors itself, and a partial index is still useful.
    pub fn build(text: &str) -> PathIndex {
        let mut idx = PathIndex::default();
        let mut stack: Vec<Frame> = Vec::new();
        for ev in Parser::new_from_str(text) {
            let Ok((event, span)) = ev else { break };
            let sp = to_span(text, &span);
            match event {
                Event::Scalar(value, ..) => {
                    if let Some(Frame::Skip(_)) = stack.last() {
                        continue;
                    }
                    if let Some(Frame::Map { key: k @ None, .. }) = stack.last_mut() {
                        *k = Some((value.to_string(), sp));
                        continue;
                    }
                    if let Some(path) = idx.place(&mut stack, sp) {
                        idx.map.entry(path).or_default().value = Some(sp);
                    }
                }
                Event::Alias(_) => {
                    if let Some(Frame::Skip(_)) = stack.last() {
                        continue;
                    }
                    if let Some(Frame::Map { key: k @ None, .. }) = stack.last_mut() {
                        *k = Some(("*alias".to_string(), sp));
                        continue;
                    }
                    if let Some(path) = idx.place(&mut stack, sp) {
                        idx.map.entry(path).or_default().value = Some(sp);
                    }
                }
                Event::MappingStart(..) | Event::SequenceStart(..) => {
                    let is_map = matches!(event, Event::MappingStart(..));
                    match stack.last_mut() {
                        Some(Frame::Skip(n)) => {
                            *n += 1;
                            continue;
                        }
                        Some(Frame::Map { key: None, .. }) => {
                            stack.push(Frame::Skip(1));
                            continue;
                        }
                        _ => {}
                    }
                    let path = idx.place(&mut stack, sp).unwrap_or_default();
                    stack.push(if is_map {
                        Frame::Map {
                            path,
                            key: None,
                            start: sp,
                        }
                    } else {
                        Frame::Seq {
                            path,
                            next: 0,
                            start: sp,
                        }
                    });
                }
                Event::MappingEnd | Event::SequenceEnd => match stack.last_mut() {
                    Some(Frame::Skip(n)) => {
                        *n -= 1;
                        if *n == 0 {
                            stack.pop();
                            // The complex key is done; its value follows.
                            if let Some(Frame::Map { key: k @ None, .. }) = stack.last_mut() {
                                *k = Some(("?".to_string(), sp));
                            }
                        }
                    }
                    Some(Frame::Map { path, start, .. } | Frame::Seq { path, start, .. }) => {
                        let mut whole = *start;
                        whole.len = sp.offset.saturating_sub(start.offset).max(start.len);
                        let path = path.clone();
                        stack.pop();
                        let e = idx.map.entry(path).or_default();
                        if e.value.is_none() {
                            e.value = Some(whole);
                        }
                    }
                    None => {}
                },
                _ => {}
            }
        }
        idx
    }

    /// Assigns the path of the node that starts now, recording the key position.
    fn place(&mut self, stack: &mut [Frame], sp: SrcSpan) -> Option<YamlPath> {
        match stack.last_mut() {
            None => Some(YamlPath::root()),
            Some(Frame::Map { path, key, .. }) => {
                let (k, kspan) = key.take()?;
                let p = path.key(k);
                let e = self.map.entry(p.clone()).or_default();
                e.key = Some(kspan);
                // Record only the first position of a scalar value; the span of
                // collections is filled when they end.
                let _ = sp;
                Some(p)
            }
            Some(Frame::Seq { path, next, .. }) => {
                let p = path.index(*next);
                *next += 1;
                Some(p)
            }
            Some(Frame::Skip(_)) => None,
        }
    }

    /// Span of the value at `path`, or the nearest ancestor that has one.
    pub fn value(&self, path: &YamlPath) -> Option<SrcSpan> {
        let mut p = Some(path.clone());
        while let Some(cur) = p {
            if let Some(e) = self.map.get(&cur)
                && let Some(v) = e.value.or(e.key)
            {
                return Some(v);
            }
            p = cur.parent();
        }
        None
    }

    /// Span of the key that introduces `path` (falls back to the value).
    pub fn key(&self, path: &YamlPath) -> Option<SrcSpan> {
        self.map
            .get(path)
            .and_then(|e| e.key)
            .or_else(|| self.value(path))
    }

    /// The first line of a collection's span only, so that a label under a whole
    /// mapping stays readable.
    pub fn head(&self, path: &YamlPath, text: &str) -> Option<SrcSpan> {
        let mut s = self.key(path)?;
        if let Some(rest) = text.get(s.offset..) {
            let line_len = rest.find('\n').unwrap_or(rest.len());
            s.len = s.len.min(line_len).max(1);
        }
        Some(s)
    }

    /// Every scalar or collection value with its span.
    pub fn values(&self) -> impl Iterator<Item = (&YamlPath, SrcSpan)> {
        self.map.iter().filter_map(|(p, e)| e.value.map(|v| (p, v)))
    }

    pub fn contains(&self, path: &YamlPath) -> bool {
        self.map.contains_key(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_nested_values() {
        let text = "a:\n  b: [x, y]\nvms:\n  - vmid: 100\n    tags:\n      - env=lab\n";
        let idx = PathIndex::build(text);
        let p = YamlPath::root().key("vms").index(0).key("tags").index(0);
        let s = idx.value(&p).expect("span");
        assert_eq!((s.line, s.column), (6, 9));
        assert_eq!(&text[s.offset..s.offset + s.len], "env=lab");
        let k = idx
            .key(&YamlPath::root().key("vms").index(0).key("vmid"))
            .expect("key");
        assert_eq!((k.line, k.column), (4, 5));
        let f = idx
            .value(&YamlPath::root().key("a").key("b").index(1))
            .expect("flow");
        assert_eq!((f.line, f.column), (2, 10));
    }
}
