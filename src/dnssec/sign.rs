//! Signing one record set (RFC 4034 §3, RFC 4035 §2.2) with a key read from its BIND files.
//!
//! The record set comes as Signpost stores it (`zone::RecordSet`: the owner in wire form and
//! each record's RDATA), is read back into `domain`'s record types so that names inside the
//! data take their canonical form (RFC 4034 §6.2), and is signed by `domain`'s
//! `sign_rrset`, which orders the records canonically and builds the RRSIG. The result is the
//! RRSIG's RDATA in wire form, ready to be stored beside the set it covers.

use std::fmt;
use std::path::Path;

use bytes::Bytes;
use domain::base::iana::{Class, Rtype};
use domain::base::name::ParsedName;
use domain::base::rdata::ComposeRecordData;
use domain::base::{Name, ParseRecordData, Record, Ttl};
use domain::crypto::sign::{KeyPair, SecretKeyBytes};
use domain::dep::octseq::Parser;
use domain::dnssec::sign::keys::SigningKey;
use domain::dnssec::sign::records::Rrset;
use domain::dnssec::sign::signatures::rrsigs::sign_rrset;
use domain::rdata::ZoneRecordData;
use domain::rdata::dnssec::Timestamp;

use super::key::{KeyError, PublicKey};

/// When a signature is valid: from `inception` to `expiration`, in seconds since the epoch
/// (RFC 4034 §3.1.5; serial number arithmetic is the validator's business).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Validity {
    /// The first second the signature is valid.
    pub inception: u32,
    /// The last second the signature is valid.
    pub expiration: u32,
}

/// Why a record set could not be signed.
#[derive(Debug, PartialEq, Eq)]
pub enum SignError {
    /// The owner is not a name in wire form.
    Owner,
    /// A record's data does not parse as its type.
    Rdata(u16),
    /// The set is empty.
    Empty,
    /// The signing library refused (an empty validity window, a failed signature).
    Sign(String),
}

impl fmt::Display for SignError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignError::Owner => f.write_str("the owner is not a domain name"),
            SignError::Rdata(t) => write!(f, "record data of type {t} does not parse"),
            SignError::Empty => f.write_str("an empty record set cannot be signed"),
            SignError::Sign(e) => write!(f, "cannot sign: {e}"),
        }
    }
}

impl std::error::Error for SignError {}

/// A key that signs: the public key and its private half, checked to match.
pub struct Signer {
    public: PublicKey,
    key: SigningKey<Bytes, KeyPair>,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The private key is never printed.
        f.debug_struct("Signer")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// Reads a key pair: `path` names the `.key` file (or its base name, or the `.private`
    /// file), and the `.private` file beside it must hold the matching private key.
    pub fn load(path: &Path) -> Result<Signer, KeyError> {
        let public = PublicKey::read(path)?;
        let private_path = path.with_file_name(format!("{}.private", public.file_base()));
        let text = std::fs::read_to_string(&private_path)
            .map_err(|e| KeyError::Read(private_path.clone(), e))?;
        Signer::pair(public, &private_path, &text)
    }

    /// A key pair from the texts of its two files (`public_path` and `private_path` name them
    /// in messages).
    pub fn from_texts(
        public_path: &Path,
        public: &str,
        private_path: &Path,
        private: &str,
    ) -> Result<Signer, KeyError> {
        Signer::pair(
            PublicKey::parse(public_path, public)?,
            private_path,
            private,
        )
    }

    /// `public` with the private key in `text` (the `.private` file at `private_path`).
    fn pair(public: PublicKey, private_path: &Path, text: &str) -> Result<Signer, KeyError> {
        let path = private_path;
        let private_path = private_path.to_path_buf();
        let secret = SecretKeyBytes::parse_from_bind(text)
            .map_err(|_| KeyError::Private(private_path.clone()))?;
        // RFC 4034 §2.1.1: the zone key bit (256) set; RFC 5011 §3: the revoke bit (128) not.
        let flags = public.dnskey.flags();
        if flags & 0x0100 == 0 || flags & 0x0080 != 0 {
            return Err(KeyError::Flags(private_path, flags));
        }
        // from_bytes checks that the private key gives the public one.
        let pair = KeyPair::from_bytes(&secret, &public.dnskey)
            .map_err(|e| KeyError::Mismatch(private_path, e.to_string()))?;
        let owner = Name::from_octets(Bytes::copy_from_slice(public.owner.as_slice()))
            .map_err(|_| KeyError::Parse(path.to_path_buf()))?;
        let key = SigningKey::new(owner, public.dnskey.flags(), pair);
        Ok(Signer { public, key })
    }

    /// The public key.
    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    /// The DNSKEY record's RDATA in wire form.
    pub fn dnskey_rdata(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self.public.dnskey.compose_rdata(&mut out) {
            Ok(()) => out,
            Err(never) => match never {},
        }
    }

    /// Signs the record set of `rtype` at `owner` (lowercase wire form) whose records have
    /// the RDATA `rdatas` and the TTL `ttl`; returns the RRSIG's RDATA in wire form.
    pub fn sign(
        &self,
        owner: &[u8],
        rtype: u16,
        ttl: u32,
        rdatas: &[&[u8]],
        validity: Validity,
    ) -> Result<Vec<u8>, SignError> {
        let owner =
            Name::from_octets(Bytes::copy_from_slice(owner)).map_err(|_| SignError::Owner)?;
        // A set holds each record once (RFC 2181 §5; validators drop duplicates before
        // checking, RFC 4034 §6.3): a record given twice is signed once.
        let mut rdatas = rdatas.to_vec();
        rdatas.sort_unstable();
        rdatas.dedup();
        let records = rdatas
            .iter()
            .map(|rdata| {
                let bytes = Bytes::copy_from_slice(rdata);
                let mut parser = Parser::from_ref(&bytes);
                let data = ZoneRecordData::<Bytes, ParsedName<Bytes>>::parse_rdata(
                    Rtype::from_int(rtype),
                    &mut parser,
                )
                .ok()
                .flatten()
                .filter(|_| parser.remaining() == 0)
                .ok_or(SignError::Rdata(rtype))?;
                Ok(Record::new(
                    owner.clone(),
                    Class::IN,
                    Ttl::from_secs(ttl),
                    data,
                ))
            })
            .collect::<Result<Vec<_>, SignError>>()?;
        let refs: Vec<&Record<_, _>> = records.iter().collect();
        let rrset = Rrset::new_from_refs(&refs).map_err(|_| SignError::Empty)?;
        let rrsig = sign_rrset(
            &self.key,
            &rrset,
            Timestamp::from(validity.inception),
            Timestamp::from(validity.expiration),
        )
        .map_err(|e| SignError::Sign(e.to_string()))?;
        let mut out = Vec::new();
        match rrsig.data().compose_rdata(&mut out) {
            Ok(()) => Ok(out),
            Err(never) => match never {},
        }
    }
}
