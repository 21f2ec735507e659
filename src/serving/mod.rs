//! Where the services meet. Each is given the part it uses:
//!
//! - [`Published`]: the snapshot in force and the node states and capacity shares applied to
//!   it. The DNS workers read its swap only; the prober and the load scraper change what is
//!   applied; the reload thread publishes.
//! - [`Reloads`]: the reload requests (one channel to the reload thread) and the last
//!   outcome. The file watcher and the BGP feeds ask; the anycast self-check reads the outcome.
//! - [`Serving`]: both, and what is attached once at start (the BGP feeds, the anycast
//!   announcement, the query log). Only the services that report or command all of it get it:
//!   the control socket, the metrics endpoint, the reload thread (publishes, records, reads the
//!   feeds' tables) and the daemon that wires them.
//!
//! None of the services imports another.

mod published;
mod reloads;

use std::sync::mpsc::Receiver;
use std::sync::{Arc, OnceLock};

pub use published::Published;
pub use reloads::{ReloadOutcome, ReloadRequest, ReloadStatus, Reloads};

use crate::anycast::Announcer;
use crate::counters::Counters;
use crate::live::{FeedTable, FeedView};
use crate::node_state::NodeStates;
use crate::querylog::QueryLog;
use crate::snapshot::Snapshot;

/// The serving state shared by the services that see all of it.
pub struct Serving {
    published: Arc<Published>,
    reloads: Arc<Reloads>,
    feeds: OnceLock<Arc<dyn FeedView>>,
    anycast: OnceLock<Arc<Announcer>>,
    query_log: OnceLock<Arc<QueryLog>>,
}

impl Serving {
    /// Starts serving `snap` with `states` applied; returns the shared state and the receiving
    /// end of the reload requests (for the reload thread).
    pub fn new(
        snap: Snapshot,
        states: NodeStates,
        counters: Arc<Counters>,
    ) -> (Arc<Serving>, Receiver<ReloadRequest>) {
        let (reloads, rx) = Reloads::new(counters.clone());
        let serving = Serving {
            published: Arc::new(Published::new(snap, states, counters)),
            reloads: Arc::new(reloads),
            feeds: OnceLock::new(),
            anycast: OnceLock::new(),
            query_log: OnceLock::new(),
        };
        (Arc::new(serving), rx)
    }

    /// The published snapshot and what is applied to it.
    pub fn published(&self) -> &Arc<Published> {
        &self.published
    }

    /// The reload requests and outcomes.
    pub fn reloads(&self) -> &Arc<Reloads> {
        &self.reloads
    }

    /// Attaches the running BGP feeds (once, after they start).
    pub fn set_feeds(&self, feeds: Arc<dyn FeedView>) {
        let _ = self.feeds.set(feeds);
    }

    /// The running BGP feeds, if any.
    pub fn feeds(&self) -> Option<&Arc<dyn FeedView>> {
        self.feeds.get()
    }

    /// Attaches the anycast announcement (once, at start).
    pub fn set_anycast(&self, announcer: Arc<Announcer>) {
        let _ = self.anycast.set(announcer);
    }

    /// The anycast announcement, when configured.
    pub fn anycast(&self) -> Option<&Arc<Announcer>> {
        self.anycast.get()
    }

    /// Attaches the running query log (once, at start).
    pub fn set_query_log(&self, log: Arc<QueryLog>) {
        let _ = self.query_log.set(log);
    }

    /// Reopens the query log's file: its path, or why it could not be opened (the log keeps
    /// its old file); None without a query log.
    pub fn reopen_logs(
        &self,
    ) -> Option<Result<std::path::PathBuf, crate::querylog::QueryLogError>> {
        let log = self.query_log.get()?;
        Some(log.reopen().map(|()| log.path().to_path_buf()))
    }

    /// The feeds' tables for the next build; changes after this call ask for another build.
    pub fn take_feed_tables(&self) -> Vec<FeedTable> {
        self.reloads.feeds_taken();
        self.feeds().map(|f| f.tables()).unwrap_or_default()
    }
}
