//! Position-carrying YAML node tree built from `saphyr-parser` events.
//!
//! This layer owns YAML *structure* only: it knows nothing about mig-parted
//! fields. It keeps every scalar's presentation style so that the typed
//! decoder can tell `true` (a boolean) from `"true"` (a string).
//!
//! Deliberate restrictions, all reported as [`YamlError`]s:
//! - anchors (`&a`) and aliases (`*a`) are rejected rather than resolved:
//!   mig-parted files never need them, and resolving them would make error
//!   positions point at the anchor instead of the place the user wrote.
//! - tags (`!!str`, `!foo`) are rejected, so that a scalar's type is always
//!   decided by its style alone.
//! - duplicate scalar keys in one mapping are rejected (the message names
//!   both lines); the first occurrence is kept in the tree.
//! - a stream with more than one document is rejected.
//! - nesting deeper than [`MAX_DEPTH`] aborts loading.
//!
//! Syntax errors and the depth limit abort loading (no tree is returned);
//! the other problems are collected and the tree is still returned so that
//! the caller can report further, independent errors.

use std::collections::HashMap;
use std::fmt;

use saphyr_parser::{Event, Marker, Parser, ScanError, Span};
use serde::Serialize;

/// Deepest sequence/mapping nesting accepted. mig-parted files need 5
/// levels; the limit keeps hostile input from growing unbounded stacks.
pub const MAX_DEPTH: usize = 64;

/// A 1-based line and column (columns count characters, not bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Pos {
    pub line: u32,
    pub column: u32,
}

impl Pos {
    pub const fn new(line: u32, column: u32) -> Self {
        Self { line, column }
    }

    fn from_marker(m: &Marker) -> Self {
        // saphyr lines are already 1-based; its columns are 0-based.
        Self {
            line: saturate(m.line()),
            column: saturate(m.col()).saturating_add(1),
        }
    }

    fn from_span(s: &Span) -> Self {
        Self::from_marker(&s.start)
    }
}

