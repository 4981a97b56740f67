//! One module per subcommand: an `Args` struct (clap) and an `exec` function, plus the output
//! helpers they share.

pub mod catalog;
pub mod certs;
pub mod channels;
pub mod check;
pub mod config;
pub mod diff;
pub mod freshness;
pub mod images;
pub mod inspect;
pub mod notifications;
pub mod provenance;
pub mod retention;
pub mod serve;
pub mod sync;
pub mod usage;

use std::io::Write as _;

/// A runtime for one command. Commands are short-lived: a current-thread runtime is enough and
/// starts fastest.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// `--store`, else `BERTH_STORE`, else a SQLite file in the current directory.
pub fn store_url(flag: Option<String>, env: &crate::environment::Environment) -> String {
    flag.or_else(|| env.get("BERTH_STORE"))
        .unwrap_or_else(|| "sqlite://berth.db".to_string())
}

/// Opens (creating and migrating if needed) the store, for commands that write to it; its
/// errors name the URL without a password.
pub async fn open_store(url: &str) -> anyhow::Result<berth_store::Store> {
    Ok(berth_store::Store::open(url).await?)
}

/// Opens the store for commands that only read it: a store that does not exist is an error
/// with a hint (exit 3), never a new empty store.
pub async fn open_store_read_only(url: &str) -> anyhow::Result<berth_store::Store> {
    Ok(berth_store::Store::open_read_only(url).await?)
}

/// How long a CLI command's hold on a lease lasts unless renewed (it renews every third of
/// it): a killed command keeps `berth serve` from running that task for at most this long.
pub const CLI_LEASE_TTL: std::time::Duration = std::time::Duration::from_secs(10);

/// Runs `work` with a store fenced by the lease `name`, held by this process (`cli/ACTOR/PID`)
/// and renewed while it runs, then released. Refuses when a live holder (a `berth serve`
/// replica) has it. A lost lease needs no action here: the store refuses fenced writes.
pub async fn under_cli_lease<T, Fut>(
    store: &berth_store::Store,
    name: &str,
    actor: &str,
    work: impl FnOnce(berth_store::Store) -> Fut,
) -> anyhow::Result<T>
where
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let holder = format!("cli/{actor}/{}", std::process::id());
    let Some(fence) = store.claim_lease(name, &holder, CLI_LEASE_TTL).await? else {
        let holder = store
            .leases()
            .await?
            .into_iter()
            .find(|lease| lease.name == name && lease.live)
            .map(|lease| lease.holder)
            .unwrap_or_default();
        anyhow::bail!(
            "the {name} lease is held by {holder}: that replica runs it; try again later"
        );
    };
    let work = work(store.fenced(fence.clone()));
    tokio::pin!(work);
    let result = loop {
        tokio::select! {
            result = &mut work => break result,
            () = tokio::time::sleep(CLI_LEASE_TTL / 3) => {
                let _ = store.renew_lease(&fence, CLI_LEASE_TTL).await;
            }
        }
    };
    store.release_lease(&fence).await?;
    result
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
