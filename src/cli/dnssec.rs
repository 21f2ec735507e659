//! `signpost dnssec keygen` and `signpost dnssec ds`: DNSSEC keys in BIND's file format
//! (`dnssec-keygen`'s), and the DS records that the parent zone publishes for them (what
//! `dnssec-dsfromkey -2` prints). The keys and digests themselves are [`crate::dnssec`]'s.

use std::path::PathBuf;

use clap::{Subcommand, ValueEnum};

use super::CliError;
use crate::dnssec::{Algorithm, Ds, NewKey, PublicKey, Role};

/// `signpost dnssec` subcommands.
#[derive(Debug, Subcommand)]
pub enum DnssecCommand {
    /// Make a key pair: writes `K<zone>.+<alg>+<tag>.key` and `.private` (mode 0600) into --dir
    /// and prints the base name, as dnssec-keygen does.
    Keygen {
        /// The zone the key signs.
        #[arg(long)]
        zone: String,
        /// The signing algorithm.
        #[arg(long, value_enum, default_value_t = AlgorithmArg::Ecdsap256sha256)]
        algorithm: AlgorithmArg,
        /// Make a key-signing key (DNSKEY flags 257, the key the parent's DS names) instead of
        /// a zone-signing key (flags 256).
        #[arg(long)]
        ksk: bool,
        /// The directory to write the two files into (it must exist).
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
    /// Print the DS record (SHA-256) of each key, for the parent zone.
    Ds {
        /// Public key files (`K<zone>.+<alg>+<tag>.key`, or their base names).
        #[arg(required = true, value_name = "KEYFILE")]
        keys: Vec<PathBuf>,
    },
}

/// The algorithms `keygen` offers, by their DNSSEC mnemonics in lower case.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum AlgorithmArg {
    /// ECDSA P-256 with SHA-256 (algorithm 13).
    Ecdsap256sha256,
    /// Ed25519 (algorithm 15).
    Ed25519,
}

impl From<AlgorithmArg> for Algorithm {
    fn from(a: AlgorithmArg) -> Algorithm {
        match a {
            AlgorithmArg::Ecdsap256sha256 => Algorithm::EcdsaP256Sha256,
            AlgorithmArg::Ed25519 => Algorithm::Ed25519,
        }
    }
}

/// Runs one `dnssec` subcommand.
pub fn run(command: DnssecCommand) -> Result<(), CliError> {
    match command {
        DnssecCommand::Keygen {
            zone,
            algorithm,
            ksk,
            dir,
        } => {
            let role = if ksk { Role::KeySigning } else { Role::Zone };
            let key = NewKey::generate(&zone, algorithm.into(), role).map_err(CliError::Key)?;
            key.write(&dir).map_err(CliError::Key)?;
            println!("{}", key.public.file_base());
            Ok(())
        }
        DnssecCommand::Ds { keys } => {
            // Every readable key's DS is printed; the unreadable ones are reported together.
            let mut bad = Vec::new();
            for path in &keys {
                match PublicKey::read(path) {
                    Ok(key) => println!("{}", Ds::sha256(&key)),
                    Err(e) => bad.push(e.to_string()),
                }
            }
            if bad.is_empty() {
                Ok(())
            } else {
                Err(CliError::Bad(bad.join("\n")))
            }
        }
    }
}
