//! The store tests' one shared helper: databases for both backends (in-memory or file SQLite,
//! and a schema of its own in the real PostgreSQL named by `BERTH_TEST_PG_URL`), a macro that
//! runs each test on both, and builders for realistic records.

#![allow(dead_code)] // each test binary uses a different part of this helper

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use berth_core::osrelease::{LibcFamily, OsIdentity};
use berth_core::{Digest, Tag};
use berth_store::{
    ImageRecord, IndexEntry, LayerRecord, ManifestKind, ManifestRecord, Platform, RepositoryName,
};
use chrono::{DateTime, TimeZone, Utc};
use sha2::{Digest as _, Sha256};
use sqlx::Connection;

/// Runs every listed `async fn name(url: String)` once per backend, as `sqlite::name` and
/// `postgres::name`. `memory` tests get an in-memory SQLite database, `file` tests (which
/// reopen it) a SQLite file; both get a fresh PostgreSQL schema.
#[allow(unused_macros)] // crash.rs runs on SQLite files only
macro_rules! on_both_backends {
    (memory: [$($memory:ident),* $(,)?], file: [$($file:ident),* $(,)?] $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $memory() {
                    super::$memory($crate::common::sqlite_memory()).await
                }
            )*
            $(
                #[tokio::test]
                async fn $file() {
                    super::$file($crate::common::sqlite_file()).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $memory() {
                    super::$memory($crate::common::postgres().await).await
                }
            )*
            $(
                #[tokio::test]
                async fn $file() {
                    super::$file($crate::common::postgres().await).await
                }
            )*
        }
    };
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn unique_name(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is after 1970")
        .subsec_nanos();
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}_{}_{nanos}_{count}", std::process::id())
}

pub fn sqlite_memory() -> String {
    "sqlite::memory:".to_string()
}

/// A new directory under the system's temporary directory (left for inspection on failure).
pub fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(unique_name("berth-store-test"));
    std::fs::create_dir_all(&dir).expect("create a temporary directory");
    dir
}

/// A SQLite file that does not exist yet, in a directory that does not exist yet either.
pub fn sqlite_file() -> String {
    format!("sqlite://{}/nested/berth.db", temp_dir().display())
}

/// The test PostgreSQL's URL. Panics with instructions when it is not set: the PostgreSQL
/// half of the suite must fail, not silently pass, without a database.
pub fn postgres_base_url() -> String {
    // The tests' one environment variable, read here as berth-testkit reads its own.
    #[allow(clippy::disallowed_methods)]
    let url = std::env::var("BERTH_TEST_PG_URL");
    url.unwrap_or_else(|_| {
        panic!(
            "BERTH_TEST_PG_URL is not set, so the PostgreSQL half of the store tests cannot run. \
             Start the throwaway PostgreSQL with `scripts/postgres start`, then \
             `. ${{BERTH_TESTBED_DIR:-/tmp/berth-testbed}}/pg.env` (or run `scripts/test`)"
        )
    })
}

/// A URL whose connections use a new, empty schema of the test database: every test gets a
/// database of its own without the cost of CREATE DATABASE.
pub async fn postgres() -> String {
    let base = postgres_base_url();
    let schema = unique_name("t");
    let mut admin = sqlx::PgConnection::connect(&base)
        .await
        .unwrap_or_else(|error| {
            panic!("cannot connect to {base} ({error}); is `scripts/postgres start` running?")
        });
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&mut admin)
        .await
        .expect("create a test schema");
    admin.close().await.expect("close the admin connection");
    let separator = if base.contains('?') { '&' } else { '?' };
    format!("{base}{separator}options=-c%20search_path%3D{schema}")
}

/// Runs SQL on the database behind `url` outside the store (to tamper with it in tests).
pub async fn execute(url: &str, sql: &str) {
    let sql = sqlx::AssertSqlSafe(sql.to_string());
    if url.starts_with("sqlite:") {
        let mut connection = sqlx::SqliteConnection::connect(url)
            .await
            .expect("open sqlite");
        sqlx::raw_sql(sql)
            .execute(&mut connection)
            .await
            .expect("run SQL");
    } else {
        let mut connection = sqlx::PgConnection::connect(url)
            .await
            .expect("open postgres");
        sqlx::raw_sql(sql)
            .execute(&mut connection)
            .await
            .expect("run SQL");
    }
}

