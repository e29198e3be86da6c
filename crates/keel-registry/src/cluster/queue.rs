//! One peer's outbound replication queue: per-instance slots in arrival order, coalesced so a
//! newer task for an instance replaces an older one, and capped by instance count.

use std::sync::Mutex;

use indexmap::IndexMap;
use keel_eureka::{AppName, InstanceId};
use tokio::sync::Notify;

use crate::engine::LocalWrite;

pub(crate) type Key = (AppName, InstanceId);

/// A slot growing past this many tasks (status flapping between sends) collapses into one
/// [`Task::Resync`].
const MAX_SLOT: usize = 8;

/// What to send a peer about one instance.
#[derive(Clone, Debug)]
pub(crate) enum Task {
    Write(LocalWrite),
    /// Send our current copy as a Register (nothing if we no longer hold it). Used after a
    /// peer answered 404 and when a slot overflows.
    Resync(Key),
}

impl Task {
    pub fn key(&self) -> Key {
        match self {
            Task::Write(LocalWrite::Register(r)) => {
                (r.info().app.clone(), r.info().instance_id.clone())
            }
            Task::Write(
                LocalWrite::Heartbeat { app, id, .. }
                | LocalWrite::Cancel { app, id }
                | LocalWrite::StatusUpdate { app, id, .. }
                | LocalWrite::DeleteStatusOverride { app, id, .. },
            ) => (app.clone(), id.clone()),
            Task::Resync(key) => key.clone(),
        }
    }
}

/// Appends `task` to an instance's pending tasks, keeping only what the peer still needs:
/// a Register, Cancel or Resync supersedes everything before it; a heartbeat replaces a
/// pending heartbeat and is redundant after a pending Register (which starts a fresh lease);
/// a status task replaces a pending one of the same kind.
fn coalesce(slot: &mut Vec<Task>, task: Task) {
    use LocalWrite::*;
    match (&task, slot.last()) {
        (Task::Write(Register(_) | Cancel { .. }) | Task::Resync(_), _) => slot.clear(),
        (Task::Write(Heartbeat { .. }), Some(Task::Write(Register(_)) | Task::Resync(_))) => {
            return;
        }
        (Task::Write(Heartbeat { .. }), Some(Task::Write(Heartbeat { .. })))
        | (Task::Write(StatusUpdate { .. }), Some(Task::Write(StatusUpdate { .. })))
        | (
            Task::Write(DeleteStatusOverride { .. }),
            Some(Task::Write(DeleteStatusOverride { .. })),
        ) => {
            slot.pop();
        }
        _ => {}
    }
    if slot.len() >= MAX_SLOT {
        let key = task.key();
        slot.clear();
        slot.push(Task::Resync(key));
        return;
    }
    slot.push(task);
}

#[derive(Debug, Default)]
struct State {
    slots: IndexMap<Key, Vec<Task>>,
    dropped: u64,
}

/// Producers (the request path) push without waiting; the peer's sender takes batches.
#[derive(Debug)]
pub(crate) struct Queue {
    state: Mutex<State>,
    ready: Notify,
    capacity: usize,
}

impl Queue {
    pub fn new(capacity: usize) -> Self {
        Self {
            state: Mutex::new(State::default()),
            ready: Notify::new(),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Every mutation completes before the guard drops; a poisoned queue is still valid.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `task`; false if the queue is full and the instance has no slot yet (the task
    /// is dropped; anti-entropy repairs it: the next heartbeat gets 404 and re-registers).
    pub fn push(&self, task: Task) -> bool {
        let mut st = self.lock();
        let key = task.key();
        let len = st.slots.len();
        match st.slots.get_mut(&key) {
            Some(slot) => coalesce(slot, task),
            None if len >= self.capacity => {
                st.dropped += 1;
                return false;
            }
            None => {
                st.slots.insert(key, vec![task]);
            }
        }
        drop(st);
        self.ready.notify_one();
        true
    }

    /// Takes whole instance slots, oldest first, until at least `max_items` tasks or the
    /// queue is empty.
    pub fn take(&self, max_items: usize) -> Vec<(Key, Vec<Task>)> {
        let mut st = self.lock();
        let mut n_slots = 0;
        let mut n_items = 0;
        for slot in st.slots.values() {
            if n_items >= max_items {
                break;
            }
            n_slots += 1;
            n_items += slot.len();
        }
        st.slots.drain(..n_slots).collect()
    }

    /// Puts back tasks that could not be delivered, ahead of anything queued for the same
    /// instance since (so per-instance order holds). Ignores the cap: these were admitted.
    pub fn requeue(&self, batch: Vec<(Key, Vec<Task>)>) {
        let mut st = self.lock();
        for (key, old) in batch {
            match st.slots.get_mut(&key) {
                Some(slot) => {
                    let newer = std::mem::replace(slot, old);
                    for t in newer {
                        coalesce(slot, t);
                    }
                }
                None => {
                    st.slots.insert(key, old);
                }
            }
        }
        drop(st);
        self.ready.notify_one();
    }

    /// Waits until something may be queued.
    pub async fn ready(&self) {
        self.ready.notified().await;
    }

    pub fn len(&self) -> usize {
        self.lock().slots.len()
    }

    pub fn dropped(&self) -> u64 {
        self.lock().dropped
    }

    pub fn clear(&self) {
        self.lock().slots.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_eureka::InstanceStatus;

    fn key(i: &str) -> Key {
        (AppName::parse("a").unwrap(), InstanceId::parse(i).unwrap())
    }

    fn hb(i: &str, ts: i64) -> Task {
        let (app, id) = key(i);
        Task::Write(LocalWrite::Heartbeat {
            app,
            id,
            status: InstanceStatus::Up,
            last_dirty_timestamp: ts,
            overridden_status: None,
        })
    }

    fn cancel(i: &str) -> Task {
        let (app, id) = key(i);
        Task::Write(LocalWrite::Cancel { app, id })
    }

    #[test]
    fn newer_tasks_replace_older_ones_per_instance() {
        let q = Queue::new(10);
        q.push(hb("x", 1));
        q.push(hb("y", 1));
        q.push(hb("x", 2));
        let batch = q.take(100);
        assert_eq!(batch.len(), 2);
        assert!(matches!(
            batch[0].1.as_slice(),
            [Task::Write(LocalWrite::Heartbeat {
                last_dirty_timestamp: 2,
                ..
            })]
        ));
        q.push(hb("x", 3));
        q.push(cancel("x"));
        assert!(matches!(
            q.take(100)[0].1.as_slice(),
            [Task::Write(LocalWrite::Cancel { .. })]
        ));
    }

    #[test]
    fn capped_by_instances_and_requeue_keeps_order() {
        let q = Queue::new(2);
        assert!(q.push(hb("x", 1)));
        assert!(q.push(hb("y", 1)));
        assert!(!q.push(hb("z", 1)), "a third instance does not fit");
        assert!(q.push(hb("x", 2)), "an instance already queued always fits");
        assert_eq!(q.dropped(), 1);
        let batch = q.take(1);
        assert_eq!(batch.len(), 1);
        q.push(cancel("x"));
        q.requeue(batch);
        let again = q.take(100);
        let x = &again.iter().find(|(k, _)| *k == key("x")).unwrap().1;
        assert!(
            matches!(x.as_slice(), [Task::Write(LocalWrite::Cancel { .. })]),
            "the newer cancel still wins after the older heartbeat was put back"
        );
    }
}
