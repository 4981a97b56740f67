//! The store's one error type: the variants a caller acts on, with context in fields.

use crate::url::StoreUrl;

/// What went wrong in the store. Messages describe this layer only; the database driver's
/// error is the `source`.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL names no backend berth knows.
    #[error(
        "unsupported store URL \"{url}\": expected sqlite:///path/to/berth.db, sqlite::memory: or postgres://..."
    )]
    UnsupportedUrl { url: StoreUrl },
    /// The database could not be opened or reached (`url` prints with passwords masked).
    #[error("cannot open the store at {url}")]
    Open {
        url: StoreUrl,
        #[source]
        source: sqlx::Error,
    },
    /// A read-only open found no SQLite file: nothing was created.
    #[error(
        "there is no store at {url}: `berth sync` creates it; or name the existing one with --store or BERTH_STORE"
    )]
    Missing { url: StoreUrl },
    /// A writer was given a SQLite path (or its -wal/-shm file) that is a symbolic link.
    #[error(
        "the store file {} is a symbolic link; berth writes only to a real file: give the link's target (realpath) in --store or BERTH_STORE", path.display()
    )]
    Symlink {
        url: StoreUrl,
        path: std::path::PathBuf,
    },
    /// A read-only open found a schema older than this build; readers do not migrate.
    #[error(
        "the store has schema version {found}, this berth needs {known}; a command that writes (`berth sync`) migrates it"
    )]
    SchemaTooOld { found: i64, known: i64 },
    /// The database was migrated by a newer berth; this one would misread it.
    #[error("store schema version {found} is newer than this berth (knows {known}); upgrade berth")]
    SchemaTooNew { found: i64, known: i64 },
    /// A migration recorded as applied differs from the one this build carries.
    #[error(
        "store migration {version} ({name}) was applied from different SQL than this berth carries"
    )]
    MigrationChanged { version: i64, name: String },
    #[error("store migration {version} ({name}) failed")]
    Migration {
        version: i64,
        name: String,
        #[source]
        source: sqlx::Error,
    },
    /// The thing asked about is not in the store.
    #[error("{what} is not in the store")]
    NotFound { what: String },
    /// A number does not fit the store's signed 64-bit columns.
    #[error("{field} is out of range for the store")]
    OutOfRange { field: &'static str },
    /// A value read back does not parse as what its column means.
    #[error("the store holds an invalid {column}: {value:?}")]
    Corrupt { column: &'static str, value: String },
    /// A singleton task's write was refused: its holder no longer holds the lease (it expired
    /// and another replica took it, or it was released). Nothing of the write happened.
    #[error("lease {lease} (epoch {epoch}) is no longer held by {holder}; the write was refused")]
    Fenced {
        lease: String,
        holder: String,
        epoch: i64,
    },
    /// A query or transaction failed; `operation` says which.
    #[error("store operation failed: {operation}")]
    Database {
        operation: &'static str,
        #[source]
        source: sqlx::Error,
    },
}

/// Wraps a driver error with the operation that failed: `.map_err(db("list tags"))`.
pub(crate) fn db(operation: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError::Database { operation, source }
}