/// A fixed instant: `at(0)` is 2023-11-14T22:13:20Z, `at(60)` a minute later.
pub fn at(seconds: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000 + seconds, 0).unwrap()
}

pub fn sha256(bytes: &[u8]) -> Digest {
    let hex: String = Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    Digest::parse(&format!("sha256:{hex}")).unwrap()
}

/// A digest standing for some content named `seed`.
pub fn digest(seed: &str) -> Digest {
    sha256(seed.as_bytes())
}

pub fn tag(text: &str) -> Tag {
    Tag::parse(text).unwrap()
}

pub fn repo(text: &str) -> RepositoryName {
    RepositoryName::parse(text).unwrap()
}

pub fn amd64() -> Platform {
    Platform {
        os: "linux".into(),
        architecture: "amd64".into(),
        variant: None,
    }
}

pub fn arm64() -> Platform {
    Platform {
        os: "linux".into(),
        architecture: "arm64".into(),
        variant: Some("v8".into()),
    }
}

/// An image manifest and its facts. `layers` name the layers, base first: images built on
/// one another share a prefix of names (and so of diff_ids).
pub fn image(
    seed: &str,
    platform: Platform,
    layers: &[&str],
    os_id: Option<&str>,
) -> (ManifestRecord, ImageRecord) {
    let layer_records: Vec<LayerRecord> = layers
        .iter()
        .map(|name| LayerRecord {
            digest: digest(&format!("layer-gz-{name}")),
            diff_id: digest(&format!("layer-tar-{name}")),
            size: 1000 + name.len() as u64,
            media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
        })
        .collect();
    let config_digest = digest(&format!("config-{seed}"));
    let raw = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"digest": config_digest.as_str(), "size": 100,
                   "mediaType": "application/vnd.oci.image.config.v1+json"},
        "layers": layer_records.iter().map(|layer| serde_json::json!({
            "digest": layer.digest.as_str(), "size": layer.size, "mediaType": layer.media_type,
        })).collect::<Vec<_>>(),
        "annotations": {"org.opencontainers.image.title": seed},
    }))
    .unwrap();
    let manifest = ManifestRecord {
        digest: sha256(&raw),
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        raw,
        kind: ManifestKind::Image,
    };
    let total_size = 100 + layer_records.iter().map(|layer| layer.size).sum::<u64>();
    let record = ImageRecord {
        digest: manifest.digest.clone(),
        config_digest,
        created: Some(at(layers.len() as i64 * 3600)),
        platform,
        labels: BTreeMap::from([("maintainer".to_string(), "platform team".to_string())]),
        annotations: BTreeMap::from([(
            "org.opencontainers.image.title".to_string(),
            seed.to_string(),
        )]),
        total_size,
        os_id: os_id.map(|id| OsIdentity { id: id.to_string() }),
        os_pretty: os_id.map(|id| format!("pretty {id}")),
        libc: os_id.map(|_| LibcFamily::Glibc),
        layers: layer_records,
    };
    (manifest, record)
}

/// An index over `children`, plus an attestation entry that is not an image.
pub fn index(children: &[&ManifestRecord], platforms: &[Platform]) -> ManifestRecord {
    let mut entries: Vec<IndexEntry> = children
        .iter()
        .zip(platforms)
        .map(|(child, platform)| IndexEntry {
            child: child.digest.clone(),
            media_type: child.media_type.clone(),
            platform: Some(platform.clone()),
            is_attestation: false,
        })
        .collect();
    entries.push(IndexEntry {
        child: digest("attestation"),
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        platform: None,
        is_attestation: true,
    });
    let raw = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": entries.iter().map(|entry| serde_json::json!({
            "digest": entry.child.as_str(), "mediaType": entry.media_type,
        })).collect::<Vec<_>>(),
    }))
    .unwrap();
    ManifestRecord {
        digest: sha256(&raw),
        media_type: "application/vnd.oci.image.index.v1+json".into(),
        raw,
        kind: ManifestKind::Index(entries),
    }
}
