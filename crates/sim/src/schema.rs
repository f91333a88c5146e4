//! The official PVE API schema, loaded from the embedded `apidata-9.1.3.json`, and the
//! generic parameter validator that mirrors `PVE::JSONSchema::validate`.
//!
//! The simulator derives every request check from this file (never from client code), so
//! that a client mistake and a simulator mistake cannot cancel each other out.

use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

use indexmap::IndexMap;
use serde_json::{Map, Value};

use crate::formats;

/// The schema text, copied verbatim from `/work/shared/pve-api/apidata-9.1.3.json`.
const APIDATA: &str = include_str!("../data/apidata-9.1.3.json");

/// A request parameter value as PVE's validator sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum PVal {
    /// Every form value and every JSON scalar other than a boolean.
    Str(String),
    /// A repeated form key or a JSON array.
    Arr(Vec<PVal>),
    /// A JSON `true`/`false` (form bodies cannot carry these).
    Bool(bool),
    /// A JSON object (always refused for scalar parameters).
    Obj(Map<String, Value>),
}

impl PVal {
    /// Converts a JSON body value the way Perl's JSON decoder + stringification would.
    pub fn from_json(v: &Value) -> Option<PVal> {
        Some(match v {
            Value::Null => return None,
            Value::Bool(b) => PVal::Bool(*b),
            Value::Number(n) => PVal::Str(perl_number(n)),
            Value::String(s) => PVal::Str(s.clone()),
            Value::Array(a) => PVal::Arr(a.iter().filter_map(PVal::from_json).collect()),
            Value::Object(o) => PVal::Obj(o.clone()),
        })
    }

    /// The scalar text of a value (booleans as `1`/`0`), or `None` for arrays and objects.
    pub fn as_str(&self) -> Option<String> {
        match self {
            PVal::Str(s) => Some(s.clone()),
            PVal::Bool(b) => Some(if *b { "1".into() } else { "0".into() }),
            _ => None,
        }
    }
}

/// Perl prints `2048.0` as `2048`; keep that so JSON integers-as-floats pass integer checks.
fn perl_number(n: &serde_json::Number) -> String {
    if let Some(i) = n.as_i64() {
        return i.to_string();
    }
    if let Some(u) = n.as_u64() {
        return u.to_string();
    }
    let f = n.as_f64().unwrap_or(0.0);
    if f.fract() == 0.0 && f.abs() < 1e15 {
        format!("{}", f as i64)
    } else {
        format!("{f}")
    }
}

/// Parameters of one request after merging body, query and URI.
pub type Params = IndexMap<String, PVal>;

/// One method of one path in the schema.
#[derive(Debug)]
pub struct MethodInfo {
    pub method: String,
    pub name: String,
    pub parameters: Value,
    pub permissions: Value,
    pub allowtoken: bool,
    pub proxyto: Option<String>,
}

/// A node of the path tree.
#[derive(Debug, Default)]
pub struct PathNode {
    pub path: String,
    pub text: String,
    pub is_param: bool,
    pub children: Vec<PathNode>,
    pub methods: HashMap<String, MethodInfo>,
}

/// The loaded schema.
#[derive(Debug)]
pub struct ApiSchema {
    pub roots: Vec<PathNode>,
}

/// A matched route.
pub struct RouteMatch<'a> {
    pub node: &'a PathNode,
    pub uri_params: IndexMap<String, String>,
}

