//! A record as one JSON line: the query, the client, the answer and the decision.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use super::Record;

/// Writes `r` as one JSON line.
pub fn format(r: &Record, out: &mut String) {
    let snap = &r.snapshot;
    out.push('{');
    let _ = write!(out, "\"time\":\"{}\"", rfc3339(r.time));
    let _ = write!(out, ",\"transport\":\"{}\"", r.transport);
    let _ = write!(out, ",\"client\":\"{}\"", r.client);
    if let Some((addr, len)) = r.ecs {
        let _ = write!(out, ",\"ecs\":\"{addr}/{len}\"");
    }
    out.push_str(",\"qname\":");
    json_string(&name_text(&r.qname[..r.qname_len]), out);
    let _ = write!(out, ",\"qtype\":\"{}\"", type_name(r.qtype));
    match r.rcode {
        Some(c) => {
            let _ = write!(out, ",\"rcode\":\"{}\"", rcode_name(c));
        }
        None => out.push_str(",\"rcode\":null"),
    }
    if r.truncated {
        out.push_str(",\"truncated\":true");
    }
    if let Some(a) = &r.answer
        && let Some(svc) = snap.services.get(a.service)
    {
        out.push_str(",\"service\":");
        json_string(svc.names.first().map_or("", |s| s.as_str()), out);
        if let Some(rule) = a.rule.and_then(|i| svc.rules.get(i)) {
            let _ = write!(out, ",\"rule\":\"{}\",\"rule_at\":", rule.kind);
            json_string(&rule.location, out);
        }
        if let Some(region) = a.region.and_then(|i| svc.regions.get(i)) {
            out.push_str(",\"region\":");
            json_string(&region.name, out);
        }
        out.push_str(",\"nodes\":[");
        for (k, &n) in a.nodes().iter().enumerate() {
            if k > 0 {
                out.push(',');
            }
            json_string(snap.nodes.get(n).map_or("", |n| n.name.as_str()), out);
        }
        out.push(']');
        if a.ecs_used {
            let _ = write!(out, ",\"scope\":{}", a.scope);
        }
        if a.count > 0 {
            let _ = write!(out, ",\"ttl\":{}", a.ttl);
        }
        if a.degraded {
            out.push_str(",\"degraded\":true");
        }
        if a.all_down {
            out.push_str(",\"all_down\":true");
        }
    }
    out.push_str("}\n");
}

/// A wire-form name as text with a trailing dot; bytes outside printable ASCII, dots and
/// backslashes inside labels escaped as `\DDD` (RFC 1035 §5.1).
pub(super) fn name_text(wire: &[u8]) -> String {
    let mut s = String::new();
    let mut i = 0;
    while i < wire.len() {
        let len = wire[i] as usize;
        if len == 0 {
            break;
        }
        for &b in wire.get(i + 1..i + 1 + len).unwrap_or(&[]) {
            if b.is_ascii_graphic() && b != b'.' && b != b'\\' && b != b'"' {
                s.push(b as char);
            } else {
                let _ = write!(s, "\\{b:03}");
            }
        }
        s.push('.');
        i += 1 + len;
    }
    if s.is_empty() {
        s.push('.');
    }
    s
}

/// A JSON string literal.
pub(super) fn json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn type_name(t: u16) -> String {
    match crate::counters::query::QTYPES
        .iter()
        .find(|&&(v, _)| v == t)
    {
        Some(&(_, name)) if name != "other" => name.to_string(),
        _ => format!("TYPE{t}"),
    }
}

fn rcode_name(c: u16) -> String {
    match crate::counters::query::RCODES
        .iter()
        .find(|&&(v, _)| v == c)
    {
        Some(&(_, name)) if name != "other" => name.to_string(),
        _ => format!("RCODE{c}"),
    }
}

/// `2026-12-02T16:30:00.123Z`.
pub(super) fn rfc3339(t: SystemTime) -> String {
    let d = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (proleptic Gregorian).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}
