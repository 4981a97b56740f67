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
            eprintln!("berth: {}", one_line(&error));
            ExitCode::from(if usage { USAGE } else { FAULT })
        }
    }
}

/// The error's context chain joined by ": ". A cause whose text the line already ends with is
/// left out: some libraries (sqlx) print their source inside their own message as well.
pub fn one_line(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if !line.is_empty() && line.ends_with(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::one_line;

    /// Issue 15, item 20: "cannot open the store: error returned from database: role "x" does
    /// not exist" once, not followed by the driver's source repeating its last part.
    #[test]
    fn a_cause_its_parent_already_prints_is_not_repeated() {
        #[derive(Debug, thiserror::Error)]
        #[error("error returned from database: {0}")]
        struct Driver(#[source] std::io::Error);
        let driver = Driver(std::io::Error::other("role \"x\" does not exist"));
        let error = anyhow::Error::new(driver).context("cannot open the store at postgres://db");
        assert_eq!(
            one_line(&error),
            "cannot open the store at postgres://db: error returned from database: role \"x\" does not exist"
        );
        let plain = anyhow::anyhow!("disk full").context("cannot write berth.db");
        assert_eq!(one_line(&plain), "cannot write berth.db: disk full");
    }
}
