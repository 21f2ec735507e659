//! The metrics endpoint's connection slots: at most [`Slots::new`]'s count of connections at
//! once, and a new connection always gets one.
//!
//! When every slot is taken, the connection whose last activity (accepted, or a request
//! received) is the oldest is closed to make room. A scrape is a request answered within
//! milliseconds of its headers, so what gets closed is a connection that sends nothing or
//! is idle between keep-alive requests (a scraper reconnects for its next scrape): idle or
//! slow connections cannot keep Prometheus out, however many there are.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::Notify;

/// The slots of one endpoint.
#[derive(Debug)]
pub struct Slots {
    max: usize,
    held: Mutex<Vec<Held>>,
    next_id: std::sync::atomic::AtomicU64,
}

#[derive(Debug)]
struct Held {
    id: u64,
    active: Instant,
    close: Arc<Notify>,
}

/// A connection's slot: freed on drop.
#[derive(Debug)]
pub struct Slot {
    slots: Arc<Slots>,
    id: u64,
    /// Notified when the slot is taken back for a newer connection.
    pub close: Arc<Notify>,
}

impl Slots {
    /// Room for `max` connections (at least one).
    pub fn new(max: usize) -> Arc<Slots> {
        Arc::new(Slots {
            max: max.max(1),
            held: Mutex::new(Vec::new()),
            next_id: Default::default(),
        })
    }

    /// A slot for a new connection; when none is free, the least recently active connection
    /// is told to close and its slot is given to this one.
    pub fn take(self: &Arc<Slots>) -> Slot {
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let close = Arc::new(Notify::new());
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if held.len() >= self.max
            && let Some(i) = (0..held.len()).min_by_key(|&i| held[i].active)
        {
            // `notify_one` stores a permit: the connection closes even if it is not waiting yet.
            held.swap_remove(i).close.notify_one();
        }
        held.push(Held {
            id,
            active: Instant::now(),
            close: close.clone(),
        });
        Slot {
            slots: self.clone(),
            id,
            close,
        }
    }

    /// Connections holding a slot.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.held.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

impl Slot {
    /// Marks the connection active now (a request arrived).
    pub fn touch(&self) {
        let mut held = self.slots.held.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(h) = held.iter_mut().find(|h| h.id == self.id) {
            h.active = Instant::now();
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut held = self.slots.held.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = held.iter().position(|h| h.id == self.id) {
            held.swap_remove(i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_set_closes_the_least_recently_active() {
        let slots = Slots::new(2);
        let a = slots.take();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = slots.take();
        std::thread::sleep(std::time::Duration::from_millis(2));
        a.touch();
        let c = slots.take();
        assert_eq!(slots.len(), 2);
        // b was the least recently active: it is told to close, a and c are not.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let told = |s: &Slot| {
            let close = s.close.clone();
            rt.block_on(async {
                tokio::time::timeout(std::time::Duration::from_millis(20), close.notified())
                    .await
                    .is_ok()
            })
        };
        assert!(told(&b));
        assert!(!told(&a));
        assert!(!told(&c));
        // Dropping b (already out of the set) leaves a and c holding their slots.
        drop(b);
        assert_eq!(slots.len(), 2);
        drop(a);
        assert_eq!(slots.len(), 1);
    }
}
