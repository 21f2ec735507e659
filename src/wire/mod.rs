//! The DNS wire format, as far as an authoritative server needs it, without allocation.
//!
//! [`Query::parse`] decodes a request in stages, cheapest rejection first (header, then
//! question, then the additional section with EDNS), and borrows everything from the packet.
//! [`Writer`] encodes a response into a caller-owned buffer. Neither allocates: both run for
//! every packet. Record data that does not depend on the query is encoded once, ahead of time,
//! by `zone` and `snapshot`, and copied here.

use std::net::IpAddr;

/// Header flag bits (RFC 1035 §4.1.1).
pub const QR: u16 = 0x8000;
/// Authoritative answer.
pub const AA: u16 = 0x0400;
/// Truncated.
pub const TC: u16 = 0x0200;
/// Recursion desired.
pub const RD: u16 = 0x0100;
/// Checking disabled (RFC 4035), copied back.
pub const CD: u16 = 0x0010;

/// Response codes used by Signpost.
pub mod rcode {
    /// No error.
    pub const NOERROR: u16 = 0;
    /// Format error.
    pub const FORMERR: u16 = 1;
    /// Server failure.
    pub const SERVFAIL: u16 = 2;
    /// Name does not exist.
    pub const NXDOMAIN: u16 = 3;
    /// Not implemented.
    pub const NOTIMP: u16 = 4;
    /// Refused.
    pub const REFUSED: u16 = 5;
    /// Bad EDNS version (extended, RFC 6891): 16.
    pub const BADVERS: u16 = 16;
}

/// Record types used by Signpost.
pub mod rtype {
    #![allow(missing_docs)]
    pub const A: u16 = 1;
    pub const NS: u16 = 2;
    pub const CNAME: u16 = 5;
    pub const SOA: u16 = 6;
    pub const PTR: u16 = 12;
    pub const HINFO: u16 = 13;
    pub const MX: u16 = 15;
    pub const TXT: u16 = 16;
    pub const AAAA: u16 = 28;
    pub const SRV: u16 = 33;
    pub const OPT: u16 = 41;
    pub const DS: u16 = 43;
    pub const RRSIG: u16 = 46;
    pub const NSEC: u16 = 47;
    pub const DNSKEY: u16 = 48;
    pub const CDS: u16 = 59;
    pub const CDNSKEY: u16 = 60;
    pub const TKEY: u16 = 249;
    pub const TSIG: u16 = 250;
    pub const IXFR: u16 = 251;
    pub const AXFR: u16 = 252;
    pub const ANY: u16 = 255;
    pub const CAA: u16 = 257;
}

/// Class IN.
pub const CLASS_IN: u16 = 1;
/// Class CHAOS.
pub const CLASS_CH: u16 = 3;
/// Class ANY (as a query class).
pub const CLASS_ANY: u16 = 255;

/// EDNS option code of the Client Subnet option (RFC 7871).
pub const OPT_ECS: u16 = 8;
pub use options::{OPT_COOKIE, OPT_EDE, OPT_KEEPALIVE, OPT_NSID};

/// A compression pointer to the question name (offset 12).
pub const QNAME_PTR: [u8; 2] = [0xc0, 12];

/// The longest name in wire form (RFC 1035 §2.3.4).
pub const MAX_NAME: usize = 255;

/// An EDNS Client Subnet option as received (RFC 7871 §6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientSubnet {
    /// The address with every bit past `source_prefix` zero.
    pub addr: IpAddr,
    /// SOURCE PREFIX-LENGTH.
    pub source_prefix: u8,
}

/// The EDNS(0) part of a query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Edns {
    /// The requester's UDP payload size (values below 512 are treated as 512).
    pub udp_size: u16,
    /// EDNS version; only 0 is supported.
    pub version: u8,
    /// The DO bit, copied back (RFC 3225 §3).
    pub dnssec_ok: bool,
    /// The client subnet, when the query carried a valid one.
    pub ecs: Option<ClientSubnet>,
    /// The other options the query carries that ask for something back ([`ask`] bits): 0
    /// for most queries, so that the answer path pays for them only when they are there.
    pub asks: u8,
}

/// Why a query is rejected before it is answered normally.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reject {
    /// Not even a header, or a response: do not answer at all.
    Drop,
    /// Answer with this rcode, echoing the question when it could be read.
    Rcode(u16),
}

