//! The usage inventory on both backends: reports written in place, a changed image, full
//! reports marking what they no longer hold gone and bringing it back, lookups by digest,
//! reference and repository, each source's freshness, and the fold of schema 7's admission log.

#[macro_use]
mod common;

use berth_core::ImageRef;
use berth_store::{Recorded, Store, UsageQuery, UsageSource, Use};
use common::{at, digest};
use sqlx::Connection as _;

on_both_backends! {
    memory: [
        a_report_is_written_in_place,
        a_full_report_marks_what_it_lacks_gone,
        lookups_by_digest_reference_and_repository,
    ],
    file: [],
}

async fn open(url: &str) -> Store {
    Store::open(url)
        .await
        .unwrap_or_else(|error| panic!("open {url}: {error:?}"))
}

fn place(namespace: &str, kind: &str, name: &str, image: &str, seed: Option<&str>) -> Use {
    Use {
        namespace: namespace.into(),
        kind: kind.into(),
        name: name.into(),
        container: "main".into(),
        image: image.into(),
        reference: ImageRef::parse(image).ok(),
        digest: seed.map(digest),
    }
}

fn all() -> UsageQuery {
    UsageQuery {
        include_gone: true,
        ..UsageQuery::default()
    }
}

async fn a_report_is_written_in_place(url: String) {
    let store = open(&url).await;
    let web = place(
        "shop",
        "Deployment",
        "web",
        "registry.example/app:1",
        Some("v1"),
    );
    let recorded = store
        .record_usage(
            UsageSource::Admission,
            "",
            std::slice::from_ref(&web),
            false,
            at(0),
        )
        .await
        .unwrap();
    assert_eq!(
        recorded,
        Recorded {
            recorded: 1,
            gone: 0
        }
    );
    // Seen again, without a digest this time: the digest known for the same image is kept.
    let again = Use {
        digest: None,
        ..web.clone()
    };
    store
        .record_usage(UsageSource::Admission, "", &[again], false, at(60))
        .await
        .unwrap();
    let entries = store.usage(&all()).await.unwrap();
    assert_eq!(entries.len(), 1, "one place, one row: {entries:?}");
    assert_eq!(entries[0].usage, web);
    assert_eq!(
        (entries[0].first_seen, entries[0].last_seen),
        (at(0), at(60))
    );

    // A late report of an earlier time never moves last seen back.
    store
        .record_usage(
            UsageSource::Admission,
            "",
            std::slice::from_ref(&web),
            false,
            at(30),
        )
        .await
        .unwrap();
    assert_eq!(store.usage(&all()).await.unwrap()[0].last_seen, at(60));

    // The place now runs another image: first seen restarts, the old digest is not kept.
    let moved = place("shop", "Deployment", "web", "registry.example/app:2", None);
    store
        .record_usage(
            UsageSource::Admission,
            "",
            std::slice::from_ref(&moved),
            false,
            at(120),
        )
        .await
        .unwrap();
    let entries = store.usage(&all()).await.unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].usage, moved);
    assert_eq!(
        (entries[0].first_seen, entries[0].last_seen),
        (at(120), at(120))
    );

    // The same place under another source or scope is another row.
    store
        .record_usage(
            UsageSource::Cluster,
            "prod",
            std::slice::from_ref(&web),
            false,
            at(120),
        )
        .await
        .unwrap();
    let entries = store.usage(&all()).await.unwrap();
    let keys: Vec<_> = entries
        .iter()
        .map(|entry| (entry.source, entry.scope.as_str()))
        .collect();
    assert_eq!(
        keys,
        [(UsageSource::Admission, ""), (UsageSource::Cluster, "prod")]
    );
    let sources = store.usage_sources().await.unwrap();
    let freshness: Vec<_> = sources
        .iter()
        .map(|source| {
            (
                source.source,
                source.scope.as_str(),
                source.last_report_at,
                source.last_full_at,
                source.uses,
            )
        })
        .collect();
    assert_eq!(
        freshness,
        [
            (UsageSource::Admission, "", at(120), None, 1),
            (UsageSource::Cluster, "prod", at(120), None, 1),
        ]
    );
    store.close().await;
}

