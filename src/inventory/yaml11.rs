//! YAML as Ansible reads it: PyYAML's YAML 1.1 resolution of plain scalars (`yes`/`off`
//! are booleans, `07` is octal, `1_000` and `4:30` are integers, `1e3` is a string, dates
//! and timestamps print as Ansible prints them), merge keys (`<<: *a`, `<<: [*a, *b]`)
//! with ansible-core's override order, `!unsafe` kept verbatim (as `{"__ansible_unsafe": ...}`,
//! the form `ansible-inventory --list` shows) and `!vault` values kept encrypted (as
//! `{"__ansible_vault": ...}`, decrypted where they are used). Built on the
//! saphyr-parser events mig-parted files are read with, so every node keeps its line and
//! column.
//!
//! Used for inventories, group_vars/host_vars and `-e @file`; mig-parted files keep their
//! own strict parser.

use saphyr_parser::{Event, Marker, Parser, ScalarStyle, Span, Tag};
use serde_json::{Map, Number, Value};
use std::collections::{HashMap, HashSet};

/// Where a node starts: 1-based line and column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

/// A parsed YAML node with its position.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub pos: Pos,
    pub value: NodeValue,
}

#[derive(Clone, Debug, PartialEq)]
pub enum NodeValue {
    /// A resolved scalar (null, bool, number, string, or an `!unsafe` wrapper).
    Scalar(Value),
    Seq(Vec<Node>),
    /// (key, where the key is, value) in document order, merge keys already applied
    /// (later duplicates win, in the first one's place, as a Python dict does).
    Map(Vec<(String, Pos, Node)>),
}

impl NodeValue {
    /// What kind of node this is, for messages: `a mapping`, `a sequence`, `a string`.
    pub fn kind(&self) -> &'static str {
        match self {
            NodeValue::Map(_) => "a mapping",
            NodeValue::Seq(_) => "a sequence",
            NodeValue::Scalar(Value::Null) => "nothing",
            NodeValue::Scalar(Value::Bool(_)) => "a boolean",
            NodeValue::Scalar(Value::Number(_)) => "a number",
            NodeValue::Scalar(Value::String(_)) => "a string",
            NodeValue::Scalar(_) => "a value",
        }
    }
}

/// A YAML error at a position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct YamlError {
    pub pos: Pos,
    pub message: String,
}

impl Node {
    /// The node as JSON (mappings keep their order).
    pub fn to_json(&self) -> Value {
        match &self.value {
            NodeValue::Scalar(v) => v.clone(),
            NodeValue::Seq(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            NodeValue::Map(pairs) => {
                let mut m = Map::new();
                for (k, _, v) in pairs {
                    m.insert(k.clone(), v.to_json());
                }
                Value::Object(m)
            }
        }
    }
}

/// Parses the first document of `text`; `None` for an empty one.
pub fn parse(text: &str) -> Result<Option<Node>, YamlError> {
    let mut b = Builder::default();
    // Event by event, stopping at the first error or after the first document.
    for item in Parser::new_from_str(text) {
        let (ev, span) = item.map_err(|e| YamlError {
            pos: pos_of(e.marker()),
            message: e.info().to_string(),
        })?;
        if ev == Event::StreamEnd {
            break;
        }
        b.on_event(ev, &span);
        if let Some(e) = b.error.take() {
            return Err(e);
        }
        if b.done {
            break;
        }
    }
    Ok(b.root)
}

/// Parses `text` as JSON values only (for `-e @file` and vars files): the document as
/// JSON, `None` when empty.
pub fn parse_json(text: &str) -> Result<Option<(Value, Pos)>, YamlError> {
    Ok(parse(text)?.map(|n| (n.to_json(), n.pos)))
}

fn pos_of(m: &Marker) -> Pos {
    // saphyr counts lines from 1 and columns from 0.
    Pos {
        line: m.line().max(1),
        col: m.col() + 1,
    }
}

/// A collection being built.
enum Open {
    Seq(Pos, usize, Vec<Node>, Shape),
    /// Pairs as parsed (merge keys still separate), the pending key.
    Map(Pos, usize, Vec<(Node, Node)>, Option<Node>, Shape),
}

/// What a collection's tag makes of it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// No tag, `!!map`, `!!seq`.
    Plain,
    /// `!!set {a, b}`: the keys, as a list (Ansible prints a set as one).
    Set,
    /// `!!omap` / `!!pairs` `[a: 1, b: 2]`: `[key, value]` pairs, as PyYAML builds them.
    Pairs,
}

/// Nesting deeper than this is refused (as serde's YAML readers do), so that no document
/// can exhaust the stack of the code that walks the tree.
const MAX_DEPTH: usize = 128;
/// Nodes the document may hold once aliases are expanded: a few aliases of aliases can
/// otherwise ask for billions ("billion laughs").
const MAX_NODES: usize = 2_000_000;

