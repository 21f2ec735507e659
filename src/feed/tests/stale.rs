//! What happens to a peer's routes when its session drops: stale, replaced on reconnect,
//! dropped at End-of-RIB or when the stale time ends.

use std::time::Duration;

use bgpkit_parser::models::BgpMessage;
use tokio::time::timeout;

use super::speaker::{RawSpeaker, WAIT, end_of_rib_v4, end_of_rib_v6, path, update};
use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_session_routes_go_stale_then_away() {
    timeout(WAIT, async {
        let h = Harness::start(
            vec![peer("r1", "127.0.0.2", 65001)],
            Duration::from_millis(300),
        );
        let mut s = RawSpeaker::connect(ip("127.0.0.2"), h.addr()).await;
        s.handshake(65001, 90).await;
        s.send(&update(
            &["10.1.0.0/16", "2001:db8::/32"],
            &[],
            &path(&[65001], &[]),
        ))
        .await;
        h.until("routes", |h| h.status("r1").v6_prefixes == 1).await;
        drop(s);
        h.until("stale", |h| h.status("r1").stale_prefixes == 2)
            .await;
        let t = h.table("r1");
        assert!(route4(&t, "10.1.0.0/16").unwrap().stale);
        assert!(route6(&t, "2001:db8::/32").unwrap().stale);
        let down = h.status("r1");
        assert!(down.uptime.is_none() && down.down_for.is_some());
        let dropped = tokio::time::Instant::now();
        h.until("removed", |h| {
            let t = h.table("r1");
            t.v4.is_empty() && t.v6.is_empty()
        })
        .await;
        assert!(dropped.elapsed() >= Duration::from_millis(200));
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_replaces_stale_routes_and_end_of_rib_drops_the_rest() {
    timeout(WAIT, async {
        let h = Harness::start(
            vec![peer("r1", "127.0.0.2", 65001)],
            Duration::from_secs(30),
        );
        let mut old = RawSpeaker::connect(ip("127.0.0.2"), h.addr()).await;
        old.handshake(65001, 90).await;
        old.send(&update(
            &[
                "10.1.0.0/16",
                "10.2.0.0/16",
                "2001:db8::/32",
                "2001:db8:1::/48",
            ],
            &[],
            &path(&[65001], &[]),
        ))
        .await;
        h.until("routes", |h| h.status("r1").v6_prefixes == 2).await;

        // The router restarts and connects again while the old session is still up: the new
        // connection replaces it (Cease / Connection Collision Resolution on the old one).
        let mut new = RawSpeaker::connect(ip("127.0.0.2"), h.addr()).await;
        assert_eq!(old.notification().await, (6, 7, vec![]));
        new.handshake(65001, 90).await;
        h.until_state("r1", SessionState::Established).await;
        assert_eq!(h.status("r1").stale_prefixes, 4);

        // Re-announced with a new path: fresh again, the others stay stale.
        new.send(&update(
            &["10.1.0.0/16", "2001:db8::/32"],
            &[],
            &path(&[65001, 65003], &[]),
        ))
        .await;
        h.until("replaced", |h| h.status("r1").stale_prefixes == 2)
            .await;
        let t = h.table("r1");
        let fresh = Route {
            origin: 65003,
            path_len: 2,
            stale: false,
        };
        assert_eq!(route4(&t, "10.1.0.0/16"), Some(fresh));
        assert!(route4(&t, "10.2.0.0/16").unwrap().stale);

        // End-of-RIB for IPv4 drops the stale IPv4 route only, then IPv6's.
        new.send(&end_of_rib_v4()).await;
        h.until("v4 stale gone", |h| {
            route4(&h.table("r1"), "10.2.0.0/16").is_none()
        })
        .await;
        assert!(route6(&h.table("r1"), "2001:db8:1::/48").unwrap().stale);
        new.send(&end_of_rib_v6()).await;
        h.until("v6 stale gone", |h| h.status("r1").stale_prefixes == 0)
            .await;
        let t = h.table("r1");
        assert_eq!((t.v4.len(), t.v6.len()), (1, 1));
        // Still up.
        new.send(&speaker::keepalive()).await;
        assert_eq!(h.status("r1").state, SessionState::Established);
        drop(h);
        assert!(
            !matches!(new.recv().await, Some(BgpMessage::Update(_))),
            "Signpost never sends an UPDATE"
        );
    })
    .await
    .unwrap();
}

/// A peer that reconnects again and again within the stale time, each session announcing
/// prefixes no earlier one had (and no End-of-RIB): fresh and stale routes together stay within
/// `max_prefixes` per family, the stale ones of the oldest sessions making room; the latest
/// session's routes are all there. Before the limit counted stale routes, ten sessions of 99
/// prefixes under a limit of 100 left 990 routes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flapping_peer_holds_no_more_than_its_limit() {
    timeout(WAIT * 4, async {
        let mut p = peer("r1", "127.0.0.2", 65001);
        p.max_prefixes = Some(100);
        let h = Harness::start(vec![p], Duration::from_secs(30));
        let mut most = 0;
        for session in 0..10u32 {
            let mut s = RawSpeaker::connect(ip("127.0.0.2"), h.addr()).await;
            s.handshake(65001, 90).await;
            let prefixes: Vec<String> = (0..99u32)
                .map(|i| format!("10.{}.{}.0/24", session, i))
                .collect();
            let refs: Vec<&str> = prefixes.iter().map(String::as_str).collect();
            s.send(&update(&refs, &[], &path(&[65001], &[]))).await;
            h.until("announced", |h| h.status("r1").v4_prefixes == 99)
                .await;
            let st = h.status("r1");
            most = most.max(st.v4_prefixes + st.stale_prefixes);
            drop(s);
            h.until("down", |h| h.status("r1").v4_prefixes == 0).await;
            let st = h.status("r1");
            most = most.max(st.v4_prefixes + st.stale_prefixes);
        }
        assert_eq!(most, 100, "fresh + stale routes held at most");
        let t = h.table("r1");
        assert_eq!(t.v4.len(), 100);
        assert!((0..99).all(|i| route4(&t, &format!("10.9.{i}.0/24")).is_some_and(|r| r.stale)));
    })
    .await
    .unwrap();
}
