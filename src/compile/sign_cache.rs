//! Signatures kept from one build to the next ([`SignatureCache`]), so that a build signs only
//! the record sets that are new or whose signatures are due: the reload thread keeps one per
//! set of sources (`load::Sources`), and a build for a feed change, or the one the re-sign
//! timer asks for, reuses the signatures of every set that did not change. Without it, every
//! build signed every set again (about 17 µs each; 10,000 sets for a map of 1,000 nodes).
//!
//! A signature is reused while it is younger than `validity_s - refresh_s` (so it still has
//! more than `refresh_s` to run; one due within a sixteenth of that is renewed with the rest of
//! a build, see [`early`]), for exactly the same set: the same key (its DNSKEY record),
//! owner, type, TTL, records and timing. The zone then says when its oldest signature is due
//! (`Signed::refresh_at`), which is when the re-sign timer runs the next build.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use crate::dnssec::Signer;

/// How long before it is due a signature is made again anyway, with the others a build
/// makes: a sixteenth of its fresh time, at most an hour. Signatures made at many different
/// times (sets that changed now and then) are then renewed together, by a few builds of the
/// re-sign timer, not one build for every second one of them was made in.
fn early(fresh_for: u64) -> u64 {
    (fresh_for / 16).min(3600)
}

/// Signatures of earlier builds, for the next. Shared by reference with the build, which
/// runs on one thread (the cache is not `Sync`; the compiler takes no lock).
#[derive(Debug, Default)]
pub struct SignatureCache {
    inner: RefCell<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<SetKey, Made>,
    /// The build in progress (counts up), to drop what it did not use.
    build: u64,
    /// Signatures made and reused by the last build.
    made: usize,
    reused: usize,
}

/// Everything a signature depends on.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct SetKey {
    /// The signing key ([`SetKey::signer`]): shared by every set it signs.
    pub signer: Arc<[u8]>,
    /// The owner (lowercase wire form), type and original TTL of the set.
    pub owner: Box<[u8]>,
    pub rtype: u16,
    pub ttl: u32,
    /// The records' RDATA, sorted, each once, each after its length (two octets).
    pub rdatas: Box<[u8]>,
    /// validity_s, refresh_s and backdate_s.
    pub timing: [u32; 3],
}

impl SetKey {
    /// A key's identity: its owner (the zone, the RRSIG's signer name) in wire form, then its
    /// DNSKEY RDATA (flags, protocol, algorithm, public key).
    pub fn signer(key: &Signer) -> Arc<[u8]> {
        let mut id = key.public().owner.as_slice().to_vec();
        id.extend_from_slice(&key.dnskey_rdata());
        id.into()
    }

    /// The canonical form of a set's RDATA for [`SetKey::rdatas`].
    pub fn rdatas(rdatas: &[&[u8]]) -> Box<[u8]> {
        let mut sorted = rdatas.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let mut out = Vec::with_capacity(sorted.iter().map(|r| r.len() + 2).sum());
        for r in sorted {
            out.extend_from_slice(&(r.len() as u16).to_be_bytes());
            out.extend_from_slice(r);
        }
        out.into_boxed_slice()
    }
}

/// A signature made by a build.
#[derive(Debug)]
struct Made {
    /// The RRSIG record's body.
    body: Box<[u8]>,
    /// When it was made (seconds since the epoch: the `now` of its build).
    at: u64,
    /// The last build that used it.
    used: u64,
}

impl SignatureCache {
    /// Starts a build: counts from zero.
    pub(super) fn begin(&self) {
        let mut inner = self.state();
        inner.build += 1;
        (inner.made, inner.reused) = (0, 0);
    }

    /// The signature of `key` made less than `fresh_for` seconds before `now` (less what
    /// [`early`] renews ahead), or the one `sign` makes now (kept for the next build). Returns the RRSIG body and when it was
    /// made.
    pub(super) fn get_or_sign(
        &self,
        key: SetKey,
        now: u64,
        fresh_for: u64,
        sign: impl FnOnce() -> Result<Box<[u8]>, String>,
    ) -> Result<(Box<[u8]>, u64), String> {
        {
            let mut inner = self.state();
            let build = inner.build;
            if let Some(m) = inner.entries.get_mut(&key)
                && m.at <= now
                && now - m.at + early(fresh_for) < fresh_for
            {
                m.used = build;
                let found = (m.body.clone(), m.at);
                inner.reused += 1;
                return Ok(found);
            }
        }
        let body = sign()?;
        let mut inner = self.state();
        inner.made += 1;
        let used = inner.build;
        let made = Made {
            body: body.clone(),
            at: now,
            used,
        };
        inner.entries.insert(key, made);
        Ok((body, now))
    }