impl ApiSchema {
    /// The process-wide schema, parsed once on first use.
    pub fn get() -> &'static ApiSchema {
        static S: OnceLock<ApiSchema> = OnceLock::new();
        S.get_or_init(|| {
            let v: Value = serde_json::from_str(APIDATA).unwrap_or(Value::Array(vec![]));
            let roots = v
                .as_array()
                .map(|a| a.iter().map(build_node).collect())
                .unwrap_or_default();
            ApiSchema { roots }
        })
    }

    /// Matches decoded path segments against the tree; literal children win over `{param}`.
    pub fn route(&self, segments: &[String]) -> Option<RouteMatch<'_>> {
        let mut uri_params = IndexMap::new();
        let first = segments.first()?;
        let mut node = self.roots.iter().find(|n| &n.text == first)?;
        for seg in &segments[1..] {
            let lit = node.children.iter().find(|c| !c.is_param && &c.text == seg);
            let next = match lit {
                Some(n) => n,
                None => {
                    let p = node.children.iter().find(|c| c.is_param)?;
                    if seg.is_empty() || seg.chars().any(char::is_whitespace) {
                        return None;
                    }
                    uri_params.insert(
                        p.text.trim_matches(|c| c == '{' || c == '}').to_string(),
                        seg.clone(),
                    );
                    p
                }
            };
            node = next;
        }
        Some(RouteMatch { node, uri_params })
    }

    /// Every (method, path) pair in the schema; used by the conformance walk.
    pub fn all_methods(&self) -> Vec<(&str, &str, &MethodInfo)> {
        fn walk<'a>(n: &'a PathNode, out: &mut Vec<(&'a str, &'a str, &'a MethodInfo)>) {
            for (m, i) in &n.methods {
                out.push((m.as_str(), n.path.as_str(), i));
            }
            for c in &n.children {
                walk(c, out);
            }
        }
        let mut out = Vec::new();
        for r in &self.roots {
            walk(r, &mut out);
        }
        out.sort_by(|a, b| (a.1, a.0).cmp(&(b.1, b.0)));
        out
    }

    /// Looks a method up by its template path.
    pub fn method(&self, method: &str, path: &str) -> Option<&MethodInfo> {
        fn find<'a>(n: &'a PathNode, path: &str) -> Option<&'a PathNode> {
            if n.path == path {
                return Some(n);
            }
            n.children.iter().find_map(|c| find(c, path))
        }
        self.roots
            .iter()
            .find_map(|r| find(r, path))
            .and_then(|n| n.methods.get(method))
    }
}

fn build_node(v: &Value) -> PathNode {
    let text = v
        .get("text")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let mut methods = HashMap::new();
    if let Some(info) = v.get("info").and_then(Value::as_object) {
        for (m, i) in info {
            methods.insert(
                m.clone(),
                MethodInfo {
                    method: m.clone(),
                    name: i.get("name").and_then(Value::as_str).unwrap_or("").into(),
                    parameters: i.get("parameters").cloned().unwrap_or(Value::Null),
                    permissions: i.get("permissions").cloned().unwrap_or(Value::Null),
                    allowtoken: i.get("allowtoken").and_then(Value::as_i64).unwrap_or(1) != 0,
                    proxyto: i.get("proxyto").and_then(Value::as_str).map(String::from),
                },
            );
        }
    }
    PathNode {
        path: v
            .get("path")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        is_param: text.starts_with('{'),
        text,
        children: v
            .get("children")
            .and_then(Value::as_array)
            .map(|a| a.iter().map(build_node).collect())
            .unwrap_or_default(),
        methods,
    }
}

/// Index ranges of `name[n]` parameters (formats.md §8.0); others fall back to the
/// "n is A to B" text of the description.
fn index_range(prefix: &str, schema: &Value) -> (u32, u32) {
    match prefix {
        "net" | "ipconfig" => (0, 31),
        "scsi" => (0, 30),
        "virtio" => (0, 15),
        "sata" => (0, 5),
        "ide" => (0, 3),
        "unused" => (0, 255),
        "hostpci" => (0, 15),
        "usb" => (0, 13),
        "serial" => (0, 3),
        "parallel" => (0, 2),
        "numa" => (0, 7),
        "virtiofs" => (0, 9),
        _ => {
            let d = schema
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or("");
            static RE: OnceLock<regex::Regex> = OnceLock::new();
            let re = RE.get_or_init(|| {
                regex::Regex::new(r"n is (\d+) to (\d+)").unwrap_or_else(|_| never_regex())
            });
            re.captures(d)
                .and_then(|c| Some((c[1].parse().ok()?, c[2].parse().ok()?)))
                .unwrap_or((0, 255))
        }
    }
}

/// A regex that matches nothing, used when a literal pattern fails to compile.
pub fn never_regex() -> regex::Regex {
    #[allow(clippy::unwrap_used)] // a constant pattern that always compiles
    regex::Regex::new(r"[^\s\S]").unwrap()
}

/// Finds the schema of a request key, resolving indexed names such as `net3` → `net[n]`.
pub fn lookup_prop<'a>(props: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    if let Some(s) = props.get(key)
        && !key.contains('[')
    {
        return Some(s);
    }
    let split = key.find(|c: char| c.is_ascii_digit())?;
    let (prefix, idx) = key.split_at(split);
    if idx.len() > 1 && idx.starts_with('0') {
        return None;
    }
    let n: u32 = idx.parse().ok()?;
    let s = props.get(&format!("{prefix}[n]"))?;
    let (lo, hi) = index_range(prefix, s);
    (n >= lo && n <= hi).then_some(s)
}

