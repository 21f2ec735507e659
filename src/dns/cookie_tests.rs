//! Server cookies against the examples of RFC 9018, Appendix A.

use super::*;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn secret(s: &str) -> Secret {
    hex(s).try_into().unwrap()
}

const SECRET_A: &str = "e5e973e5a6b2a43f48e7dc849e37bfcf";

fn keys(current: &str, previous: Option<&str>) -> CookieKeys {
    CookieKeys {
        current: secret(current),
        previous: previous.map(secret),
    }
}

#[test]
fn appendix_a1_a_new_server_cookie() {
    let (st, answer) = check(
        &keys(SECRET_A, None),
        &hex("2464c4abcf10c957"),
        "198.51.100.100".parse().unwrap(),
        1559731985,
    );
    assert_eq!(st, status::CLIENT_ONLY);
    assert_eq!(
        answer.to_vec(),
        hex("2464c4abcf10c957010000005cf79f111f8130c3eee29480")
    );
}

#[test]
fn appendix_a2_the_cookie_comes_back_good_and_is_renewed() {
    let (st, answer) = check(
        &keys(SECRET_A, None),
        &hex("2464c4abcf10c957010000005cf79f111f8130c3eee29480"),
        "198.51.100.100".parse().unwrap(),
        1559734385,
    );
    // 40 minutes old: good, and past the half hour after which a fresh one is made.
    assert_eq!(st, status::GOOD);
    assert_eq!(
        answer.to_vec(),
        hex("2464c4abcf10c957010000005cf7a871d4a564a1442aca77")
    );
}

#[test]
fn appendix_a3_another_client() {
    let made = server_cookie(
        &secret(SECRET_A),
        &hex("fc93fc62807ddb86"),
        head(1559734700),
        "203.0.113.203".parse().unwrap(),
    );
    assert_eq!(made.to_vec(), hex("010000005cf7a9acf73a7810aca2381e"));
}

#[test]
fn appendix_a4_ipv6_after_a_rotation() {
    let ip: IpAddr = "2001:db8:220:1:59de:d0f4:8769:82b8".parse().unwrap();
    let query = hex("22681ab97d52c298010000005cf7c57926556bd0934c72f8");
    let rotated = keys(
        "445536bcd2513298075a5d379663c962",
        Some("dd3bdf9344b678b185a6f5cb60fca715"),
    );
    let (st, answer) = check(&rotated, &query, ip, 1559741961);
    assert_eq!(
        st,
        status::GOOD,
        "a cookie of the previous secret is accepted"
    );
    assert_eq!(
        answer.to_vec(),
        hex("22681ab97d52c298010000005cf7c609a6bb79d16625507a"),
        "and replaced by one of the current secret"
    );
    // Without the previous secret the same cookie is bad.
    let (st, _) = check(
        &keys("445536bcd2513298075a5d379663c962", None),
        &query,
        ip,
        1559741961,
    );
    assert_eq!(st, status::BAD);
}

#[test]
fn tampered_foreign_and_stale_cookies_are_bad() {
    let k = keys(SECRET_A, None);
    let ip: IpAddr = "198.51.100.100".parse().unwrap();
    let good = hex("2464c4abcf10c957010000005cf79f111f8130c3eee29480");
    assert_eq!(check(&k, &good, ip, 1559731985 + 10).0, status::GOOD);
    let mut tampered = good.clone();
    tampered[23] ^= 1;
    assert_eq!(check(&k, &tampered, ip, 1559731985 + 10).0, status::BAD);
    let other: IpAddr = "198.51.100.101".parse().unwrap();
    assert_eq!(check(&k, &good, other, 1559731985 + 10).0, status::BAD);
    assert_eq!(check(&k, &good, ip, 1559731985 + 3601).0, status::BAD);
    assert_eq!(check(&k, &good, ip, 1559731985 - 301).0, status::BAD);
    // A good cookie younger than half an hour comes back as it was.
    let (_, answer) = check(&k, &good, ip, 1559731985 + 60);
    assert_eq!(answer.to_vec(), good);
}