/// What an error response needs from a query that was not accepted.
#[derive(Clone, Copy, Debug)]
pub struct Echo<'a> {
    /// Message ID.
    pub id: u16,
    /// Header flags and opcode as received.
    pub flags: u16,
    /// The question section, when it could be read (else empty).
    pub question: &'a [u8],
    /// EDNS(0), when it could be read.
    pub edns: Option<Edns>,
    /// Why a FORMERR, when the decoder can say (an extended error's text).
    pub why: Option<Malformed>,
}

/// A decoded query; everything borrows from the packet.
#[derive(Clone, Copy, Debug)]
pub struct Query<'a> {
    /// Message ID.
    pub id: u16,
    /// Header flags and opcode as received.
    pub flags: u16,
    /// The question section as received (name in original case, type, class).
    pub question: &'a [u8],
    /// The question name in lowercase wire form (in the caller's scratch buffer).
    pub name: &'a [u8],
    /// [`NameHash::of`] the lowercase name, computed while lowercasing it.
    pub name_hash: u64,
    /// QTYPE.
    pub qtype: u16,
    /// QCLASS.
    pub qclass: u16,
    /// EDNS(0), when the query had an OPT record.
    pub edns: Option<Edns>,
    /// The body of the COOKIE option (RFC 7873: a client cookie, and a server cookie when
    /// the client has one), when the query carried one; else empty.
    pub cookie: &'a [u8],
}

impl<'a> Query<'a> {
    /// The parts an error response echoes.
    pub fn echo(&self) -> Echo<'a> {
        Echo {
            id: self.id,
            flags: self.flags,
            question: self.question,
            edns: self.edns,
            why: None,
        }
    }

    /// The lowercase question name in wire form.
    pub fn name(&self) -> &'a [u8] {
        self.name
    }

    /// A query with nothing read yet, to decode into with [`Query::parse_into`].
    pub const fn blank() -> Query<'a> {
        Query {
            id: 0,
            flags: 0,
            question: &[],
            name: &[],
            name_hash: 0,
            qtype: 0,
            qclass: 0,
            edns: None,
            cookie: &[],
        }
    }

    /// Decodes `packet`, writing the lowercase question name into `scratch` (which the query
    /// then borrows: a query stays small enough to move around cheaply). On error, also
    /// returns the question when it was readable so that the error response can echo it.
    pub fn parse(
        packet: &'a [u8],
        scratch: &'a mut [u8; MAX_NAME],
    ) -> Result<Query<'a>, (Reject, Option<Echo<'a>>)> {
        let mut q = Query::blank();
        match q.parse_into(packet, scratch) {
            Ok(()) => Ok(q),
            Err(r) => Err((r.reject, r.echo(&q))),
        }
    }

    /// [`Query::parse`] into `self` (a [`Query::blank`]), where the caller keeps it: the answer
    /// path decodes each query straight into the slot of its batch, without moving it. On
    /// error, `self` holds what could be read, for [`Rejection::echo`].
    #[inline(never)]
    pub fn parse_into(
        &mut self,
        packet: &'a [u8],
        scratch: &'a mut [u8; MAX_NAME],
    ) -> Result<(), Rejection> {
        self.decode(packet, |q| {
            let (end, name_len) = read_question(packet, 12, q, scratch)?;
            let scratch: &'a [u8; MAX_NAME] = scratch;
            q.name = &scratch[..name_len];
            Some(end)
        })
    }

    /// [`Query::parse_into`], given `before`, a query decoded without error earlier in the same
    /// batch: when this query's question asks about the same name in the same class, byte for
    /// byte (the type may differ: resolvers ask A and AAAA together), the name and its hash are
    /// taken from `before` instead of being read, lowercased and hashed again (they are a
    /// function of those bytes alone). Returns whether they were.
    #[inline(always)]
    pub fn parse_after(
        &mut self,
        packet: &'a [u8],
        scratch: &'a mut [u8; MAX_NAME],
        before: &Query<'a>,
    ) -> Result<bool, Rejection> {
        // The question section: the name, then type and class (two bytes each).
        let asked = before.question;
        let n = asked.len();
        let again = packet.get(12..12 + n).filter(|p| {
            n > 4 && same_bytes(&p[..n - 4], &asked[..n - 4]) && p[n - 2..] == asked[n - 2..]
        });
        let Some(question) = again else {
            return self.parse_into(packet, scratch).map(|()| false);
        };
        let qtype = u16::from_be_bytes([question[n - 4], question[n - 3]]);
        self.decode(packet, |q| {
            (q.name, q.name_hash) = (before.name, before.name_hash);
            (q.qtype, q.qclass) = (qtype, before.qclass);
            Some(12 + n)
        })
        .map(|()| true)
    }

    /// The decoder, with `question` reading the question section into the query (its name,
    /// hash, type and class) and returning the offset after it, or `None` when it is
    /// malformed.
    #[inline(always)]
    fn decode(
        &mut self,
        packet: &'a [u8],
        question: impl FnOnce(&mut Query<'a>) -> Option<usize>,
    ) -> Result<(), Rejection> {
        let q = self;
        let fail = |reject, echo, why| Err(Rejection { reject, echo, why });
        // Stage 1: the header.
        if packet.len() < 12 {
            return fail(Reject::Drop, false, None);
        }
        q.id = u16::from_be_bytes([packet[0], packet[1]]);
        q.flags = u16::from_be_bytes([packet[2], packet[3]]);
        if q.flags & QR != 0 {
            return fail(Reject::Drop, false, None);
        }
        let qdcount = u16::from_be_bytes([packet[4], packet[5]]);
        let ancount = u16::from_be_bytes([packet[6], packet[7]]);
        let nscount = u16::from_be_bytes([packet[8], packet[9]]);
        let arcount = u16::from_be_bytes([packet[10], packet[11]]);
        let opcode = (q.flags >> 11) & 0xf;
        if qdcount != 1 {
            let code = if opcode != 0 {
                rcode::NOTIMP
            } else {
                rcode::FORMERR
            };
            return fail(Reject::Rcode(code), true, None);
        }
        // Stage 2: the question.
        let Some(end) = question(q) else {
            return fail(Reject::Rcode(rcode::FORMERR), true, None);
        };
        q.question = &packet[12..end];
        if opcode != 0 {
            return fail(Reject::Rcode(rcode::NOTIMP), true, None);
        }
        if ancount != 0 || nscount != 0 {
            return fail(Reject::Rcode(rcode::FORMERR), true, None);
        }
        // Stage 3: the additional section (EDNS).
        let mut pos = end;
        for _ in 0..arcount {
            match read_additional(packet, pos, q) {
                Ok(next) => pos = next,
                Err(why) => return fail(Reject::Rcode(rcode::FORMERR), true, Some(why)),
            }
        }
        if pos != packet.len() {
            return fail(Reject::Rcode(rcode::FORMERR), true, None);
        }
        if let Some(e) = q.edns
            && e.version > 0
        {
            return fail(Reject::Rcode(rcode::BADVERS), true, None);
        }
        if is_meta_qtype(q.qtype) {
            return fail(Reject::Rcode(rcode::FORMERR), true, None);
        }
        Ok(())
    }
}

