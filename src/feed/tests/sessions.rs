//! Session establishment (passive, active), routes in both families, 4-byte ASNs, OPEN
//! checks, refused connections and the hold timer.

use std::sync::atomic::Ordering;
use std::time::Duration;

use bgpkit_parser::models::{BgpMessage, CapabilityValue, ParamValue};
use tokio::net::TcpListener;
use tokio::time::timeout;

use super::speaker::{RawSpeaker, WAIT, path, update};
use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passive_session_announce_and_withdraw_both_families() {
    timeout(WAIT * 2, async {
        let h = Harness::start(vec![peer("r1", "127.0.0.2", 65001)], Duration::from_secs(5));
        let mut s = RawSpeaker::connect(ip("127.0.0.2"), h.addr()).await;
        s.handshake(65001, 90).await;
        h.until_state("r1", SessionState::Established).await;

        s.send(&update(
            &["10.1.0.0/16", "2001:db8::/32"],
            &[],
            &path(&[65001, 65002], &[]),
        ))
        .await;
        h.until("routes", |h| h.status("r1").v6_prefixes == 1).await;
        let t = h.table("r1");
        let want = Route {
            origin: 65002,
            path_len: 2,
            stale: false,
        };
        assert_eq!(route4(&t, "10.1.0.0/16"), Some(want));
        assert_eq!(route6(&t, "2001:db8::/32"), Some(want));
        let st = h.status("r1");
        assert_eq!((st.v4_prefixes, st.stale_prefixes), (1, 0));
        assert!(st.uptime.is_some() && st.last_update.is_some());
        assert!(st.messages_received >= 3);
        assert!(h.changes.load(Ordering::Relaxed) >= 1);

        s.send(&update(
            &[],
            &["10.1.0.0/16", "2001:db8::/32"],
            &path(&[], &[]),
        ))
        .await;
        h.until("withdrawn", |h| {
            let t = h.table("r1");
            t.v4.is_empty() && t.v6.is_empty()
        })
        .await;
        assert_eq!(h.status("r1").state, SessionState::Established);
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn active_session_with_four_byte_asns_and_as_set() {
    timeout(WAIT * 2, async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut p = peer("r1", "127.0.0.1", 4_200_000_000);
        p.passive = false;
        p.port = listener.local_addr().unwrap().port();
        p.ipv6 = false;
        let settings = Speaker {
            local_asn: 4_200_000_001,
            router_id: std::net::Ipv4Addr::new(192, 0, 2, 254),
            listen: None,
            connect_retry: Duration::from_millis(100),
            stale_time: Duration::from_secs(5),
            peers: vec![p],
        };
        let feeds = Feeds::start(
            settings,
            tokio::runtime::Handle::current(),
            Arc::new(|| {}),
            Default::default(),
        )
        .unwrap();
        let (stream, _) = listener.accept().await.unwrap();
        let mut s = RawSpeaker::from_stream(stream);
        let theirs = s.handshake(4_200_000_000, 90).await;
        // AS_TRANS in the 2-byte field, the real ASN in the capability; IPv4 only; route
        // refresh and graceful restart advertised.
        assert_eq!(u32::from(theirs.asn), 23456);
        let ParamValue::Capacities(caps) = &theirs.opt_params[0].param_value else {
            panic!("no capabilities");
        };
        let four = caps.iter().find_map(|c| match &c.value {
            CapabilityValue::FourOctetAs(f) => Some(f.asn),
            _ => None,
        });
        assert_eq!(four, Some(4_200_000_001));
        let mp = caps
            .iter()
            .filter(|c| matches!(c.value, CapabilityValue::MultiprotocolExtensions(_)))
            .count();
        assert_eq!(mp, 1);
        assert!(
            caps.iter()
                .any(|c| matches!(c.value, CapabilityValue::RouteRefresh(_)))
        );
        assert!(
            caps.iter()
                .any(|c| matches!(c.value, CapabilityValue::GracefulRestart(_)))
        );

        // Sequence of two 4-byte ASNs then a set of two: origin is the set's first ASN, the
        // length counts the set as one.
        s.send(&update(
            &["10.2.0.0/16", "2001:db8:1::/48"],
            &[],
            &path(&[4_200_000_000, 4_200_000_005], &[64512, 64513]),
        ))
        .await;
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let t = &feeds.tables()[0];
            if let Some(r) = route4(t, "10.2.0.0/16") {
                assert_eq!((r.origin, r.path_len), (64512, 3));
                // IPv6 was not negotiated: ignored.
                assert!(t.v6.is_empty());
                break;
            }
            assert!(tokio::time::Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(feeds.status()[0].state, SessionState::Established);
        drop(feeds);
        // Dropping the feed closes the session.
        s.closed().await;
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_peer_asn_gets_open_error() {
    timeout(WAIT, async {
        let h = Harness::start(vec![peer("r1", "127.0.0.2", 65001)], Duration::from_secs(5));
        let mut s = RawSpeaker::connect(ip("127.0.0.2"), h.addr()).await;
        s.send(&speaker::open(
            65009,
            "10.9.9.9".parse().unwrap(),
            90,
            true,
            true,
        ))
        .await;
        assert!(matches!(s.recv().await, Some(BgpMessage::Open(_))));
        assert_eq!(s.notification().await, (2, 2, vec![]));
        s.closed().await;
        h.until("error recorded", |h| {
            h.status("r1")
                .last_error
                .is_some_and(|e| e.contains("Bad Peer AS"))
        })
        .await;
        assert_ne!(h.status("r1").state, SessionState::Established);
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_source_is_refused() {
    timeout(WAIT, async {
        let h = Harness::start(vec![peer("r1", "127.0.0.2", 65001)], Duration::from_secs(5));
        let mut s = RawSpeaker::connect(ip("127.0.0.9"), h.addr()).await;
        // Closed without an OPEN.
        assert!(s.recv().await.is_none());
        h.until("refused", |h| h.feeds.refused_connections() == 1)
            .await;
        assert_eq!(h.status("r1").state, SessionState::Active);
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_timer_expiry_sends_notification() {
    timeout(WAIT, async {
        let mut p = peer("r1", "127.0.0.2", 65001);
        p.hold_time = 3;
        let h = Harness::start(vec![p], Duration::from_secs(5));
        let mut s = RawSpeaker::connect(ip("127.0.0.2"), h.addr()).await;
        let started = tokio::time::Instant::now();
        s.handshake(65001, 90).await;
        // Signpost keeps sending keepalives (every second) but hears nothing back.
        assert_eq!(s.notification().await, (4, 0, vec![]));
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(2900), "{waited:?}");
        h.until("down", |h| {
            h.status("r1").state != SessionState::Established
        })
        .await;
        assert!(
            h.status("r1")
                .last_error
                .unwrap()
                .contains("Hold Timer Expired")
        );
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_listen_address_and_settings_fail_at_start() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let settings = |listen, hold_time| {
        let mut p = peer("r1", "127.0.0.2", 65001);
        p.hold_time = hold_time;
        Speaker {
            local_asn: LOCAL_ASN,
            router_id: std::net::Ipv4Addr::new(192, 0, 2, 254),
            listen: Some(listen),
            connect_retry: Duration::from_millis(100),
            stale_time: Duration::from_secs(1),
            peers: vec![p],
        }
    };
    let handle = tokio::runtime::Handle::current;
    let r = Feeds::start(
        settings(taken.local_addr().unwrap(), 90),
        handle(),
        Arc::new(|| {}),
        Default::default(),
    );
    assert!(matches!(r, Err(crate::feed::FeedError::Bind { .. })));
    let free = "127.0.0.1:0".parse().unwrap();
    let r = Feeds::start(
        settings(free, 2),
        handle(),
        Arc::new(|| {}),
        Default::default(),
    );
    assert!(matches!(r, Err(crate::feed::FeedError::HoldTime { .. })));
    // Hold time 0 of our own, under the default minimum: every session would be refused.
    let r = Feeds::start(
        settings(free, 0),
        handle(),
        Arc::new(|| {}),
        Default::default(),
    );
    assert!(matches!(
        r,
        Err(crate::feed::FeedError::HoldTimeBelowMinimum { .. })
    ));
    // A router id that routers refuse.
    for id in [
        std::net::Ipv4Addr::UNSPECIFIED,
        std::net::Ipv4Addr::BROADCAST,
    ] {
        let mut s = settings(free, 90);
        s.router_id = id;
        let r = Feeds::start(s, handle(), Arc::new(|| {}), Default::default());
        assert!(
            matches!(r, Err(crate::feed::FeedError::RouterId(_))),
            "{id}"
        );
    }
}

/// A router proposing hold time 0 (allowed by RFC 4271: no keepalives, no hold timer, so a
/// silent router would keep its session and routes for ever) is refused by default with OPEN
/// Message Error / Unacceptable Hold Time; a peer configured with `min_hold_time: 0` accepts
/// it, and one with a higher minimum refuses hold times below it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_time_below_the_minimum_is_refused() {
    timeout(WAIT * 2, async {
        let mut r2 = peer("r2", "127.0.0.3", 65002);
        r2.min_hold_time = 0;
        let mut r3 = peer("r3", "127.0.0.4", 65003);
        r3.min_hold_time = 30;
        let h = Harness::start(
            vec![peer("r1", "127.0.0.2", 65001), r2, r3],
            Duration::from_secs(5),
        );
        for (from, asn, hold) in [("127.0.0.2", 65001, 0), ("127.0.0.4", 65003, 29)] {
            let mut s = RawSpeaker::connect(ip(from), h.addr()).await;
            s.send(&speaker::open(
                asn,
                "10.9.9.9".parse().unwrap(),
                hold,
                true,
                true,
            ))
            .await;
            assert!(matches!(s.recv().await, Some(BgpMessage::Open(_))));
            assert_eq!(s.notification().await, (2, 6, vec![]), "hold time {hold}");
            s.closed().await;
        }
        h.until("errors recorded", |h| {
            ["r1", "r3"].iter().all(|p| {
                h.status(p)
                    .last_error
                    .is_some_and(|e| e.contains("Unacceptable Hold Time"))
            })
        })
        .await;
        assert_ne!(h.status("r1").state, SessionState::Established);
        let mut s = RawSpeaker::connect(ip("127.0.0.3"), h.addr()).await;
        s.handshake(65002, 0).await;
        h.until_state("r2", SessionState::Established).await;
        let mut s3 = RawSpeaker::connect(ip("127.0.0.4"), h.addr()).await;
        s3.handshake(65003, 30).await;
        h.until_state("r3", SessionState::Established).await;
    })
    .await
    .unwrap();
}
