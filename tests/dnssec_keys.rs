//! DNSSEC keys against the field's own tools (BIND's, from Debian's bind9-utils): a key made
//! by `dnssec-keygen` gives, through `signpost dnssec ds`, exactly the DS that
//! `dnssec-dsfromkey -2` prints; a key made by `signpost dnssec keygen` is read by
//! `dnssec-dsfromkey` with the same DS, and its private file signs a zone with
//! `dnssec-signzone` that `dnssec-verify` accepts.

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn run(program: &str, args: &[&str], dir: &Path) -> String {
    let out: Output = Command::new(program)
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("{program}: {e} (the test command installs bind9-utils and builds signpost)")
        });
    assert!(
        out.status.success(),
        "{program} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn signpost(args: &[&str], dir: &Path) -> String {
    run(env!("CARGO_BIN_EXE_signpost"), args, dir)
}

/// The one line a key tool printed.
fn line(text: &str) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line expected: {text}");
    lines[0].trim().to_string()
}

#[test]
fn bind_keys_give_the_ds_dnssec_dsfromkey_gives() {
    let dir = TempDir::new("dnssec-bind-keys");
    for (algorithm, flags) in [
        ("ECDSAP256SHA256", &["-f", "KSK"][..]),
        ("ECDSAP256SHA256", &[][..]),
        ("ED25519", &["-f", "KSK"][..]),
    ] {
        let mut args = vec!["-q", "-a", algorithm];
        args.extend_from_slice(flags);
        args.push("example.org");
        let base = line(&run("dnssec-keygen", &args, &dir.0));
        let key = format!("{base}.key");
        let theirs = line(&run("dnssec-dsfromkey", &["-2", &key], &dir.0));
        assert!(theirs.starts_with("example.org. IN DS "), "{theirs}");
        // The .key file, its base name, or the .private beside it.
        for given in [key.clone(), base.clone(), format!("{base}.private")] {
            let ours = line(&signpost(&["dnssec", "ds", &given], &dir.0));
            assert_eq!(ours, theirs, "{algorithm} {flags:?} given as {given}");
        }
    }
}

#[test]
fn signpost_keys_are_read_and_used_by_bind_tools() {
    let dir = TempDir::new("dnssec-signpost-keys");
    let zone = "example.org";
    let mut bases = Vec::new();
    for (algorithm, ksk) in [
        ("ecdsap256sha256", true),
        ("ecdsap256sha256", false),
        ("ed25519", true),
    ] {
        let mut args = vec![
            "dnssec",
            "keygen",
            "--zone",
            zone,
            "--algorithm",
            algorithm,
            "--dir",
            ".",
        ];
        if ksk {
            args.push("--ksk");
        }
        let base = line(&signpost(&args, &dir.0));
        let number = if algorithm == "ed25519" { "015" } else { "013" };
        assert!(base.starts_with(&format!("K{zone}.+{number}+")), "{base}");
        use std::os::unix::fs::PermissionsExt;
        let private: PathBuf = dir.path(&format!("{base}.private"));
        let mode = std::fs::metadata(&private).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{base}.private");
        let flags = if ksk { " 257 3 " } else { " 256 3 " };
        let key = std::fs::read_to_string(dir.path(&format!("{base}.key"))).unwrap();
        assert!(key.contains(flags), "{key}");

        let theirs = line(&run(
            "dnssec-dsfromkey",
            &["-2", &format!("{base}.key")],
            &dir.0,
        ));
        let ours = line(&signpost(&["dnssec", "ds", &format!("{base}.key")], &dir.0));
        assert_eq!(ours, theirs, "{algorithm} ksk={ksk}");
        bases.push(base);
    }
    // Several keys at once: one DS each, in order.
    let all: Vec<String> = bases.iter().map(|b| format!("{b}.key")).collect();
    let mut args = vec!["dnssec", "ds"];
    args.extend(all.iter().map(String::as_str));
    assert_eq!(signpost(&args, &dir.0).lines().count(), bases.len());

    // BIND signs a zone with the ECDSA KSK and ZSK made here (their private files), and its
    // verifier accepts the result: the private halves match the public ones.
    let zonefile = dir.write(
        "example.org.zone",
        &format!(
            "$TTL 300\n\
             @ IN SOA ns1.example.org. hostmaster.example.org. 1 3600 600 86400 300\n\
             @ IN NS ns1.example.org.\n\
             ns1 IN A 192.0.2.53\n\
             dl IN A 192.0.2.10\n\
             $INCLUDE {}.key\n\
             $INCLUDE {}.key\n",
            bases[0], bases[1]
        ),
    );
    let signed = dir.path("example.org.signed");
    run(
        "dnssec-signzone",
        &[
            "-q",
            "-o",
            zone,
            "-f",
            signed.to_str().unwrap(),
            "-K",
            ".",
            zonefile.to_str().unwrap(),
            &format!("{}.key", bases[0]),
            &format!("{}.key", bases[1]),
        ],
        &dir.0,
    );
    run(
        "dnssec-verify",
        &["-q", "-o", zone, signed.to_str().unwrap()],
        &dir.0,
    );
    let text = std::fs::read_to_string(&signed).unwrap();
    assert!(text.contains("RRSIG"), "{text}");
}

#[test]
fn unreadable_keys_are_named_and_the_rest_still_printed() {
    let dir = TempDir::new("dnssec-bad-keys");
    let base = line(&signpost(
        &["dnssec", "keygen", "--zone", "example.org", "--dir", "."],
        &dir.0,
    ));
    dir.write("Kbroken.+013+00001.key", "example.org. IN A 192.0.2.1\n");
    let out = Command::new(env!("CARGO_BIN_EXE_signpost"))
        .current_dir(&dir.0)
        .args([
            "dnssec",
            "ds",
            "Kbroken.+013+00001.key",
            &format!("{base}.key"),
            "Kmissing.+013+00002",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.starts_with("example.org. IN DS "), "{stdout}");
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(
        stderr.contains("Kbroken.+013+00001.key: not a public key file"),
        "{stderr}"
    );
    assert!(stderr.contains("Kmissing.+013+00002.key"), "{stderr}");
    // keygen does not replace a key; a zone that is no name is refused.
    let out = Command::new(env!("CARGO_BIN_EXE_signpost"))
        .args(["dnssec", "keygen", "--zone", "a..b", "--dir"])
        .arg(&dir.0)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a zone name"));
}
