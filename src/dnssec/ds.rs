//! The DS record a parent zone publishes for a key (RFC 4034 §5), with a SHA-256 digest
//! (digest type 2, RFC 4509): `digest = SHA-256(owner name | DNSKEY RDATA)`, both in canonical
//! form. `domain` composes the canonical forms, `ring` (through `domain`) hashes.

use std::fmt;

use domain::base::ToName;
use domain::base::rdata::ComposeRecordData;
use domain::crypto::common::{DigestBuilder, DigestType};

use super::key::PublicKey;

/// DS digest type 2: SHA-256.
const SHA256: u8 = 2;

/// A DS record for a public key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ds {
    /// The owner: the key's zone, with the final dot.
    pub owner: String,
    /// The key tag.
    pub tag: u16,
    /// The key's algorithm number.
    pub algorithm: u8,
    /// The digest type (2).
    pub digest_type: u8,
    /// The digest.
    pub digest: Vec<u8>,
}

impl Ds {
    /// The SHA-256 DS record of `key`.
    pub fn sha256(key: &PublicKey) -> Ds {
        let mut data: Vec<u8> = Vec::new();
        // Composing into a Vec cannot fail (its builder is infallible).
        let composed = key
            .owner
            .compose_canonical(&mut data)
            .and_then(|()| key.dnskey.compose_canonical_rdata(&mut data));
        match composed {
            Ok(()) => {}
            Err(never) => match never {},
        }
        let mut digest = DigestBuilder::new(DigestType::Sha256);
        digest.update(&data);
        Ds {
            owner: key.owner.fmt_with_dot().to_string(),
            tag: key.tag(),
            algorithm: key.dnskey.algorithm().to_int(),
            digest_type: SHA256,
            digest: digest.finish().as_ref().to_vec(),
        }
    }
}

impl Ds {
    /// The record data in wire form (RFC 4034 §5.1): key tag, algorithm, digest type, digest;
    /// also the data of a CDS record (RFC 7344 §3.1).
    pub fn rdata(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + self.digest.len());
        out.extend_from_slice(&self.tag.to_be_bytes());
        out.push(self.algorithm);
        out.push(self.digest_type);
        out.extend_from_slice(&self.digest);
        out
    }
}

/// The record in presentation format, as `dnssec-dsfromkey` prints it
/// (`example.org. IN DS 10927 13 2 11C5FB…`).
impl fmt::Display for Ds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} IN DS {} {} {} ",
            self.owner, self.tag, self.algorithm, self.digest_type
        )?;
        self.digest.iter().try_for_each(|b| write!(f, "{b:02X}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4509 §2.3's example: the DNSKEY of dskey.example.com and its SHA-256 DS.
    #[test]
    fn the_rfc_4509_example() {
        let text = "dskey.example.com. 86400 IN DNSKEY 256 3 5 \
                    AQOeiiR0GOMYkDshWoSKz9XzfwJr1AYtsmx3TGkJaNXVbfi/2pHm822aJ5iI9BMzNXxeYCmZDR\
                    D99WYwYqUSdjMmmAphXdvxegXd/M5+X7OrzKBaMbCVdFLUUh6DhweJBjEVv5f2wwjM9Xzc\
                    nOf+EPbtG9DMBmADjFDc2w/rljwvFw==";
        let record = domain::dnssec::common::parse_from_bind::<Vec<u8>>(text).unwrap();
        let key = PublicKey {
            owner: record.owner().clone(),
            dnskey: record.data().clone(),
        };
        assert_eq!(
            Ds::sha256(&key).to_string(),
            "dskey.example.com. IN DS 60485 5 2 \
             D4B7D520E7BB5F0F67674A0CCEB1E3E0614B93C4F9E99B8383F6A1E4469DA50A"
        );
    }
}
