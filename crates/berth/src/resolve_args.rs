//! `--resolve` and its settings, shared by `berth serve` (the webhook) and `berth check`, so
//! both doors resolve the tags berth's knowledge lacks in the same way (docs/policy.md).

use std::time::Duration;

use berth_sync::resolve::ResolveSettings;

use crate::exit::usage;

/// Resolving, at admission, tags the store does not know (for pins); shared with `berth check`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ResolveArgs {
    /// Resolve tags berth's knowledge lacks with one HEAD at their registry (only registries
    /// the policy allows, or, without a `registries` rule, those configured), so they can be
    /// pinned. See docs/policy.md.
    #[arg(long)]
    pub resolve: bool,
    /// The longest a decision waits for a registry (default: 2s); keep it below the webhook's
    /// timeoutSeconds (5 in deploy/base/webhooks.yaml). Past it, the rule's `unknown:` applies.
    #[arg(long, value_name = "DURATION", requires = "resolve")]
    pub resolve_deadline: Option<String>,
    /// How long a resolved tag is trusted (default: 30s).
    #[arg(long, value_name = "DURATION", requires = "resolve")]
    pub resolve_ttl: Option<String>,
    /// How long a failed resolution (registry error, deadline passed) is remembered, so a
    /// failing registry does not cost every admission the deadline (default: 5s; 0s: never).
    #[arg(long, value_name = "DURATION", requires = "resolve")]
    pub resolve_failure_ttl: Option<String>,
    /// The most resolved tags kept (default: 10000).
    #[arg(long, value_name = "N", requires = "resolve")]
    pub resolve_cache: Option<usize>,
}

/// A deadline this long could never be below a webhook's timeout (Kubernetes allows 30 s).
const RESOLVE_DEADLINE_MAX: Duration = Duration::from_secs(30);

impl ResolveArgs {
    /// The resolver's settings when `--resolve` is given, with the registry client `client`
    /// configures (called only then: without `--resolve` no auth file is read).
    pub fn settings(
        &self,
        client: impl FnOnce() -> anyhow::Result<berth_oci::ClientConfig>,
    ) -> anyhow::Result<Option<ResolveSettings>> {
        if !self.resolve {
            return Ok(None);
        }
        let duration = |flag: &str, text: &Option<String>, default: Duration| match text {
            Some(text) => {
                berth_core::duration::parse(text).map_err(|error| usage(format!("{flag}: {error}")))
            }
            None => Ok(default),
        };
        let deadline = duration(
            "--resolve-deadline",
            &self.resolve_deadline,
            ResolveSettings::DEFAULT_DEADLINE,
        )?;
        if deadline >= RESOLVE_DEADLINE_MAX {
            return Err(usage(
                "--resolve-deadline: must stay below the webhook's timeoutSeconds (under 30s)",
            ));
        }
        let client = client()?;
        Ok(Some(ResolveSettings {
            deadline,
            ttl: duration(
                "--resolve-ttl",
                &self.resolve_ttl,
                ResolveSettings::DEFAULT_TTL,
            )?,
            failure_ttl: match self.resolve_failure_ttl.as_deref() {
                Some("0" | "0s" | "0ms") => Duration::ZERO,
                _ => duration(
                    "--resolve-failure-ttl",
                    &self.resolve_failure_ttl,
                    ResolveSettings::DEFAULT_FAILURE_TTL,
                )?,
            },
            capacity: self
                .resolve_cache
                .unwrap_or(ResolveSettings::DEFAULT_CAPACITY),
            registries: client.registries.keys().cloned().collect(),
            client,
        }))
    }
}
