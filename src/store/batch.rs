//! Group commit for the apply script: the changes that arrive while a call is on its
//! way to Redis go together in the next call, one script call for many changes.
//!
//! Why: under a STOP storm Redis spends most of a script call on the call itself
//! (reading the command, setting up the script, the reply and its system calls), not
//! on the change. Batching the changes that are waiting anyway shares that cost, and
//! each caller still gets its own reply after its own change is written: nothing is
//! acknowledged before Redis has it.
//!
//! Changes are grouped by hash tag on Redis Cluster (every key of one script call must
//! be in one slot) and all together on a single server. A group has at most
//! [`MAX_IN_FLIGHT`] calls on the way; a call carries at most [`MAX_BATCH`] changes.
//! Within a group the changes are sent in the order they were queued, on one
//! connection, so two changes to one address apply in arrival order as before.
//!
//! Calls are sent by a spawned task, never by a caller's own future: a caller whose
//! request is dropped (the client went away) cannot strand the changes queued behind it.

use std::collections::HashMap;
use std::sync::Mutex;

use redis::Value;
use tokio::sync::oneshot;

use super::StoreError;

/// Changes in one script call, at most. A call of this size runs for well under a
/// millisecond of Redis time, so it does not hold up other clients noticeably.
pub(super) const MAX_BATCH: usize = 64;

/// Script calls of one group on the way at once: one being run by Redis while the
/// next one is filled.
pub(super) const MAX_IN_FLIGHT: usize = 2;

/// One change waiting for its call.
pub(super) struct Job {
    /// The change's keys, in the script's order.
    pub keys: Vec<String>,
    /// The change as the script's arguments.
    pub args: super::ScriptArgs,
    /// Where its reply goes.
    pub done: oneshot::Sender<Result<Value, StoreError>>,
}

#[derive(Default)]
struct Group {
    pending: Vec<Job>,
    in_flight: usize,
}

/// The queues of changes waiting for a script call, by group.
#[derive(Default)]
pub(super) struct Batcher {
    groups: Mutex<HashMap<String, Group>>,
}

impl Batcher {
    /// Queue `job` in `group`. When the group has room for another call, the caller
    /// gets the batch to send (this job and whatever waited) and must send it, then
    /// call [`Batcher::next`] until it returns `None`.
    pub fn push(&self, group: &str, job: Job) -> Option<Vec<Job>> {
        let mut groups = self.groups.lock().unwrap_or_else(|e| e.into_inner());
        let g = match groups.get_mut(group) {
            Some(g) => g,
            None => groups.entry(group.to_string()).or_default(),
        };
        g.pending.push(job);
        if g.in_flight < MAX_IN_FLIGHT {
            g.in_flight += 1;
            Some(take(&mut g.pending))
        } else {
            None
        }
    }

    /// A call of `group` finished: the next batch to send on the same call slot, or
    /// `None` (the slot is free again) when nothing waits.
    pub fn next(&self, group: &str) -> Option<Vec<Job>> {
        let mut groups = self.groups.lock().unwrap_or_else(|e| e.into_inner());
        let g = groups.get_mut(group)?;
        if g.pending.is_empty() {
            g.in_flight -= 1;
            if g.in_flight == 0 {
                groups.remove(group);
            }
            None
        } else {
            Some(take(&mut g.pending))
        }
    }
}

/// The first [`MAX_BATCH`] jobs of `pending`, in order.
fn take(pending: &mut Vec<Job>) -> Vec<Job> {
    if pending.len() <= MAX_BATCH {
        std::mem::take(pending)
    } else {
        let rest = pending.split_off(MAX_BATCH);
        std::mem::replace(pending, rest)
    }
}

/// Hand each job its reply from the script's reply to the whole batch: one element
/// per job, in order; a reply that is not that fails every job of the batch.
pub(super) fn deliver(jobs: Vec<Job>, reply: Result<Value, StoreError>) {
    let items = match reply {
        Ok(Value::Array(items)) if items.len() == jobs.len() => items,
        Ok(_) => {
            let e = StoreError::Protocol("apply script: not one reply per change".into());
            for job in jobs {
                let _ = job.done.send(Err(e.clone()));
            }
            return;
        }
        Err(e) => {
            for job in jobs {
                let _ = job.done.send(Err(e.clone()));
            }
            return;
        }
    };
    for (job, item) in jobs.into_iter().zip(items) {
        // A caller that stopped waiting (its request went away) is not an error: its
        // change is written all the same.
        let _ = job.done.send(Ok(item));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> (Job, oneshot::Receiver<Result<Value, StoreError>>) {
        let (done, rx) = oneshot::channel();
        (
            Job {
                keys: vec![],
                args: super::super::ScriptArgs {
                    text: String::new(),
                    ends: vec![],
                },
                done,
            },
            rx,
        )
    }

    #[test]
    fn the_first_callers_send_and_the_rest_wait_for_the_next_call() {
        let b = Batcher::default();
        let sent: Vec<_> = (0..MAX_IN_FLIGHT)
            .map(|_| b.push("g", job().0).expect("room for a call"))
            .collect();
        assert!(sent.iter().all(|batch| batch.len() == 1));
        // Both call slots busy: these wait.
        for _ in 0..MAX_BATCH + 3 {
            assert!(b.push("g", job().0).is_none());
        }
        // Another group has its own slots.
        assert!(b.push("h", job().0).is_some());
        // A finished call takes the next MAX_BATCH in order, then the rest.
        assert_eq!(b.next("g").map(|v| v.len()), Some(MAX_BATCH));
        assert_eq!(b.next("g").map(|v| v.len()), Some(3));
        assert!(b.next("g").is_none());
        assert!(b.next("g").is_none());
        // Both slots free again: the next caller sends at once.
        assert!(b.push("g", job().0).is_some());
    }

    #[test]
    fn each_job_gets_its_own_reply_or_the_batch_error() {
        let (a, ra) = job();
        let (b, rb) = job();
        deliver(
            vec![a, b],
            Ok(Value::Array(vec![Value::Int(1), Value::Int(2)])),
        );
        assert_eq!(ra.blocking_recv().unwrap(), Ok(Value::Int(1)));
        assert_eq!(rb.blocking_recv().unwrap(), Ok(Value::Int(2)));
        let (a, ra) = job();
        let (b, rb) = job();
        deliver(vec![a, b], Ok(Value::Array(vec![Value::Int(1)])));
        assert!(matches!(
            ra.blocking_recv().unwrap(),
            Err(StoreError::Protocol(_))
        ));
        assert!(rb.blocking_recv().unwrap().is_err());
    }
}
