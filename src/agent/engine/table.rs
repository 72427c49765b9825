//! The loop's table of known tasks. Pending tasks without a deadline, the bulk of any
//! queue, are also kept in score order, so picking the next task does not score every
//! task: their score is `base + age_per_hour · hours waiting`, and since every task ages
//! at the same rate, ordering them by `base − age_per_hour · hours from a fixed epoch to
//! queued_at` orders them by score at any time. Every other task (running, retrying,
//! waiting for an approval, or with a deadline, whose part of the score moves in steps) is
//! in `others` and scored when a pick is made; there are few of those.

use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::ops::{Deref, DerefMut};

use chrono::{DateTime, Utc};

use super::Entry;
use crate::agent::task::LoopState;

/// A queued task's place in score order (best first).
#[derive(Debug, Clone)]
struct Key {
    order: f64,
    queued_at: DateTime<Utc>,
    id: String,
}

impl Ord for Key {
    fn cmp(&self, other: &Self) -> Ordering {
        // Higher score first, then the older, then by id (as the loop's pick orders).
        other
            .order
            .total_cmp(&self.order)
            .then_with(|| self.queued_at.cmp(&other.queued_at))
            .then_with(|| self.id.cmp(&other.id))
    }
}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Key {}

pub(super) struct Tasks {
    map: HashMap<String, Entry>,
    queue: BTreeSet<Key>,
    others: HashSet<String>,
    age_per_hour: f64,
    epoch: DateTime<Utc>,
}

impl Tasks {
    pub(super) fn new(age_per_hour: f64, epoch: DateTime<Utc>) -> Tasks {
        Tasks {
            map: HashMap::new(),
            queue: BTreeSet::new(),
            others: HashSet::new(),
            age_per_hour,
            epoch,
        }
    }

    fn order(&self) -> Order {
        Order {
            age_per_hour: self.age_per_hour,
            epoch: self.epoch,
        }
    }

    pub(super) fn insert(&mut self, id: String, e: Entry) {
        if let Some(old) = self.map.remove(&id) {
            self.order()
                .unplace(&old, &mut self.queue, &mut self.others);
        }
        self.order().place(&e, &mut self.queue, &mut self.others);
        self.map.insert(id, e);
    }

    pub(super) fn remove(&mut self, id: &str) -> Option<Entry> {
        let e = self.map.remove(id)?;
        self.order().unplace(&e, &mut self.queue, &mut self.others);
        Some(e)
    }

    pub(super) fn get(&self, id: &str) -> Option<&Entry> {
        self.map.get(id)
    }

    /// The entry, to change: it is put back in its place in the order when the returned
    /// guard is dropped.
    pub(super) fn get_mut(&mut self, id: &str) -> Option<EntryMut<'_>> {
        let order = self.order();
        let entry = self.map.get_mut(id)?;
        order.unplace(entry, &mut self.queue, &mut self.others);
        Some(EntryMut {
            entry,
            queue: &mut self.queue,
            others: &mut self.others,
            order,
        })
    }

    pub(super) fn values(&self) -> impl Iterator<Item = &Entry> {
        self.map.values()
    }

    pub(super) fn len(&self) -> usize {
        self.map.len()
    }

    /// The best queued task (pending, no deadline).
    pub(super) fn first_queued(&self) -> Option<&Entry> {
        self.queue.first().and_then(|k| self.map.get(&k.id))
    }

    /// Whether any task is in the ordered queue.
    pub(super) fn any_queued(&self) -> bool {
        !self.queue.is_empty()
    }

    /// Every task not in the ordered queue.
    pub(super) fn others(&self) -> impl Iterator<Item = &Entry> {
        self.others.iter().filter_map(|id| self.map.get(id))
    }
}

/// A task being changed (see [`Tasks::get_mut`]).
pub(super) struct EntryMut<'a> {
    entry: &'a mut Entry,
    queue: &'a mut BTreeSet<Key>,
    others: &'a mut HashSet<String>,
    order: Order,
}

impl Deref for EntryMut<'_> {
    type Target = Entry;
    fn deref(&self) -> &Entry {
        self.entry
    }
}

impl DerefMut for EntryMut<'_> {
    fn deref_mut(&mut self) -> &mut Entry {
        self.entry
    }
}

impl Drop for EntryMut<'_> {
    fn drop(&mut self) {
        self.order.place(self.entry, self.queue, self.others);
    }
}

/// How a task's place is computed.
#[derive(Clone, Copy)]
struct Order {
    age_per_hour: f64,
    epoch: DateTime<Utc>,
}

