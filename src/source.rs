//! YAML sources with positions: every error points at `file:line:column`.
//!
//! `serde_yaml` turns a document into typed specs but reports only the first problem, without
//! a position once the document is a `Value`. This module parses each document twice: once
//! into a `serde_yaml::Value` (the data) and once through `yaml-rust2`'s event stream (an index
//! from every YAML path, such as `zones[0].records[2].ttl`, to its line and column). Typed
//! decoding then runs item by item through `serde_path_to_error`, so that every broken item is
//! reported, each with its path and position, instead of stopping at the first. A value with
//! a fixed set of choices is an enum decoded by serde, held in a [`Choice`] so that a name none
//! of the choices has is reported at its position without hiding the item's other problems.
//!
//! This module owns no format: `config` and `spec` say what the documents mean.

use std::collections::HashMap;
use std::fmt;

use serde::de::DeserializeOwned;
use serde_yaml::Value;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// The most characters of one input value that a message quotes; the rest is cut, and marked
/// with "…". A value in a file can be of any size, and messages go to logs and to `ctl status`.
pub const QUOTED_MAX: usize = 80;

/// The most characters of a message (or of a YAML path) kept in a [`SourceError`], whatever
/// produced it: a last bound behind [`quote`], for text this crate does not write itself.
pub const MESSAGE_MAX: usize = 1024;

/// An input value as messages show it: quoted and escaped like `{:?}`, at most
/// [`QUOTED_MAX`] characters of it, then "…" when there was more. Every message that quotes
/// what a file says goes through this (or through [`Document::error`], which bounds the
/// quotes in text from other crates the same way).
#[derive(Clone, Copy, Debug)]
pub struct Quoted<'a>(&'a str);

/// Quotes `value` for a message (see [`Quoted`]).
pub fn quote(value: &str) -> Quoted<'_> {
    Quoted(value)
}

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.char_indices().nth(QUOTED_MAX) {
            Some((cut, _)) => write!(f, "{:?}…", &self.0[..cut]),
            None => write!(f, "{:?}", self.0),
        }
    }
}

/// `message` with every quoted span longer than [`QUOTED_MAX`] characters cut (spans in
/// double quotes, escaped as `{:?}` escapes, and spans in backquotes, as serde writes them),
/// and the whole cut at [`MESSAGE_MAX`] characters.
pub fn bound_message(message: &str) -> String {
    let mut out = String::with_capacity(message.len().min(MESSAGE_MAX + 8));
    let mut chars = message.chars().peekable();
    let mut kept = 0;
    while let Some(c) = chars.next() {
        if kept >= MESSAGE_MAX {
            out.push('…');
            return out;
        }
        out.push(c);
        kept += 1;
        if c != '"' && c != '`' {
            continue;
        }
        // A quoted span: copy up to QUOTED_MAX characters (an escape such as `\n` or
        // `\u{1f}` counts as one), skip the rest, and keep the closing quote.
        let mut shown = 0;
        let mut cut = false;
        while let Some(d) = chars.next() {
            if d == c {
                out.push(d);
                kept += 1;
                if cut {
                    out.push('…');
                }
                break;
            }
            let mut token = String::from(d);
            if c == '"' && d == '\\' {
                match chars.next() {
                    Some('u') => {
                        token.push('u');
                        for e in chars.by_ref() {
                            token.push(e);
                            if e == '}' {
                                break;
                            }
                        }
                    }
                    Some(e) => token.push(e),
                    None => {}
                }
            }
            if shown < QUOTED_MAX {
                out.push_str(&token);
                kept += token.chars().count();
                shown += 1;
            } else {
                cut = true;
            }
        }
    }
    out
}

/// `path` cut at [`MESSAGE_MAX`] characters (a YAML path names the keys, which can be long).
fn bound_path(path: &str) -> String {
    match path.char_indices().nth(MESSAGE_MAX) {
        Some((cut, _)) => format!("{}…", &path[..cut]),
        None => path.to_string(),
    }
}

