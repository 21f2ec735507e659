//! EDNS options: Client Subnet (RFC 7871), validated, and the ones that ask for something
//! back: COOKIE (RFC 7873), NSID (RFC 5001) and edns-tcp-keepalive (RFC 7828). The decoder
//! notes that a query carries the latter (a bit each in [`Edns::asks`](super::Edns::asks), the cookie's bytes borrowed from
//! the packet) and refuses malformed ones; [`Writer::opt_option`] appends an option to the OPT
//! record a response has just written. Why a query was malformed is a [`Malformed`], which the
//! answer path turns into an Extended DNS Error's text (RFC 8914).

use std::net::IpAddr;

use super::{ClientSubnet, Writer, rcode};

/// EDNS option code of NSID (RFC 5001).
pub const OPT_NSID: u16 = 3;
/// EDNS option code of COOKIE (RFC 7873).
pub const OPT_COOKIE: u16 = 10;
/// EDNS option code of edns-tcp-keepalive (RFC 7828).
pub const OPT_KEEPALIVE: u16 = 11;
/// EDNS option code of Extended DNS Error (RFC 8914).
pub const OPT_EDE: u16 = 15;

/// The highest option code [`read`] looks at: anything above is ignored without a call.
pub(super) const HIGHEST_ASK: u16 = OPT_KEEPALIVE;

/// Bits of [`Edns::asks`](super::Edns::asks): what a query's options ask for.
pub mod ask {
    /// An empty NSID option: the server's identifier is wanted (RFC 5001 §2.1).
    pub const NSID: u8 = 1;
    /// A COOKIE option (RFC 7873), in [`Query::cookie`](crate::wire::Query::cookie).
    pub const COOKIE: u8 = 2;
    /// An edns-tcp-keepalive option (RFC 7828).
    pub const KEEPALIVE: u8 = 4;
}

/// Why a query is malformed (answered FORMERR), as far as the decoder can say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Malformed {
    /// A record of the additional section cut short or with a bad name.
    Record,
    /// An OPT record not owned by the root, or a second one.
    Opt,
    /// An EDNS option cut short.
    Option,
    /// A Client Subnet option that breaks RFC 7871 §6, or a second one.
    Ecs,
    /// A COOKIE option of a length RFC 7873 §5.2.2 refuses (not 8, nor 16 to 40), or a second
    /// one.
    Cookie,
    /// An edns-tcp-keepalive option with a TIMEOUT in a query (RFC 7828 §3.2.1).
    Keepalive,
    /// An edns-tcp-keepalive option over UDP (RFC 7828 §3.2.1).
    KeepaliveOverUdp,
}

impl Malformed {
    /// The text an Extended DNS Error carries for it.
    pub fn text(self) -> &'static str {
        match self {
            Malformed::Record => "malformed additional record",
            Malformed::Opt => "OPT record not at the root, or more than one",
            Malformed::Option => "EDNS option cut short",
            Malformed::Ecs => "malformed EDNS Client Subnet option (RFC 7871)",
            Malformed::Cookie => "malformed COOKIE option (RFC 7873: 8 or 16 to 40 octets)",
            Malformed::Keepalive => "edns-tcp-keepalive with a TIMEOUT in a query (RFC 7828)",
            Malformed::KeepaliveOverUdp => "edns-tcp-keepalive over UDP (RFC 7828)",
        }
    }
}

/// Decodes and validates an ECS option body (RFC 7871 §6 and §7.1.1).
#[inline(always)]
pub(super) fn parse_ecs(body: &[u8]) -> Result<ClientSubnet, u16> {
    let head = body.get(..4).ok_or(rcode::FORMERR)?;
    let family = u16::from_be_bytes([head[0], head[1]]);
    let source = head[2];
    let scope = head[3];
    let addr = &body[4..];
    // "ADDRESS ... MUST be truncated to the number of bits indicated by the SOURCE
    // PREFIX-LENGTH field, padding with 0 bits to pad to the end of the last octet needed."
    let needed = (source as usize).div_ceil(8);
    // "SCOPE PREFIX-LENGTH ... In queries, it MUST be set to 0."
    if scope != 0 || addr.len() != needed {
        return Err(rcode::FORMERR);
    }
    let max = match family {
        1 => 32,
        2 => 128,
        _ => return Err(rcode::FORMERR),
    };
    if source > max {
        return Err(rcode::FORMERR);
    }
    // "... the Server MUST return FORMERR" when bits beyond the source prefix are set.
    if source % 8 != 0 {
        let last = addr[needed - 1];
        let mask = 0xffu8 >> (source % 8);
        if last & mask != 0 {
            return Err(rcode::FORMERR);
        }
    }
    let addr = if family == 1 {
        let mut b = [0u8; 4];
        super::copy::copy(&mut b[..needed], addr);
        IpAddr::from(b)
    } else {
        let mut b = [0u8; 16];
        super::copy::copy(&mut b[..needed], addr);
        IpAddr::from(b)
    };
    Ok(ClientSubnet {
        addr,
        source_prefix: source,
    })
}

/// The [`ask`] bit of an option of `code` at most [`HIGHEST_ASK`] with its `body` (0 for
/// codes that ask for nothing); `cookie` receives the COOKIE option's body.
#[cold]
#[inline(never)]
pub(super) fn read<'a>(code: u16, body: &'a [u8], cookie: &mut &'a [u8]) -> Result<u8, Malformed> {
    Ok(match code {
        // RFC 5001 §2.1: a query asks with an empty option; anything else is not a request.
        OPT_NSID if body.is_empty() => ask::NSID,
        OPT_COOKIE => {
            // RFC 7873 §5.2.2: a client cookie alone (8), or with a server cookie of 8 to 32.
            if !(body.len() == 8 || (16..=40).contains(&body.len())) || !cookie.is_empty() {
                return Err(Malformed::Cookie);
            }
            *cookie = body;
            ask::COOKIE
        }
        OPT_KEEPALIVE => {
            // RFC 7828 §3.2.1: a client sends the option without a TIMEOUT.
            if !body.is_empty() {
                return Err(Malformed::Keepalive);
            }
            ask::KEEPALIVE
        }
        _ => 0,
    })
}

impl Writer<'_> {
    /// Clears header bits (e.g. AA on an answer turned into an error).
    pub fn clear_flags(&mut self, flags: u16) {
        let f = u16::from_be_bytes([self.buf[2], self.buf[3]]) & !flags;
        self.buf[2..4].copy_from_slice(&f.to_be_bytes());
    }

    /// Appends one option (`code`, then `data`) to the OPT record written at `opt_start` (the
    /// length of the message before [`Writer::opt`]), which must be the last record written.
    pub fn opt_option(&mut self, opt_start: usize, code: u16, data: &[u8]) {
        let mut head = [0u8; 4];
        head[..2].copy_from_slice(&code.to_be_bytes());
        head[2..].copy_from_slice(&(data.len() as u16).to_be_bytes());
        let start = self.len;
        self.put(&head);
        self.put(data);
        let rdlen_at = opt_start + 9;
        if self.overflow || self.buf.len() < rdlen_at + 2 || start < rdlen_at + 2 {
            self.len = start;
            return;
        }
        let rdlen = u16::from_be_bytes([self.buf[rdlen_at], self.buf[rdlen_at + 1]]);
        let grown = rdlen + (4 + data.len()) as u16;
        self.buf[rdlen_at..rdlen_at + 2].copy_from_slice(&grown.to_be_bytes());
    }
}
