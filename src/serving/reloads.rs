//! Reload requests and outcomes: every trigger (file watcher, SIGHUP, control socket, BGP
//! feeds) sends a [`ReloadRequest`] to the reload thread through one channel, and the thread
//! records each [`ReloadOutcome`] here for `status`, the metrics and the anycast self-check.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use crate::counters::Counters;

/// Why a reload is asked for. Every trigger goes to the reload thread through one channel.
#[derive(Debug)]
pub enum ReloadRequest {
    /// A watched file changed (debounced).
    FileChanged,
    /// SIGHUP: reload now.
    Signal,
    /// `signpost ctl reload`: reload now and send the outcome here.
    Control(Sender<ReloadOutcome>),
    /// `signpost ctl reload --confirm`: like `Control`, and the build is published even if the
    /// reload guard would hold it.
    Confirm(Sender<ReloadOutcome>),
    /// A live BGP feed changed (coalesced over the feeds' update delay).
    Feeds,
    /// A signed zone's signatures are due to be made again: the sources serving are compiled
    /// again (the reload thread sends this to itself).
    Resign,
    /// Stop the reload thread.
    Stop,
}

/// The outcome of one reload.
#[derive(Clone, Debug)]
pub enum ReloadOutcome {
    /// The new snapshot serves; its data versions.
    Published(String),
    /// The build failed; the previous snapshot still serves.
    Failed(Vec<String>),
    /// The build succeeded but takes away served names or too much data: held by the reload
    /// guard, the previous snapshot still serves. What shrank, and how to confirm.
    Held(Vec<String>),
}

/// The outcome of the last load, for `status`.
#[derive(Clone, Debug)]
pub struct ReloadStatus {
    /// When it finished.
    pub at: SystemTime,
    /// True when the new snapshot is serving.
    pub ok: bool,
    /// True when the reload guard held the new snapshot (then `ok` is false).
    pub held: bool,
    /// The errors of a failed load, or what a held one would take away.
    pub errors: Vec<String>,
    /// Successful loads since start (the first load included).
    pub generation: u64,
    /// Notes on the last successful reload: settings it changed that only a restart applies.
    pub notes: Vec<String>,
}

/// The reload channel's sending end and the last outcome.
pub struct Reloads {
    sender: Sender<ReloadRequest>,
    status: Mutex<ReloadStatus>,
    feeds_pending: AtomicBool,
    counters: Arc<Counters>,
}

impl Reloads {
    /// The request channel (its receiving end goes to the reload thread); the first load
    /// counts as a success.
    pub(super) fn new(counters: Arc<Counters>) -> (Reloads, Receiver<ReloadRequest>) {
        let (sender, rx) = std::sync::mpsc::channel();
        let reloads = Reloads {
            sender,
            status: Mutex::new(ReloadStatus {
                at: SystemTime::now(),
                ok: true,
                held: false,
                errors: Vec::new(),
                generation: 1,
                notes: Vec::new(),
            }),
            feeds_pending: AtomicBool::new(false),
            counters,
        };
        (reloads, rx)
    }

    /// Asks the reload thread for a reload. Returns false when the thread has stopped.
    pub fn request_reload(&self, request: ReloadRequest) -> bool {
        self.sender.send(request).is_ok()
    }

    /// A sender of reload requests, for threads that outlive a borrow (the file watcher).
    pub fn reload_sender(&self) -> Sender<ReloadRequest> {
        self.sender.clone()
    }

    /// A feed's table changed: asks for a reload, unless one is already pending (so that an
    /// update stream costs one request per build, not one per message).
    pub fn feed_changed(&self) {
        if !self.feeds_pending.swap(true, Ordering::AcqRel) {
            self.request_reload(ReloadRequest::Feeds);
        }
    }

    /// The build about to start reads the feeds' tables: changes after this call ask for
    /// another build.
    pub(super) fn feeds_taken(&self) {
        self.feeds_pending.store(false, Ordering::Release);
    }

    /// Sets the notes of the reload being recorded (see [`ReloadStatus::notes`]).
    pub fn set_reload_notes(&self, notes: Vec<String>) {
        self.status.lock().unwrap_or_else(|e| e.into_inner()).notes = notes;
    }

    /// The last reload's outcome.
    pub fn reload_status(&self) -> ReloadStatus {
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Records a reload's outcome and how long it took. A build for feed changes only (`files` false) that succeeds
    /// counts a generation but leaves the outcome of the last file reload in place: a broken
    /// file stays reported until it is fixed.
    pub fn record_reload(&self, outcome: &ReloadOutcome, files: bool, took: std::time::Duration) {
        self.counters.reload(
            match outcome {
                ReloadOutcome::Published(_) => "ok",
                ReloadOutcome::Failed(_) => "failed",
                ReloadOutcome::Held(_) => "held",
            },
            took,
        );
        let mut st = self.status.lock().unwrap_or_else(|e| e.into_inner());
        match outcome {
            ReloadOutcome::Published(_) => {
                st.generation += 1;
                if files {
                    st.at = SystemTime::now();
                    st.ok = true;
                    st.held = false;
                    st.errors.clear();
                }
            }
            ReloadOutcome::Failed(errors) | ReloadOutcome::Held(errors) => {
                st.at = SystemTime::now();
                st.ok = false;
                st.held = matches!(outcome, ReloadOutcome::Held(_));
                st.errors = errors.clone();
            }
        }
    }
}
