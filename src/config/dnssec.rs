//! A zone's keys from its `dnssec` section: both files of each key read (from disk or the
//! embedded demo), the pair checked to match and to belong to the zone, and the timing checked.

use std::path::Path;
use std::sync::Arc;

use super::DataSource;
use super::dnssec_spec::DnssecSpec;
use crate::dnssec::{Signer, Timing, ZoneKey, ZoneKeys};
use crate::source::{Document, Errors};

/// The keys of the zone with apex `apex` (lowercase wire form), or `None` after reporting
/// every problem at its path (`path` is the `dnssec` section's). Both files of every key are
/// added to `files`, for the reload's watch (which follows the configuration in force: a key
/// file that it names and that is replaced or edited asks for a reload).
pub(super) fn load(
    doc: &Document,
    path: &str,
    spec: &DnssecSpec,
    apex: &[u8],
    resolve: &dyn Fn(&str) -> DataSource,
    errors: &mut Errors,
    files: &mut Vec<DataSource>,
) -> Option<Arc<ZoneKeys>> {
    let before = errors.0.len();
    if spec.keys.is_empty() {
        errors
            .0
            .push(doc.error(&format!("{path}.keys"), "a signed zone needs a key"));
    }
    let mut keys = Vec::new();
    for (i, k) in spec.keys.iter().enumerate() {
        let at = format!("{path}.keys[{i}]");
        match read_pair(&k.file, resolve, files) {
            Ok(signer) => {
                let owner = signer.public().owner.as_slice().to_ascii_lowercase();
                if owner[..] != *apex {
                    errors.0.push(doc.error(
                        &at,
                        format!(
                            "the key belongs to {}, not to this zone",
                            signer.public().owner
                        ),
                    ));
                } else if keys
                    .iter()
                    .any(|o: &ZoneKey| o.signer.public().tag() == signer.public().tag())
                {
                    errors
                        .0
                        .push(doc.error(&at, "a key with this tag is listed already"));
                } else {
                    keys.push(ZoneKey {
                        signer,
                        signs: k.sign,
                    });
                }
            }
            Err(e) => errors.0.push(doc.error(&at, e)),
        }
    }
    let timing = Timing {
        validity: spec.validity_s,
        refresh: spec.refresh_s,
        backdate: spec.backdate_s,
    };
    // Signature times are 32-bit serial numbers (RFC 4034 §3.1.5): a window must stay well
    // inside 2^31 seconds.
    if u64::from(timing.validity) + u64::from(timing.backdate) >= 1 << 30 {
        errors.0.push(doc.error(
            &format!("{path}.validity_s"),
            "validity_s + backdate_s must be under 2^30 seconds (34 years)",
        ));
    }
    if timing.refresh >= timing.validity {
        errors.0.push(doc.error(
            &format!("{path}.refresh_s"),
            format!(
                "must be shorter than validity_s ({}): signatures are made again when this much of their validity remains",
                timing.validity
            ),
        ));
    }
    if errors.0.len() > before {
        return None;
    }
    match ZoneKeys::new(keys, timing, spec.cds) {
        Ok(k) => Some(Arc::new(k)),
        Err(e) => {
            errors.0.push(doc.error(path, e.to_string()));
            None
        }
    }
}

/// Reads the key pair `file` names: its `.key` file, its base name, or its `.private` file;
/// adds both files to `files`.
fn read_pair(
    file: &str,
    resolve: &dyn Fn(&str) -> DataSource,
    files: &mut Vec<DataSource>,
) -> Result<Signer, String> {
    let base = file
        .strip_suffix(".key")
        .or_else(|| file.strip_suffix(".private"))
        .unwrap_or(file);
    let (public, private) = (format!("{base}.key"), format!("{base}.private"));
    files.extend([resolve(&public), resolve(&private)]);
    let read = |name: &str| -> Result<(DataSource, String), String> {
        let source = resolve(name);
        let bytes = source
            .read()
            .map_err(|e| format!("cannot read {}: {e}", source.display()))?;
        let text = String::from_utf8(bytes)
            .map_err(|_| format!("{} is not a text file", source.display()))?;
        Ok((source, text))
    };
    let (public_source, public_text) = read(&public)?;
    let (private_source, private_text) = read(&private)?;
    Signer::from_texts(
        Path::new(&public_source.display()),
        &public_text,
        Path::new(&private_source.display()),
        &private_text,
    )
    .map_err(|e| e.to_string())
}