/// One problem found in an input file, with where it is and what was expected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceError {
    /// The file (or embedded name) the problem is in.
    pub file: String,
    /// 1-based line; 0 when the problem is about the file as a whole.
    pub line: usize,
    /// 1-based column; 0 when unknown.
    pub column: usize,
    /// The YAML path of the offending node (`.` for the document).
    pub path: String,
    /// What is wrong and, where possible, what was expected.
    pub message: String,
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "{}:{}:{}: ", self.file, self.line, self.column)?;
        } else {
            write!(f, "{}: ", self.file)?;
        }
        if self.path.is_empty() || self.path == "." {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// All the problems found in a set of inputs; never empty when returned as an error.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Errors(pub Vec<SourceError>);

impl Errors {
    /// True when nothing was reported.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Adds a problem that is about a whole file (I/O, format detection).
    pub fn file(&mut self, file: &str, message: impl Into<String>) {
        self.0.push(SourceError {
            file: file.to_string(),
            line: 0,
            column: 0,
            path: String::new(),
            message: bound_message(&message.into()),
        });
    }

    /// Appends every problem of `other`.
    pub fn extend(&mut self, other: Errors) {
        self.0.extend(other.0);
    }

    /// `Ok(value)` when no problem was reported, else all of them.
    pub fn into_result<T>(self, value: T) -> Result<T, Errors> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(self)
        }
    }
}

impl fmt::Display for Errors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Errors {}

/// A parsed YAML document with the position of every node.
pub struct Document {
    /// The name used in messages.
    pub file: String,
    /// The data.
    pub root: Value,
    positions: HashMap<String, (usize, usize)>,
    keys: HashMap<String, (usize, usize)>,
}

impl Document {
    /// Parses `text`; a syntax error is returned with its position.
    pub fn parse(file: &str, text: &str) -> Result<Document, Errors> {
        let root: Value = match serde_yaml::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                let (line, column) = e
                    .location()
                    .map(|l| (l.line(), l.column()))
                    .unwrap_or((0, 0));
                let mut message = e.to_string();
                // serde_yaml appends " at line L column C"; the prefix already says where.
                if let Some(i) = message.find(" at line ") {
                    message.truncate(i);
                }
                return Err(Errors(vec![SourceError {
                    file: file.to_string(),
                    line,
                    column,
                    path: ".".into(),
                    message: bound_message(&format!("YAML syntax: {message}")),
                }]));
            }
        };
        let mut index = PositionIndex::default();
        // The data parsed above, so this parse succeeds too; positions are best effort.
        let _ = Parser::new_from_str(text).load(&mut index, false);
        Ok(Document {
            file: file.to_string(),
            root,
            positions: index.positions,
            keys: index.keys,
        })
    }

    /// The position of `path`, or of its nearest ancestor that has one.
    pub fn position(&self, path: &str) -> (usize, usize) {
        let mut p = path.to_string();
        loop {
            if let Some(&pos) = self.positions.get(&p) {
                return pos;
            }
            match p.rfind(['.', '[']) {
                Some(i) => p.truncate(i),
                None => return self.positions.get("").copied().unwrap_or((1, 1)),
            }
        }
    }

    /// Builds an error located at `path`; long quoted values in `message` are cut (see
    /// [`bound_message`]).
    pub fn error(&self, path: &str, message: impl Into<String>) -> SourceError {
        let (line, column) = self.position(path);
        SourceError {
            file: self.file.clone(),
            line,
            column,
            path: if path.is_empty() {
                ".".into()
            } else {
                bound_path(path)
            },
            message: bound_message(&message.into()),
        }
    }

    /// Decodes `value` (found at `path`) as `T`, reporting a failure into `errors`.
    pub fn decode<T: DeserializeOwned>(
        &self,
        path: &str,
        value: &Value,
        errors: &mut Errors,
    ) -> Option<T> {
        match serde_path_to_error::deserialize::<_, T>(value) {
            Ok(v) => Some(v),
            Err(e) => {
                let inner = e.path().to_string();
                let full = join_path(path, &inner);
                let message = e.into_inner().to_string();
                let mut err = self.error(&full, message);
                // An unknown key is best pointed at by the key itself.
                if err.message.starts_with("unknown field")
                    && let Some(&(line, column)) = self.keys.get(&full)
                {
                    (err.line, err.column) = (line, column);
                }
                errors.0.push(err);
                None
            }
        }
    }

    /// The choice `value` (found at `path`), or `None` after reporting a refused one there.
    pub fn choice<T: Copy>(&self, path: &str, value: &Choice<T>, errors: &mut Errors) -> Option<T> {
        match value {
            Choice::Given(v) => Some(*v),
            Choice::Refused(message) => {
                errors.0.push(self.error(path, message.clone()));
                None
            }
        }
    }

    /// Decodes each element of the sequence `value` (at `path`) independently, so that one
    /// broken element does not hide the problems of the others.
    pub fn decode_each<T: DeserializeOwned>(
        &self,
        path: &str,
        value: &Value,
        errors: &mut Errors,
    ) -> Vec<(String, T)> {
        match value {
            Value::Null => Vec::new(),
            Value::Sequence(items) => items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| {
                    let p = format!("{path}[{i}]");
                    self.decode(&p, item, errors).map(|v| (p, v))
                })
                .collect(),
            _ => {
                errors.0.push(self.error(path, "expected a list"));
                Vec::new()
            }
        }
    }
}

