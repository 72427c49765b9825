//! `ai-employee watch whatsapp` (being built).

use clap::Args as ClapArgs;

use crate::cli::VaultArg;
use crate::watchers::common::needs_setup;

pub const NAME: &str = "whatsapp";

#[derive(Debug, ClapArgs)]
pub struct Args {
    #[command(flatten)]
    pub vault: VaultArg,
}

pub fn run(_args: Args) -> i32 {
    needs_setup(NAME, "not available in this build")
}
