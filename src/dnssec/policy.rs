//! A signed zone's keys and timing: which keys are published, which sign, and which sets each
//! signs (RFC 6781 §3.1: key-signing keys sign the DNSKEY set, zone-signing keys everything
//! else; a zone whose signing keys are all of one kind signs everything with them), and the
//! validity window of the signatures a build makes.

use std::fmt;

use super::sign::{Signer, Validity};

/// One key of a zone.
#[derive(Debug)]
pub struct ZoneKey {
    /// The key pair.
    pub signer: Signer,
    /// It makes signatures; otherwise it is only published (before a roll, or after one while
    /// resolvers may still hold its signatures).
    pub signs: bool,
}

/// How long signatures live, and when new ones are made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// Seconds from a signature's making to its expiration.
    pub validity: u32,
    /// Signatures are made again when this many seconds of their validity remain (less than
    /// `validity`): `validity - refresh` seconds after a build.
    pub refresh: u32,
    /// Seconds the inception is set back, for validators whose clocks run behind.
    pub backdate: u32,
}

impl Timing {
    /// The validity of signatures made at `now` (seconds since the epoch).
    pub fn window(&self, now: u64) -> Validity {
        Validity {
            // RFC 4034 §3.1.5: 32-bit serial arithmetic; the low 32 bits are what is written.
            inception: now.saturating_sub(u64::from(self.backdate)) as u32,
            expiration: (now + u64::from(self.validity)) as u32,
        }
    }
}

/// The keys of a signed zone and its timing.
#[derive(Debug)]
pub struct ZoneKeys {
    /// Every published key, in configuration order.
    pub keys: Vec<ZoneKey>,
    /// The signatures' timing.
    pub timing: Timing,
    /// CDS and CDNSKEY (RFC 7344) are published for the keys that sign the DNSKEY set.
    pub cds: bool,
}

/// Why a zone's key list cannot sign it.
#[derive(Debug, PartialEq, Eq)]
pub enum PolicyError {
    /// No key signs.
    NoSigningKey,
    /// `refresh` is not shorter than `validity`.
    RefreshTooLong,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicyError::NoSigningKey => f.write_str("no key signs (every key has sign: false)"),
            PolicyError::RefreshTooLong => f.write_str("refresh_s must be shorter than validity_s"),
        }
    }
}

impl std::error::Error for PolicyError {}

impl ZoneKeys {
    /// Checks that the keys can sign the zone.
    pub fn new(keys: Vec<ZoneKey>, timing: Timing, cds: bool) -> Result<ZoneKeys, PolicyError> {
        if !keys.iter().any(|k| k.signs) {
            return Err(PolicyError::NoSigningKey);
        }
        if timing.refresh >= timing.validity {
            return Err(PolicyError::RefreshTooLong);
        }
        Ok(ZoneKeys { keys, timing, cds })
    }

    /// The keys that sign the DNSKEY set (`dnskey`) or any other set: the signing keys of the
    /// matching kind, or every signing key when none is of that kind.
    pub fn signers(&self, dnskey: bool) -> impl Iterator<Item = &Signer> {
        let of_kind = move |k: &&ZoneKey| k.signs && k.signer.public().is_key_signing() == dnskey;
        let any_of_kind = self.keys.iter().any(|k| of_kind(&k));
        self.keys
            .iter()
            .filter(move |k| k.signs && (!any_of_kind || of_kind(k)))
            .map(|k| &k.signer)
    }
}
