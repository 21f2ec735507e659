//! Bad input over a live session: a malformed attribute, an oversized message, too many
//! prefixes. The other peer's session and table must not notice.

use std::time::Duration;

use tokio::time::timeout;

use super::speaker::{RawSpeaker, WAIT, path, raw_update, update};
use super::*;

/// Two established peers, r1 on 127.0.0.2 and r2 on 127.0.0.3, each with one route.
async fn two_peers(r1: Peer, stale: Duration) -> (Harness, RawSpeaker, RawSpeaker) {
    let h = Harness::start(vec![r1, peer("r2", "127.0.0.3", 65002)], stale);
    let mut s1 = RawSpeaker::connect(ip("127.0.0.2"), h.addr()).await;
    s1.handshake(65001, 90).await;
    let mut s2 = RawSpeaker::connect(ip("127.0.0.3"), h.addr()).await;
    s2.handshake(65002, 90).await;
    s1.send(&update(&["10.1.0.0/16"], &[], &path(&[65001], &[])))
        .await;
    s2.send(&update(&["10.2.0.0/16"], &[], &path(&[65002], &[])))
        .await;
    h.until("both routes", |h| {
        h.status("r1").v4_prefixes == 1 && h.status("r2").v4_prefixes == 1
    })
    .await;
    (h, s1, s2)
}

/// r2 is still up with its route, and still processes updates.
async fn r2_untouched(h: &Harness, s2: &mut RawSpeaker) {
    assert_eq!(h.status("r2").state, SessionState::Established);
    assert!(route4(&h.table("r2"), "10.2.0.0/16").is_some_and(|r| !r.stale));
    s2.send(&update(&["10.3.0.0/16"], &[], &path(&[65002], &[])))
        .await;
    h.until("r2 still receives", |h| h.status("r2").v4_prefixes == 2)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_attribute_is_treated_as_withdraw() {
    timeout(WAIT, async {
        let (h, mut s1, _s2) = two_peers(peer("r1", "127.0.0.2", 65001), WAIT).await;
        // ORIGIN with length 2 (RFC 7606 §7.1: treat-as-withdraw), for 10.1.0.0/16.
        let attrs = [
            0x40, 1, 2, 0, 0, // ORIGIN, bad length
            0x40, 2, 6, 2, 1, 0, 0, 0xfd, 0xe9, // AS_PATH: sequence [65001]
            0x40, 3, 4, 192, 0, 2, 1, // NEXT_HOP
        ];
        s1.send(&raw_update(&[], &attrs, &[16, 10, 1])).await;
        h.until("withdrawn", |h| h.table("r1").v4.is_empty()).await;
        // The session stays up and keeps working.
        s1.send(&update(&["10.4.0.0/16"], &[], &path(&[65001], &[])))
            .await;
        h.until("next route", |h| h.status("r1").v4_prefixes == 1)
            .await;
        assert_eq!(h.status("r1").state, SessionState::Established);
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unparseable_nlri_resets_the_session() {
    timeout(WAIT, async {
        let (h, mut s1, mut s2) = two_peers(peer("r1", "127.0.0.2", 65001), WAIT).await;
        // A /33 in the IPv4 NLRI field (RFC 7606 §5.3: session reset).
        let attrs = [
            0x40, 1, 1, 0, // ORIGIN
            0x40, 2, 6, 2, 1, 0, 0, 0xfd, 0xe9, // AS_PATH
            0x40, 3, 4, 192, 0, 2, 1, // NEXT_HOP
        ];
        s1.send(&raw_update(&[], &attrs, &[33, 10, 1, 0, 0, 0]))
            .await;
        assert_eq!(s1.notification().await, (3, 10, vec![]));
        s1.closed().await;
        h.until("r1 down", |h| {
            h.status("r1").state != SessionState::Established
        })
        .await;
        assert!(route4(&h.table("r1"), "10.1.0.0/16").is_some_and(|r| r.stale));
        r2_untouched(&h, &mut s2).await;
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_message_gets_bad_message_length() {
    timeout(WAIT, async {
        let (h, mut s1, mut s2) = two_peers(peer("r1", "127.0.0.2", 65001), WAIT).await;
        let mut msg = vec![0xff; 16];
        msg.extend_from_slice(&5000u16.to_be_bytes());
        msg.push(2);
        msg.extend(std::iter::repeat_n(0u8, 4981));
        s1.send(&msg).await;
        assert_eq!(s1.notification().await, (1, 2, vec![0x13, 0x88]));
        s1.closed().await;
        h.until("r1 down", |h| {
            h.status("r1").state != SessionState::Established
        })
        .await;
        assert!(
            h.status("r1")
                .last_error
                .unwrap()
                .contains("Bad Message Length")
        );
        r2_untouched(&h, &mut s2).await;
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_prefix_sends_cease_and_routes_go_stale_then_away() {
    timeout(WAIT, async {
        let mut r1 = peer("r1", "127.0.0.2", 65001);
        r1.max_prefixes = Some(3);
        let (h, mut s1, mut s2) = two_peers(r1, Duration::from_millis(300)).await;
        s1.send(&update(
            &["10.5.0.0/16", "10.6.0.0/16", "10.7.0.0/16"],
            &[],
            &path(&[65001], &[]),
        ))
        .await;
        // 1 + 3 > 3: Cease / Maximum Number of Prefixes Reached, AFI 1, SAFI 1, limit 3.
        assert_eq!(s1.notification().await, (6, 1, vec![0, 1, 1, 0, 0, 0, 3]));
        s1.closed().await;
        h.until("r1 stale", |h| {
            let t = h.table("r1");
            !t.v4.is_empty() && t.v4.iter().all(|e| e.2.stale)
        })
        .await;
        h.until("r1 stale removed", |h| h.table("r1").v4.is_empty())
            .await;
        r2_untouched(&h, &mut s2).await;
    })
    .await
    .unwrap();
}
