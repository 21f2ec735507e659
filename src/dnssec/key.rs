//! Key pairs in BIND's file formats: `K<zone>.+<alg>+<tag>.key` holds the DNSKEY record in
//! presentation format, `K<zone>.+<alg>+<tag>.private` the private key (`Private-key-format`
//! v1.2, readable by BIND's tools), written with mode 0600.
//!
//! Generation and both file syntaxes are `domain`'s (`crypto::sign::generate`,
//! `SecretKeyBytes::display_as_bind`, `dnssec::common::{parse_from_bind, display_as_bind}`).

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use domain::base::iana::{Class, SecurityAlgorithm};
use domain::base::{Name, Record, Ttl};
use domain::crypto::sign::{GenerateParams, generate};
use domain::dnssec::common::{display_as_bind, parse_from_bind};
use domain::rdata::Dnskey;

/// The signing algorithms Signpost makes keys for (RFC 8624 recommends both for signing).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    /// ECDSA on P-256 with SHA-256 (algorithm 13, RFC 6605): the default.
    EcdsaP256Sha256,
    /// Ed25519 (algorithm 15, RFC 8080).
    Ed25519,
}

impl Algorithm {
    fn params(self) -> GenerateParams {
        match self {
            Algorithm::EcdsaP256Sha256 => GenerateParams::EcdsaP256Sha256,
            Algorithm::Ed25519 => GenerateParams::Ed25519,
        }
    }
}

/// What a new key is for, which sets its DNSKEY flags (RFC 4034 §2.1.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A zone key (flags 256): a ZSK, or a single key signing everything.
    Zone,
    /// A key-signing key (flags 257, the Secure Entry Point bit): the key the parent's DS
    /// names, signing the DNSKEY set.
    KeySigning,
}

impl Role {
    fn flags(self) -> u16 {
        match self {
            Role::Zone => 256,
            Role::KeySigning => 257,
        }
    }
}

/// Why a key could not be made, written, or read.
#[derive(Debug)]
pub enum KeyError {
    /// The zone is not a domain name.
    Zone(String),
    /// The cryptographic library could not generate the key.
    Generate(String),
    /// A key file could not be written (an existing file is never replaced).
    Write(PathBuf, std::io::Error),
    /// A key file could not be read.
    Read(PathBuf, std::io::Error),
    /// A key file holds no key in BIND's format.
    Parse(PathBuf),
    /// A private key file does not hold the private half of its public key.
    Mismatch(PathBuf, String),
    /// A private key file that is not one, or of an algorithm Signpost cannot sign with.
    Private(PathBuf),
    /// A key whose flags say it must not sign the zone (revoked, or not a zone key).
    Flags(PathBuf, u16),
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::Zone(z) => write!(f, "{z:?} is not a zone name"),
            KeyError::Generate(e) => write!(f, "cannot generate a key: {e}"),
            KeyError::Write(p, e) => write!(f, "cannot write {}: {e}", p.display()),
            KeyError::Read(p, e) => write!(f, "cannot read {}: {e}", p.display()),
            KeyError::Parse(p) => write!(
                f,
                "{}: not a public key file (one DNSKEY record, as dnssec-keygen writes)",
                p.display()
            ),
            KeyError::Private(p) => write!(
                f,
                "{}: not a private key file of a supported algorithm (BIND's Private-key-format v1.2; ECDSAP256SHA256, ED25519 and the others `domain` signs with)",
                p.display()
            ),
            KeyError::Flags(p, flags) => write!(
                f,
                "{}: DNSKEY flags {flags}: a revoked key (RFC 5011) or one without the zone key bit cannot sign",
                p.display()
            ),
            KeyError::Mismatch(p, e) => {
                write!(
                    f,
                    "{}: not the private half of its .key file: {e}",
                    p.display()
                )
            }
        }
    }
}

impl std::error::Error for KeyError {}

/// A public key: the DNSKEY record and the zone that owns it.
#[derive(Clone, Debug)]
pub struct PublicKey {
    /// The zone (the DNSKEY's owner name).
    pub owner: Name<Vec<u8>>,
    /// The DNSKEY record data.
    pub dnskey: Dnskey<Vec<u8>>,
}

impl PublicKey {
    /// The key tag (RFC 4034 Appendix B) that DS and RRSIG records name the key by.
    pub fn tag(&self) -> u16 {
        self.dnskey.key_tag()
    }

    /// The base of the key's file names, as BIND names them: `Kexample.org.+013+10927`.
    pub fn file_base(&self) -> String {
        format!(
            "K{}+{:03}+{:05}",
            self.owner.fmt_with_dot(),
            self.dnskey.algorithm().to_int(),
            self.tag()
        )
    }

    /// The `.key` file's text: BIND's comment line, then the DNSKEY record.
    pub fn to_bind(&self) -> String {
        let kind = if self.dnskey.is_secure_entry_point() {
            "key-signing"
        } else {
            "zone-signing"
        };
        let record = Record::new(
            self.owner.clone(),
            Class::IN,
            Ttl::ZERO,
            self.dnskey.clone(),
        );
        format!(
            "; This is a {kind} key, keyid {}, for {}\n{}",
            self.tag(),
            self.owner.fmt_with_dot(),
            display_as_bind(&record)
        )
    }

