//! Key rollovers step by step, exactly as docs/dnssec.md ("Rolling keys") tells an operator to
//! do them: each step is an edit of the zone's `dnssec.keys` and `signpost ctl reload`, then
//! a wait of the TTLs the step names. At every step two validators must be green: Unbound,
//! running through the whole roll with its cache (what a resolver that saw the previous step
//! holds), and delv (a resolver that has seen nothing). The zone's TTLs are 2 s so that the
//! waits are short.
//!
//! - ZSK pre-publish roll (RFC 6781 §4.1.1.1): publish the new ZSK; sign with it and keep the
//!   old one published; remove the old one.
//! - KSK double-signature roll (RFC 6781 §4.1.2): add the new KSK, signing; the parent's DS
//!   changes (here: validators given the new DS); remove the old KSK. After the last step the
//!   old DS no longer validates (the test can fail).

mod common;
use common::validators::{Unbound, delv, delv_anchor, ds_of, has_flag, keygen, rrsigs};
use common::*;

use std::path::Path;
use std::time::Duration;

/// The zone's TTLs (records, DNSKEY, SOA, NSEC), and the wait after each step (longer).
const TTL_S: u64 = 2;

/// Writes the configuration with the zone signed by `keys` (YAML list items).
fn write_config(config: &Path, base: &str, keys: &[String]) {
    let text = base.replace(
        "  - apex: example.test\n",
        &format!(
            "  - apex: example.test\n    ttl: {TTL_S}\n    dnssec:\n      cds: true\n      keys: [{}]\n",
            keys.join(", ")
        ),
    );
    std::fs::write(config, text).unwrap();
}

/// The key tags of the RRSIGs over `rtype` at `name`, from the server itself.
fn signed_by(server: &Server, name: &str, rtype: &str) -> Vec<u16> {
    let out = server.dig(&["+dnssec", name, rtype]);
    let mut tags: Vec<u16> = rrsigs(&out)
        .into_iter()
        .filter(|(covered, _, _)| covered == rtype)
        .map(|(_, tag, _)| tag)
        .collect();
    tags.sort_unstable();
    tags
}

/// The key tags of the CDS records at the apex (what a parent reading them would publish).
fn cds_tags(server: &Server) -> Vec<u16> {
    let mut tags: Vec<u16> = server
        .short(&["example.test", "CDS"])
        .lines()
        .map(|l| l.split_whitespace().next().unwrap().parse().unwrap())
        .collect();
    tags.sort_unstable();
    tags
}

/// Reloads, then waits out the TTLs of what validators may hold.
fn step(server: &Server, config: &Path, base: &str, keys: &[String]) {
    write_config(config, base, keys);
    let (ok, out) = server.ctl(&["reload"]);
    assert!(ok, "reload: {out}");
    std::thread::sleep(Duration::from_millis(TTL_S * 1000 + 1500));
}

/// Both validators validate a positive and a negative answer.
fn green(server: &Server, resolver: &Unbound, anchor: &str, what: &str) {
    for (name, rtype, status) in [
        ("www.example.test", "A", "NOERROR"),
        ("nothere.example.test", "A", "NXDOMAIN"),
        ("example.test", "DNSKEY", "NOERROR"),
    ] {
        let out = resolver.dig(&[name, rtype]);
        assert!(
            out.contains(&format!("status: {status}")) && has_flag(&out, "ad"),
            "{what}: Unbound, {name} {rtype}: {out}"
        );
        let out = delv(server.udp.port(), anchor, name, rtype);
        assert!(
            out.contains("fully validated"),
            "{what}: delv, {name} {rtype}: {out}"
        );
    }
}

fn start(tag: &str, keys: &[String]) -> (TempDir, Server, std::path::PathBuf, String) {
    let dir = TempDir::new(tag);
    let config = demo_config(&dir, "");
    let base = std::fs::read_to_string(&config).unwrap();
    write_config(&config, &base, keys);
    let server = Server::with_control(&config, &dir);
    (dir, server, config, base)
}

#[test]
fn zsk_pre_publish_roll_stays_validated() {
    let keys = TempDir::new("dnssec-zsk-roll-keys");
    let (ksk, ksk_tag) = keygen(&keys, true);
    let (old, old_tag) = keygen(&keys, false);
    let (new, new_tag) = keygen(&keys, false);
    let published = |k: &str| format!("{{file: {k}, sign: false}}");
    let (dir, server, config, base) = start("dnssec-zsk-roll", &[ksk.clone(), old.clone()]);
    let anchor = delv_anchor(&dir, &ksk, "anchor.conf");
    let resolver = Unbound::start(&dir, &ds_of(&ksk), server.udp.port());
    green(&server, &resolver, &anchor, "before");
    assert_eq!(signed_by(&server, "www.example.test", "A"), [old_tag]);

    // 1. Publish the new ZSK; wait the DNSKEY TTL.
    step(
        &server,
        &config,
        &base,
        &[ksk.clone(), old.clone(), published(&new)],
    );
    green(&server, &resolver, &anchor, "new ZSK published");
    assert_eq!(signed_by(&server, "www.example.test", "A"), [old_tag]);
    assert_eq!(signed_by(&server, "example.test", "DNSKEY"), [ksk_tag]);

    // 2. Sign with the new ZSK, the old one still published; wait the longest TTL signed.
    step(
        &server,
        &config,
        &base,
        &[ksk.clone(), published(&old), new.clone()],
    );
    green(&server, &resolver, &anchor, "signing with the new ZSK");
    assert_eq!(signed_by(&server, "www.example.test", "A"), [new_tag]);

    // 3. Remove the old ZSK.
    step(&server, &config, &base, &[ksk.clone(), new.clone()]);
    green(&server, &resolver, &anchor, "old ZSK removed");
    let dnskeys = server.short(&["example.test", "DNSKEY"]);
    assert_eq!(dnskeys.lines().count(), 2, "{dnskeys}");
}

