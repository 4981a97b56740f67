//! One module per subcommand: an `Args` struct (clap) and an `exec` function, plus the output
//! helpers they share.

pub mod catalog;
pub mod inspect;
pub mod serve;

use std::io::Write as _;

/// A runtime for one command. Commands are short-lived: a current-thread runtime is enough and
/// starts fastest.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// Writes text to stdout. A closed pipe (`berth ... | head`) is not an error.
pub fn print_text(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush());
}

/// Writes a value as pretty JSON with a trailing newline.
pub fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    print_text(&text);
    Ok(())
}