    /// Reads a `.key` file. `path` may also be the file's base name (`Kexample.org.+013+10927`,
    /// as `dnssec-dsfromkey` accepts) or the `.private` file beside it.
    pub fn read(path: &Path) -> Result<PublicKey, KeyError> {
        let path = public_path(path);
        let text = std::fs::read_to_string(&path).map_err(|e| KeyError::Read(path.clone(), e))?;
        PublicKey::parse(&path, &text)
    }

    /// Reads the text of a `.key` file (`path` names it in messages).
    pub fn parse(path: &Path, text: &str) -> Result<PublicKey, KeyError> {
        let record =
            parse_from_bind::<Vec<u8>>(text).map_err(|_| KeyError::Parse(path.to_path_buf()))?;
        Ok(PublicKey {
            owner: record.owner().clone(),
            dnskey: record.data().clone(),
        })
    }

    /// True for a key-signing key (the Secure Entry Point flag, RFC 4034 §2.1.1).
    pub fn is_key_signing(&self) -> bool {
        self.dnskey.is_secure_entry_point()
    }
}

/// The `.key` file a path names: itself, or with `.private` replaced or `.key` added.
pub fn public_path(path: &Path) -> PathBuf {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if let Some(base) = name.strip_suffix(".private") {
        return path.with_file_name(format!("{base}.key"));
    }
    if name.ends_with(".key") || path.exists() {
        return path.to_path_buf();
    }
    path.with_file_name(format!("{name}.key"))
}

/// A key pair just made, not yet on disk.
pub struct NewKey {
    /// Its public half.
    pub public: PublicKey,
    /// The `.private` file's text.
    private: String,
}

impl fmt::Debug for NewKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The private key is never printed.
        f.debug_struct("NewKey")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

impl NewKey {
    /// Generates a key pair for `zone` (`example.org`, with or without the final dot).
    pub fn generate(zone: &str, algorithm: Algorithm, role: Role) -> Result<NewKey, KeyError> {
        let owner = zone_name(zone)?;
        let (secret, dnskey) = generate(&algorithm.params(), role.flags())
            .map_err(|e| KeyError::Generate(e.to_string()))?;
        debug_assert_eq!(
            dnskey.algorithm(),
            match algorithm {
                Algorithm::EcdsaP256Sha256 => SecurityAlgorithm::ECDSAP256SHA256,
                Algorithm::Ed25519 => SecurityAlgorithm::ED25519,
            }
        );
        Ok(NewKey {
            public: PublicKey { owner, dnskey },
            private: secret.display_as_bind().to_string(),
        })
    }

    /// Writes `<base>.key` (mode 0644) and `<base>.private` (mode 0600) into `dir`, and
    /// returns their paths. An existing file is never replaced.
    pub fn write(&self, dir: &Path) -> Result<(PathBuf, PathBuf), KeyError> {
        let base = self.public.file_base();
        let private = dir.join(format!("{base}.private"));
        let public = dir.join(format!("{base}.key"));
        // The private file first: a public key without its private half is useless, the
        // reverse would be a half-written pair that the next run refuses to overwrite.
        create(&private, 0o600, self.private.as_bytes())?;
        create(&public, 0o644, self.public.to_bind().as_bytes())?;
        Ok((public, private))
    }
}

/// The zone as an absolute, lowercase domain name.
fn zone_name(zone: &str) -> Result<Name<Vec<u8>>, KeyError> {
    let text = zone.to_ascii_lowercase();
    let text = if text.ends_with('.') {
        text
    } else {
        format!("{text}.")
    };
    Name::from_str(&text).map_err(|_| KeyError::Zone(zone.to_string()))
}

/// Creates `path` with `mode` (never replacing a file) and writes `bytes` to it.
fn create(path: &Path, mode: u32, bytes: &[u8]) -> Result<(), KeyError> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()))
        .map_err(|e| KeyError::Write(path.to_path_buf(), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_key_reads_back_with_its_tag_flags_and_file_names() {
        let dir = std::env::temp_dir().join(format!("signpost-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (algorithm, role, number, flags) in [
            (Algorithm::EcdsaP256Sha256, Role::KeySigning, 13, 257),
            (Algorithm::Ed25519, Role::Zone, 15, 256),
        ] {
            let key = NewKey::generate("Example.ORG", algorithm, role).unwrap();
            let (public, private) = key.write(&dir).unwrap();
            let base = format!("Kexample.org.+{number:03}+{:05}", key.public.tag());
            assert_eq!(public, dir.join(format!("{base}.key")));
            assert_eq!(private, dir.join(format!("{base}.private")));
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&private).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            for path in [&public, &private, &dir.join(&base)] {
                let read = PublicKey::read(path).unwrap();
                assert_eq!(read.dnskey, key.public.dnskey);
                assert_eq!(read.dnskey.flags(), flags);
                assert_eq!(read.owner.to_string(), "example.org");
            }
            // Written once: a second write of the same key is refused.
            assert!(matches!(key.write(&dir), Err(KeyError::Write(..))));
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_bad_zone_is_refused() {
        let e = NewKey::generate("a..b", Algorithm::Ed25519, Role::Zone).unwrap_err();
        assert!(matches!(e, KeyError::Zone(_)), "{e}");
    }
}