#[derive(Default)]
struct Builder {
    stack: Vec<Open>,
    /// Anchored nodes with their size in nodes.
    anchors: HashMap<usize, (Node, usize)>,
    /// Nodes in each open collection so far (parallel to `stack`), and in all.
    sizes: Vec<usize>,
    nodes: usize,
    root: Option<Node>,
    error: Option<YamlError>,
    done: bool,
}

impl Builder {
    fn fail(&mut self, pos: Pos, message: String) {
        if self.error.is_none() {
            self.error = Some(YamlError { pos, message });
        }
    }

    fn push_node(&mut self, node: Node, anchor: usize, size: usize) {
        self.nodes += size;
        if let Some(open) = self.sizes.last_mut() {
            *open += size;
        }
        if self.nodes > MAX_NODES {
            self.fail(
                node.pos,
                format!(
                    "the document expands to more than {MAX_NODES} values (aliases of aliases?)"
                ),
            );
            return;
        }
        if anchor > 0 {
            self.anchors.insert(anchor, (node.clone(), size));
        }
        match self.stack.last_mut() {
            None => {
                if self.root.is_none() {
                    self.root = Some(node);
                }
                self.done = true;
            }
            Some(Open::Seq(_, _, items, _)) => items.push(node),
            Some(Open::Map(_, _, pairs, key, _)) => match key.take() {
                None => *key = Some(node),
                Some(k) => pairs.push((k, node)),
            },
        }
    }

    fn open(&mut self, pos: Pos, collection: Open) {
        if self.stack.len() >= MAX_DEPTH {
            self.fail(
                pos,
                format!("recursion limit exceeded: more than {MAX_DEPTH} levels of nesting"),
            );
            return;
        }
        self.stack.push(collection);
        self.sizes.push(0);
    }

    fn close_map(&mut self, pos: Pos, pairs: Vec<(Node, Node)>) -> Node {
        // As PyYAML 6.0.4 (what ansible-core installs) flattens merges: the merged pairs,
        // in document order (every `<<`, and each mapping of a `<<` list), then the
        // mapping's own pairs; a later pair overrides an earlier one with an equal key
        // (a Python dict). A merged pair is skipped when "the same key" was merged
        // already, which PyYAML decides by the identity of the key's text object: the
        // same key node (an anchor merged twice), or a text Python keeps as one shared
        // object (empty, or one character below U+0100) — so `a` merges first-wins
        // while `ab` merges last-wins. Recorded in tests/cases/inventory/yaml11.
        let mut merged: Vec<(Node, Node)> = Vec::new();
        let mut own: Vec<(Node, Node)> = Vec::new();
        let mut seen: HashSet<MergeId> = HashSet::new();
        let mut take = |m: Vec<(String, Pos, Node)>, merged: &mut Vec<(Node, Node)>| {
            for (k, p, n) in m {
                let mut chars = k.chars();
                let shared = match (chars.next(), chars.next()) {
                    (None, _) => true,
                    (Some(c), None) => (c as u32) < 0x100,
                    _ => false,
                };
                let id = if shared {
                    MergeId::Text(k.clone())
                } else {
                    MergeId::At(p.line, p.col)
                };
                if seen.insert(id) {
                    merged.push((string_node(k, p), n));
                }
            }
        };
        for (k, v) in pairs {
            let is_merge =
                matches!(&k.value, NodeValue::Scalar(Value::String(s)) if s == MERGE_KEY);
            if !is_merge {
                own.push((k, v));
                continue;
            }
            match v.value {
                NodeValue::Map(m) => take(m, &mut merged),
                NodeValue::Seq(items) => {
                    for item in items {
                        match item.value {
                            NodeValue::Map(m) => take(m, &mut merged),
                            other => {
                                self.fail(
                                    item.pos,
                                    format!(
                                        "a merge key (`<<`) takes mappings, found {}",
                                        other.kind()
                                    ),
                                );
                            }
                        }
                    }
                }
                other => self.fail(
                    v.pos,
                    format!(
                        "a merge key (`<<`) takes a mapping or a list of mappings, found {}",
                        other.kind()
                    ),
                ),
            }
        }
        let mut out: Vec<(String, Pos, Node)> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for (k, v) in merged.into_iter().chain(own) {
            // Python dict semantics: equal keys (`1`, `1.0`, `true`) share one entry,
            // shown as the first one was; the value is the last one's.
            match index.get(&key_class(&k)) {
                Some(i) => out[*i].2 = v,
                None => {
                    index.insert(key_class(&k), out.len());
                    out.push((key_text(&k), k.pos, v));
                }
            }
        }
        Node {
            pos,
            value: NodeValue::Map(out),
        }
    }
}

