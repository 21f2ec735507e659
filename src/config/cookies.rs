//! The `cookies:` section in its runtime form: the server secret (from the file, from a file
//! it names, or none: the server then generates one at start) and the limit on UDP answers to
//! clients without a valid server cookie. The spec type is [`super::spec::CookiesSpec`].

use super::DataSource;
use super::spec::CookiesSpec;
use crate::source::{Document, Errors};

/// DNS Cookies as configured.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cookies {
    /// The configured secret, if any (from `secret` or `secret_file`).
    pub secret: Option<[u8; 16]>,
    /// The file it was read from (watched: a new secret there rotates at the reload).
    pub secret_file: Option<DataSource>,
    /// UDP answers larger than this to a query without a valid server cookie are sent
    /// truncated; 0: no limit.
    pub max_nocookie_response: u16,
}

/// The smallest limit that is not 0: below 512 bytes even answers without EDNS would be cut.
const MIN_LIMIT: u16 = 512;

/// Decodes the section, reading `secret_file`; problems go to `errors` at their position.
pub(super) fn decode(
    spec: &CookiesSpec,
    doc: &Document,
    errors: &mut Errors,
    resolve: &dyn Fn(&str) -> DataSource,
) -> Cookies {
    let mut out = Cookies {
        max_nocookie_response: spec.max_nocookie_response,
        ..Cookies::default()
    };
    if spec.max_nocookie_response != 0 && spec.max_nocookie_response < MIN_LIMIT {
        errors.0.push(doc.error(
            "cookies.max_nocookie_response",
            format!("must be 0 (no limit) or at least {MIN_LIMIT}"),
        ));
    }
    let (text, key) = match (&spec.secret, &spec.secret_file) {
        (Some(_), Some(_)) => {
            errors.0.push(doc.error(
                "cookies.secret_file",
                "give the secret or a file holding it, not both",
            ));
            return out;
        }
        (Some(s), None) => (s.clone(), "cookies.secret"),
        (None, Some(f)) => {
            let source = resolve(f);
            let bytes = match source.read() {
                Ok(b) => b,
                Err(e) => {
                    let msg = format!("cannot read {}: {e}", source.display());
                    errors.0.push(doc.error("cookies.secret_file", msg));
                    return out;
                }
            };
            out.secret_file = Some(source);
            (
                String::from_utf8_lossy(&bytes).into_owned(),
                "cookies.secret_file",
            )
        }
        (None, None) => return out,
    };
    match parse_secret(&text) {
        Some(s) => out.secret = Some(s),
        None => errors.0.push(doc.error(
            key,
            "the secret must be 32 hexadecimal digits (128 bits), e.g. from `openssl rand -hex 16`",
        )),
    }
    out
}

/// 32 hexadecimal digits (surrounding white space ignored) as 16 bytes.
pub fn parse_secret(text: &str) -> Option<[u8; 16]> {
    let t = text.trim().as_bytes();
    if t.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, pair) in t.chunks(2).enumerate() {
        let s = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(s, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_32_hex_digits() {
        assert_eq!(
            parse_secret(" e5e973e5a6b2a43f48e7dc849e37bfcf\n").map(|s| s[0]),
            Some(0xe5)
        );
        assert_eq!(parse_secret("e5e973"), None);
        assert_eq!(parse_secret("g5e973e5a6b2a43f48e7dc849e37bfcf"), None);
    }
}
