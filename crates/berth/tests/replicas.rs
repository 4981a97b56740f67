//! Two `berth serve` replicas on one real PostgreSQL (scripts/postgres): the scheduled sync runs
//! once per interval between them, on the replica holding the sync lease; when that replica is
//! killed with SIGKILL, the other takes the lease over once it expires and syncs on. (That a
//! former holder cannot write after losing its lease is the store's fencing test,
//! crates/berth-store/tests/leases.rs, on the same PostgreSQL.) And the dashboard's sessions
//! are the store's (issue #14): a sign-in through one replica is good on the other, a form the
//! first rendered is carried out by the second, and a sign-out on the second ends it on both.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use berth_testkit::{OwnRegistry, ServeProcess, Testbed, digest_at, sha256_hex};

const INTERVAL_SECONDS: i64 = 10;

/// `psql` on the test database with `search_path` set to `schema`; its rows as `a|b` lines.
fn psql(base: &str, schema: Option<&str>, sql: &str) -> Vec<String> {
    let url = match schema {
        Some(schema) => with_schema(base, schema),
        None => base.to_string(),
    };
    let output = Command::new("psql")
        .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .arg(&url)
        .output()
        .unwrap_or_else(|error| panic!("psql: {error}"));
    assert!(
        output.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| !line.is_empty())
        .map(str::to_string)
        .collect()
}

fn with_schema(base: &str, schema: &str) -> String {
    let separator = if base.contains('?') { '&' } else { '?' };
    format!("{base}{separator}options=-c%20search_path%3D{schema}")
}

fn start(config: &std::path::Path) -> ServeProcess {
    let mut command = Command::new(env!("CARGO_BIN_EXE_berth"));
    command
        .env_remove("BERTH_CATALOG")
        .env_remove("BERTH_LOG")
        .args(["--log-json", "serve", "--config"])
        .arg(config);
    ServeProcess::start(command)
}

/// The sync lease as `server` last saw it: (held here, holder).
fn sync_lease(server: &ServeProcess) -> Option<(bool, String)> {
    let (_, status) = server.get("/api/v1/status");
    let leases = status["leases"].as_array()?;
    let lease = leases.iter().find(|lease| lease["name"] == "sync")?;
    Some((
        lease["held_here"].as_bool()?,
        lease["holder"].as_str().unwrap_or_default().to_string(),
    ))
}

/// (holder, epoch, started_at_ms) of every recorded sync run, oldest first.
fn runs(base: &str, schema: &str) -> Vec<(String, i64, i64)> {
    psql(
        base,
        Some(schema),
        "SELECT holder, epoch, started_at_ms FROM task_runs WHERE task = 'sync' ORDER BY started_at_ms",
    )
    .into_iter()
    .map(|line| {
        let fields: Vec<&str> = line.split('|').collect();
        (
            fields[0].to_string(),
            fields[1].parse().unwrap_or_else(|_| panic!("{line}")),
            fields[2].parse().unwrap_or_else(|_| panic!("{line}")),
        )
    })
    .collect()
}