impl Builder {
    /// `!!omap` / `!!pairs` items: each a one-pair mapping, made a `[key, value]` list.
    fn pairs(&mut self, items: Vec<Node>) -> Vec<Node> {
        let mut out = Vec::new();
        for item in items {
            match item.value {
                NodeValue::Map(m) if m.len() == 1 => {
                    let pos = item.pos;
                    for (k, kp, v) in m {
                        out.push(Node {
                            pos,
                            value: NodeValue::Seq(vec![string_node(k, kp), v]),
                        });
                    }
                }
                _ => self.fail(
                    item.pos,
                    "`!!omap` and `!!pairs` take a list of one-pair mappings".into(),
                ),
            }
        }
        out
    }
}

/// Which merged key a pair is, as PyYAML 6.0.4 tells them apart (see `close_map`).
#[derive(PartialEq, Eq, Hash)]
enum MergeId {
    Text(String),
    At(usize, usize),
}

/// The merge key after resolution (a plain `<<` scalar resolves to this marker string;
/// a quoted one stays the ordinary string `<<`).
const MERGE_KEY: &str = "\u{0}<<merge>>";

fn string_node(s: String, pos: Pos) -> Node {
    Node {
        pos,
        value: NodeValue::Scalar(Value::String(s)),
    }
}

/// A mapping key as `ansible-inventory --list` shows it (JSON's form of a Python key:
/// `true`, `null`, `2.5`).
fn key_text(k: &Node) -> String {
    match &k.value {
        NodeValue::Scalar(Value::String(s)) => s.clone(),
        NodeValue::Scalar(Value::Bool(b)) => b.to_string(),
        NodeValue::Scalar(Value::Null) => "null".into(),
        NodeValue::Scalar(Value::Number(n)) => match (n.is_f64(), n.as_f64()) {
            (true, Some(f)) => crate::inventory::list::python_float(f),
            _ => n.to_string(),
        },
        NodeValue::Scalar(v) => match unsafe_text(v)
            .or_else(|| wide_number_text(v))
            .or_else(|| datetime_text(v))
        {
            Some(s) => s.to_string(),
            None => v.to_string(),
        },
        other => k_fallback(other),
    }
}

/// When two keys are the same Python dict key: `1`, `1.0` and `true` are; `"1"` and `1`
/// are not.
fn key_class(k: &Node) -> String {
    match &k.value {
        NodeValue::Scalar(Value::Bool(b)) => format!("n:{}", u8::from(*b)),
        NodeValue::Scalar(Value::Number(n)) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => format!("n:{i}"),
            (_, Some(u), _) => format!("n:{u}"),
            (_, _, Some(f)) if f.fract() == 0.0 && f.abs() < 9.0e15 => format!("n:{}", f as i64),
            (_, _, Some(f)) => format!("n:{f:e}"),
            _ => format!("n:{n}"),
        },
        NodeValue::Scalar(Value::Null) => "null".into(),
        _ => format!("s:{}", key_text(k)),
    }
}

fn k_fallback(v: &NodeValue) -> String {
    match v {
        NodeValue::Seq(_) | NodeValue::Map(_) => serde_json::to_string(
            &Node {
                pos: Pos { line: 0, col: 0 },
                value: v.clone(),
            }
            .to_json(),
        )
        .unwrap_or_default(),
        NodeValue::Scalar(s) => s.to_string(),
    }
}

/// A one-key marker object, `{KEY: text}`: a value JSON cannot say as Ansible holds it.
fn make_marker(key: &str, text: &str) -> Value {
    let mut m = Map::new();
    m.insert(key.into(), Value::String(text.to_string()));
    Value::Object(m)
}

/// The text a one-key marker object (`{KEY: text}`) holds, if `v` is that marker.
fn marker<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    match v {
        Value::Object(m) if m.len() == 1 => m.get(key).and_then(Value::as_str),
        _ => None,
    }
}

/// The key under which a number JSON here cannot hold (an integer past 64 bits, an
/// infinity, NaN) is kept, as the text Python's `json` prints for it (`Infinity`).
pub const NUMBER_KEY: &str = "__migfleet_number";

pub(crate) fn wide_number(text: &str) -> Value {
    make_marker(NUMBER_KEY, text)
}

/// The text of a number kept by [`NUMBER_KEY`], if `v` is one.
pub fn wide_number_text(v: &Value) -> Option<&str> {
    marker(v, NUMBER_KEY)
}

/// The key under which a timestamp with a time is kept, in the ISO form
/// `ansible-inventory --list` prints (`2024-06-01T04:30:00`); templates and playbooks see
/// Python's `str()` of it (`2024-06-01 04:30:00`).
pub const DATETIME_KEY: &str = "__migfleet_datetime";

