//! Migrations: SQL files per backend embedded in the binary, applied in order on open, each in
//! its own transaction and recorded in `schema_version` with a checksum of its text.
//!
//! Not sqlx's `migrate!`: that macro needs sqlx's `macros` feature (a second build of sqlx and
//! SQLite); this runner is the few lines berth needs, with berth's own refusal message.
//! PostgreSQL replicas starting together take an advisory lock; SQLite processes serialize on
//! `BEGIN IMMEDIATE` and re-check inside the transaction.

use sha2::{Digest as _, Sha256};
use sqlx::{Connection, PgConnection, SqliteConnection};

use crate::StoreError;
use crate::error::db;

/// One migration: the same `version` and `name` exist for every backend.
#[derive(Debug)]
pub(crate) struct Migration {
    pub(crate) version: i64,
    pub(crate) name: &'static str,
    pub(crate) sql: &'static str,
}

const SQLITE: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial",
        sql: include_str!("../migrations/sqlite/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "promotion_runs",
        sql: include_str!("../migrations/sqlite/0002_promotion_runs.sql"),
    },
    Migration {
        version: 3,
        name: "image_chain_key",
        sql: include_str!("../migrations/sqlite/0003_image_chain_key.sql"),
    },
    Migration {
        version: 4,
        name: "knowledge_at_scale",
        sql: include_str!("../migrations/sqlite/0004_knowledge_at_scale.sql"),
    },
    Migration {
        version: 5,
        name: "leases",
        sql: include_str!("../migrations/sqlite/0005_leases.sql"),
    },
    Migration {
        version: 6,
        name: "tag_moves",
        sql: include_str!("../migrations/sqlite/0006_tag_moves.sql"),
    },
    Migration {
        version: 7,
        name: "rebuilds",
        sql: include_str!("../migrations/sqlite/0007_rebuilds.sql"),
    },
    Migration {
        version: 8,
        name: "usage_inventory",
        sql: include_str!("../migrations/sqlite/0008_usage_inventory.sql"),
    },
    Migration {
        version: 9,
        name: "retention",
        sql: include_str!("../migrations/sqlite/0009_retention.sql"),
    },
    Migration {
        version: 10,
        name: "images_newest",
        sql: include_str!("../migrations/sqlite/0010_images_newest.sql"),
    },
    Migration {
        version: 11,
        name: "notifications",
        sql: include_str!("../migrations/sqlite/0011_notifications.sql"),
    },
    Migration {
        version: 12,
        name: "provenance_records",
        sql: include_str!("../migrations/sqlite/0012_provenance_records.sql"),
    },
    Migration {
        version: 13,
        name: "signatures",
        sql: include_str!("../migrations/sqlite/0013_signatures.sql"),
    },
    Migration {
        version: 14,
        name: "ui_sessions",
        sql: include_str!("../migrations/sqlite/0014_ui_sessions.sql"),
    },
];

const POSTGRES: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial",
        sql: include_str!("../migrations/postgres/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "promotion_runs",
        sql: include_str!("../migrations/postgres/0002_promotion_runs.sql"),
    },
    Migration {
        version: 3,
        name: "image_chain_key",
        sql: include_str!("../migrations/postgres/0003_image_chain_key.sql"),
    },
    Migration {
        version: 4,
        name: "knowledge_at_scale",
        sql: include_str!("../migrations/postgres/0004_knowledge_at_scale.sql"),
    },
    Migration {
        version: 5,
        name: "leases",
        sql: include_str!("../migrations/postgres/0005_leases.sql"),
    },
    Migration {
        version: 6,
        name: "tag_moves",
        sql: include_str!("../migrations/postgres/0006_tag_moves.sql"),
    },
    Migration {
        version: 7,
        name: "rebuilds",
        sql: include_str!("../migrations/postgres/0007_rebuilds.sql"),
    },
    Migration {
        version: 8,
        name: "usage_inventory",
        sql: include_str!("../migrations/postgres/0008_usage_inventory.sql"),
    },
    Migration {
        version: 9,
        name: "retention",
        sql: include_str!("../migrations/postgres/0009_retention.sql"),
    },
    Migration {
        version: 10,
        name: "images_newest",
        sql: include_str!("../migrations/postgres/0010_images_newest.sql"),
    },
    Migration {
        version: 11,
        name: "notifications",
        sql: include_str!("../migrations/postgres/0011_notifications.sql"),
    },
    Migration {
        version: 12,
        name: "provenance_records",
        sql: include_str!("../migrations/postgres/0012_provenance_records.sql"),
    },
    Migration {
        version: 13,
        name: "signatures",
        sql: include_str!("../migrations/postgres/0013_signatures.sql"),
    },
    Migration {
        version: 14,
        name: "ui_sessions",
        sql: include_str!("../migrations/postgres/0014_ui_sessions.sql"),
    },
];

