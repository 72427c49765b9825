//! A stand-in action for the handler's tests: it counts its calls, refuses or fails when
//! told to, and can stop the handler in the middle of its side effect, so that the
//! ledger's protocol is tested without SMTP, HTTP or a real queue.
//!
//! Every request gets the same fake ([`FakeCatalog`]); what it does is set on the shared
//! [`Fake`] before the handler is given a file.

use std::collections::{HashSet, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex, MutexGuard};

use ai_employee_vault::layout::Folder;

use super::Outcome;
use super::{Action, Catalog, Context, Found, Plan, Refused};
use crate::outcome::results;
use crate::request::Request;

/// The fake's script and what it saw, shared by the test and every action it hands out.
#[derive(Clone, Default)]
pub struct Fake(Arc<Mutex<Script>>);

#[derive(Default)]
pub struct Script {
    /// A local action (a mark in the vault, found after a restart) rather than a call to
    /// another system.
    pub local: bool,
    /// `prepare` refuses with this problem (as a credentials file would).
    pub refuse: Option<String>,
    /// `prepare` writes this text over the approval file (a person edits it meanwhile).
    pub edit: Option<String>,
    /// What the next `perform`s return, in order; a success once this runs out.
    pub outcomes: VecDeque<Outcome>,
    /// Where the next `perform` stops the handler.
    pub crash: Option<Crash>,
    /// A secret of the fake's credentials (the handler redacts it).
    pub secret: Option<String>,
    /// Calls seen.
    pub prepares: u32,
    pub performs: u32,
    /// Side effects that happened, by mark (a local action's effect, or `sent <tag>`).
    pub effects: Vec<String>,
    /// Marks in place (what [`Catalog::found`] finds after a restart).
    pub marks: HashSet<String>,
}

/// How `perform` stops the handler, as a crash or SIGTERM would.
pub enum Crash {
    /// It panics before its side effect (run where the handler runs: a local action).
    BeforeEffect,
    /// It panics after its side effect, before the handler can record the outcome.
    AfterEffect,
    /// It sets the stop flag and blocks until `release` is sent to (an external call
    /// that SIGTERM interrupts); `entered` is sent to once it blocks.
    Hang {
        stop: Arc<AtomicBool>,
        entered: Sender<()>,
        release: Receiver<()>,
    },
}

impl Fake {
    pub fn script(&self) -> MutexGuard<'_, Script> {
        // A test that panicked on purpose (a crash) never does so holding the lock.
        match self.0.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// The catalog that hands out this fake for every request.
    pub fn catalog(&self) -> Box<dyn Catalog> {
        Box::new(FakeCatalog(self.clone()))
    }

    /// A channel pair for [`Crash::Hang`]: (entered, release) for the test's side.
    pub fn hang(&self, stop: Arc<AtomicBool>) -> (Receiver<()>, Sender<()>) {
        let (entered_tx, entered) = channel();
        let (release, release_rx) = channel();
        self.script().crash = Some(Crash::Hang {
            stop,
            entered: entered_tx,
            release: release_rx,
        });
        (entered, release)
    }
}

struct FakeCatalog(Fake);

impl Catalog for FakeCatalog {
    fn action(&mut self, _req: &Request) -> Box<dyn Action> {
        Box::new(FakeAction {
            fake: self.0.clone(),
            mark: None,
        })
    }

    fn secrets(&self) -> Vec<String> {
        self.0.script().secret.iter().cloned().collect()
    }

    fn found(&self, _vault: &Path, _action: &str, effect: &str, _tag: &str) -> Option<Found> {
        self.0.script().marks.contains(effect).then(|| Found {
            result: results::QUEUED,
            fields: vec![("fake_mark".to_string(), effect.to_string())],
        })
    }
}

struct FakeAction {
    fake: Fake,
    /// What `prepare` named its side effect.
    mark: Option<String>,
}

impl Action for FakeAction {
    fn prepare(&mut self, cx: &Context<'_>) -> Result<Plan, Refused> {
        let mut s = self.fake.script();
        s.prepares += 1;
        if let Some(text) = s.edit.take() {
            let path = cx.vault.join(Folder::Approved).join(cx.file);
            if let Err(e) = std::fs::write(&path, text) {
                panic!("cannot edit {}: {e}", path.display());
            }
        }
        if let Some(problem) = s.refuse.clone() {
            return Err(Refused::CredentialsInvalid {
                action: "fake",
                problem,
            });
        }
        let local = s.local;
        self.mark = Some(if local {
            format!("FAKE#{}", cx.tag)
        } else {
            format!("sent {}", cx.tag)
        });
        Ok(Plan {
            effect: if local { self.mark.clone() } else { None },
            message_id: (!local).then(|| format!("<{}@fake>", cx.tag)),
            rehearse: false,
        })
    }

    fn perform(self: Box<Self>) -> Outcome {
        let mark = self.mark.clone().unwrap_or_default();
        let mut s = self.fake.script();
        s.performs += 1;
        let outcome = s.outcomes.pop_front().unwrap_or(Outcome::Success {
            detail: format!("fake: {mark}"),
            fields: vec![],
        });
        let crash = s.crash.take();
        if let Some(Crash::BeforeEffect) = crash {
            drop(s);
            panic!("crash before the effect of {mark}");
        }
        // A failed attempt has no effect (a transient or permanent failure says so).
        if matches!(outcome, Outcome::Success { .. } | Outcome::Unknown(_)) {
            s.effects.push(mark.clone());
            s.marks.insert(mark.clone());
        }
        drop(s);
        match crash {
            Some(Crash::AfterEffect) => panic!("crash after the effect of {mark}"),
            Some(Crash::Hang {
                stop,
                entered,
                release,
            }) => {
                stop.store(true, Ordering::SeqCst);
                // The test waits for this, then for the handler to give up on the call;
                // the test is gone only if it failed already.
                if entered.send(()).is_ok() {
                    // Released (or the test ended): the call returns, too late.
                    let _released = release.recv();
                }
            }
            Some(Crash::BeforeEffect) | None => {}
        }
        outcome
    }

    fn result(&self) -> &'static str {
        if self.fake.script().local {
            results::QUEUED
        } else {
            results::SENT
        }
    }
}