/// The ISO text of a timestamp kept by [`DATETIME_KEY`], if `v` is one.
pub fn datetime_text(v: &Value) -> Option<&str> {
    marker(v, DATETIME_KEY)
}

/// The key under which `ansible-inventory --list` shows a `!vault` value.
pub const VAULT_KEY: &str = "__ansible_vault";

/// The vault text of a `!vault` value, if `v` is one.
pub fn vault_text(v: &Value) -> Option<&str> {
    marker(v, VAULT_KEY)
}

/// The key under which `ansible-inventory --list` shows an `!unsafe` value.
pub const UNSAFE_KEY: &str = "__ansible_unsafe";

/// The string inside an `!unsafe` wrapper, if `v` is one.
pub fn unsafe_text(v: &Value) -> Option<&str> {
    marker(v, UNSAFE_KEY)
}

impl Builder {
    fn on_event(&mut self, ev: Event<'_>, span: &Span) {
        if self.done || self.error.is_some() {
            return;
        }
        let pos = pos_of(&span.start);
        match ev {
            Event::Scalar(text, style, anchor, tag) => match scalar(&text, style, tag.as_deref()) {
                Ok(v) => self.push_node(
                    Node {
                        pos,
                        value: NodeValue::Scalar(v),
                    },
                    anchor,
                    1,
                ),
                Err(m) => self.fail(pos, m),
            },
            Event::Alias(id) => match self.anchors.get(&id) {
                Some((_, size)) if self.nodes + size > MAX_NODES => self.fail(
                    pos,
                    format!(
                        "the document expands to more than {MAX_NODES} values (aliases of aliases?)"
                    ),
                ),
                Some((n, size)) => {
                    let (value, size) = (n.value.clone(), *size);
                    self.push_node(Node { pos, value }, 0, size);
                }
                None => self.fail(pos, "an alias to an unknown anchor".into()),
            },
            Event::SequenceStart(anchor, tag) => {
                let shape = match collection_tag(tag.as_deref(), false) {
                    Ok(shape) => shape,
                    Err(m) => {
                        self.fail(pos, m);
                        Shape::Plain
                    }
                };
                self.open(pos, Open::Seq(pos, anchor, Vec::new(), shape));
            }
            Event::MappingStart(anchor, tag) => {
                let shape = match collection_tag(tag.as_deref(), true) {
                    Ok(shape) => shape,
                    Err(m) => {
                        self.fail(pos, m);
                        Shape::Plain
                    }
                };
                self.open(pos, Open::Map(pos, anchor, Vec::new(), None, shape));
            }
            Event::SequenceEnd => {
                if let Some(Open::Seq(p, anchor, items, shape)) = self.stack.pop() {
                    let size = self.sizes.pop().unwrap_or(0) + 1;
                    self.nodes -= size - 1;
                    let items = if shape == Shape::Pairs {
                        self.pairs(items)
                    } else {
                        items
                    };
                    self.push_node(
                        Node {
                            pos: p,
                            value: NodeValue::Seq(items),
                        },
                        anchor,
                        size,
                    );
                }
            }
            Event::MappingEnd => {
                if let Some(Open::Map(p, anchor, pairs, _, shape)) = self.stack.pop() {
                    let size = self.sizes.pop().unwrap_or(0) + 1;
                    self.nodes -= size - 1;
                    let mut node = self.close_map(p, pairs);
                    if shape == Shape::Set
                        && let NodeValue::Map(m) = node.value
                    {
                        node.value = NodeValue::Seq(
                            m.into_iter().map(|(k, kp, _)| string_node(k, kp)).collect(),
                        );
                    }
                    self.push_node(node, anchor, size);
                }
            }
            Event::DocumentEnd if self.root.is_some() => self.done = true,
            _ => {}
        }
    }
}

fn tag_name(t: &Tag) -> String {
    format!("{}{}", t.handle, t.suffix)
}

/// What a tag on a mapping (`map` true) or a sequence makes of it: PyYAML's safe
/// constructors for `!!map`, `!!seq`, `!!set`, `!!omap`, `!!pairs`.
fn collection_tag(tag: Option<&Tag>, map: bool) -> Result<Shape, String> {
    let Some(t) = tag else {
        return Ok(Shape::Plain);
    };
    let core = t.handle == "tag:yaml.org,2002:" || t.handle == "!!";
    match (core, t.suffix.as_str(), map) {
        (true, "map", true) | (true, "seq", false) => Ok(Shape::Plain),
        (true, "set", true) => Ok(Shape::Set),
        (true, "omap" | "pairs", false) => Ok(Shape::Pairs),
        (true, "map" | "set", false) => Err(format!("`{}` needs a mapping", tag_name(t))),
        (true, "seq" | "omap" | "pairs", true) => Err(format!("`{}` needs a list", tag_name(t))),
        _ => Err(format!(
            "tag `{}` on a mapping or list is not supported (Ansible's loader has no constructor for it)",
            tag_name(t)
        )),
    }
}