impl Order {
    /// The task's key when it belongs in the ordered queue.
    fn key(self, e: &Entry) -> Option<Key> {
        if e.state != LoopState::Pending || e.deadline.is_some() || e.seen_dry {
            return None;
        }
        let hours = e
            .queued_at
            .signed_duration_since(self.epoch)
            .num_milliseconds() as f64
            / 3_600_000.0;
        Some(Key {
            order: e.base - self.age_per_hour * hours,
            queued_at: e.queued_at,
            id: e.id.clone(),
        })
    }

    fn place(self, e: &Entry, queue: &mut BTreeSet<Key>, others: &mut HashSet<String>) {
        match self.key(e) {
            Some(k) => {
                queue.insert(k);
            }
            None => {
                others.insert(e.id.clone());
            }
        }
    }

    fn unplace(self, e: &Entry, queue: &mut BTreeSet<Key>, others: &mut HashSet<String>) {
        match self.key(e) {
            Some(k) => {
                queue.remove(&k);
            }
            None => {
                others.remove(&e.id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ai_employee_vault::layout::Folder;
    use chrono::Duration;

    fn entry(id: &str, base: f64, queued_at: DateTime<Utc>) -> Entry {
        Entry {
            id: id.to_string(),
            name: format!("{id}.md"),
            folder: Folder::NeedsAction,
            state: LoopState::Pending,
            attempt: 0,
            queued_at,
            started_at: None,
            retry_at: None,
            waiting_since: None,
            last_error: None,
            session_id: None,
            title: String::new(),
            priority: None,
            deadline: None,
            base,
            run_approval: None,
            approvals: Vec::new(),
            resume_after_approval: false,
            cost_usd: 0.0,
            turns: 0,
            pid: None,
            seen_dry: false,
        }
    }

    fn score(e: &Entry, age_per_hour: f64, now: DateTime<Utc>) -> f64 {
        e.base + age_per_hour * (now - e.queued_at).num_milliseconds() as f64 / 3_600_000.0
    }

    /// The best queued task by scoring every one, as the loop did before the order.
    fn best_by_scan(t: &Tasks, age_per_hour: f64, now: DateTime<Utc>) -> Option<(String, f64)> {
        t.values()
            .filter(|e| e.state == LoopState::Pending && e.deadline.is_none() && !e.seen_dry)
            .map(|e| (score(e, age_per_hour, now), e))
            .max_by(|(a, x), (b, y)| {
                a.total_cmp(b)
                    .then_with(|| y.queued_at.cmp(&x.queued_at))
                    .then_with(|| y.id.cmp(&x.id))
            })
            .map(|(s, e)| (e.id.clone(), s))
    }

    #[test]
    fn the_first_queued_is_the_best_scored_at_any_time_and_after_any_change() {
        let age = 0.05;
        let epoch = DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default();
        let mut t = Tasks::new(age, epoch);
        // A small deterministic generator: bases in steps that tie often, ages over days.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for i in 0..500 {
            let base = (next() % 7) as f64 * 0.1;
            let queued = epoch + Duration::minutes((next() % 5_000) as i64);
            let mut e = entry(&format!("T{i:03}"), base, queued);
            if i % 10 == 0 {
                e.deadline = Some(queued + Duration::hours(3));
            }
            t.insert(e.id.clone(), e);
        }
        assert_eq!(t.len(), 500);
        assert_eq!(
            t.others().count(),
            50,
            "tasks with a deadline are scored at each pick"
        );
        for step in 0..200 {
            let now = epoch + Duration::minutes(5_000 + step * 97);
            let want = best_by_scan(&t, age, now);
            let got = t.first_queued();
            assert_eq!(got.is_some(), want.is_some());
            // Equal scores reached by two sums may differ in the last bits, and so order
            // either way: the first must score as the best, to within rounding.
            if let (Some(got), Some((_, best))) = (got, &want) {
                let s = score(got, age, now);
                assert!(
                    best - s < 1e-9,
                    "at step {step}: {} scores {s}, the best {best}",
                    got.id
                );
            }
            // Change the best: run it, then put some back as pending, drop others.
            if let Some((id, _)) = want {
                if let Some(mut e) = t.get_mut(&id) {
                    e.state = LoopState::Running;
                }
                assert!(
                    t.others().any(|e| e.id == id),
                    "a running task leaves the order"
                );
                match step % 3 {
                    0 => {
                        if let Some(mut e) = t.get_mut(&id) {
                            e.state = LoopState::Pending;
                            e.base += 0.35;
                        }
                    }
                    1 => {
                        assert!(t.remove(&id).is_some());
                    }
                    _ => {}
                }
            }
        }
        assert!(t.any_queued());
        let queued = t.values().filter(|e| e.state == LoopState::Pending).count();
        assert_eq!(t.others().count() + queued - 50, t.len());
    }
}