/// A spec value with a fixed set of choices: an enum that serde decodes from its name
/// (`#[derive(Deserialize)]` with `rename_all`), kept apart from the table around it so that a
/// value that is none of the names does not hide the table's other problems. The compiler takes
/// it with [`Document::choice`], which reports a refused value at its position, worded by
/// [`Choices::refusal`]. A value that is not even text fails the table's decoding, as a
/// `String` field would.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Choice<T> {
    /// One of the names.
    Given(T),
    /// Any other text, with the message that refuses it.
    Refused(String),
}

impl<T: Default> Default for Choice<T> {
    fn default() -> Self {
        Choice::Given(T::default())
    }
}

impl<T> Choice<T> {
    /// The choice, when the value was one of the names.
    pub fn given(&self) -> Option<&T> {
        match self {
            Choice::Given(v) => Some(v),
            Choice::Refused(_) => None,
        }
    }
}

/// An enum a [`Choice`] holds: how a value that is none of its names is refused.
pub trait Choices: DeserializeOwned {
    /// The message for `found`, which is none of `names` (the enum's names, as serde lists
    /// them). By default "expected `a`, `b` or `c`".
    fn refusal(found: &str, names: &[&str]) -> String {
        let _ = found;
        format!("expected {}", listed(names, "`"))
    }
}

/// Decodes a value written either as a string or as a map (a listen address or its map, a
/// node name or `{node, weight}`, a name server or `{name, addresses}`): the string builds
/// `T` with `from_str`, the map decodes as `M` (whose unknown keys and wrong values are then
/// reported by name, at their own path) and builds `T` with `from_map`. This stands in for
/// serde's `untagged` enums, which accept unknown keys in a map variant and report any other
/// problem only as "did not match any variant".
pub fn string_or_map<'de, D, T, M>(
    d: D,
    expecting: &'static str,
    from_str: fn(String) -> T,
    from_map: fn(M) -> T,
) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    M: serde::Deserialize<'de>,
{
    struct Either<T, M> {
        expecting: &'static str,
        from_str: fn(String) -> T,
        from_map: fn(M) -> T,
    }
    impl<'de, T, M: serde::Deserialize<'de>> serde::de::Visitor<'de> for Either<T, M> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.expecting)
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<T, E> {
            Ok((self.from_str)(v.to_owned()))
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
            let m = M::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
            Ok((self.from_map)(m))
        }
    }
    d.deserialize_any(Either {
        expecting,
        from_str,
        from_map,
    })
}