async fn a_full_report_marks_what_it_lacks_gone(url: String) {
    let store = open(&url).await;
    let web = place(
        "shop",
        "Deployment",
        "web",
        "registry.example/app:1",
        Some("v1"),
    );
    let cron = place("shop", "CronJob", "report", "registry.example/tool:3", None);
    let other = place("ops", "Deployment", "web", "registry.example/app:1", None);
    store
        .record_usage(
            UsageSource::Cluster,
            "prod",
            &[web.clone(), cron.clone()],
            true,
            at(0),
        )
        .await
        .unwrap();
    store
        .record_usage(
            UsageSource::Cluster,
            "staging",
            std::slice::from_ref(&other),
            true,
            at(0),
        )
        .await
        .unwrap();

    // The next full import of prod no longer holds the CronJob: it is gone, not deleted, and
    // the other cluster's uses are untouched.
    let recorded = store
        .record_usage(
            UsageSource::Cluster,
            "prod",
            std::slice::from_ref(&web),
            true,
            at(60),
        )
        .await
        .unwrap();
    assert_eq!(
        recorded,
        Recorded {
            recorded: 1,
            gone: 1
        }
    );
    let live = store.usage(&UsageQuery::default()).await.unwrap();
    let names: Vec<_> = live
        .iter()
        .map(|entry| (entry.scope.as_str(), entry.usage.kind.as_str()))
        .collect();
    assert_eq!(names, [("prod", "Deployment"), ("staging", "Deployment")]);
    let every = store.usage(&all()).await.unwrap();
    let report = every
        .iter()
        .find(|entry| entry.usage.kind == "CronJob")
        .unwrap_or_else(|| panic!("the gone use is kept: {every:?}"));
    assert_eq!(report.gone_at, Some(at(60)));
    assert_eq!(report.last_seen, at(0));

    // A partial report (not full) marks nothing gone, but does not refresh the full time.
    store
        .record_usage(UsageSource::Cluster, "prod", &[], false, at(90))
        .await
        .unwrap();
    let prod = store
        .usage_sources()
        .await
        .unwrap()
        .into_iter()
        .find(|source| source.scope == "prod")
        .unwrap();
    assert_eq!(
        (prod.last_report_at, prod.last_full_at, prod.uses),
        (at(90), Some(at(60)), 1)
    );

    // It comes back: no longer gone, first seen kept (same image), last seen now.
    store
        .record_usage(UsageSource::Cluster, "prod", &[web, cron], true, at(120))
        .await
        .unwrap();
    let back = store.usage(&UsageQuery::default()).await.unwrap();
    let report = back
        .iter()
        .find(|entry| entry.usage.kind == "CronJob")
        .unwrap_or_else(|| panic!("the use came back: {back:?}"));
    assert_eq!(
        (report.first_seen, report.last_seen, report.gone_at),
        (at(0), at(120), None)
    );
    store.close().await;
}

