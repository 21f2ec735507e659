//! Cutting the TCP byte stream into BGP messages, and checking each 19-byte header (RFC 4271
//! §4.1, §6.1) before the message reaches bgpkit-parser.
//!
//! bgpkit-parser reads MRT archives, so it is lenient where a live session must not be: it only
//! logs a bad marker, accepts lengths up to 65535 (RFC 8654 extended messages, which Signpost does
//! not negotiate) and does not check per-type minimum lengths. Those checks are here. The read
//! buffer has a fixed size, so a peer can make Signpost hold at most one buffer of its bytes.

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt};

use super::notice::{HEADER_ERROR, Notice};

/// Header length: marker (16), length (2), type (1).
pub(crate) const HEADER_LEN: usize = 19;
/// Largest message without the extended message capability (RFC 4271 §4.1).
pub(crate) const MAX_MESSAGE: usize = 4096;
/// Read buffer size: many messages per read, always room for one whole message.
const BUFFER: usize = 64 * 1024;

/// Message types (RFC 4271 §4.1, RFC 2918).
pub(crate) const OPEN: u8 = 1;
/// UPDATE.
pub(crate) const UPDATE: u8 = 2;
/// NOTIFICATION.
pub(crate) const NOTIFICATION: u8 = 3;
/// KEEPALIVE.
pub(crate) const KEEPALIVE: u8 = 4;
/// ROUTE-REFRESH.
pub(crate) const ROUTE_REFRESH: u8 = 5;

/// One whole message, header included.
#[derive(Debug, Clone)]
pub(crate) struct Frame {
    /// The type byte.
    pub kind: u8,
    /// The message bytes, header included.
    pub bytes: Bytes,
}

/// Checks a header: all-ones marker, a length within 19..=4096 that suits the type, a known
/// type. Returns the type and the length, or the NOTIFICATION RFC 4271 §6.1 prescribes.
pub(crate) fn check_header(header: &[u8]) -> Result<(u8, usize), Notice> {
    if header.len() < HEADER_LEN || header[..16].iter().any(|&b| b != 0xff) {
        return Err(Notice::new(HEADER_ERROR, 1));
    }
    let length = usize::from(u16::from_be_bytes([header[16], header[17]]));
    let kind = header[18];
    let bad_length = || Notice::new(HEADER_ERROR, 2).with_data(&header[16..18]);
    if !(HEADER_LEN..=MAX_MESSAGE).contains(&length) {
        return Err(bad_length());
    }
    let fits = match kind {
        OPEN => length >= 29,
        UPDATE => length >= 23,
        NOTIFICATION => length >= 21,
        KEEPALIVE => length == HEADER_LEN,
        ROUTE_REFRESH => length >= 23,
        _ => return Err(Notice::new(HEADER_ERROR, 3).with_data(&[kind])),
    };
    if !fits {
        return Err(bad_length());
    }
    Ok((kind, length))
}

/// What ended reading.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The peer closed the connection.
    Closed,
    /// The socket failed.
    Io(std::io::Error),
    /// A header was wrong; send this NOTIFICATION and close.
    Header(Notice),
}

/// A fixed-size buffer over a byte stream that yields whole, header-checked messages.
pub(crate) struct FrameReader {
    /// Received bytes; `start..end` are not consumed yet.
    buf: Box<[u8]>,
    /// First unconsumed byte.
    start: usize,
    /// End of the received bytes.
    end: usize,
}

impl FrameReader {
    /// An empty reader.
    pub fn new() -> FrameReader {
        FrameReader {
            buf: vec![0; BUFFER].into_boxed_slice(),
            start: 0,
            end: 0,
        }
    }

    /// A reader holding `unread` (bytes another process read from the same connection and did
    /// not handle: at most part of one message, never more than the buffer holds).
    pub fn with_unread(unread: &[u8]) -> FrameReader {
        let mut r = FrameReader::new();
        let n = unread.len().min(BUFFER);
        r.buf[..n].copy_from_slice(&unread[..n]);
        r.end = n;
        r
    }

