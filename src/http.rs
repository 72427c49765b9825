//! The one HTTP client set-up (ureq) for everything that calls out: `[[notify]]`
//! webhooks, the OAuth token endpoint, the WhatsApp Cloud API.

use std::time::Duration;

use ureq::config::ConfigBuilder;
use ureq::typestate::AgentScope;

/// Statuses come back as values (callers judge them), redirects are not followed (they
/// could carry a token to another host), `timeout` bounds the whole call, and the user
/// agent names the product. Finish with `.build().into()`, after any further settings.
pub fn client(timeout: Duration) -> ConfigBuilder<AgentScope> {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(timeout))
        .user_agent(concat!("ai-employee/", env!("CARGO_PKG_VERSION")))
}
