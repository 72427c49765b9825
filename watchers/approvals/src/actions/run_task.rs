//! `run_task`: a person lets the task loop (`ai-employee agent`) run the AI agent on a
//! task it held back (an approval keyword such as "deploy", or a payment). The action
//! itself has no effect: the approval is the decision, recorded once in the ledger and
//! archived in `Done/` with `result: approved`; the task loop starts the agent when it
//! sees the file there.

use super::Outcome;
use super::{Action, Context, Found, Plan, Refused};
use crate::outcome::results;
use crate::request;

pub const NAME: &str = "run_task";

/// `run_task`: the approval to run the agent on one task.
pub struct RunTask {
    run: request::RunTask,
    /// `prepare` was called (the handler never performs without it).
    prepared: bool,
}

impl RunTask {
    pub fn new(run: request::RunTask) -> RunTask {
        RunTask {
            run,
            prepared: false,
        }
    }
}

impl Action for RunTask {
    /// Nothing to check: `task` was checked with the request (required here, a task id).
    /// The "mark" is the approval itself: nothing outside the handler's own records
    /// happens, so after a crash the attempt counts as complete ([`found`]) instead of
    /// "outcome unknown".
    fn prepare(&mut self, _cx: &Context<'_>) -> Result<Plan, Refused> {
        self.prepared = true;
        Ok(Plan {
            effect: Some(run_task_effect(&self.run.task)),
            ..Plan::default()
        })
    }

    fn perform(self: Box<Self>) -> Outcome {
        if !self.prepared {
            return super::unprepared();
        }
        Outcome::Success {
            detail: format!("approved running task {}", self.run.task),
            fields: vec![],
        }
    }

    fn result(&self) -> &'static str {
        results::APPROVED
    }
}

/// What the ledger's intent names as the effect: the task whose run is approved.
pub fn run_task_effect(task: &str) -> String {
    format!("approval to run task {task}")
}

/// After a restart with an intent and no outcome: the approval stands (there is no
/// effect that could be missing or could have happened twice).
pub fn found() -> Found {
    Found {
        result: results::APPROVED,
        fields: vec![],
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use chrono::Utc;

    use super::*;

    fn run() -> RunTask {
        RunTask::new(request::RunTask {
            task: "EMAIL_20261206T050000_deploy-the-site".into(),
            title: None,
            created: None,
        })
    }

    #[test]
    fn it_is_approved_with_no_effect_once_prepared() {
        let cx = Context {
            vault: Path::new("/nonexistent/vault"),
            file: "RUN_x.md",
            sha: "00",
            tag: "t",
            approved_by: "human",
            now: Utc::now(),
            dry_run: false,
        };
        let mut a = run();
        let plan = a.prepare(&cx).expect("prepared");
        // A local action (found after a restart), never an "outcome unknown".
        assert_eq!(
            plan.effect.as_deref(),
            Some("approval to run task EMAIL_20261206T050000_deploy-the-site")
        );
        assert_eq!(a.result(), results::APPROVED);
        assert_eq!(
            Box::new(a).perform(),
            Outcome::Success {
                detail: "approved running task EMAIL_20261206T050000_deploy-the-site".into(),
                fields: vec![],
            }
        );
        assert!(matches!(Box::new(run()).perform(), Outcome::Permanent(_)));
    }
}