/// The schema version this build of berth knows and migrates to.
pub const SCHEMA_VERSION: i64 = 14;

/// Key of the PostgreSQL advisory lock held while migrating (`berth` in ASCII).
const MIGRATION_LOCK_KEY: i64 = 0x0062_6572_7468;

/// A migration recorded in the database: version, name, checksum.
type Applied = (i64, String, String);

/// Applies what is missing, or refuses a database newer than this build. `applied_at` is the
/// database's clock: it is bookkeeping, not a fact berth reasons about.
macro_rules! run_migrations {
    ($connection:expr, $migrations:expr, $create_table:expr, $begin:expr) => {{
        let connection = $connection;
        sqlx::raw_sql($create_table)
            .execute(&mut *connection)
            .await
            .map_err(db("create the schema_version table"))?;
        let read_applied = READ_APPLIED;
        let applied: Vec<Applied> = sqlx::query_as(read_applied)
            .fetch_all(&mut *connection)
            .await
            .map_err(db("read the schema version"))?;
        check_applied(&applied, $migrations)?;
        for migration in $migrations {
            if applied
                .iter()
                .any(|(version, _, _)| *version == migration.version)
            {
                continue;
            }
            let mut transaction = connection
                .begin_with($begin)
                .await
                .map_err(db("begin a migration"))?;
            // Another process may have applied it while this one waited for the lock.
            let done: Option<(i64,)> =
                sqlx::query_as("SELECT version FROM schema_version WHERE version = $1")
                    .bind(migration.version)
                    .fetch_optional(&mut *transaction)
                    .await
                    .map_err(db("read the schema version"))?;
            if done.is_none() {
                let failed = |source| StoreError::Migration {
                    version: migration.version,
                    name: migration.name.to_string(),
                    source,
                };
                sqlx::raw_sql(migration.sql)
                    .execute(&mut *transaction)
                    .await
                    .map_err(failed)?;
                sqlx::query(
                    "INSERT INTO schema_version (version, name, checksum, applied_at) \
                     VALUES ($1, $2, $3, CURRENT_TIMESTAMP)",
                )
                .bind(migration.version)
                .bind(migration.name)
                .bind(checksum(migration.sql))
                .execute(&mut *transaction)
                .await
                .map_err(failed)?;
                tracing::info!(
                    version = migration.version,
                    name = migration.name,
                    "store migrated"
                );
            }
            transaction
                .commit()
                .await
                .map_err(db("commit a migration"))?;
        }
        // A newer berth may have migrated while this one was reading.
        let applied: Vec<Applied> = sqlx::query_as(read_applied)
            .fetch_all(&mut *connection)
            .await
            .map_err(db("read the schema version"))?;
        check_applied(&applied, $migrations)
    }};
}

pub(crate) async fn run_sqlite(connection: &mut SqliteConnection) -> Result<(), StoreError> {
    run_migrations!(
        connection,
        SQLITE,
        "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY NOT NULL, \
         name TEXT NOT NULL, checksum TEXT NOT NULL, applied_at TEXT NOT NULL) STRICT",
        "BEGIN IMMEDIATE"
    )
}

/// Run on a connection of its own: the session-level advisory lock is released when the
/// caller closes it, even if a migration failed halfway.
pub(crate) async fn run_postgres(connection: &mut PgConnection) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(MIGRATION_LOCK_KEY)
        .execute(&mut *connection)
        .await
        .map_err(db("take the migration lock"))?;
    run_migrations!(
        connection,
        POSTGRES,
        "CREATE TABLE IF NOT EXISTS schema_version (version BIGINT PRIMARY KEY, \
         name TEXT NOT NULL, checksum TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL)",
        "BEGIN"
    )
}

/// Checks, without writing, that a database opened read-only is at this build's schema.
pub(crate) async fn verify_sqlite(connection: &mut SqliteConnection) -> Result<(), StoreError> {
    let (has_table,): (bool,) = sqlx::query_as(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version')",
    )
    .fetch_one(&mut *connection)
    .await
    .map_err(db("read the schema version"))?;
    let applied: Vec<Applied> = if has_table {
        sqlx::query_as(READ_APPLIED)
            .fetch_all(&mut *connection)
            .await
            .map_err(db("read the schema version"))?
    } else {
        Vec::new()
    };
    check_current(&applied, SQLITE)
}

/// [`verify_sqlite`] for PostgreSQL (the schema is the connection's `search_path`).
pub(crate) async fn verify_postgres(connection: &mut PgConnection) -> Result<(), StoreError> {
    let (has_table,): (bool,) = sqlx::query_as("SELECT to_regclass('schema_version') IS NOT NULL")
        .fetch_one(&mut *connection)
        .await
        .map_err(db("read the schema version"))?;
    let applied: Vec<Applied> = if has_table {
        sqlx::query_as(READ_APPLIED)
            .fetch_all(&mut *connection)
            .await
            .map_err(db("read the schema version"))?
    } else {
        Vec::new()
    };
    check_current(&applied, POSTGRES)
}

