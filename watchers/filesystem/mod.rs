//! `ai-employee watch filesystem`: files dropped into `Inbox/` become tasks in
//! `Needs_Action/`.

use clap::Args as ClapArgs;

use crate::cli::VaultArg;

#[derive(Debug, ClapArgs, Clone)]
pub struct Args {
    #[command(flatten)]
    pub vault: VaultArg,
}

pub fn run(_args: Args) -> i32 {
    super::common::needs_setup("filesystem", "not available in this build")
}
