//! The query log's tests: records to lines, sampling, the writer and its file.

use std::io::Write as _;

use super::file::write_all;
use super::format::{json_string, name_text, rfc3339};
use super::*;

#[test]
fn dates_are_civil() {
    let t = |s: u64| rfc3339(SystemTime::UNIX_EPOCH + Duration::from_secs(s));
    assert_eq!(t(0), "1970-01-01T00:00:00.000Z");
    assert_eq!(t(951_782_400), "2000-02-29T00:00:00.000Z");
    assert_eq!(t(1_796_169_600 + 3_661), "2026-12-02T01:01:01.000Z");
}

#[test]
fn names_and_strings_are_escaped() {
    assert_eq!(
        name_text(b"\x02dl\x07example\x04test\x00"),
        "dl.example.test."
    );
    assert_eq!(name_text(b"\x03a.b\x00"), "a\\046b.");
    assert_eq!(name_text(b"\x00"), ".");
    let mut s = String::new();
    json_string("a\"b\\c\n\u{1b}", &mut s);
    assert_eq!(s, "\"a\\\"b\\\\c\\u000a\\u001b\"");
}

/// A fresh directory under the system's temporary directory.
fn scratch(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("signpost-ql-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn push_line(out: &mut Out, line: &str) {
    out.buf.push_str(line);
    out.ends.push(out.buf.len());
}

#[test]
fn a_file_that_takes_nothing_counts_every_line_as_failed() {
    let counters = Counters::new(1);
    let full = std::fs::OpenOptions::new()
        .append(true)
        .open("/dev/full")
        .unwrap();
    let mut out = Out::new(full, "/dev/full".into());
    push_line(&mut out, "{\"a\":1}\n");
    push_line(&mut out, "{\"a\":2}\n");
    out.flush(&counters);
    let e = counters.events().clone();
    assert_eq!((e.querylog_written, e.querylog_failed), (0, 2));
    assert!(out.trouble.since.is_some() && out.trouble.lost == 2);
    assert!(out.buf.is_empty() && out.ends.is_empty());
}

#[test]
fn the_start_of_a_line_is_cut_off_again_or_ended_by_the_next_write() {
    let dir = scratch("cut");
    let path = dir.join("q.jsonl");
    let counters = Counters::new(1);
    let mut out = Out::new(open(&path).unwrap(), path.clone());
    push_line(&mut out, "{\"a\":1}\n");
    out.flush(&counters);
    // What a short write leaves: the start of the next line.
    write_all(&out.file, b"{\"a\":").unwrap();
    out.cut(5);
    assert!(!out.torn);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"a\":1}\n");
    // Another process appended after it: the line is ended by the next write instead.
    write_all(&out.file, b"{\"a\":").unwrap();
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(b"{\"b\":1}\n")
        .unwrap();
    out.cut(5);
    assert!(out.torn);
    push_line(&mut out, "{\"a\":2}\n");
    out.flush(&counters);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.ends_with("\n{\"a\":2}\n"), "{text:?}");
    assert_eq!(counters.events().querylog_written, 2);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn only_regular_files_are_opened_and_check_creates_nothing() {
    let dir = scratch("open");
    let fifo = dir.join("fifo");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    for (path, what) in [(&fifo, "a FIFO"), (&dir, "a directory")] {
        for e in [open(path).unwrap_err(), check(path).unwrap_err()] {
            assert!(
                matches!(&e, QueryLogError::NotRegular(_, w) if *w == what),
                "{e}"
            );
        }
    }
    let missing = dir.join("no/such/dir/q.jsonl");
    assert!(matches!(check(&missing), Err(QueryLogError::Open(..))));
    assert!(matches!(open(&missing), Err(QueryLogError::Open(..))));
    let fresh = dir.join("q.jsonl");
    check(&fresh).unwrap();
    assert!(!fresh.exists(), "check creates nothing");
    open(&fresh).unwrap();
    check(&fresh).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sampling_keeps_about_the_rate() {
    let mut all = Sampler::new(1.0, 7);
    assert!((0..1000).all(|_| all.hit()));
    let mut none = Sampler::new(0.0, 7);
    assert!((0..1000).all(|_| !none.hit()));
    let mut tenth = Sampler::new(0.1, 7);
    let n = (0..100_000).filter(|_| tenth.hit()).count();
    assert!((8_000..12_000).contains(&n), "{n}");
}
