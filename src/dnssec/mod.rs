//! DNSSEC keys: the key files of BIND's `dnssec-keygen` (the format the field's tools share),
//! new keys made here, and the DS records that a parent zone publishes for them.
//!
//! The cryptography, the key files' syntax, key tags and the canonical wire forms come from
//! NLnet Labs' `domain` crate on `ring`; this module decides only which algorithms and flags
//! Signpost offers, what the files are called, and how a problem is reported.
//!
//! - [`key`]: [`key::Algorithm`], [`key::Role`], generating a key pair and writing its two
//!   files, reading a public key file.
//! - [`ds`]: the DS record (SHA-256) of a public key, as `dnssec-dsfromkey -2` prints it.
//! - [`nsec`]: the NSEC chain over a zone's names, in canonical order.
//! - [`sign`]: a key pair read from its two files, signing one record set into an RRSIG.
//! - [`policy`]: a signed zone's keys (published, signing, KSK or ZSK) and signature timing.
//!
//! Nothing here is on the answer path: keys are read and made by the command line (and, when
//! zones are signed, by the reload thread).

pub mod ds;
pub mod key;
pub mod nsec;
pub mod policy;
pub mod sign;

pub use ds::Ds;
pub use key::{Algorithm, KeyError, NewKey, PublicKey, Role};
pub use policy::{PolicyError, Timing, ZoneKey, ZoneKeys};
pub use sign::{Signer, Validity};