const READ_APPLIED: &str = "SELECT version, name, checksum FROM schema_version ORDER BY version";

/// [`check_applied`], and every known migration applied.
fn check_current(applied: &[Applied], known: &[Migration]) -> Result<(), StoreError> {
    check_applied(applied, known)?;
    let newest_known = known.iter().map(|m| m.version).max().unwrap_or(0);
    let newest = applied
        .iter()
        .map(|(version, _, _)| *version)
        .max()
        .unwrap_or(0);
    if newest < newest_known {
        return Err(StoreError::SchemaTooOld {
            found: newest,
            known: newest_known,
        });
    }
    Ok(())
}

/// Refuses a database migrated past what this build knows, or from different SQL.
fn check_applied(applied: &[Applied], known: &[Migration]) -> Result<(), StoreError> {
    let newest_known = known.iter().map(|m| m.version).max().unwrap_or(0);
    if let Some(newest) = applied.iter().map(|(version, _, _)| *version).max()
        && newest > newest_known
    {
        return Err(StoreError::SchemaTooNew {
            found: newest,
            known: newest_known,
        });
    }
    for (version, name, recorded) in applied {
        if let Some(migration) = known.iter().find(|m| m.version == *version)
            && *recorded != checksum(migration.sql)
        {
            return Err(StoreError::MigrationChanged {
                version: *version,
                name: name.clone(),
            });
        }
    }
    Ok(())
}

fn checksum(sql: &str) -> String {
    Sha256::digest(sql.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backends_have_the_same_migrations() {
        let versions = |list: &[Migration]| -> Vec<(i64, &str)> {
            list.iter().map(|m| (m.version, m.name)).collect()
        };
        assert_eq!(versions(SQLITE), versions(POSTGRES));
        let expected: Vec<i64> = (1..=SCHEMA_VERSION).collect();
        assert_eq!(
            SQLITE.iter().map(|m| m.version).collect::<Vec<_>>(),
            expected
        );
        for migration in SQLITE.iter().chain(POSTGRES) {
            assert!(
                migration.sql.starts_with("-- "),
                "migration {} opens with a comment saying what it holds",
                migration.name
            );
        }
    }

    /// Tables, columns and indexes, by name: the two schemas must mean the same.
    fn shape(sql: &str) -> Vec<String> {
        let mut table = "";
        let mut shape = Vec::new();
        for line in sql.lines() {
            if let Some(rest) = line.strip_prefix("CREATE TABLE ") {
                table = rest.split_whitespace().next().unwrap_or_default();
                shape.push(format!("table {table}"));
            } else if line.starts_with("CREATE INDEX ") {
                shape.push(line.to_string());
            } else if let Some(rest) = line.strip_prefix("ALTER TABLE ") {
                let words: Vec<&str> = rest.split_whitespace().collect();
                if let [table, "ADD", "COLUMN", column, ..] = words.as_slice() {
                    shape.push(format!("{table}.{column}"));
                }
            } else if let Some(column) = line.strip_prefix("    ").and_then(|rest| {
                let word = rest.split_whitespace().next()?;
                word.starts_with(|c: char| c.is_ascii_lowercase())
                    .then_some(word)
            }) {
                shape.push(format!("{table}.{column}"));
            }
        }
        shape
    }

    #[test]
    fn backends_have_the_same_tables_columns_and_indexes() {
        for (sqlite, postgres) in SQLITE.iter().zip(POSTGRES) {
            let shape_sqlite = shape(sqlite.sql);
            let least = if sqlite.version == 1 { 50 } else { 1 };
            assert!(shape_sqlite.len() > least, "the parser sees the columns");
            assert_eq!(shape_sqlite, shape(postgres.sql), "{}", sqlite.name);
        }
    }

    #[test]
    fn newer_or_edited_schemas_are_refused() {
        let current: Vec<Applied> = SQLITE
            .iter()
            .map(|m| (m.version, m.name.to_string(), checksum(m.sql)))
            .collect();
        assert!(check_applied(&[], SQLITE).is_ok());
        assert!(check_applied(&current[..1], SQLITE).is_ok());
        assert!(check_applied(&current, SQLITE).is_ok());

        let newer = (SCHEMA_VERSION + 1, "future".to_string(), "x".to_string());
        let error = check_applied(&[current, vec![newer]].concat(), SQLITE).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "store schema version {} is newer than this berth (knows {SCHEMA_VERSION}); upgrade berth",
                SCHEMA_VERSION + 1
            )
        );

        let edited = (1, "initial".to_string(), checksum("something else"));
        assert!(matches!(
            check_applied(&[edited], SQLITE),
            Err(StoreError::MigrationChanged { version: 1, .. })
        ));
    }
}