fn saturate(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// How a scalar was written; only plain scalars may be non-strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScalarStyle {
    Plain,
    SingleQuoted,
    DoubleQuoted,
    Literal,
    Folded,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scalar {
    pub value: String,
    pub style: ScalarStyle,
}

impl Scalar {
    pub fn is_plain(&self) -> bool {
        self.style == ScalarStyle::Plain
    }

    /// YAML 1.2 core-schema null: an empty plain scalar, `~` or `null`.
    pub fn is_null(&self) -> bool {
        self.is_plain() && matches!(self.value.as_str(), "" | "~" | "null" | "Null" | "NULL")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeKind {
    Scalar(Scalar),
    Sequence(Vec<Node>),
    Mapping(Vec<MapEntry>),
    /// Stands in for a rejected alias, so that the decoder can skip it
    /// without reporting a second, confusing error.
    Invalid,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub kind: NodeKind,
    pub pos: Pos,
}

impl Node {
    pub fn as_scalar(&self) -> Option<&Scalar> {
        match &self.kind {
            NodeKind::Scalar(s) => Some(s),
            _ => None,
        }
    }
}

/// One `key: value` pair; the key is a full node so it has its own position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapEntry {
    pub key: Node,
    pub value: Node,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{pos}: {message}")]
pub struct YamlError {
    pub pos: Pos,
    pub message: String,
}

impl YamlError {
    fn new(pos: Pos, message: impl Into<String>) -> Self {
        Self {
            pos,
            message: message.into(),
        }
    }

    fn from_scan(e: &ScanError) -> Self {
        Self::new(
            Pos::from_marker(e.marker()),
            format!("invalid YAML: {}", e.info()),
        )
    }
}

/// Result of [`load`]. `root` is `None` when the input holds no document or
/// when loading was aborted; `errors` may be non-empty even with a root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    pub root: Option<Node>,
    pub errors: Vec<YamlError>,
}

enum Frame {
    Sequence {
        pos: Pos,
        items: Vec<Node>,
    },
    Mapping {
        pos: Pos,
        entries: Vec<MapEntry>,
        /// A key waiting for its value; `false` marks a duplicate whose
        /// value must be dropped.
        pending_key: Option<(Node, bool)>,
        first_seen: HashMap<String, Pos>,
    },
}

struct Builder {
    stack: Vec<Frame>,
    root: Option<Node>,
    documents: usize,
    errors: Vec<YamlError>,
}

impl Builder {
    fn check_props(&mut self, pos: Pos, anchor_id: usize, has_tag: bool) {
        // saphyr numbers anchors from 1; 0 means "no anchor".
        if anchor_id != 0 {
            self.errors.push(YamlError::new(
                pos,
                "anchors (`&name`) are not supported in mig-parted configs",
            ));
        }
        if has_tag {
            self.errors.push(YamlError::new(
                pos,
                "tags (`!name`) are not supported in mig-parted configs",
            ));
        }
    }

    fn push_frame(&mut self, frame: Frame, pos: Pos) -> Result<(), YamlError> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(YamlError::new(
                pos,
                format!("nesting is deeper than the limit of {MAX_DEPTH} levels"),
            ));
        }
        self.stack.push(frame);
        Ok(())
    }

    /// Attaches a finished node to its parent, or makes it the root.
    fn complete(&mut self, node: Node) {
        match self.stack.last_mut() {
            None => {
                // Only the first document's root is kept; later documents
                // have already been reported.
                if self.root.is_none() {
                    self.root = Some(node);
                }
            }
            Some(Frame::Sequence { items, .. }) => items.push(node),
            Some(Frame::Mapping {
                entries,
                pending_key,
                first_seen,
                ..
            }) => match pending_key.take() {
                Some((key, keep)) => {
                    if keep {
                        entries.push(MapEntry { key, value: node });
                    }
                }
                None => {
                    let mut keep = true;
                    if let NodeKind::Scalar(s) = &node.kind {
                        if let Some(first) = first_seen.get(&s.value) {
                            self.errors.push(YamlError::new(
                                node.pos,
                                format!(
                                    "duplicate key `{}`: first defined on line {}, repeated on line {}",
                                    excerpt(&s.value),
                                    first.line,
                                    node.pos.line
                                ),
                            ));
                            keep = false;
                        } else {
                            first_seen.insert(s.value.clone(), node.pos);
                        }
                    }
                    *pending_key = Some((node, keep));
                }
            },
        }
    }

    fn on_event(&mut self, event: Event<'_>, span: &Span) -> Result<(), YamlError> {
        let pos = Pos::from_span(span);
        match event {
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => {}
            Event::DocumentStart(_) => {
                self.documents = self.documents.saturating_add(1);
                if self.documents > 1 {
                    self.errors.push(YamlError::new(
                        pos,
                        "multiple YAML documents are not supported; expected a single document",
                    ));
                }
            }
            Event::Alias(_) => {
                self.errors.push(YamlError::new(
                    pos,
                    "aliases (`*name`) are not supported in mig-parted configs",
                ));
                self.complete(Node {
                    kind: NodeKind::Invalid,
                    pos,
                });
            }
            Event::Scalar(value, style, anchor, tag) => {
                self.check_props(pos, anchor, tag.is_some());
                let style = match style {
                    saphyr_parser::ScalarStyle::Plain => ScalarStyle::Plain,
                    saphyr_parser::ScalarStyle::SingleQuoted => ScalarStyle::SingleQuoted,
                    saphyr_parser::ScalarStyle::DoubleQuoted => ScalarStyle::DoubleQuoted,
                    saphyr_parser::ScalarStyle::Literal => ScalarStyle::Literal,
                    saphyr_parser::ScalarStyle::Folded => ScalarStyle::Folded,
                };
                self.complete(Node {
                    kind: NodeKind::Scalar(Scalar {
                        value: value.into_owned(),
                        style,
                    }),
                    pos,
                });
            }
            Event::SequenceStart(anchor, tag) => {
                self.check_props(pos, anchor, tag.is_some());
                self.push_frame(
                    Frame::Sequence {
                        pos,
                        items: Vec::new(),
                    },
                    pos,
                )?;
            }
            Event::MappingStart(anchor, tag) => {
                self.check_props(pos, anchor, tag.is_some());
                self.push_frame(
                    Frame::Mapping {
                        pos,
                        entries: Vec::new(),
                        pending_key: None,
                        first_seen: HashMap::new(),
                    },
                    pos,
                )?;
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let node = match self.stack.pop() {
                    Some(Frame::Sequence { pos, items }) => Node {
                        kind: NodeKind::Sequence(items),
                        pos,
                    },
                    Some(Frame::Mapping { pos, entries, .. }) => Node {
                        kind: NodeKind::Mapping(entries),
                        pos,
                    },
                    None => {
                        // saphyr never emits an unbalanced end; refuse
                        // rather than trust that blindly.
                        return Err(YamlError::new(
                            pos,
                            "invalid YAML: unbalanced end of collection",
                        ));
                    }
                };
                self.complete(node);
            }
        }
        Ok(())
    }
}

/// Parses `src` as a single YAML document into a [`Node`] tree.
///
/// Never panics: every problem is returned in [`Loaded::errors`].
pub fn load(src: &str) -> Loaded {
    let mut builder = Builder {
        stack: Vec::new(),
        root: None,
        documents: 0,
        errors: Vec::new(),
    };
    for item in Parser::new_from_str(src) {
        let outcome = match item {
            Ok((event, span)) => builder.on_event(event, &span),
            Err(e) => Err(YamlError::from_scan(&e)),
        };
        if let Err(e) = outcome {
            builder.errors.push(e);
            return Loaded {
                root: None,
                errors: builder.errors,
            };
        }
    }
    Loaded {
        root: builder.root,
        errors: builder.errors,
    }
}

