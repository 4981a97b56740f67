//! Carries out berth's channel decisions (`berth_core::channels`) against a registry and the
//! store: a promotion or rollback puts the exact manifest bytes of a digest under the channel's
//! tag, confirms with a HEAD that the tag resolves to that digest, then records the move in the
//! channel history and the audit log.
//!
//! - [`subject`]: which image a command is about (catalog name, variant, repository).
//! - [`history`]: channel history and audit entries, to and from the store.
//! - [`tag`]: the registry half: moving a tag to a digest and confirming it.
//! - [`ops`]: [`promote`], [`rollback`], [`check`]: decision, registry, history, in that order;
//!   [`acknowledge`]: a person accepts a hand fix that holds a channel.
//! - [`scheduler`]: the scheduler, [`scheduler::tick`] (first publishes, due slots claimed once, catch-up once)
//!   and [`scheduler::run`], the loop around it with an injected clock.
//! - [`status`]: where an image's channels stand and what each rule would do now (`berth
//!   channels`, the dashboard).
//! - [`error`]: the one error type ([`ChannelError`]).
//!
//! Invariants:
//! - The registry is written before the history, so a crash leaves the tag ahead of the history,
//!   never behind: the next run finds the tag already at its target and records the missing
//!   entry ([`berth_core::channels::Observation::Unrecorded`]).
//! - A tag someone else moved is recorded as an outside change and reported; on a channel berth
//!   moved before, it holds the channel until a person acknowledges it or promotes with `force`.
//! - Nothing here reads the clock: `now` is an argument, as in the core.

pub mod error;
pub mod history;
pub mod ops;
pub mod scheduler;
pub mod status;
pub mod subject;
pub mod tag;

pub use error::ChannelError;
pub use ops::{
    Acknowledged, Action, Noticed, Outcome, PromoteRequest, RollbackRequest, acknowledge, check,
    promote, rollback,
};
pub use subject::Subject;