/// Resolves one scalar: tags first, then (plain scalars only) PyYAML's implicit types.
fn scalar(text: &str, style: ScalarStyle, tag: Option<&Tag>) -> Result<Value, String> {
    if let Some(t) = tag {
        let core = t.handle == "tag:yaml.org,2002:" || t.handle == "!!";
        return match (core, t.handle.as_str(), t.suffix.as_str()) {
            (false, "!", "unsafe") => Ok(make_marker(UNSAFE_KEY, text)),
            // Kept encrypted, as `ansible-inventory --list` shows it; decrypted where it is
            // used (templates, playbooks), with the run's vault passwords.
            (false, "!", "vault") => Ok(make_marker(VAULT_KEY, text)),
            (true, _, "str") => Ok(Value::String(text.to_string())),
            (true, _, "null") => Ok(Value::Null),
            (true, _, "bool") => bool_of(text)
                .map(Value::Bool)
                .ok_or_else(|| format!("`{text}` is not a boolean")),
            (true, _, "int") => int_of(text).ok_or_else(|| format!("`{text}` is not an integer")),
            (true, _, "float") => float_of(text)
                .or_else(|| int_of(text).and_then(|v| v.as_f64()).map(float_value))
                .ok_or_else(|| format!("`{text}` is not a float")),
            (true, _, "timestamp") => {
                timestamp_of(text).ok_or_else(|| format!("`{text}` is not a timestamp"))
            }
            _ => Err(format!(
                "tag `{}` is not supported (Ansible's loader has no constructor for it)",
                tag_name(t)
            )),
        };
    }
    if style != ScalarStyle::Plain {
        return Ok(Value::String(text.to_string()));
    }
    Ok(implicit(text))
}

/// PyYAML's implicit resolvers for a plain scalar.
fn implicit(text: &str) -> Value {
    if text == "<<" {
        return Value::String(MERGE_KEY.into());
    }
    if matches!(text, "" | "~" | "null" | "Null" | "NULL") {
        return Value::Null;
    }
    if let Some(b) = bool_of(text) {
        return Value::Bool(b);
    }
    if let Some(v) = int_of(text) {
        return v;
    }
    if let Some(v) = float_of(text) {
        return v;
    }
    if let Some(v) = timestamp_of(text) {
        return v;
    }
    Value::String(text.to_string())
}

fn bool_of(t: &str) -> Option<bool> {
    match t {
        "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => Some(true),
        "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => Some(false),
        _ => None,
    }
}

fn split_sign(t: &str) -> (bool, &str) {
    match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    }
}

/// YAML 1.1 integers: `0b1010`, `0x1F`, `017` (octal), `1_000`, `190:20:30` (base 60).
fn int_of(t: &str) -> Option<Value> {
    let (neg, body) = split_sign(t);
    if body.is_empty() {
        return None;
    }
    let digits_ok =
        |s: &str, ok: fn(u8) -> bool| !s.is_empty() && s.bytes().all(|b| ok(b) || b == b'_');
    let clean = |s: &str| s.replace('_', "");
    let value: i128 = if let Some(b) = body.strip_prefix("0b") {
        if !digits_ok(b, |c| c == b'0' || c == b'1') {
            return None;
        }
        i128::from_str_radix(&clean(b), 2).ok()?
    } else if let Some(h) = body.strip_prefix("0x") {
        if !digits_ok(h, |c| c.is_ascii_hexdigit()) {
            return None;
        }
        i128::from_str_radix(&clean(h), 16).ok()?
    } else if body.contains(':') {
        // Base 60: the first part has no leading zero rule beyond [1-9], the rest 0..59.
        let parts: Vec<&str> = body.split(':').collect();
        let first = parts[0];
        if !first.starts_with(|c: char| ('1'..='9').contains(&c))
            || !digits_ok(first, |c| c.is_ascii_digit())
        {
            return None;
        }
        let mut v: i128 = clean(first).parse().ok()?;
        for p in &parts[1..] {
            if p.is_empty() || p.len() > 2 || !p.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            let d: i128 = p.parse().ok()?;
            if d > 59 {
                return None;
            }
            v = v * 60 + d;
        }
        v
    } else if body == "0" {
        0
    } else if let Some(o) = body.strip_prefix('0') {
        if !digits_ok(o, |c| (b'0'..=b'7').contains(&c)) {
            return None;
        }
        i128::from_str_radix(&clean(o), 8).ok()?
    } else {
        if !body.starts_with(|c: char| ('1'..='9').contains(&c))
            || !digits_ok(body, |c| c.is_ascii_digit())
        {
            return None;
        }
        clean(body).parse().ok()?
    };
    let value = if neg { -value } else { value };
    if let Ok(i) = i64::try_from(value) {
        Some(Value::Number(Number::from(i)))
    } else if let Ok(u) = u64::try_from(value) {
        Some(Value::Number(Number::from(u)))
    } else {
        // Past 64 bits: Python keeps the exact integer; held as its digits.
        Some(wide_number(&value.to_string()))
    }
}