/// Shortens and escapes user text for inclusion in a one-line message.
pub fn excerpt(s: &str) -> String {
    const MAX_CHARS: usize = 40;
    let mut out: String = s
        .chars()
        .take(MAX_CHARS)
        .flat_map(char::escape_debug)
        .collect();
    if s.chars().nth(MAX_CHARS).is_some() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(src: &str) -> Node {
        let loaded = load(src);
        assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
        match loaded.root {
            Some(n) => n,
            None => panic!("no root for {src:?}"),
        }
    }

    fn mapping(n: &Node) -> &[MapEntry] {
        match &n.kind {
            NodeKind::Mapping(m) => m,
            other => panic!("not a mapping: {other:?}"),
        }
    }

    #[test]
    fn positions_are_one_based() {
        let n = root("a: 1\nbb:\n  - x\n  - 'y'\n");
        assert_eq!(n.pos, Pos::new(1, 1));
        let m = mapping(&n);
        assert_eq!(m.len(), 2);
        let second = m.get(1).unwrap();
        assert_eq!(second.key.pos, Pos::new(2, 1));
        let NodeKind::Sequence(items) = &second.value.kind else {
            panic!("expected sequence");
        };
        assert_eq!(items.get(1).unwrap().pos, Pos::new(4, 5));
        assert_eq!(
            items.get(1).unwrap().as_scalar().unwrap().style,
            ScalarStyle::SingleQuoted
        );
    }

    #[test]
    fn keeps_scalar_style() {
        let n = root("a: true\nb: \"true\"\n");
        let m = mapping(&n);
        assert!(m.first().unwrap().value.as_scalar().unwrap().is_plain());
        assert!(!m.get(1).unwrap().value.as_scalar().unwrap().is_plain());
    }

    #[test]
    fn duplicate_keys_name_both_lines() {
        let loaded = load("a: 1\nb: 2\na: 3\n");
        assert_eq!(loaded.errors.len(), 1);
        let e = loaded.errors.first().unwrap();
        assert_eq!(e.pos, Pos::new(3, 1));
        assert!(e.message.contains("line 1"), "{}", e.message);
        assert!(e.message.contains("line 3"), "{}", e.message);
        // The first value wins and the tree is still usable.
        let root = loaded.root.unwrap();
        let m = mapping(&root);
        assert_eq!(m.len(), 2);
        assert_eq!(m.first().unwrap().value.as_scalar().unwrap().value, "1");
    }

    #[test]
    fn anchors_aliases_and_tags_are_rejected() {
        let loaded = load("a: &x 1\nb: *x\nc: !!str 3\n");
        let msgs: Vec<_> = loaded.errors.iter().map(|e| (e.pos, &e.message)).collect();
        assert_eq!(msgs.len(), 3, "{msgs:?}");
        assert!(
            msgs.iter()
                .any(|(p, m)| *p == Pos::new(1, 4) && m.contains("anchors"))
        );
        assert!(
            msgs.iter()
                .any(|(p, m)| *p == Pos::new(2, 4) && m.contains("aliases"))
        );
        assert!(
            msgs.iter()
                .any(|(p, m)| *p == Pos::new(3, 4) && m.contains("tags"))
        );
    }

    #[test]
    fn depth_limit() {
        let deep = "[".repeat(MAX_DEPTH + 1);
        let loaded = load(&deep);
        assert!(loaded.root.is_none());
        assert!(loaded.errors.iter().any(|e| e.message.contains("nesting")));
        // Exactly at the limit is fine.
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(load(&ok).errors.is_empty());
    }

    #[test]
    fn very_deep_input_does_not_overflow() {
        let deep = "[".repeat(200_000);
        assert!(!load(&deep).errors.is_empty());
        let deep_block = (0..2000)
            .map(|i| format!("{}- \n", " ".repeat(i)))
            .collect::<String>();
        let _ = load(&deep_block);
    }

    #[test]
    fn empty_and_multi_document() {
        let empty = load("# just a comment\n");
        assert!(empty.root.is_none() && empty.errors.is_empty());
        let multi = load("a: 1\n---\nb: 2\n");
        assert_eq!(multi.errors.len(), 1);
        assert_eq!(multi.errors.first().unwrap().pos, Pos::new(2, 1));
    }

    #[test]
    fn syntax_error_is_fatal() {
        let loaded = load("a: [0, 1\nb: 2\n");
        assert!(loaded.root.is_none());
        assert_eq!(loaded.errors.len(), 1);
        assert!(
            loaded
                .errors
                .first()
                .unwrap()
                .message
                .starts_with("invalid YAML")
        );
    }

    #[test]
    fn excerpt_truncates_and_escapes() {
        assert_eq!(excerpt("a\nb"), "a\\nb");
        let long = "x".repeat(100);
        assert_eq!(excerpt(&long).chars().count(), 41);
    }
}
