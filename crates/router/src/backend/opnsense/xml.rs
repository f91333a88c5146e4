//! A tiny indenting XML writer: elements, text and comments, nothing else. config.xml
//! needs no namespaces or attributes beyond `uuid`, and a small writer keeps the output
//! byte-stable (no crate upgrade reorders or re-indents it).

/// Text content or attribute value with `&`, `<`, `>`, `"` and `'` escaped; control
/// characters XML 1.0 cannot carry (all below 0x20 but tab and newline) become a space.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A comment's text: kept literal (comments are not entity-decoded), but `--` may
/// not occur in it nor may it end with `-`.
fn comment_text(text: &str) -> String {
    let clean: String = text
        .chars()
        .map(|c| if (c as u32) < 0x20 { ' ' } else { c })
        .collect();
    let mut s = clean.replace("--", "- -");
    while s.contains("--") {
        s = s.replace("--", "- -");
    }
    if s.ends_with('-') {
        s.push(' ');
    }
    s
}

pub struct Writer {
    out: String,
    open: Vec<String>,
}

impl Default for Writer {
    fn default() -> Self {
        Writer::new()
    }
}

impl Writer {
    pub fn new() -> Self {
        Writer {
            out: String::from("<?xml version=\"1.0\"?>\n"),
            open: Vec::new(),
        }
    }

    fn indent(&mut self) {
        for _ in 0..self.open.len() {
            self.out.push_str("  ");
        }
    }

    /// Opens `<name>` (with `attrs`, escaped); children follow until [`Writer::close`].
    pub fn open(&mut self, name: &str, attrs: &[(&str, &str)]) {
        self.indent();
        self.out.push('<');
        self.out.push_str(name);
        for (k, v) in attrs {
            self.out.push_str(&format!(" {k}=\"{}\"", escape(v)));
        }
        self.out.push_str(">\n");
        self.open.push(name.to_string());
    }

    pub fn close(&mut self) {
        if let Some(name) = self.open.pop() {
            self.indent();
            self.out.push_str(&format!("</{name}>\n"));
        }
    }

    /// `<name>text</name>`, or `<name/>` when `text` is empty.
    pub fn leaf(&mut self, name: &str, text: &str) {
        self.indent();
        if text.is_empty() {
            self.out.push_str(&format!("<{name}/>\n"));
        } else {
            self.out
                .push_str(&format!("<{name}>{}</{name}>\n", escape(text)));
        }
    }

    pub fn comment(&mut self, text: &str) {
        self.indent();
        self.out
            .push_str(&format!("<!-- {} -->\n", comment_text(text)));
    }

    /// The document, with every element still open closed.
    pub fn finish(mut self) -> String {
        while !self.open.is_empty() {
            self.close();
        }
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            escape(r#"a<b>&"c"'d'"#),
            "a&lt;b&gt;&amp;&quot;c&quot;&apos;d&apos;"
        );
        assert_eq!(escape("iot → ha\u{1}x"), "iot → ha x");
    }

    #[test]
    fn comments_never_contain_double_dash() {
        for t in ["a--b", "a---b", "ends-", "--", "-->"] {
            let c = comment_text(t);
            assert!(!c.contains("--"), "{t:?} → {c:?}");
            assert!(!c.ends_with('-'), "{t:?} → {c:?}");
        }
    }

    #[test]
    fn nested_output() {
        let mut w = Writer::new();
        w.open("a", &[("uuid", "x\"y")]);
        w.leaf("b", "1 < 2");
        w.leaf("c", "");
        w.comment("x -- y");
        let s = w.finish();
        assert_eq!(
            s,
            "<?xml version=\"1.0\"?>\n<a uuid=\"x&quot;y\">\n  <b>1 &lt; 2</b>\n  <c/>\n  <!-- x - - y -->\n</a>\n"
        );
    }
}
