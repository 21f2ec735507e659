//! Wiring the anycast announcement: the [`Announcer`] with the operator's withdrawal kept
//! beside the state file, the BGP feed following its announced flag, the self-check feeding
//! it; and the drain at a graceful stop (withdraw, keep answering, then close). Which feed
//! peers get the routes is part of the feed settings (`wiring.rs`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use super::wiring::Wiring;
use crate::anycast::{Announcer, Policy};
use crate::config::LoadFailurePolicy;
use crate::feed::{Feeds, Handed};

/// Where the operator's withdrawal is kept: `STATE_FILE.anycast`.
fn kept_at(state_file: Option<PathBuf>) -> Option<PathBuf> {
    state_file.map(|p| {
        let mut s = p.into_os_string();
        s.push(".anycast");
        PathBuf::from(s)
    })
}

/// The UDP listeners of the "ready" line's `udp ADDRESS` entries, as the self-check asks them.
fn udp_targets(bound: &[String]) -> Vec<SocketAddr> {
    bound
        .iter()
        .filter_map(|b| b.strip_prefix("udp ")?.parse().ok())
        .map(crate::selfcheck::target)
        .collect()
}

/// Starts the announcement when `anycast` is configured (its peers are feed peers, so the
/// feeds run): withdrawn until the first self-check passes.
pub(super) fn start(
    w: Wiring<'_>,
    feeds: Option<&Arc<Feeds>>,
    bound: &[String],
) -> Option<Arc<Announcer>> {
    let (config, feeds) = (w.config.anycast.as_ref()?, feeds?);
    let policy = Policy {
        hold_down: config.hold_down,
        check_failures: config.check_failures,
    };
    let prefixes = config
        .prefixes
        .iter()
        .map(|p| p.prefix.to_string())
        .collect();
    let state_file = w
        .opts
        .state_file
        .clone()
        .or_else(|| w.config.state_file.clone());
    let announcer = Arc::new(Announcer::new(
        policy,
        prefixes,
        kept_at(state_file),
        config.drain,
    ));
    w.serving.set_anycast(announcer.clone());
    let mut flag = announcer.subscribe();
    let follower = feeds.clone();
    w.runtime.spawn(async move {
        loop {
            follower.set_announced(*flag.borrow_and_update());
            if flag.changed().await.is_err() {
                return;
            }
        }
    });
    let settings = crate::selfcheck::Settings {
        interval: config.check_interval,
        timeout: config.check_timeout,
        max_data_age: config.max_data_age,
        withdraw_on_load_failure: config.on_load_failure == LoadFailurePolicy::Withdraw,
    };
    w.runtime.spawn(crate::selfcheck::run(
        w.serving.published().clone(),
        w.serving.reloads().clone(),
        announcer.clone(),
        udp_targets(bound),
        settings,
    ));
    Some(announcer)
}

/// Resumes the BGP sessions the process this one replaces handed over. When the prefixes were
/// announced on them, the announcement starts announced (this process serves already), and the
/// feed follows before the sessions resume, so that nothing is withdrawn and announced again
/// across the replace; the operator's withdrawal kept in the file still withdraws.
pub(super) fn resume(
    feeds: Option<&Arc<Feeds>>,
    announcer: Option<&Arc<Announcer>>,
    sessions: Vec<crate::handover::Session>,
) {
    let Some(feeds) = feeds else { return };
    if let (true, Some(a)) = (sessions.iter().any(|(c, _)| c.announced), announcer) {
        a.carry_announced();
        feeds.set_announced(*a.subscribe().borrow());
    }
    feeds.resume(
        sessions
            .into_iter()
            .map(|(carry, fd)| Handed {
                carry,
                stream: fd.into(),
            })
            .collect(),
    );
}

/// A graceful stop: withdraw, and keep answering for the drain time so that the routers move
/// the traffic before the listeners close.
pub(super) fn drain(announcer: Option<&Arc<Announcer>>) {
    let Some(a) = announcer else { return };
    a.stop();
    let drain = a.drain();
    tracing::info!(
        ms = drain.as_millis() as u64,
        "anycast: withdrawn, draining"
    );
    std::thread::sleep(drain);
}

#[cfg(test)]
mod tests {
    #[test]
    fn targets_come_from_the_udp_listeners() {
        let bound = [
            "udp 0.0.0.0:5300".to_string(),
            "tcp 0.0.0.0:5300".to_string(),
            "udp [::1]:53".to_string(),
            "bgp 127.0.0.1:179".to_string(),
        ];
        let t = super::udp_targets(&bound);
        assert_eq!(
            t,
            vec![
                "127.0.0.1:5300".parse().unwrap(),
                "[::1]:53".parse().unwrap()
            ]
        );
        assert_eq!(
            super::kept_at(Some("/var/lib/s/state.json".into())),
            Some("/var/lib/s/state.json.anycast".into())
        );
    }
}