/// Expanded property names of a parameter schema (indexed names stay as `x[n]`).
pub fn is_optional(s: &Value) -> bool {
    match s.get("optional") {
        Some(Value::Number(n)) => n.as_i64().unwrap_or(0) != 0,
        Some(Value::Bool(b)) => *b,
        _ => false,
    }
}

/// Collected top-level errors: parameter name → message.
pub type Errors = BTreeMap<String, String>;

/// PVE's legacy normalisation (formats.md §2.6): arrays become comma lists for `-list`
/// string formats, scalars are wrapped for array parameters.
pub fn normalise(params: &mut Params, props: &Map<String, Value>) {
    for (k, v) in params.iter_mut() {
        let Some(s) = lookup_prop(props, k) else {
            continue;
        };
        let ty = s.get("type").and_then(Value::as_str).unwrap_or("string");
        let is_list = s
            .get("format")
            .and_then(Value::as_str)
            .is_some_and(|f| f.ends_with("-list"));
        match v {
            PVal::Arr(items) if ty == "string" && is_list => {
                let joined: Vec<String> = items
                    .iter()
                    .filter_map(PVal::as_str)
                    .filter(|x| !x.is_empty() && x != "0")
                    .collect();
                *v = PVal::Str(joined.join(","));
            }
            PVal::Str(_) | PVal::Bool(_) if ty == "array" => {
                *v = PVal::Arr(vec![v.clone()]);
            }
            _ => {}
        }
    }
}

