//! Exit codes and the one-line error report every command ends with.

use std::process::ExitCode;

/// The command ran and answered no (a check failed, an image was denied).
#[allow(dead_code, reason = "used by the check commands")]
pub const NEGATIVE: u8 = 1;
/// The user asked for something invalid: arguments, a file, a reference.
pub const USAGE: u8 = 2;
/// Something outside failed: a registry, the network, the disk.
pub const FAULT: u8 = 3;

/// An error caused by what the user gave berth, as opposed to a fault.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Builds an [`anyhow::Error`] that exits with [`USAGE`].
pub fn usage(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UsageError(message.into()))
}

/// Prints an error as one line (its context chain joined by ": ") and picks the exit code.
pub fn report(result: anyhow::Result<ExitCode>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(error) => {
            let usage = error.chain().any(|cause| cause.is::<UsageError>());
            eprintln!("berth: {error:#}");
            ExitCode::from(if usage { USAGE } else { FAULT })
        }
    }
}
