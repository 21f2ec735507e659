//! NOTIFICATION messages (RFC 4271 §4.5): the ones Signpost sends, and a readable text for
//! the status of the ones sent and received.

use std::fmt;

use bgpkit_parser::models::{AsnLength, BgpError, BgpMessage, BgpNotificationMessage};
use bytes::Bytes;

/// Error codes (RFC 4271 §4.5).
pub(crate) const HEADER_ERROR: u8 = 1;
/// OPEN Message Error.
pub(crate) const OPEN_ERROR: u8 = 2;
/// UPDATE Message Error.
pub(crate) const UPDATE_ERROR: u8 = 3;
/// Hold Timer Expired.
pub(crate) const HOLD_TIMER_EXPIRED: u8 = 4;
/// Finite State Machine Error (RFC 6608 subcodes).
pub(crate) const FSM_ERROR: u8 = 5;
/// Cease (RFC 4486 subcodes).
pub(crate) const CEASE: u8 = 6;

/// A NOTIFICATION's code, subcode and data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Notice {
    /// Error code.
    pub code: u8,
    /// Error subcode.
    pub subcode: u8,
    /// Data field.
    pub data: Vec<u8>,
}

impl Notice {
    /// A NOTIFICATION with no data.
    pub fn new(code: u8, subcode: u8) -> Notice {
        Notice {
            code,
            subcode,
            data: Vec::new(),
        }
    }

    /// The same NOTIFICATION with a data field.
    pub fn with_data(mut self, data: &[u8]) -> Notice {
        self.data = data.to_vec();
        self
    }

    /// The whole message, header included, encoded by bgpkit-parser.
    pub fn encode(&self) -> Bytes {
        let msg = BgpMessage::Notification(BgpNotificationMessage {
            error: BgpError::new(self.code, self.subcode),
            data: self.data.clone(),
        });
        // Encoding a NOTIFICATION only fails when it exceeds 65535 bytes; ours carry at most a
        // few bytes of data.
        msg.encode(AsnLength::Bits32).unwrap_or_default()
    }

    /// From a parsed NOTIFICATION.
    pub fn from_message(msg: &BgpNotificationMessage) -> Notice {
        let (code, subcode) = msg.error.get_codes();
        Notice {
            code,
            subcode,
            data: msg.data.clone(),
        }
    }
}

/// The IANA name of an error code and subcode, when it is one Signpost knows.
fn names(code: u8, subcode: u8) -> (&'static str, Option<&'static str>) {
    let sub = |list: &[&'static str]| list.get(usize::from(subcode)).copied();
    match code {
        HEADER_ERROR => (
            "Message Header Error",
            sub(&[
                "Unspecific",
                "Connection Not Synchronized",
                "Bad Message Length",
                "Bad Message Type",
            ]),
        ),
        OPEN_ERROR => (
            "OPEN Message Error",
            sub(&[
                "Unspecific",
                "Unsupported Version Number",
                "Bad Peer AS",
                "Bad BGP Identifier",
                "Unsupported Optional Parameter",
                "Deprecated",
                "Unacceptable Hold Time",
                "Unsupported Capability",
            ]),
        ),
        UPDATE_ERROR => (
            "UPDATE Message Error",
            sub(&[
                "Unspecific",
                "Malformed Attribute List",
                "Unrecognized Well-known Attribute",
                "Missing Well-known Attribute",
                "Attribute Flags Error",
                "Attribute Length Error",
                "Invalid ORIGIN Attribute",
                "Deprecated",
                "Invalid NEXT_HOP Attribute",
                "Optional Attribute Error",
                "Invalid Network Field",
                "Malformed AS_PATH",
            ]),
        ),
        HOLD_TIMER_EXPIRED => ("Hold Timer Expired", None),
        FSM_ERROR => (
            "Finite State Machine Error",
            sub(&[
                "Unspecified",
                "Unexpected Message in OpenSent",
                "Unexpected Message in OpenConfirm",
                "Unexpected Message in Established",
            ]),
        ),
        CEASE => (
            "Cease",
            sub(&[
                "Unspecific",
                "Maximum Number of Prefixes Reached",
                "Administrative Shutdown",
                "Peer De-configured",
                "Administrative Reset",
                "Connection Rejected",
                "Other Configuration Change",
                "Connection Collision Resolution",
                "Out of Resources",
                "Hard Reset",
                "BFD Down",
            ]),
        ),
        7 => ("ROUTE-REFRESH Message Error", None),
        _ => ("Unknown error code", None),
    }
}

impl fmt::Display for Notice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (code_name, sub_name) = names(self.code, self.subcode);
        write!(f, "{code_name}")?;
        match sub_name {
            Some(name) => write!(f, " / {name}")?,
            None if self.subcode != 0 => write!(f, " / subcode {}", self.subcode)?,
            None => {}
        }
        write!(f, " ({}/{})", self.code, self.subcode)?;
        // RFC 8203 shutdown communication: Cease 2 or 4 data is a length-prefixed UTF-8 text.
        if self.code == CEASE
            && matches!(self.subcode, 2 | 4)
            && let Some((&len, rest)) = self.data.split_first()
            && let Some(text) = rest.get(..usize::from(len))
            && let Ok(text) = std::str::from_utf8(text)
        {
            write!(f, ": {text:?}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_names_code_and_subcode() {
        assert_eq!(
            Notice::new(CEASE, 1).to_string(),
            "Cease / Maximum Number of Prefixes Reached (6/1)"
        );
        assert_eq!(
            Notice::new(HOLD_TIMER_EXPIRED, 0).to_string(),
            "Hold Timer Expired (4/0)"
        );
        assert_eq!(
            Notice::new(99, 3).to_string(),
            "Unknown error code / subcode 3 (99/3)"
        );
    }

    #[test]
    fn encodes_header_and_data() {
        let bytes = Notice::new(HEADER_ERROR, 2)
            .with_data(&[0x20, 0x00])
            .encode();
        assert_eq!(&bytes[..16], &[0xff; 16]);
        assert_eq!(&bytes[16..], &[0, 23, 3, 1, 2, 0x20, 0x00]);
    }
}
