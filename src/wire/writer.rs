//! The response encoder: [`Writer`] writes a response into a caller-owned buffer, section by
//! section, patching the counts as records are added, without allocating (it runs for every
//! packet).

use std::net::IpAddr;

use super::{ClientSubnet, OPT_ECS, QR, rtype};

/// Encodes a response into a borrowed buffer; never allocates.
///
/// The buffer holds the header and question first; sections are appended in order and the
/// section counts patched as records are added. A write past the buffer's end sets
/// `overflow` instead of panicking.
pub struct Writer<'b> {
    pub(super) buf: &'b mut [u8],
    pub(super) len: usize,
    pub(super) counts: [u16; 3],
    /// Set when a write did not fit.
    pub overflow: bool,
}

/// The length of the OPT record [`Writer::opt`] writes: 11 bytes, and the ECS option (8 bytes
/// and the address cut to its source prefix) when there is one; more options come on top.
#[inline]
pub fn opt_len(ecs: Option<ClientSubnet>) -> usize {
    11 + ecs.map_or(0, |s| 8 + usize::from(s.source_prefix).div_ceil(8))
}

/// Response sections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    /// Answer.
    Answer = 0,
    /// Authority.
    Authority = 1,
    /// Additional.
    Additional = 2,
}

impl<'b> Writer<'b> {
    /// Starts a response in `buf`: the header with `id` and `flags` (QR is added; the rcode
    /// is in their low 4 bits), QDCOUNT 1 when `question` (the question section's bytes, as
    /// received) is not empty, then the question.
    pub fn new(buf: &'b mut [u8], id: u16, flags: u16, question: &[u8]) -> Writer<'b> {
        let mut w = Writer {
            buf,
            len: 0,
            counts: [0; 3],
            overflow: false,
        };
        // The header in one write: ID, flags, QDCOUNT, and zero counts (patched by `finish`).
        let mut header = [0u8; 12];
        header[..2].copy_from_slice(&id.to_be_bytes());
        header[2..4].copy_from_slice(&(flags | QR).to_be_bytes());
        header[5] = u8::from(!question.is_empty());
        w.put(&header);
        w.put(question);
        w
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when only the header has been written.
    pub fn is_empty(&self) -> bool {
        self.len <= 12
    }

    /// Appends raw bytes.
    pub fn put(&mut self, b: &[u8]) {
        match self.buf.get_mut(self.len..self.len + b.len()) {
            Some(dst) => {
                dst.copy_from_slice(b);
                self.len += b.len();
            }
            None => self.overflow = true,
        }
    }

    /// Appends one record: `owner` (wire form or a compression pointer) then `body`
    /// (type, class, TTL, RDLENGTH, RDATA), with the TTL replaced by `ttl` when given.
    pub fn record(&mut self, section: Section, owner: &[u8], body: &[u8], ttl: Option<u32>) {
        let start = self.len;
        match (owner, self.buf.get_mut(start..start + 2)) {
            // A compression pointer (most owners): two bytes, not a call to copy them.
            (&[a, b], Some(dst)) => {
                dst.copy_from_slice(&[a, b]);
                self.len += 2;
            }
            _ => self.put(owner),
        }
        let body_start = self.len;
        self.put(body);
        if self.overflow {
            self.len = start;
            return;
        }
        if let Some(t) = ttl {
            self.buf[body_start + 4..body_start + 8].copy_from_slice(&t.to_be_bytes());
        }
        self.counts[section as usize] += 1;
    }

    /// Appends the OPT record of a response (RFC 6891 §6.1.2), with the ECS option echoed
    /// with `scope` when the query had one (RFC 7871 §7.2.1).
    pub fn opt(
        &mut self,
        udp_size: u16,
        ext_rcode: u16,
        dnssec_ok: bool,
        ecs: Option<(ClientSubnet, u8)>,
    ) {
        let len = opt_len(ecs.map(|(s, _)| s));
        // Written in place: at most 11 bytes of record, 8 of option header and 16 of address.
        // The address is written whole when the buffer has room past the record (the bytes
        // after its first `n` are zero, and past the end of the message): a fixed-size copy.
        let whole = match ecs {
            Some((s, _)) if s.addr.is_ipv4() => 19 + 4,
            Some(_) => 19 + 16,
            None => 11,
        };
        let Some(rec) = self.buf.get_mut(self.len..self.len + len.max(whole)) else {
            return self.opt_exact(udp_size, ext_rcode, dnssec_ok, ecs);
        };
        let ttl: u32 = ((ext_rcode as u32 >> 4) << 24) | if dnssec_ok { 0x8000 } else { 0 };
        rec[0] = 0;
        rec[1..3].copy_from_slice(&rtype::OPT.to_be_bytes());
        rec[3..5].copy_from_slice(&udp_size.to_be_bytes());
        rec[5..9].copy_from_slice(&ttl.to_be_bytes());
        match ecs {
            Some((s, scope)) => {
                // RDLENGTH: everything after the record's fixed part; OPTION-LENGTH: after
                // the option's header.
                rec[9..11].copy_from_slice(&((len - 11) as u16).to_be_bytes());
                rec[11..13].copy_from_slice(&OPT_ECS.to_be_bytes());
                rec[13..15].copy_from_slice(&((len - 15) as u16).to_be_bytes());
                let family: u16 = if s.addr.is_ipv4() { 1 } else { 2 };
                rec[15..17].copy_from_slice(&family.to_be_bytes());
                rec[17] = s.source_prefix;
                rec[18] = scope;
                match s.addr {
                    IpAddr::V4(a) => rec[19..23].copy_from_slice(&a.octets()),
                    IpAddr::V6(a) => rec[19..35].copy_from_slice(&a.octets()),
                }
            }
            None => rec[9..11].fill(0),
        }
        self.len += len;
        self.counts[Section::Additional as usize] += 1;
    }

    /// [`Writer::opt`] at the very end of the buffer: the address copied to its length.
    #[cold]
    fn opt_exact(
        &mut self,
        udp_size: u16,
        ext_rcode: u16,
        dnssec_ok: bool,
        ecs: Option<(ClientSubnet, u8)>,
    ) {
        let len = opt_len(ecs.map(|(s, _)| s));
        let mut rec = [0u8; 19 + 16];
        let mut scratch = Writer {
            buf: &mut rec,
            len: 0,
            counts: [0; 3],
            overflow: false,
        };
        scratch.opt(udp_size, ext_rcode, dnssec_ok, ecs);
        match self.buf.get_mut(self.len..self.len + len) {
            Some(out) => {
                out.copy_from_slice(&rec[..len]);
                self.len += len;
                self.counts[Section::Additional as usize] += 1;
            }
            None => self.overflow = true,
        }
    }

    /// Drops every record after the question, for a truncated (TC) response.
    pub fn truncate_to_question(&mut self, question_end: usize) {
        self.len = question_end;
        self.counts = [0; 3];
        self.overflow = false;
    }

    /// Sets header bits after the fact.
    pub fn set_flags(&mut self, flags: u16) {
        let f = u16::from_be_bytes([self.buf[2], self.buf[3]]) | flags;
        self.buf[2..4].copy_from_slice(&f.to_be_bytes());
    }

    /// Sets the (low 4 bits of the) rcode.
    pub fn set_rcode(&mut self, code: u16) {
        self.buf[3] = (self.buf[3] & 0xf0) | (code & 0xf) as u8;
    }

    /// Writes the section counts and returns the length of the message.
    pub fn finish(self) -> usize {
        let [an, ns, ar] = self.counts.map(u16::to_be_bytes);
        self.buf[6..12].copy_from_slice(&[an[0], an[1], ns[0], ns[1], ar[0], ar[1]]);
        self.len
    }
}