fn wait_until<T>(what: &str, limit: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn two_replicas_sync_once_per_interval_and_the_survivor_takes_over() {
    let testbed = Testbed::get();
    let base = testbed.var("BERTH_TEST_PG_URL").to_string();
    let schema = format!("replicas_{}_{}", std::process::id(), fastrand_suffix());
    psql(&base, None, &format!("CREATE SCHEMA {schema}"));
    let dir = std::env::temp_dir().join(format!("berth-replicas-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|error| panic!("{error}"));
    let plain = testbed.plain();
    let catalog = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/testbed-catalog.yaml"),
    )
    .unwrap_or_else(|error| panic!("{error}"))
    .replace("127.0.0.1:5050", plain);
    std::fs::write(dir.join("catalog.yaml"), catalog).unwrap_or_else(|error| panic!("{error}"));
    let config = dir.join("berth.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:0\ncatalog: catalog.yaml\nstore: '{}'\nregistries:\n  {plain}: {{insecure: true}}\nsync:\n  interval: {INTERVAL_SECONDS}s\n  layers: false\nleases: {{ttl: 2s}}\n",
            with_schema(&base, &schema)
        ),
    )
    .unwrap_or_else(|error| panic!("{error}"));

    let first = start(&config);
    let second = start(&config);
    // One of them holds the sync lease; the other sees who does.
    let holder = wait_until("a sync lease holder", Duration::from_secs(20), || {
        let a = sync_lease(&first)?;
        let b = sync_lease(&second)?;
        (a.0 != b.0 && a.1 == b.1).then_some(a.1)
    });
    // Two intervals and a bit: the runs between both replicas.
    wait_until("a second sync run", Duration::from_secs(40), || {
        (runs(&base, &schema).len() >= 2).then_some(())
    });
    let before = runs(&base, &schema);
    for pair in before.windows(2) {
        assert!(
            pair[1].2 - pair[0].2 >= INTERVAL_SECONDS * 1000 - 50,
            "two runs closer than the interval: {before:?}"
        );
    }
    assert!(
        before.iter().all(|run| run.0 == holder),
        "every run by the lease holder {holder}: {before:?}"
    );

    // SIGKILL the holder: it cannot release its lease; the survivor takes it once it expires.
    let (mut dead, survivor) = if sync_lease(&first).is_some_and(|lease| lease.0) {
        (first, second)
    } else {
        (second, first)
    };
    let killed = Command::new("kill")
        .args(["-KILL", &dead.pid().to_string()])
        .status()
        .unwrap_or_else(|error| panic!("{error}"));
    assert!(killed.success());
    let _ = dead.wait();
    let killed_at = Instant::now();
    let taken = wait_until(
        "the survivor to take the lease",
        Duration::from_secs(15),
        || {
            let (held, holder) = sync_lease(&survivor)?;
            held.then_some(holder)
        },
    );
    assert_ne!(taken, holder);
    assert!(
        killed_at.elapsed() < Duration::from_secs(8),
        "taken over soon after the lease's 2 s expired (a loose bound for a loaded machine): {:?}",
        killed_at.elapsed()
    );
    // The survivor syncs when the next run is due, under the next epoch.
    let after = wait_until("a run by the survivor", Duration::from_secs(30), || {
        let now = runs(&base, &schema);
        now.iter().any(|run| run.0 == taken).then_some(now)
    });
    let last_before = before.last().map_or(0, |run| run.1);
    let survivors: Vec<_> = after.iter().filter(|run| run.0 == taken).collect();
    assert!(
        survivors.iter().all(|run| run.1 > last_before),
        "a new epoch: {after:?}"
    );
    for pair in after.windows(2) {
        assert!(
            pair[1].2 - pair[0].2 >= INTERVAL_SECONDS * 1000 - 50,
            "no run sooner than the interval after the last, even across the takeover: {after:?}"
        );
    }
    drop(survivor);
    psql(&base, None, &format!("DROP SCHEMA {schema} CASCADE"));
}

/// The CSRF token in a page's first form.
fn csrf_in(page: &str) -> String {
    let (_, rest) = page
        .split_once(r#"name="csrf" value=""#)
        .unwrap_or_else(|| panic!("no CSRF token in {page}"));
    rest.split('"').next().unwrap_or_default().to_string()
}

#[test]
fn a_dashboard_session_is_every_replicas() {
    let testbed = Testbed::get();
    let base = testbed.var("BERTH_TEST_PG_URL").to_string();
    let schema = format!("sessions_{}_{}", std::process::id(), fastrand_suffix());
    psql(&base, None, &format!("CREATE SCHEMA {schema}"));
    let store = with_schema(&base, &schema);
    let dir = std::env::temp_dir().join(format!("berth-replica-sessions-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|error| panic!("{error}"));
    // A registry of the test's own, since the form moves a tag: staging holds the base.
    let registry = OwnRegistry::start();
    let own = registry.address.clone();
    registry.copy_from_testbed("berth/base:1", "team/app:staging");
    let staging = testbed.digest("berth/base:1");
    std::fs::write(
        dir.join("catalog.yaml"),
        format!(
            "images:\n  app:\n    description: an image\n    owners: [web-team]\n    image: {own}/team/app\n    channels: [staging, latest]\n"
        ),
    )
    .unwrap_or_else(|error| panic!("{error}"));
    std::fs::write(
        dir.join("channels.yaml"),
        "promotions:\n  - {from: staging, to: latest}\n",
    )
    .unwrap_or_else(|error| panic!("{error}"));
    let config = dir.join("berth.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:0\ncatalog: catalog.yaml\nstore: '{store}'\nregistries:\n  {own}: {{insecure: true}}\n\
             promotions: channels.yaml\nui: {{anonymous: catalog}}\napi_tokens:\n\
             \x20 - {{name: alice-admin, sha256: {}, scope: admin}}\n",
            sha256_hex("admin-secret")
        ),
    )
    .unwrap_or_else(|error| panic!("{error}"));
    let a = start(&config);
    let b = start(&config);
    let page = |server: &ServeProcess, path: &str, cookie: &str| {
        let (status, _, page) = server.exchange("GET", path, &[("Cookie", cookie)], "");
        assert_eq!(status, 200, "{path}: {page}");
        page
    };
    let promote = |server: &ServeProcess, cookie: &str, csrf: &str| {
        let (status, _, page) = server.exchange(
            "POST",
            "/ui/channels/promote",
            &[
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("Cookie", cookie),
            ],
            &format!("csrf={csrf}&name=app&from=staging&to=latest&reason=issue+14"),
        );
        (status, page)
    };

    // Signed in through A; the store keeps the id's SHA-256, never the id.
    let cookie = a.sign_in("admin-secret");
    let id = cookie.trim_start_matches("berth_session=");
    let rows = |key: &str| {
        psql(
            &base,
            Some(&schema),
            &format!("SELECT token_name, scope FROM ui_sessions WHERE id_sha256 = '{key}'"),
        )
    };
    assert_eq!(rows(&sha256_hex(id)), ["alice-admin|admin"]);
    assert!(rows(id).is_empty());

    // B knows the session: its channel page has the admin's forms, with the same CSRF token
    // as A's.
    let on_a = page(&a, "/ui/channels?image=app", &cookie);
    let csrf = csrf_in(&on_a);
    let on_b = page(&b, "/ui/channels?image=app", &cookie);
    assert!(on_b.contains("sign out (alice-admin)"), "{on_b}");
    assert_eq!(csrf_in(&on_b), csrf);
    // A's form, carried out by B: latest moves to staging's digest.
    let (status, done) = promote(&b, &cookie, &csrf);
    assert_eq!(status, 200, "{done}");
    assert!(done.contains(r#"data-outcome="done""#), "{done}");
    assert_eq!(digest_at(&format!("{own}/team/app:latest")), staging);
    let audit = page(&a, "/ui/audit", &cookie);
    assert!(
        audit.contains("<td>alice-admin</td><td>channel.promote</td>"),
        "audited under the token's name: {audit}"
    );

    // Signed out on B: A no longer knows the session, and refuses its form.
    let (status, _, _) = b.exchange("GET", "/ui/signout", &[("Cookie", &cookie)], "");
    assert_eq!(status, 303);
    assert!(rows(&sha256_hex(id)).is_empty());
    let signin = page(&a, "/ui/signin", &cookie);
    assert!(!signin.contains("Signed in as"), "{signin}");
    let (status, refused) = promote(&a, &cookie, &csrf);
    assert_eq!(status, 403, "{refused}");
    assert!(refused.contains("Sign in with an admin token"), "{refused}");
    let (status, _, _) = a.exchange("GET", "/ui/audit", &[("Cookie", &cookie)], "");
    assert_eq!(status, 303, "to the sign-in");

    drop(a);
    drop(b);
    psql(&base, None, &format!("DROP SCHEMA {schema} CASCADE"));
    let _ = std::fs::remove_dir_all(&dir);
}

fn fastrand_suffix() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.subsec_nanos())
        .unwrap_or(0)
}