fn float_value(f: f64) -> Value {
    Number::from_f64(f).map_or(Value::Null, Value::Number)
}

/// YAML 1.1 floats as PyYAML resolves them: a dot is required (`1e3` is a string), an
/// exponent needs its sign, `_` is allowed, base 60 with a fraction, `.inf`, `.nan`.
fn float_of(t: &str) -> Option<Value> {
    let (neg, body) = split_sign(t);
    let sign = if neg { -1.0 } else { 1.0 };
    // Infinities and NaN have no JSON form: held as Python's json prints them.
    if matches!(body, ".inf" | ".Inf" | ".INF") {
        return Some(wide_number(if neg { "-Infinity" } else { "Infinity" }));
    }
    if matches!(t, ".nan" | ".NaN" | ".NAN") {
        return Some(wide_number("NaN"));
    }
    // The mantissa and an optional `e[+-]digits`.
    let (mant, exp) = match body.find(['e', 'E']) {
        Some(i) => {
            let e = &body[i + 1..];
            let (_, digits) = split_sign(e);
            if !(e.starts_with('+') || e.starts_with('-'))
                || digits.is_empty()
                || !digits.bytes().all(|c| c.is_ascii_digit())
            {
                return None;
            }
            (&body[..i], Some(e))
        }
        None => (body, None),
    };
    let dot = mant.find('.')?;
    let (int_part, frac) = (&mant[..dot], &mant[dot + 1..]);
    if !frac.bytes().all(|c| c.is_ascii_digit() || c == b'_') {
        return None;
    }
    let frac_clean = frac.replace('_', "");
    if int_part.contains(':') {
        if exp.is_some() {
            return None;
        }
        let parts: Vec<&str> = int_part.split(':').collect();
        if !parts[0].starts_with(|c: char| c.is_ascii_digit())
            || !parts[0].bytes().all(|c| c.is_ascii_digit() || c == b'_')
        {
            return None;
        }
        let mut v: f64 = parts[0].replace('_', "").parse().ok()?;
        for p in &parts[1..] {
            if p.is_empty() || p.len() > 2 || !p.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            let d: f64 = p.parse().ok()?;
            if d > 59.0 {
                return None;
            }
            v = v * 60.0 + d;
        }
        let f: f64 = format!(
            "0.{}",
            if frac_clean.is_empty() {
                "0"
            } else {
                &frac_clean
            }
        )
        .parse()
        .ok()?;
        return Some(float_value(sign * (v + f)));
    }
    if int_part.is_empty() {
        // `.5`: no sign allowed before a bare dot in PyYAML's pattern.
        if t.starts_with(['-', '+']) || frac_clean.is_empty() {
            return None;
        }
    } else if !int_part.starts_with(|c: char| c.is_ascii_digit())
        || !int_part.bytes().all(|c| c.is_ascii_digit() || c == b'_')
    {
        return None;
    }
    let text = format!(
        "{}.{}{}",
        if int_part.is_empty() {
            "0".to_string()
        } else {
            int_part.replace('_', "")
        },
        if frac_clean.is_empty() {
            "0"
        } else {
            &frac_clean
        },
        exp.map(|e| format!("e{e}")).unwrap_or_default()
    );
    let f: f64 = text.parse().ok()?;
    Some(float_value(sign * f))
}

