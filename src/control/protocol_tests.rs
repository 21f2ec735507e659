//! The control protocol's unit tests: request parsing and errors, `FIELDS` against the
//! request type, reply shapes.

use super::*;

/// `FIELDS`, which names the fields in messages and refuses unknown ones, says what the
/// request type says: every command, its fields, and those without a default.
#[test]
fn fields_match_the_request_type() {
    let all = one_of_each();
    assert_eq!(all.len(), FIELDS.len(), "a command missing from FIELDS");
    for r in all {
        let Value::Object(map) = serde_json::to_value(&r).unwrap() else {
            panic!("{r:?} is not an object");
        };
        let cmd = map["cmd"].as_str().unwrap().to_string();
        let (_, fields, needs) = FIELDS
            .iter()
            .find(|(c, _, _)| *c == cmd)
            .unwrap_or_else(|| panic!("{cmd} missing from FIELDS"));
        let mut have: Vec<&str> = map
            .keys()
            .map(String::as_str)
            .filter(|k| *k != "cmd")
            .collect();
        have.sort_unstable();
        let mut listed = fields.to_vec();
        listed.sort_unstable();
        assert_eq!(have, listed, "{cmd}: fields");
        // A field is needed exactly when the request does not decode without it.
        for field in *fields {
            let mut without = map.clone();
            without.remove(*field);
            let decodes = serde_json::from_value::<Request>(Value::Object(without)).is_ok();
            assert_eq!(
                !decodes,
                needs.contains(field),
                "{cmd}: is `{field}` needed?"
            );
        }
        // And parsing the line gives the request back.
        assert_eq!(Request::parse(r.to_line().as_bytes()).unwrap(), r);
    }
}

#[test]
fn bad_requests() {
    assert!(Request::parse(b"not json").is_err());
    assert!(
        Request::parse(br#"{"cmd":"set","colour":1}"#)
            .unwrap_err()
            .to_string()
            .contains("unknown field")
    );
    assert!(
        Request::parse(br#"{"cmd":"set","node":"a"}"#)
            .unwrap_err()
            .to_string()
            .contains("`set` needs `state`")
    );
    assert!(
        Request::parse(br#"{"cmd":"set","node":"a","state":"up","colour":1}"#)
            .unwrap_err()
            .to_string()
            .contains("unknown field")
    );
    assert!(
        Request::parse(br#"{"cmd":"status","extra":1}"#)
            .unwrap_err()
            .to_string()
            .contains("unknown field `extra`")
    );
    assert_eq!(
        Request::parse(br#"{"cmd":"status"}"#).unwrap(),
        Request::Status {}
    );
    // `confirm` is optional, and a plain reload keeps its old wire form.
    assert_eq!(
        Request::parse(br#"{"cmd":"reload"}"#).unwrap(),
        Request::Reload { confirm: false }
    );
    assert_eq!(
        Request::Reload { confirm: false }.to_line(),
        r#"{"cmd":"reload"}"#
    );
    assert_eq!(
        Request::parse(br#"{"cmd":"reload","confirm":true}"#).unwrap(),
        Request::Reload { confirm: true }
    );
}

#[test]
fn requests_and_replies_round_trip() {
    for r in [
        Request::Status {},
        Request::Set {
            node: "fra1".into(),
            state: "down".into(),
            reason: Some("disk".into()),
            expires_in: Some(60),
        },
        Request::Push {
            source: None,
            states: vec![
                PushItem {
                    node: "fra1".into(),
                    state: Some("up".into()),
                    load: None,
                    ttl: 5,
                },
                PushItem {
                    node: "fra1".into(),
                    state: None,
                    load: Some(412.5),
                    ttl: 30,
                },
            ],
        },
        Request::Reload { confirm: false },
        Request::Reload { confirm: true },
        Request::Replace {},
        Request::Takeover {},
    ] {
        assert_eq!(Request::parse(r.to_line().as_bytes()).unwrap(), r);
    }
    for resp in [
        Response::ok(Reply::Pushed { accepted: 2 }),
        Response::ok(Reply::Reloaded {
            data: "maps x".into(),
            notes: vec!["listen changed".into()],
        }),
        Response::ok(Reply::Done {}),
        Response::ok(Reply::Replaced {
            old_pid: 10,
            new_pid: 11,
        }),
        Response::failed("reload failed", vec!["a.yaml:1:1: x".into()]),
        Response::ok(Reply::Stats {
            stats: BTreeMap::from([("udp_queries".to_string(), 3)]),
        }),
    ] {
        let text = serde_json::to_string(&resp).unwrap();
        assert_eq!(
            serde_json::from_str::<Response>(&text).unwrap(),
            resp,
            "{text}"
        );
    }
}
