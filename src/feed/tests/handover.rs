//! A session handed from one feed to another (as `ctl replace` does between processes): it
//! stops between messages with a half-received UPDATE in its buffer, and the other feed
//! resumes it without an OPEN (a KEEPALIVE first), with the routes fresh, the half message
//! completed, and the own routes still counted as announced.

use std::time::Duration;

use bgpkit_parser::models::BgpMessage;
use tokio::time::timeout;

use super::speaker::{RawSpeaker, WAIT, path, update};
use super::*;
use crate::feed::{Announcement, Inherited};

/// The announcing peer of these tests.
fn announcing() -> Peer {
    let mut p = peer("r1", "127.0.0.2", 65001);
    p.announce = vec![Announcement {
        prefix: "192.0.2.53/32".parse().unwrap(),
        next_hop: None,
        communities: vec![],
    }];
    p
}

/// The next message that is not a KEEPALIVE.
async fn next_not_keepalive(s: &mut RawSpeaker) -> Option<BgpMessage> {
    loop {
        match s.recv().await {
            Some(BgpMessage::KeepAlive) => {}
            other => return other,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_session_resumes_in_another_feed_without_open() {
    timeout(WAIT * 4, async {
        let old = Harness::start(vec![announcing()], Duration::from_secs(30));
        let mut s = RawSpeaker::connect(ip("127.0.0.2"), old.addr()).await;
        s.handshake(65001, 30).await;
        old.until_state("r1", SessionState::Established).await;
        old.feeds.set_announced(true);
        assert!(matches!(
            next_not_keepalive(&mut s).await,
            Some(BgpMessage::Update(_))
        ));
        s.send(&update(&["10.0.0.0/8"], &[], &path(&[65001], &[])))
            .await;
        old.until("10.0.0.0/8 in", |h| {
            route4(&h.table("r1"), "10.0.0.0/8").is_some()
        })
        .await;
        // Half an UPDATE: read by the old feed, handled by the new one.
        let second = update(&["11.0.0.0/8"], &[], &path(&[65001, 64999], &[]));
        s.send(&second[..10]).await;
        tokio::time::sleep(Duration::from_millis(200)).await;

        assert_eq!(old.feeds.established(), vec!["r1".to_string()]);
        let mut handed = old.feeds.pause(WAIT).await;
        assert_eq!(handed.len(), 1);
        let c = &handed[0].carry;
        assert!(c.announced && c.ipv4 && c.ipv6 && c.four_octet, "{c:?}");
        assert_eq!((c.hold_time, c.keepalive_ms), (30, 10_000));
        assert_eq!(c.unread, second[..10].to_vec());
        assert_eq!(c.v4.len(), 1);
        drop(old);

        let new = Harness::inheriting(
            vec![announcing()],
            Duration::from_secs(30),
            Inherited {
                sessions: vec!["r1".into()],
                ..Default::default()
            },
        );
        // Waiting for the session: not connecting, not established.
        assert_ne!(new.status("r1").state, SessionState::Established);
        new.feeds.set_announced(true);
        new.feeds.resume(std::mem::take(&mut handed));
        // A KEEPALIVE at once, no OPEN, and no UPDATE (announced already).
        assert!(matches!(s.recv().await, Some(BgpMessage::KeepAlive)));
        new.until_state("r1", SessionState::Established).await;
        let t = new.table("r1");
        assert!(!route4(&t, "10.0.0.0/8").unwrap().stale);
        s.send(&second[10..]).await;
        new.until("11.0.0.0/8 in", |h| {
            route4(&h.table("r1"), "11.0.0.0/8").is_some_and(|r| r.path_len == 2)
        })
        .await;
        // The flag drops: the session withdraws what the old feed announced.
        new.feeds.set_announced(false);
        let Some(BgpMessage::Update(u)) = next_not_keepalive(&mut s).await else {
            panic!("no withdrawal");
        };
        assert_eq!(u.withdrawn_prefixes[0].prefix.to_string(), "192.0.2.53/32");
    })
    .await
    .unwrap();
}