/// Why [`Query::parse_into`] did not accept a query.
#[derive(Clone, Copy, Debug)]
pub struct Rejection {
    /// What to do.
    pub reject: Reject,
    /// Whether the error response echoes what was read (the header at least).
    echo: bool,
    /// Why a FORMERR, when the decoder can say.
    why: Option<Malformed>,
}

impl Rejection {
    /// What the error response echoes from `q`, the query the decoder left.
    pub fn echo<'a>(&self, q: &Query<'a>) -> Option<Echo<'a>> {
        self.echo.then(|| Echo {
            why: self.why,
            ..q.echo()
        })
    }
}

/// True for the types that only live in the additional section of a message, never in a
/// question, and for type 0 (reserved): OPT (RFC 6891 §6.1.1), TKEY (RFC 2930) and TSIG
/// (RFC 8945) are carried by a transaction, not looked up, and Signpost implements neither
/// TKEY nor TSIG. A question for one of them is malformed here.
fn is_meta_qtype(qtype: u16) -> bool {
    matches!(qtype, 0 | rtype::OPT | rtype::TKEY | rtype::TSIG)
}

/// Reads the question at `pos` into `q` and its lowercase name into `name`; returns the
/// offset after it and the name's length.
#[inline(always)]
fn read_question(
    packet: &[u8],
    pos: usize,
    q: &mut Query<'_>,
    name: &mut [u8; MAX_NAME],
) -> Option<(usize, usize)> {
    // Walk the length bytes first, then copy and lowercase the whole name at once: length
    // bytes are at most 63, below 'A', so lowercasing leaves them alone.
    let mut end = pos;
    loop {
        let l = *packet.get(end)? as usize;
        end += 1;
        if l == 0 {
            break;
        }
        // Compression pointers and extended label types have no place in a question.
        if l > 63 {
            return None;
        }
        end += l;
        if end - pos + 1 > MAX_NAME {
            return None;
        }
    }
    let len = end - pos;
    let wire = packet.get(pos..end)?;
    q.name_hash = lowercase_into(&mut name[..len], wire);
    let tail = packet.get(end..end + 4)?;
    q.qtype = u16::from_be_bytes([tail[0], tail[1]]);
    q.qclass = u16::from_be_bytes([tail[2], tail[3]]);
    Some((end + 4, len))
}