#[test]
fn ksk_double_signature_roll_stays_validated() {
    let keys = TempDir::new("dnssec-ksk-roll-keys");
    let (old, old_tag) = keygen(&keys, true);
    let (new, new_tag) = keygen(&keys, true);
    let (zsk, zsk_tag) = keygen(&keys, false);
    let (dir, server, config, base) = start("dnssec-ksk-roll", &[old.clone(), zsk.clone()]);
    let old_anchor = delv_anchor(&dir, &old, "old.conf");
    let new_anchor = delv_anchor(&dir, &new, "new.conf");
    let resolver = Unbound::start(&dir, &ds_of(&old), server.udp.port());
    green(&server, &resolver, &old_anchor, "before");

    // 1. Add the new KSK, signing the DNSKEY set beside the old one; wait the DNSKEY TTL.
    step(
        &server,
        &config,
        &base,
        &[old.clone(), new.clone(), zsk.clone()],
    );
    let mut both = [old_tag, new_tag];
    both.sort_unstable();
    assert_eq!(signed_by(&server, "example.test", "DNSKEY"), both);
    assert_eq!(signed_by(&server, "www.example.test", "A"), [zsk_tag]);
    // The CDS set names both KSKs, signed by both (RFC 7344 §4.1).
    assert_eq!(cds_tags(&server), both);
    assert_eq!(signed_by(&server, "example.test", "CDS"), both);
    green(&server, &resolver, &old_anchor, "new KSK added (old DS)");

    // 2. The parent publishes the new DS instead of the old (a resolver that fetches the DS
    //    now gets the new one); wait the DS TTL.
    let renewed = Unbound::start(&dir, &ds_of(&new), server.udp.port());
    green(&server, &renewed, &new_anchor, "new KSK added (new DS)");

    // 3. Remove the old KSK.
    step(&server, &config, &base, &[new.clone(), zsk.clone()]);
    assert_eq!(signed_by(&server, "example.test", "DNSKEY"), [new_tag]);
    assert_eq!(cds_tags(&server), [new_tag]);
    green(&server, &renewed, &new_anchor, "old KSK removed");
    for rtype in ["CDS", "CDNSKEY"] {
        let out = delv(server.udp.port(), &new_anchor, "example.test", rtype);
        assert!(out.contains("; fully validated"), "{rtype}: {out}");
    }
    // The CDS record is the DS that `signpost dnssec ds` prints for the key.
    let ds = ds_of(&new);
    let cds = server.short(&["example.test", "CDS"]);
    let want: Vec<&str> = ds.split_whitespace().skip(3).collect();
    let got: Vec<String> = cds.split_whitespace().map(str::to_uppercase).collect();
    assert_eq!(got.concat(), want.concat().to_uppercase(), "{cds} / {ds}");
    // The old DS names a key that is gone: a resolver still holding it fails.
    let out = delv(server.udp.port(), &old_anchor, "www.example.test", "A");
    assert!(!out.contains("fully validated"), "{out}");
}

/// The key files are watched like the other inputs: a key pair replaced on disk under the same
/// name (here by another key) signs the zone after the automatic reload, without
/// `signpost ctl reload`, and the zone stays served throughout.
#[test]
fn a_key_file_replaced_on_disk_is_picked_up() {
    let keys = TempDir::new("dnssec-key-files");
    let (first, first_tag) = keygen(&keys, true);
    let (second, second_tag) = keygen(&keys, true);
    let current = keys.path("current").display().to_string();
    let copy = |from: &str| {
        for ext in ["key", "private"] {
            let text = std::fs::read(format!("{from}.{ext}")).unwrap();
            // Written aside, then renamed over: the way an editor or a deploy tool replaces it.
            let aside = format!("{current}.{ext}.new");
            std::fs::write(&aside, text).unwrap();
            std::fs::rename(&aside, format!("{current}.{ext}")).unwrap();
        }
    };
    copy(&first);
    let (_dir, server, _config, _base) = start("dnssec-key-files", std::slice::from_ref(&current));
    assert_eq!(signed_by(&server, "example.test", "DNSKEY"), [first_tag]);
    copy(&second);
    let mut seen = Vec::new();
    let picked_up = speakers::wait_until(Duration::from_secs(20), || {
        seen = signed_by(&server, "example.test", "DNSKEY");
        assert!(
            !seen.is_empty(),
            "the zone stays signed while the key changes"
        );
        seen == [second_tag]
    });
    assert!(picked_up, "still signed by {seen:?}, not {second_tag}");
    let (_, status) = server.ctl(&["status"]);
    assert_eq!(status["last_reload"]["ok"], true, "{status}");
    // A broken replacement: reported, the zone signed as it was; fixed: picked up.
    std::fs::write(format!("{current}.private"), "not a key\n").unwrap();
    let reported = speakers::wait_until(Duration::from_secs(20), || {
        server.ctl(&["status"]).1["last_reload"]["ok"] == false
    });
    let (_, status) = server.ctl(&["status"]);
    assert!(reported, "the broken key file is not reported: {status}");
    assert!(
        status["last_reload"]["errors"]
            .to_string()
            .contains("current.private"),
        "{status}"
    );
    assert_eq!(signed_by(&server, "example.test", "DNSKEY"), [second_tag]);
    copy(&first);
    let fixed = speakers::wait_until(Duration::from_secs(20), || {
        signed_by(&server, "example.test", "DNSKEY") == [first_tag]
    });
    assert!(fixed, "the fixed key file is not picked up");
}
