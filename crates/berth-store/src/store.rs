//! Opening the store: a URL picks the backend, connection settings make SQLite safe to share
//! and to crash, and migrations run before anything else touches the database.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Connection};

use crate::StoreError;
use crate::error::db;
use crate::migrate;
use crate::url::StoreUrl;

/// How long a SQLite writer waits for another writer before failing.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);
const SQLITE_MAX_CONNECTIONS: u32 = 4;
const POSTGRES_MAX_CONNECTIONS: u32 = 5;
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);

/// The store. Cheap to clone (the pools are shared); open once per process.
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) backend: Backend,
    /// The lease every write of a singleton task must still hold (see [`Store::fenced`]);
    /// `None` for ordinary use.
    pub(crate) fence: Option<crate::leases::Fence>,
}

#[derive(Debug, Clone)]
pub(crate) enum Backend {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Which database a store is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    Sqlite,
    Postgres,
}

/// The few SQL texts that differ between the backends; everything else is shared.
pub(crate) trait Dialect {
    /// Opens a write transaction. SQLite takes the write lock at once, so a transaction that
    /// reads before it writes cannot fail halfway with SQLITE_BUSY when another writer won.
    const BEGIN_WRITE: &'static str;
    /// Serializes syncs of one repository (`$1`: a 64-bit key) across replicas, released at
    /// commit. SQLite needs none: `BEGIN IMMEDIATE` already admits one writer.
    const LOCK_REPOSITORY: Option<&'static str>;
    /// A subquery yielding the strings of the JSON array bound as `$1`.
    const JSON_STRINGS: &'static str;
    /// The database's clock, in milliseconds since the epoch (leases never trust a replica's).
    const NOW_MS: &'static str;
    /// Appended to the fence check: PostgreSQL keeps the lease row from changing hands until
    /// the write commits; SQLite's `BEGIN IMMEDIATE` already admits one writer.
    const LOCK_ROW: &'static str;
}

impl Dialect for sqlx::Sqlite {
    const BEGIN_WRITE: &'static str = "BEGIN IMMEDIATE";
    const LOCK_REPOSITORY: Option<&'static str> = None;
    const JSON_STRINGS: &'static str = "SELECT value FROM json_each($1)";
    const NOW_MS: &'static str = "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)";
    const LOCK_ROW: &'static str = "";
}

impl Dialect for sqlx::Postgres {
    const BEGIN_WRITE: &'static str = "BEGIN";
    const LOCK_REPOSITORY: Option<&'static str> = Some("SELECT pg_advisory_xact_lock($1)");
    const JSON_STRINGS: &'static str = "SELECT jsonb_array_elements_text($1)";
    const NOW_MS: &'static str = "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)";
    const LOCK_ROW: &'static str = " FOR SHARE";
}

/// Whether the store may be written: read-only commands neither create nor migrate it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    ReadWrite,
    ReadOnly,
}