    /// Ends a build that succeeded: what it did not use is dropped.
    pub(super) fn finish(&self) {
        let mut inner = self.state();
        let build = inner.build;
        inner.entries.retain(|_, m| m.used == build);
        tracing::debug!(
            made = inner.made,
            reused = inner.reused,
            kept = inner.entries.len(),
            "signatures"
        );
    }

    /// A copy, for the sources that replace the ones this cache belongs to (a signature
    /// depends on nothing its key does not hold, so it stays good under another
    /// configuration).
    pub fn copy(&self) -> SignatureCache {
        let inner = self.state();
        let entries = inner
            .entries
            .iter()
            .map(|(k, m)| {
                let made = Made {
                    body: m.body.clone(),
                    at: m.at,
                    used: 0,
                };
                (k.clone(), made)
            })
            .collect();
        SignatureCache {
            inner: RefCell::new(Inner {
                entries,
                ..Inner::default()
            }),
        }
    }

    /// Signatures made and reused by the last build.
    pub fn last_build(&self) -> (usize, usize) {
        let inner = self.state();
        (inner.made, inner.reused)
    }

    fn state(&self) -> std::cell::RefMut<'_, Inner> {
        self.inner.borrow_mut()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(rdata: &[u8]) -> SetKey {
        SetKey {
            signer: b"\x07example\x04test\x00\x01\x02\x03".as_slice().into(),
            owner: b"\x02dl\x07example\x04test\x00".as_slice().into(),
            rtype: 1,
            ttl: 60,
            rdatas: SetKey::rdatas(&[rdata]),
            timing: [1000, 400, 10],
        }
    }

    /// Signs through `cache` at `now` (fresh for 600 s); returns the body and whether it was
    /// made now.
    fn sign(cache: &SignatureCache, rdata: &[u8], now: u64) -> (Box<[u8]>, bool) {
        let mut made = false;
        let (body, _) = cache
            .get_or_sign(key(rdata), now, 600, || {
                made = true;
                Ok(format!("sig at {now}").into_bytes().into())
            })
            .unwrap();
        (body, made)
    }

    #[test]
    fn a_signature_is_reused_while_fresh_and_made_again_when_due() {
        let cache = SignatureCache::default();
        cache.begin();
        assert_eq!(
            sign(&cache, &[192, 0, 2, 1], 1000),
            (b"sig at 1000".as_slice().into(), true)
        );
        cache.finish();
        assert_eq!(cache.last_build(), (1, 0));
        // The same set, 562 s later: the same signature; 563 s later, within a sixteenth of
        // its fresh time (37 s) of being due: a new one.
        cache.begin();
        assert_eq!(
            sign(&cache, &[192, 0, 2, 1], 1562),
            (b"sig at 1000".as_slice().into(), false)
        );
        assert_eq!(cache.last_build(), (0, 1));
        cache.begin();
        assert_eq!(
            sign(&cache, &[192, 0, 2, 1], 1563),
            (b"sig at 1563".as_slice().into(), true)
        );
        // Another set, or a clock that went back: signed.
        assert!(sign(&cache, &[192, 0, 2, 2], 1563).1);
        assert!(sign(&cache, &[192, 0, 2, 1], 999).1);
    }

    #[test]
    fn what_a_build_did_not_use_is_dropped_and_copies_keep_the_rest() {
        let cache = SignatureCache::default();
        cache.begin();
        sign(&cache, &[192, 0, 2, 1], 1000);
        sign(&cache, &[192, 0, 2, 2], 1000);
        cache.finish();
        cache.begin();
        assert!(!sign(&cache, &[192, 0, 2, 1], 1010).1);
        cache.finish();
        let copy = cache.copy();
        copy.begin();
        assert!(!sign(&copy, &[192, 0, 2, 1], 1020).1, "kept, and copied");
        assert!(
            sign(&copy, &[192, 0, 2, 2], 1020).1,
            "dropped by the build that did not use it"
        );
        // A set's records in another order, or one given twice, are the same set.
        assert_eq!(
            SetKey::rdatas(&[&[1], &[2], &[1]]),
            SetKey::rdatas(&[&[2], &[1]])
        );
    }
}