/// `names` as a message lists them: each between `mark`s, the last after "or".
pub fn listed(names: &[&str], mark: &str) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("{mark}{n}{mark}")).collect();
    match quoted.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        Some((last, _)) => last.clone(),
        None => String::new(),
    }
}

impl<'de, T: Choices> serde::Deserialize<'de> for Choice<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Choice<T>, D::Error> {
        let found = <String as serde::Deserialize>::deserialize(d)?;
        let names = serde::de::value::StrDeserializer::<Refusal>::new(&found);
        Ok(match T::deserialize(names) {
            Ok(v) => Choice::Given(v),
            Err(Refusal(names)) => Choice::Refused(T::refusal(&found, names)),
        })
    }
}

/// What decoding a choice from its name can fail with: a name that is none of the choices,
/// with the choices' names (serde's derive hands them over).
#[derive(Debug)]
struct Refusal(&'static [&'static str]);

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "expected {}", listed(self.0, "`"))
    }
}

impl std::error::Error for Refusal {}

impl serde::de::Error for Refusal {
    fn custom<M: fmt::Display>(_: M) -> Self {
        Refusal(&[])
    }

    fn unknown_variant(_: &str, expected: &'static [&'static str]) -> Self {
        Refusal(expected)
    }
}

/// Joins a parent path and a path relative to it.
pub fn join_path(parent: &str, child: &str) -> String {
    if child.is_empty() || child == "." {
        parent.to_string()
    } else if parent.is_empty() {
        child.to_string()
    } else if child.starts_with('[') {
        format!("{parent}{child}")
    } else {
        format!("{parent}.{child}")
    }
}

/// Builds the path → position index from the event stream.
#[derive(Default)]
struct PositionIndex {
    positions: HashMap<String, (usize, usize)>,
    keys: HashMap<String, (usize, usize)>,
    stack: Vec<Frame>,
}

enum Frame {
    Seq {
        path: String,
        next: usize,
    },
    Map {
        path: String,
        key: Option<String>,
        first: bool,
    },
}

impl PositionIndex {
    /// The path of the node that starts now, advancing the parent's cursor.
    fn next_path(&mut self, scalar: Option<&str>) -> Option<String> {
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some(Frame::Seq { path, next }) => {
                let p = format!("{path}[{next}]");
                *next += 1;
                Some(p)
            }
            Some(Frame::Map { path, key, .. }) => match key.take() {
                Some(k) => Some(join_path(path, &k)),
                None => {
                    // This node is a key; remember it for the value that follows.
                    *key = Some(scalar.unwrap_or("?").to_string());
                    None
                }
            },
        }
    }
}

impl MarkedEventReceiver for PositionIndex {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let pos = (mark.line(), mark.col() + 1);
        match ev {
            Event::Scalar(ref s, ..) => {
                let is_key = matches!(self.stack.last(), Some(Frame::Map { key: None, .. }));
                if is_key {
                    if let Some(Frame::Map { path, first, .. }) = self.stack.last_mut() {
                        // A key's position is where its entry starts; a block mapping starts
                        // where its first key does.
                        let p = join_path(path, s);
                        self.keys.entry(p).or_insert(pos);
                        if *first {
                            *first = false;
                            self.positions.insert(path.clone(), pos);
                        }
                    }
                    self.next_path(Some(s));
                } else if let Some(p) = self.next_path(None) {
                    self.positions.insert(p, pos);
                }
            }
            Event::Alias(_) => {
                self.next_path(Some("*"));
            }
            Event::SequenceStart(..) => {
                let p = self.next_path(None).unwrap_or_default();
                self.positions.entry(p.clone()).or_insert(pos);
                self.stack.push(Frame::Seq { path: p, next: 0 });
            }
            Event::MappingStart(..) => {
                let p = self.next_path(None).unwrap_or_default();
                self.positions.entry(p.clone()).or_insert(pos);
                self.stack.push(Frame::Map {
                    path: p,
                    key: None,
                    first: true,
                });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
#[path = "source_tests.rs"]
mod tests;