impl Store {
    /// Opens (creating if needed) and migrates the store at `url`:
    /// - `sqlite:///var/lib/berth/berth.db` — a file, created with its directory if missing;
    ///   WAL journal, foreign keys on, a busy timeout for concurrent writers. A database path
    ///   that is a symbolic link is refused ([`StoreError::Symlink`]): berth writes only to the
    ///   file it was named;
    /// - `sqlite::memory:` — a private in-memory database (tests, one-shot commands);
    /// - `postgres://user@host:port/db` — PostgreSQL; several replicas may open at once.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        Store::open_with(StoreUrl::new(url), Access::ReadWrite).await
    }

    /// Opens the store at `url` for reading only: a SQLite file that does not exist is
    /// [`StoreError::Missing`] (nothing is created), nothing is migrated (a schema older than
    /// this build is [`StoreError::SchemaTooOld`]), and PostgreSQL sessions are read-only.
    pub async fn open_read_only(url: &str) -> Result<Store, StoreError> {
        Store::open_with(StoreUrl::new(url), Access::ReadOnly).await
    }

    async fn open_with(url: StoreUrl, access: Access) -> Result<Store, StoreError> {
        let open_error = |source| StoreError::Open {
            url: url.clone(),
            source,
        };
        let raw = url.expose();
        let store = if raw.starts_with("sqlite:") {
            let is_memory = matches!(raw, "sqlite::memory:" | "sqlite://:memory:");
            let options = SqliteConnectOptions::from_str(raw)
                .map_err(open_error)?
                .foreign_keys(true)
                .busy_timeout(SQLITE_BUSY_TIMEOUT);
            let pool = if is_memory {
                // An in-memory database lives as long as one connection to it: keep exactly one.
                // It is private to this process, so even a reader migrates it.
                SqlitePoolOptions::new()
                    .max_connections(1)
                    .min_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .connect_with(options)
                    .await
            } else if access == Access::ReadOnly {
                if !options.get_filename().exists() {
                    return Err(StoreError::Missing { url });
                }
                SqlitePoolOptions::new()
                    .max_connections(SQLITE_MAX_CONNECTIONS)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .connect_with(options.read_only(true))
                    .await
            } else {
                refuse_symlinks(&url, options.get_filename())?;
                if let Some(parent) = options.get_filename().parent()
                    && !parent.as_os_str().is_empty()
                {
                    std::fs::create_dir_all(parent)
                        .map_err(|error| open_error(sqlx::Error::Io(error)))?;
                }
                // WAL: readers never block the writer. synchronous=NORMAL keeps every commit
                // across a process crash (kill -9); a power loss may drop the last commits but
                // never corrupts.
                let options = options
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal);
                SqlitePoolOptions::new()
                    .max_connections(SQLITE_MAX_CONNECTIONS)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .connect_with(options)
                    .await
            }
            .map_err(open_error)?;
            let mut connection = pool.acquire().await.map_err(open_error)?;
            if access == Access::ReadOnly && !is_memory {
                migrate::verify_sqlite(&mut connection).await?;
            } else {
                migrate::run_sqlite(&mut connection).await?;
            }
            drop(connection);
            Store {
                backend: Backend::Sqlite(pool),
                fence: None,
            }
        } else if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            let mut options = PgConnectOptions::from_str(raw).map_err(open_error)?;
            if access == Access::ReadOnly {
                options = options.options([("default_transaction_read_only", "on")]);
                let mut connection = options.connect().await.map_err(open_error)?;
                let verified = migrate::verify_postgres(&mut connection).await;
                let _ = connection.close().await;
                verified?;
            } else {
                // Migrations on a connection of their own: it holds the advisory lock, and
                // closing it releases the lock whatever happened.
                let mut connection = options.connect().await.map_err(open_error)?;
                let migrated = migrate::run_postgres(&mut connection).await;
                let _ = connection.close().await;
                migrated?;
            }
            let pool = PgPoolOptions::new()
                .max_connections(POSTGRES_MAX_CONNECTIONS)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .connect_with(options)
                .await
                .map_err(open_error)?;
            Store {
                backend: Backend::Postgres(pool),
                fence: None,
            }
        } else {
            return Err(StoreError::UnsupportedUrl { url });
        };
        tracing::debug!(%url, backend = ?store.backend_kind(), ?access, "store opened");
        Ok(store)
    }

    pub fn backend_kind(&self) -> BackendKind {
        match self.backend {
            Backend::Sqlite(_) => BackendKind::Sqlite,
            Backend::Postgres(_) => BackendKind::Postgres,
        }
    }

    /// The schema version the database is at (this build's [`crate::SCHEMA_VERSION`] once open).
    pub async fn schema_version(&self) -> Result<i64, StoreError> {
        on_pool!(self, |pool, Db| {
            let (version,): (Option<i64>,) =
                sqlx::query_as("SELECT MAX(version) FROM schema_version")
                    .fetch_one(pool)
                    .await
                    .map_err(db("read the schema version"))?;
            Ok(version.unwrap_or(0))
        })
    }

    /// Waits for queries in flight and closes every connection.
    pub async fn close(&self) {
        on_pool!(self, |pool, Db| { pool.close().await })
    }
}

/// Timestamps are kept to the microsecond, PostgreSQL's precision, so both backends return
/// what they were given.
pub(crate) fn stored_time(time: DateTime<Utc>) -> DateTime<Utc> {
    time.trunc_subsecs(6)
}

/// Refuses a SQLite database (or its WAL and shared-memory files) that is a symbolic link:
/// whoever can place the link would choose which file berth writes.
fn refuse_symlinks(url: &StoreUrl, database: &std::path::Path) -> Result<(), StoreError> {
    let mut paths = vec![database.to_path_buf()];
    for suffix in ["-wal", "-shm"] {
        let mut name = database.as_os_str().to_owned();
        name.push(suffix);
        paths.push(name.into());
    }
    for path in paths {
        let is_link = std::fs::symlink_metadata(&path)
            .map(|metadata| metadata.file_type().is_symlink())
            .unwrap_or(false);
        if is_link {
            return Err(StoreError::Symlink {
                url: url.clone(),
                path,
            });
        }
    }
    Ok(())
}