/// Validates request parameters against a method's `parameters` object.
pub fn validate(params: &mut Params, parameters: &Value) -> Result<(), Errors> {
    let empty = Map::new();
    let props = parameters
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    normalise(params, props);
    let mut errors = Errors::new();
    for (name, s) in props {
        if name.ends_with("[n]") {
            continue;
        }
        if !params.contains_key(name) && !is_optional(s) {
            errors.insert(
                name.clone(),
                "property is missing and it is not optional".into(),
            );
        }
    }
    for (k, v) in params.iter() {
        let Some(s) = lookup_prop(props, k) else {
            errors.insert(
                k.clone(),
                "property is not defined in schema and the schema does not allow additional properties"
                    .into(),
            );
            continue;
        };
        if let Some(req) = s.get("requires").and_then(Value::as_str)
            && !params.contains_key(req)
        {
            add_error(
                &mut errors,
                req,
                &format!("missing property required by '{k}'"),
            );
        }
        if let Err(e) = check_value(v, s, k) {
            add_error(&mut errors, k, &e);
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// Two errors on one key are joined by a literal backslash-n, as `add_error` does.
fn add_error(errors: &mut Errors, key: &str, msg: &str) {
    errors
        .entry(key.to_string())
        .and_modify(|e| {
            e.push_str("\\n");
            e.push_str(msg);
        })
        .or_insert_with(|| msg.to_string());
}

fn num_re() -> &'static regex::Regex {
    static RE: OnceLock<regex::Regex> = OnceLock::new();
    RE.get_or_init(|| {
        regex::Regex::new(r"^[+-]?(\d+\.\d+|\d+\.|\.\d+|\d+)([eE][+-]?\d+)?$")
            .unwrap_or_else(|_| never_regex())
    })
}

fn int_re() -> &'static regex::Regex {
    static RE: OnceLock<regex::Regex> = OnceLock::new();
    RE.get_or_init(|| regex::Regex::new(r"^[+-]?\d+$").unwrap_or_else(|_| never_regex()))
}

/// Compiles a schema pattern with the rewrites of formats.md §3.4, cached by text.
pub fn pattern_regex(p: &str) -> Option<regex::Regex> {
    static CACHE: OnceLock<std::sync::Mutex<HashMap<String, Option<regex::Regex>>>> =
        OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut guard = cache.lock().ok()?;
    if let Some(r) = guard.get(p) {
        return r.clone();
    }
    static BRACE: OnceLock<regex::Regex> = OnceLock::new();
    let brace =
        BRACE.get_or_init(|| regex::Regex::new(r"\{,(\d+)\}").unwrap_or_else(|_| never_regex()));
    let rewritten = p
        .replace("(?^:", "(?:")
        .replace("(?^i:", "(?i:")
        .replace("\\0", "\\x00");
    let rewritten = brace.replace_all(&rewritten, "{0,$1}").to_string();
    let re = regex::RegexBuilder::new(&format!("^{rewritten}$"))
        .size_limit(64 << 20)
        .build()
        .ok();
    guard.insert(p.to_string(), re.clone());
    re
}

fn json_num(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// Checks one value against its schema, in PVE's order; returns the first failure.
pub fn check_value(v: &PVal, s: &Value, path: &str) -> Result<(), String> {
    let ty = s.get("type").and_then(Value::as_str).unwrap_or("string");
    let text = match v {
        PVal::Bool(b) => {
            if ty == "boolean" {
                return Ok(());
            }
            let _ = b;
            return Err(format!(
                "type check ('{ty}') failed - got JSON::PP::Boolean"
            ));
        }
        PVal::Obj(_) => {
            if ty == "object" {
                return Ok(());
            }
            return Err(format!("type check ('{ty}') failed - got HASH"));
        }
        PVal::Arr(items) => {
            if ty == "array" {
                if let Some(item_schema) = s.get("items") {
                    for it in items {
                        check_value(it, item_schema, path)?;
                    }
                }
                return Ok(());
            }
            return Err(format!("type check ('{ty}') failed - got ARRAY"));
        }
        PVal::Str(t) => t.as_str(),
    };
    match ty {
        "boolean" if text != "1" && text != "0" => {
            return Err(format!("type check ('boolean') failed - got '{text}'"));
        }
        "integer" if !int_re().is_match(text.trim_end_matches('\n')) => {
            return Err(format!("type check ('integer') failed - got '{text}'"));
        }
        "number" if !num_re().is_match(text.trim_end_matches('\n')) => {
            return Err(format!("type check ('number') failed - got '{text}'"));
        }
        "array" => return Err("type check ('array') failed".into()),
        _ => {}
    }
    if let Some(f) = s.get("format") {
        match f {
            Value::Object(sub) => {
                formats::check_property_string(text, sub, None, path)
                    .map_err(|e| format!("invalid format - {e}"))?;
            }
            Value::String(name) => {
                formats::check_named(name, text, path)
                    .map_err(|e| format!("invalid format - {e}"))?;
            }
            _ => {}
        }
    }
    if let Some(p) = s.get("pattern").and_then(Value::as_str)
        && let Some(re) = pattern_regex(p)
        && !re.is_match(text)
    {
        return Err("value does not match the regex pattern".into());
    }
    let len = text.chars().count();
    if let Some(max) = s.get("maxLength").and_then(json_num)
        && len as f64 > max
    {
        return Err(format!("value may only be {max} characters long"));
    }
    if let Some(min) = s.get("minLength").and_then(json_num)
        && (len as f64) < min
    {
        return Err(format!("value must be at least {min} characters long"));
    }
    if num_re().is_match(text)
        && let Ok(x) = text.parse::<f64>()
    {
        if let Some(max) = s.get("maximum").and_then(json_num)
            && x > max
        {
            return Err(format!(
                "value must have a maximum value of {}",
                fmt_num(max)
            ));
        }
        if let Some(min) = s.get("minimum").and_then(json_num)
            && x < min
        {
            return Err(format!(
                "value must have a minimum value of {}",
                fmt_num(min)
            ));
        }
    }
    if let Some(e) = s.get("enum").and_then(Value::as_array) {
        let vals: Vec<String> = e
            .iter()
            .map(|x| match x {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect();
        if !vals.iter().any(|x| x == text) {
            return Err(format!(
                "value '{text}' does not have a value in the enumeration '{}'",
                vals.join(", ")
            ));
        }
    }
    Ok(())
}

fn fmt_num(x: f64) -> String {
    if x.fract() == 0.0 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}

/// The schema of a QEMU config key, from `POST /nodes/{node}/qemu/{vmid}/config`.
pub fn qemu_config_prop(key: &str) -> Option<&'static Value> {
    let m = ApiSchema::get().method("POST", "/nodes/{node}/qemu/{vmid}/config")?;
    let props = m.parameters.get("properties")?.as_object()?;
    lookup_prop(props, key)
}

/// The JSON type PVE would use when returning a config key (integers and booleans as
/// numbers, everything else as strings — hence `memory: "4096"`).
pub fn typed_config_value(props: Option<&Value>, raw: &str) -> Value {
    let ty = props
        .and_then(|s| s.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("string");
    match ty {
        "integer" | "boolean" => raw
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::String(raw.into())),
        "number" => raw
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(raw.into())),
        _ => Value::String(raw.into()),
    }
}

/// Property-string sub-schema of a config key (inline object or a hard-coded named one).
pub fn prop_format(s: &Value) -> Option<Map<String, Value>> {
    match s.get("format")? {
        Value::Object(m) => Some(m.clone()),
        Value::String(name) => formats::hash_format(name),
        _ => None,
    }
}
