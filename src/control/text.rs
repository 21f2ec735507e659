//! Free text that crosses the control socket (override reasons, push sources) and reaches an
//! operator's terminal: the rule for what the server accepts, and the escaping `signpost ctl`
//! applies to everything it prints, so that text from a client, a state file edited by hand or
//! a remote health-check error can neither move the cursor, clear the screen nor fake lines.

use std::borrow::Cow;

/// The longest override reason accepted, in bytes.
pub const MAX_REASON: usize = 512;

/// The longest push source accepted, in bytes.
pub const MAX_SOURCE: usize = 128;

/// Why a piece of free text was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TextError {
    /// Longer than the limit (field, limit in bytes).
    TooLong(&'static str, usize),
    /// Contains a control or bidirectional-formatting character (field, the character).
    Control(&'static str, char),
}

impl std::fmt::Display for TextError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TextError::TooLong(field, max) => {
                write!(f, "`{field}` is longer than {max} bytes")
            }
            TextError::Control(field, c) => write!(
                f,
                "`{field}` contains the control character U+{:04X}; use plain text on one line",
                u32::from(*c)
            ),
        }
    }
}

impl std::error::Error for TextError {}

/// True for the characters a terminal acts on rather than shows: C0, DEL and C1 controls, and
/// the bidirectional embeddings, overrides and isolates that reorder what follows them.
fn is_unsafe(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Checks a free-text field: at most `max` bytes and no character [`escape`] would rewrite.
pub fn check(field: &'static str, text: &str, max: usize) -> Result<(), TextError> {
    if text.len() > max {
        return Err(TextError::TooLong(field, max));
    }
    match text.chars().find(|&c| is_unsafe(c)) {
        Some(c) => Err(TextError::Control(field, c)),
        None => Ok(()),
    }
}

/// `text` safe to print on a terminal: `\n`, `\r` and `\t` as those two-character escapes,
/// other controls as `\xHH` (below U+0100) or `\u{HHHH}`. Text without any is returned as is.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if is_unsafe(c) && u32::from(c) < 0x100 => {
                out.push_str(&format!("\\x{:02x}", u32::from(c)))
            }
            c if is_unsafe(c) => out.push_str(&format!("\\u{{{:04x}}}", u32::from(c))),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// A line of JSON safe to print on a terminal, still valid JSON with the same value: the
/// characters JSON allows raw inside strings but a terminal acts on (DEL, C1 controls,
/// bidirectional formatting) written as `\uHHHH`. (They can only occur inside strings, and
/// C0 controls are escaped by every JSON encoder.)
pub fn escape_json(line: &str) -> Cow<'_, str> {
    if !line.chars().any(is_unsafe) {
        return Cow::Borrowed(line);
    }
    let mut out = String::with_capacity(line.len() + 8);
    for c in line.chars() {
        if is_unsafe(c) {
            out.push_str(&format!("\\u{:04x}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_a_terminal_acts_on() {
        assert_eq!(escape("moving racks"), "moving racks");
        assert!(matches!(escape("plain"), Cow::Borrowed(_)));
        assert_eq!(
            escape("a\r\nfra1  up\x1b[2J\u{9b}\u{202e}é"),
            "a\\r\\nfra1  up\\x1b[2J\\x9b\\u{202e}é"
        );
    }

    #[test]
    fn json_stays_json() {
        let v = serde_json::json!({"why": "x\u{7f}\u{9b}\u{2066}y\x1b"});
        let line = serde_json::to_string(&v).unwrap();
        let safe = escape_json(&line);
        assert!(!safe.chars().any(is_unsafe), "{safe}");
        assert_eq!(serde_json::from_str::<serde_json::Value>(&safe).unwrap(), v);
    }

    #[test]
    fn checks_length_and_controls() {
        assert!(check("reason", "disk swap, ticket 42", MAX_REASON).is_ok());
        assert_eq!(
            check("reason", "a\nb", MAX_REASON),
            Err(TextError::Control("reason", '\n'))
        );
        assert_eq!(
            check("reason", &"x".repeat(MAX_REASON + 1), MAX_REASON),
            Err(TextError::TooLong("reason", MAX_REASON))
        );
        assert!(check("reason", &"é".repeat(MAX_REASON / 2), MAX_REASON).is_ok());
    }
}