/// YAML 1.1 timestamps, as Ansible prints them (Python's `isoformat()`): a date stays
/// `2024-06-01`; a date and time becomes `2024-06-01T04:30:00`, with `.ffffff` when it
/// has a fraction and `+HH:MM` when it has a zone (`Z` is `+00:00`).
fn timestamp_of(t: &str) -> Option<Value> {
    let b = t.as_bytes();
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
    // Date only: exactly YYYY-MM-DD.
    if b.len() == 10
        && digits(&t[..4])
        && b[4] == b'-'
        && digits(&t[5..7])
        && b[7] == b'-'
        && digits(&t[8..])
    {
        let (y, m, d) = (
            t[..4].parse().ok()?,
            t[5..7].parse().ok()?,
            t[8..].parse().ok()?,
        );
        valid_date(y, m, d)?;
        return Some(Value::String(t.to_string()));
    }
    // YYYY-M(M)-D(D) then T/t or blanks, then H(H):MM:SS(.frac)?(blanks* zone)?
    let (date, rest) = {
        let i = t.find(['T', 't', ' ', '\t'])?;
        (&t[..i], &t[i..])
    };
    let dp: Vec<&str> = date.split('-').collect();
    if dp.len() != 3
        || dp[0].len() != 4
        || !dp.iter().all(|p| digits(p))
        || dp[1].len() > 2
        || dp[2].len() > 2
    {
        return None;
    }
    let (y, mo, d): (u32, u32, u32) = (
        dp[0].parse().ok()?,
        dp[1].parse().ok()?,
        dp[2].parse().ok()?,
    );
    let rest = if rest.starts_with(['T', 't']) {
        &rest[1..]
    } else {
        rest.trim_start_matches([' ', '\t'])
    };
    // Time.
    let time_end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == ':' || c == '.'))
        .unwrap_or(rest.len());
    let (time, zone) = (
        &rest[..time_end],
        rest[time_end..].trim_start_matches([' ', '\t']),
    );
    let (hms, frac) = match time.split_once('.') {
        Some((a, f)) => (a, Some(f)),
        None => (time, None),
    };
    let tp: Vec<&str> = hms.split(':').collect();
    if tp.len() != 3
        || tp[0].is_empty()
        || tp[0].len() > 2
        || tp[1].len() != 2
        || tp[2].len() != 2
        || !tp.iter().all(|p| digits(p))
    {
        return None;
    }
    if let Some(f) = frac
        && !f.bytes().all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let (h, mi, s): (u32, u32, u32) = (
        tp[0].parse().ok()?,
        tp[1].parse().ok()?,
        tp[2].parse().ok()?,
    );
    valid_date(y, mo, d)?;
    if h > 23 || mi > 59 || s > 59 {
        return None;
    }
    let zone = if zone.is_empty() {
        None
    } else if zone == "Z" {
        Some("+00:00".to_string())
    } else {
        let (sign, z) = match zone.as_bytes()[0] {
            b'+' => ('+', &zone[1..]),
            b'-' => ('-', &zone[1..]),
            _ => return None,
        };
        let (zh, zm) = match z.split_once(':') {
            Some((a, b)) => (a, b),
            None => (z, "00"),
        };
        if !digits(zh) || zh.len() > 2 || !digits(zm) || zm.len() != 2 {
            return None;
        }
        let (zh, zm): (u32, u32) = (zh.parse().ok()?, zm.parse().ok()?);
        Some(format!("{sign}{zh:02}:{zm:02}"))
    };
    let mut out = format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}");
    if let Some(f) = frac {
        // Python keeps microseconds: the first six digits, padded.
        let mut us: String = f.chars().take(6).collect();
        while us.len() < 6 {
            us.push('0');
        }
        if us != "000000" {
            out.push('.');
            out.push_str(&us);
        }
    }
    if let Some(z) = zone {
        out.push_str(&z);
    }
    Some(make_marker(DATETIME_KEY, &out))
}