/// Copies `src` into `dst` (of the same length) with ASCII letters lowercased, eight bytes at
/// a time; returns [`NameHash::of`] the lowercased bytes (the words are hashed as they are
/// written).
fn lowercase_into(dst: &mut [u8], src: &[u8]) -> u64 {
    let mut h = NameHash::new();
    let mut d = dst.chunks_exact_mut(8);
    let mut s = src.chunks_exact(8);
    for (d, s) in (&mut d).zip(&mut s) {
        let mut w = [0u8; 8];
        w.copy_from_slice(s);
        let lower = lowercase8(u64::from_le_bytes(w));
        d.copy_from_slice(&lower.to_le_bytes());
        h = h.word(lower);
    }
    let mut tail = 0u64;
    let rest = d.into_remainder();
    for (i, (d, s)) in rest.iter_mut().zip(s.remainder()).enumerate() {
        *d = s.to_ascii_lowercase();
        tail |= (*d as u64) << (8 * i);
    }
    h.tail(tail, rest.len()).finish()
}

/// The hash that tables of names are keyed by ([`NameHash::of`] a lowercase wire-form name),
/// computed by the decoder while it lowercases the question name, so that looking the name up
/// does not read it again: a multiply-rotate over eight bytes at a time. It is not keyed; that
/// is safe because the tables hold names from the operators' files, not from the network (a
/// query can only look a name up, never insert one), so colliding names cannot be planted to
/// slow lookups down.
#[derive(Clone, Copy, Debug, Default)]
pub struct NameHash(u64);

impl NameHash {
    /// The state before any byte.
    #[inline]
    pub const fn new() -> NameHash {
        NameHash(0)
    }

    /// The hash of `name`.
    #[inline]
    pub fn of(name: &[u8]) -> u64 {
        NameHash::new().bytes(name).finish()
    }

    /// Adds `bytes`: whole words, then the rest as one zero-padded word marked with its
    /// length.
    #[inline]
    pub fn bytes(mut self, bytes: &[u8]) -> NameHash {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self = self.word(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        let tail = rest
            .iter()
            .enumerate()
            .fold(0u64, |w, (i, &b)| w | (b as u64) << (8 * i));
        self.tail(tail, rest.len())
    }

    /// Adds one little-endian word of eight bytes.
    #[inline]
    pub fn word(self, w: u64) -> NameHash {
        NameHash((self.0.rotate_left(5) ^ w).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95))
    }

    /// Adds the last `len` (< 8) bytes, zero-padded into `w`.
    #[inline]
    fn tail(self, w: u64, len: usize) -> NameHash {
        self.word(w ^ ((len as u64) << 56))
    }

    /// The hash; the high bits (which hash tables use for their control bytes) are spread
    /// downwards too.
    #[inline]
    pub fn finish(self) -> u64 {
        self.0 ^ (self.0 >> 29)
    }
}

/// Lowercases the ASCII letters among eight bytes. For a byte b below 0x80, b + 0x3f has its
/// top bit set when b >= 'A', and b + 0x25 when b > 'Z'; neither sum carries into the next
/// byte. Bytes with the top bit set are left alone.
#[inline]
fn lowercase8(x: u64) -> u64 {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    const TOP: u64 = 0x8080_8080_8080_8080;
    let low = x & LOW7;
    let from_a = low + 0x3f3f_3f3f_3f3f_3f3f;
    let past_z = low + 0x2525_2525_2525_2525;
    let upper = from_a & !past_z & !x & TOP;
    x | (upper >> 2)
}