    /// The bytes received and not yet taken as messages.
    pub fn unread(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// The next whole message already received, if any. A bad header is reported as soon as
    /// its 19 bytes are in, without waiting for the body.
    pub fn next_frame(&mut self) -> Option<Result<Frame, Notice>> {
        let pending = &self.buf[self.start..self.end];
        if pending.len() < HEADER_LEN {
            return None;
        }
        let (kind, length) = match check_header(&pending[..HEADER_LEN]) {
            Ok(v) => v,
            Err(notice) => return Some(Err(notice)),
        };
        if pending.len() < length {
            return None;
        }
        let bytes = Bytes::copy_from_slice(&pending[..length]);
        self.start += length;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        Some(Ok(Frame { kind, bytes }))
    }

    /// Reads more bytes from `stream` (cancel safe: nothing is lost if the future is dropped).
    pub async fn fill<R: AsyncRead + Unpin>(&mut self, stream: &mut R) -> Result<(), ReadError> {
        if self.end == self.buf.len() {
            // Less than one message is pending (whole ones are taken first), so moving it to
            // the front always leaves room.
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        match stream.read(&mut self.buf[self.end..]).await {
            Ok(0) => Err(ReadError::Closed),
            Ok(n) => {
                self.end += n;
                Ok(())
            }
            Err(e) => Err(ReadError::Io(e)),
        }
    }

    /// Waits for the next whole message.
    pub async fn read_frame<R: AsyncRead + Unpin>(
        &mut self,
        stream: &mut R,
    ) -> Result<Frame, ReadError> {
        loop {
            match self.next_frame() {
                Some(Ok(frame)) => return Ok(frame),
                Some(Err(notice)) => return Err(ReadError::Header(notice)),
                None => self.fill(stream).await?,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(length: u16, kind: u8) -> Vec<u8> {
        let mut h = vec![0xff; 16];
        h.extend_from_slice(&length.to_be_bytes());
        h.push(kind);
        h
    }

    #[test]
    fn header_checks_follow_rfc_4271() {
        assert_eq!(check_header(&header(19, KEEPALIVE)), Ok((KEEPALIVE, 19)));
        assert_eq!(check_header(&header(4096, UPDATE)), Ok((UPDATE, 4096)));
        let bad_len = |l: u16| Notice::new(HEADER_ERROR, 2).with_data(&l.to_be_bytes());
        assert_eq!(check_header(&header(4097, UPDATE)), Err(bad_len(4097)));
        assert_eq!(check_header(&header(18, UPDATE)), Err(bad_len(18)));
        assert_eq!(check_header(&header(20, KEEPALIVE)), Err(bad_len(20)));
        assert_eq!(check_header(&header(28, OPEN)), Err(bad_len(28)));
        assert_eq!(
            check_header(&header(19, 9)),
            Err(Notice::new(HEADER_ERROR, 3).with_data(&[9]))
        );
        let mut h = header(19, KEEPALIVE);
        h[3] = 0;
        assert_eq!(check_header(&h), Err(Notice::new(HEADER_ERROR, 1)));
    }

    #[tokio::test]
    async fn cuts_a_stream_into_messages() {
        let mut stream = Vec::new();
        for _ in 0..5000 {
            stream.extend(header(19, KEEPALIVE));
        }
        stream.extend(header(23, UPDATE));
        stream.extend([0, 0, 0, 0]);
        let mut input: &[u8] = &stream;
        let mut reader = FrameReader::new();
        for _ in 0..5000 {
            assert_eq!(reader.read_frame(&mut input).await.unwrap().kind, KEEPALIVE);
        }
        let last = reader.read_frame(&mut input).await.unwrap();
        assert_eq!((last.kind, last.bytes.len()), (UPDATE, 23));
        assert!(matches!(
            reader.read_frame(&mut input).await,
            Err(ReadError::Closed)
        ));
    }

    #[tokio::test]
    async fn unread_bytes_continue_in_another_reader() {
        let mut stream = header(19, KEEPALIVE);
        stream.extend(header(23, UPDATE));
        stream.extend([0, 0, 0, 0]);
        let (first, rest) = stream.split_at(30);
        let mut input: &[u8] = first;
        let mut reader = FrameReader::new();
        assert_eq!(reader.read_frame(&mut input).await.unwrap().kind, KEEPALIVE);
        assert!(reader.next_frame().is_none());
        assert_eq!(reader.unread(), &stream[19..30]);
        let mut resumed = FrameReader::with_unread(reader.unread());
        let mut input: &[u8] = rest;
        let frame = resumed.read_frame(&mut input).await.unwrap();
        assert_eq!((frame.kind, &frame.bytes[..]), (UPDATE, &stream[19..]));
    }
}