fn valid_date(y: u32, m: u32, d: u32) -> Option<()> {
    let leap = (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400);
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    (y >= 1 && d >= 1 && d <= days).then_some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn one(text: &str) -> Value {
        parse(&format!("v: {text}\n"))
            .expect("parses")
            .expect("a document")
            .to_json()["v"]
            .clone()
    }

    #[test]
    fn plain_scalars_resolve_as_pyyaml_does() {
        for (text, want) in [
            ("yes", json!(true)),
            ("Off", json!(false)),
            ("'yes'", json!("yes")),
            ("07", json!(7)),
            ("010", json!(8)),
            ("08", json!("08")),
            ("1_000_000", json!(1_000_000)),
            ("4:30", json!(270)),
            ("190:20:30", json!(685_230)),
            ("1e3", json!("1e3")),
            ("1.5e+3", json!(1500.0)),
            ("1.", json!(1.0)),
            (".5", json!(0.5)),
            ("0x1F", json!(31)),
            ("0b101", json!(5)),
            ("-0", json!(0)),
            ("~", json!(null)),
            ("2024-06-01", json!("2024-06-01")),
            (
                "2024-06-01 04:30:00",
                json!({DATETIME_KEY: "2024-06-01T04:30:00"}),
            ),
            (
                "2024-06-01T04:30:00.5Z",
                json!({DATETIME_KEY: "2024-06-01T04:30:00.500000+00:00"}),
            ),
            (
                "2024-6-1 4:30:00 +02:00",
                json!({DATETIME_KEY: "2024-06-01T04:30:00+02:00"}),
            ),
            ("2024-13-01", json!("2024-13-01")),
            ("12:60", json!("12:60")),
            ("!!str 07", json!("07")),
            ("!unsafe '{{ x }}'", json!({"__ansible_unsafe": "{{ x }}"})),
        ] {
            assert_eq!(one(text), want, "{text}");
        }
    }

    #[test]
    fn merge_keys_follow_ansibles_override_order() {
        let doc = "a: &a {x: 1, y: 1}\nb: &b {y: 2, z: 2}\nc:\n  <<: [*a, *b]\n  z: 3\nd:\n  <<: *b\n  '<<': literal\n";
        let v = parse(doc).unwrap().unwrap().to_json();
        // One-character keys: the first merged wins (PyYAML 6.0.4 dedups them).
        assert_eq!(v["c"], json!({"x": 1, "y": 1, "z": 3}));
        assert_eq!(v["d"], json!({"y": 2, "z": 2, "<<": "literal"}));
        // Longer keys: the last merged wins, in a list and across `<<` keys alike; an
        // anchor merged twice counts once.
        let doc = "a: &a {port: 1, user: a}\nb: &b {port: 2}\nc:\n  <<: [*a, *b]\nd:\n  <<: *b\n  <<: *a\ne:\n  <<: [*a, *b, *a]\n";
        let v = parse(doc).unwrap().unwrap().to_json();
        assert_eq!(v["c"], json!({"port": 2, "user": "a"}));
        assert_eq!(v["d"], json!({"port": 1, "user": "a"}));
        assert_eq!(v["e"], json!({"port": 2, "user": "a"}));
    }

    #[test]
    fn sets_and_ordered_maps_are_built_as_pyyaml_builds_them() {
        let doc = "s: !!set {gpu1, gpu2}\no: !!omap [a: 1, b: 2]\np: !!pairs [a: 1, a: 2]\n";
        let v = parse(doc).unwrap().unwrap().to_json();
        assert_eq!(v["s"], json!(["gpu1", "gpu2"]));
        assert_eq!(v["o"], json!([["a", 1], ["b", 2]]));
        assert_eq!(v["p"], json!([["a", 1], ["a", 2]]));
        let e = parse("o: !!omap [a, b]\n").unwrap_err();
        assert!(e.message.contains("one-pair mappings"), "{e:?}");
        let e = parse("s: !!set [a]\n").unwrap_err();
        assert!(e.message.contains("needs a mapping"), "{e:?}");
    }

    #[test]
    fn keys_and_wide_numbers_read_as_python_holds_them() {
        let doc = "k:\n  yes: a\n  1: b\n  ~: c\n  1.0: d\n  2.5: e\n  .inf: f\nn: [.inf, -.Inf, .NaN, 123456789012345678901234]\n";
        let v = parse(doc).unwrap().unwrap().to_json();
        // `yes` and `1` and `1.0` are one Python key, shown as the first was.
        assert_eq!(
            v["k"],
            json!({"true": "d", "null": "c", "2.5": "e", "Infinity": "f"})
        );
        assert_eq!(
            crate::inventory::python_json(&v["n"]),
            "[\n    Infinity,\n    -Infinity,\n    NaN,\n    123456789012345678901234\n]"
        );
    }

    #[test]
    fn deep_nesting_and_alias_bombs_are_refused() {
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        let e = parse(&deep).unwrap_err();
        assert!(e.message.contains("recursion limit exceeded"), "{e:?}");
        let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            bomb.push_str(&format!(
                "{}: &{} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n",
                (b'a' + i) as char,
                (b'a' + i) as char,
                p = (b'a' + i - 1) as char
            ));
        }
        let e = parse(&bomb).unwrap_err();
        assert!(e.message.contains("expands to more than"), "{e:?}");
    }

    #[test]
    fn vault_values_stay_encrypted_and_unknown_tags_are_refused_with_positions() {
        let v = parse("a:\n  b: !vault |\n    $ANSIBLE_VAULT;1.1;AES256\n    6162\n")
            .unwrap()
            .unwrap()
            .to_json();
        assert_eq!(
            v["a"]["b"],
            json!({VAULT_KEY: "$ANSIBLE_VAULT;1.1;AES256\n6162\n"})
        );
        let e = parse("a: !vault [1]\n").unwrap_err();
        assert!(e.message.contains("!vault"), "{e:?}");
        let e = parse("a: !python/object x\n").unwrap_err();
        assert!(e.message.contains("!python/object"), "{e:?}");
        let e = parse("a: [1, 2\n").unwrap_err();
        assert!(e.pos.line >= 1, "{e:?}");
    }
}