/// Skips a possibly compressed name in a record at `pos`; returns the offset after it. The name
/// is checked as a whole, compression included, the way the question's labels are: every label
/// 63 octets or less, no extended label types, at most 255 octets once expanded, and every
/// pointer pointing back, before the labels that led to it, and past the header (so that a
/// chain of pointers always ends). A name that breaks any of these is malformed (FORMERR).
#[inline]
fn skip_name(packet: &[u8], pos: usize) -> Option<usize> {
    let mut total = 0;
    let mut at = pos;
    // Where the labels being read start: a pointer must point before it.
    let mut run_start = pos;
    // The end of the name in the record: after its first pointer, or after its root label.
    let mut end = None;
    loop {
        let l = *packet.get(at)? as usize;
        if l == 0 {
            return Some(end.unwrap_or(at + 1));
        }
        if l & 0xc0 == 0xc0 {
            let target = ((l & 0x3f) << 8) | *packet.get(at + 1)? as usize;
            end.get_or_insert(at + 2);
            if target < 12 || target >= run_start {
                return None;
            }
            (at, run_start) = (target, target);
            continue;
        }
        if l > 63 {
            return None;
        }
        total += l + 1;
        if total + 1 > MAX_NAME {
            return None;
        }
        at += 1 + l;
    }
}

/// Reads one additional record; OPT is decoded, anything else skipped.
#[inline(always)]
fn read_additional<'a>(
    packet: &'a [u8],
    pos: usize,
    q: &mut Query<'a>,
) -> Result<usize, Malformed> {
    let name_end = skip_name(packet, pos).ok_or(Malformed::Record)?;
    let fixed = packet
        .get(name_end..name_end + 10)
        .ok_or(Malformed::Record)?;
    let rtype = u16::from_be_bytes([fixed[0], fixed[1]]);
    let class = u16::from_be_bytes([fixed[2], fixed[3]]);
    let ttl = u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]);
    let rdlen = u16::from_be_bytes([fixed[8], fixed[9]]) as usize;
    let rdata = packet
        .get(name_end + 10..name_end + 10 + rdlen)
        .ok_or(Malformed::Record)?;
    if rtype == rtype::OPT {
        // RFC 6891 §6.1.1: the owner is the root, and there is at most one OPT.
        if name_end != pos + 1 || q.edns.is_some() {
            return Err(Malformed::Opt);
        }
        // The fixed part of the OPT record is readable: from here on, an error response
        // carries an OPT record too (RFC 6891 §7), without the option that was refused. The
        // options are read into it in place (no second copy of the record).
        let edns = q.edns.insert(Edns {
            udp_size: class.max(512),
            version: (ttl >> 16) as u8,
            dnssec_ok: ttl & 0x8000 != 0,
            ecs: None,
            asks: 0,
        });
        if let Err(why) = read_options(rdata, edns, &mut q.cookie) {
            // The error response carries the OPT record without the options.
            (edns.ecs, edns.asks) = (None, 0);
            return Err(why);
        }
    }
    Ok(name_end + 10 + rdlen)
}

/// Reads the options of an OPT record's `rdata` into `edns` (and the COOKIE option's body
/// into `cookie`).
#[inline(always)]
fn read_options<'a>(
    rdata: &'a [u8],
    edns: &mut Edns,
    cookie: &mut &'a [u8],
) -> Result<(), Malformed> {
    let mut o = 0;
    while o < rdata.len() {
        let head = rdata.get(o..o + 4).ok_or(Malformed::Option)?;
        let code = u16::from_be_bytes([head[0], head[1]]);
        let len = u16::from_be_bytes([head[2], head[3]]) as usize;
        let body = rdata.get(o + 4..o + 4 + len).ok_or(Malformed::Option)?;
        if code == OPT_ECS {
            if edns.ecs.is_some() {
                return Err(Malformed::Ecs);
            }
            edns.ecs = Some(options::parse_ecs(body).map_err(|_| Malformed::Ecs)?);
        } else if code <= options::HIGHEST_ASK {
            edns.asks |= options::read(code, body, cookie)?;
        }
        o += 4 + len;
    }
    Ok(())
}

mod copy;
pub use copy::same_bytes;
mod writer;
pub use writer::{Section, Writer, opt_len};

mod options;
pub use options::{Malformed, ask};

#[cfg(test)]
mod tests;
