//! The own routes on a session: sent only to the peer that has them, only while the feed's
//! announced flag is set, again on a new session, and withdrawn when the flag drops.

use std::time::Duration;

use bgpkit_parser::models::{BgpMessage, BgpUpdateMessage};
use tokio::time::timeout;

use super::speaker::{RawSpeaker, WAIT};
use super::*;
use crate::feed::Announcement;

/// The next UPDATE from Signpost, skipping KEEPALIVEs.
async fn next_update(s: &mut RawSpeaker) -> BgpUpdateMessage {
    loop {
        match s.recv().await {
            Some(BgpMessage::Update(u)) => return u,
            Some(BgpMessage::KeepAlive) => {}
            other => panic!("expected an UPDATE, got {other:?}"),
        }
    }
}

/// Whether Signpost sends an UPDATE within `wait` (KEEPALIVEs skipped).
async fn sends_update(s: &mut RawSpeaker, wait: Duration) -> bool {
    timeout(wait, next_update(s)).await.is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_routes_follow_the_flag_on_their_peer_only() {
    timeout(WAIT * 3, async {
        let mut announcing = peer("r1", "127.0.0.2", 65001);
        announcing.announce = vec![
            Announcement {
                prefix: "192.0.2.53/32".parse().unwrap(),
                next_hop: None,
                communities: vec![(64500, 53)],
            },
            Announcement {
                prefix: "2001:db8::53/128".parse().unwrap(),
                next_hop: Some("2001:db8::2".parse().unwrap()),
                communities: vec![],
            },
        ];
        let h = Harness::start(
            vec![announcing, peer("r2", "127.0.0.3", 65002)],
            Duration::from_secs(5),
        );
        let mut s1 = RawSpeaker::connect(ip("127.0.0.2"), h.addr()).await;
        s1.handshake(65001, 90).await;
        let mut s2 = RawSpeaker::connect(ip("127.0.0.3"), h.addr()).await;
        s2.handshake(65002, 90).await;
        h.until_state("r2", SessionState::Established).await;

        // Withdrawn at start: nothing is sent.
        assert!(!sends_update(&mut s1, Duration::from_millis(1500)).await);

        h.feeds.set_announced(true);
        let u = next_update(&mut s1).await;
        assert_eq!(u.announced_prefixes[0].prefix.to_string(), "192.0.2.53/32");
        assert_eq!(u.attributes.next_hop(), Some(ip("127.0.0.1")));
        let u = next_update(&mut s1).await;
        let reach = u.attributes.get_reachable_nlri().expect("MP_REACH_NLRI");
        assert_eq!(reach.prefixes[0].prefix.to_string(), "2001:db8::53/128");
        // The receive-only peer gets nothing.
        assert!(!sends_update(&mut s2, Duration::from_millis(1500)).await);

        h.feeds.set_announced(false);
        let u = next_update(&mut s1).await;
        assert_eq!(u.withdrawn_prefixes[0].prefix.to_string(), "192.0.2.53/32");
        let u = next_update(&mut s1).await;
        assert!(u.attributes.get_unreachable_nlri().is_some());

        // Announced again, and on a new session at once.
        h.feeds.set_announced(true);
        next_update(&mut s1).await;
        drop(s1);
        h.until("down", |h| {
            h.status("r1").state != SessionState::Established
        })
        .await;
        let mut s1 = RawSpeaker::connect(ip("127.0.0.2"), h.addr()).await;
        s1.handshake(65001, 90).await;
        let u = next_update(&mut s1).await;
        assert_eq!(u.announced_prefixes[0].prefix.to_string(), "192.0.2.53/32");
    })
    .await
    .unwrap();
}
