//! A zone's `dnssec` section as written: the serde types, with their defaults. `dnssec.rs`
//! reads the keys and builds the runtime [`crate::dnssec::ZoneKeys`].

use serde::Deserialize;

/// Signing a zone: its keys and the signatures' timing.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnssecSpec {
    /// The zone's keys (BIND's files: the `.key` file, its base name or the `.private` file;
    /// both files are read), in the order their DNSKEY records are listed.
    pub keys: Vec<KeySpec>,
    /// Seconds from a signature's making to its expiration.
    #[serde(default = "default_validity")]
    pub validity_s: u32,
    /// Signatures are made again when less than this many seconds of their validity remain.
    #[serde(default = "default_refresh")]
    pub refresh_s: u32,
    /// Seconds the inception is set back, for validators whose clocks run behind.
    #[serde(default = "default_backdate")]
    pub backdate_s: u32,
    /// Publish CDS and CDNSKEY records (RFC 7344) for the keys that sign the DNSKEY set, so
    /// that a parent that reads them can keep its DS records in step.
    #[serde(default)]
    pub cds: bool,
}

fn default_validity() -> u32 {
    14 * 86_400
}

fn default_refresh() -> u32 {
    7 * 86_400
}

fn default_backdate() -> u32 {
    3600
}

/// One key: a path, or `{file, sign}`.
#[derive(Debug)]
pub struct KeySpec {
    /// The key's file, relative to the configuration file.
    pub file: String,
    /// It signs; `false` publishes its DNSKEY only (before or after a roll).
    pub sign: bool,
}

/// The map form of [`KeySpec`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyMapSpec {
    /// The key's file.
    pub file: String,
    /// It signs (default true).
    #[serde(default = "yes")]
    pub sign: bool,
}

fn yes() -> bool {
    true
}

impl<'de> Deserialize<'de> for KeySpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::source::string_or_map(
            d,
            "a key file, or {file, sign}",
            |file| KeySpec { file, sign: true },
            |m: KeyMapSpec| KeySpec {
                file: m.file,
                sign: m.sign,
            },
        )
    }
}