async fn lookups_by_digest_reference_and_repository(url: String) {
    let store = open(&url).await;
    let uses = [
        place(
            "a",
            "Deployment",
            "pinned",
            "registry.example/app@sha256:1111111111111111111111111111111111111111111111111111111111111111",
            None,
        ),
        place(
            "a",
            "Deployment",
            "tagged",
            "registry.example/app:1",
            Some("v1"),
        ),
        place(
            "b",
            "Deployment",
            "newer",
            "registry.example/app:2",
            Some("v2"),
        ),
        place(
            "b",
            "Deployment",
            "lookalike",
            "registry.example/app-tools:1",
            Some("v3"),
        ),
        place("c", "Job", "broken", "not a reference!", None),
    ];
    store
        .record_usage(UsageSource::Admission, "", &uses, false, at(0))
        .await
        .unwrap();
    let names = |entries: Vec<berth_store::UsageEntry>| -> Vec<String> {
        entries.into_iter().map(|entry| entry.usage.name).collect()
    };
    let by_digest = store
        .usage(&UsageQuery {
            digests: vec![digest("v1"), digest("v3")],
            ..UsageQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(names(by_digest), ["tagged", "lookalike"]);
    let by_reference = store
        .usage(&UsageQuery {
            references: vec![ImageRef::parse("registry.example/app:2").unwrap()],
            ..UsageQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(names(by_reference), ["newer"]);
    // A repository matches every tag and digest of it, and not a longer name that shares
    // its prefix.
    let by_repository = store
        .usage(&UsageQuery {
            repositories: vec!["registry.example/app".into()],
            ..UsageQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(names(by_repository), ["pinned", "tagged", "newer"]);
    // What does not parse is kept as written.
    let every = store.usage(&UsageQuery::default()).await.unwrap();
    let broken = every
        .iter()
        .find(|entry| entry.usage.name == "broken")
        .unwrap_or_else(|| panic!("{every:?}"));
    assert_eq!(
        (broken.usage.image.as_str(), broken.usage.reference.as_ref()),
        ("not a reference!", None)
    );
    let limited = store
        .usage(&UsageQuery {
            limit: Some(2),
            ..UsageQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(limited.len(), 2);
    store.close().await;
}

/// Schema 7's append-only admission log folds into the inventory: one row per place with the
/// image of its latest record, first seen at its earliest; the log table is dropped.
macro_rules! fold_test {
    ($name:ident, $dialect:literal, $connection:ty, $url:expr) => {
        #[tokio::test]
        async fn $name() {
            let url: String = $url;
            let mut connection = <$connection>::connect(&url).await.unwrap();
            let migrations = [
                include_str!(concat!("../migrations/", $dialect, "/0001_initial.sql")),
                include_str!(concat!(
                    "../migrations/",
                    $dialect,
                    "/0002_promotion_runs.sql"
                )),
                include_str!(concat!(
                    "../migrations/",
                    $dialect,
                    "/0003_image_chain_key.sql"
                )),
                include_str!(concat!(
                    "../migrations/",
                    $dialect,
                    "/0004_knowledge_at_scale.sql"
                )),
                include_str!(concat!("../migrations/", $dialect, "/0005_leases.sql")),
                include_str!(concat!("../migrations/", $dialect, "/0006_tag_moves.sql")),
                include_str!(concat!("../migrations/", $dialect, "/0007_rebuilds.sql")),
            ];
            for sql in migrations {
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                    .execute(&mut connection)
                    .await
                    .unwrap();
            }
            let logged = [
                (at(0), "web", "app:1", Some("sha256:aa")),
                (at(200), "web", "app:2", None),
                (at(100), "web", "app:1", Some("sha256:aa")),
                (at(500), "job", "tool:1", Some("sha256:bb")),
            ];
            for (when, name, image, digest) in logged {
                sqlx::query(
                    "INSERT INTO admission_usage (at, namespace, kind, name, container, image,
                                                  digest)
                     VALUES ($1, 'shop', 'Deployment', $2, 'main', $3, $4)",
                )
                .bind(when)
                .bind(name)
                .bind(image)
                .bind(digest)
                .execute(&mut connection)
                .await
                .unwrap();
            }
            sqlx::raw_sql(sqlx::AssertSqlSafe(include_str!(concat!(
                "../migrations/",
                $dialect,
                "/0008_usage_inventory.sql"
            ))))
            .execute(&mut connection)
            .await
            .unwrap();
            type Row = (
                String,
                String,
                String,
                Option<String>,
                chrono::DateTime<chrono::Utc>,
                chrono::DateTime<chrono::Utc>,
            );
            let rows: Vec<Row> = sqlx::query_as(
                "SELECT source, name, image, digest, first_seen, last_seen
                 FROM usage_inventory ORDER BY name",
            )
            .fetch_all(&mut connection)
            .await
            .unwrap();
            let row = |name: &str, image: &str, digest: Option<&str>, first, last| -> Row {
                (
                    "admission".into(),
                    name.into(),
                    image.into(),
                    digest.map(str::to_string),
                    at(first),
                    at(last),
                )
            };
            assert_eq!(
                rows,
                [
                    row("job", "tool:1", Some("sha256:bb"), 500, 500),
                    row("web", "app:2", None, 0, 200),
                ]
            );
            let log = sqlx::query("SELECT 1 FROM admission_usage")
                .fetch_optional(&mut connection)
                .await;
            assert!(log.is_err(), "the admission log is dropped");
        }
    };
}

fold_test!(
    sqlite_the_admission_log_folds_into_the_inventory,
    "sqlite",
    sqlx::SqliteConnection,
    {
        let dir = common::temp_dir();
        format!("sqlite://{}/fold.db?mode=rwc", dir.display())
    }
);

fold_test!(
    postgres_the_admission_log_folds_into_the_inventory,
    "postgres",
    sqlx::PgConnection,
    common::postgres().await
);
