//! `ai-employee watch approvals`: executes what a human moved into `Approved/`.

use clap::Args as ClapArgs;

use crate::cli::VaultArg;

#[derive(Debug, ClapArgs, Clone)]
pub struct Args {
    #[command(flatten)]
    pub vault: VaultArg,
}

pub fn run(_args: Args) -> i32 {
    super::common::needs_setup("approvals", "not available in this build")
}
