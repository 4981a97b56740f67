//! The dashboard in a real browser: Debian's chromium, headless, against `berth serve` on a
//! real SQLite store filled by `berth sync` from a registry of the test's own (so a rollback
//! moves a tag nobody else reads). Each page's DOM holds the entries, digests and states the
//! store knows; the sensitive pages need a sign-in; a rollback through the channel page's form
//! moves the tag (skopeo checks); a form without its CSRF token, or from a read token, is
//! refused. A screenshot of each page lands in the test's target directory
//! (`$CARGO_TARGET_TMPDIR/dashboard/*.png`) for a person to look at. A multi-platform channel
//! move is diffed per platform, from the entry page's link.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use berth_testkit::browser::Browser;
use berth_testkit::{OwnRegistry, ServeProcess, Testbed, digest_at, sha256_hex};
use serde_json::json;

fn berth(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(args)
        .current_dir(dir)
        .env_remove("BERTH_LOG")
        .env_remove("BERTH_CATALOG")
        .env_remove("BERTH_STORE")
        .env_remove("BERTH_RULES")
        .env("BERTH_ACTOR", "ci")
        .output()
        .unwrap_or_else(|error| panic!("cannot run berth: {error}"))
}

fn ok(output: &Output) -> String {
    assert_eq!(
        output.status.code(),
        Some(0),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn short(digest: &str) -> &str {
    &digest[..19]
}

fn shots() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard")
}

#[test]
fn the_dashboard_shows_what_berth_knows_and_rolls_back_through_its_form() {
    let testbed = Testbed::get();
    let registry = OwnRegistry::start();
    let own = registry.address.clone();
    let dir = std::env::temp_dir().join(format!("berth-dashboard-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let base = testbed.digest("berth/base:1");
    let child = testbed.digest("berth/child:1");
    let store = format!("sqlite://{}", dir.join("berth.db").display());
    std::fs::write(
        dir.join("catalog.yaml"),
        format!(
            "images:\n\
             \x20 app:\n    description: the web team's service image\n    owners: [web-team]\n\
             \x20   image: {own}/team/app\n    channels: [staging, latest]\n\
             \x20 legacy:\n    description: the image nobody should still run\n    owners: [old-team]\n\
             \x20   deprecated_on: 2025-01-01\n    eol_on: 2026-01-01\n    replacement: app\n\
             \x20   image: {own}/team/legacy\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("channels.yaml"),
        "promotions:\n  - {from: staging, to: latest}\n",
    )
    .unwrap();
    let common = [
        "--catalog",
        "catalog.yaml",
        "--store",
        &store,
        "--insecure-registry",
        &own,
    ];
    let sync = || ok(&berth(&dir, &[&["sync"][..], &common].concat()));
    let promote = || {
        let args = [
            &["promote", "app", "--from", "staging", "--to", "latest"][..],
            &common,
            &["--rules", "channels.yaml"],
        ]
        .concat();
        ok(&berth(&dir, &args))
    };

    // staging gets the base, is promoted to latest; then the child, promoted again: latest's
    // history has two moves, so a rollback has somewhere to go.
    registry.copy_from_testbed("berth/base:1", "team/app:staging");
    registry.copy_from_testbed("berth/upper:1", "team/legacy:1");
    sync();
    promote();
    registry.copy_from_testbed("berth/child:1", "team/app:staging");
    sync();
    promote();
    assert_eq!(digest_at(&format!("{own}/team/app:latest")), child);
    // Someone still runs the eol image.
    let list = json!({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": {"name": "old-report", "namespace": "tools"},
         "spec": {"template": {"spec": {"containers": [
             {"name": "main", "image": format!("{own}/team/legacy:1")}]}}}}]});
    std::fs::write(dir.join("pods.json"), list.to_string()).unwrap();
    ok(&berth(
        &dir,
        &[
            "usage",
            "import",
            "--cluster",
            "prod",
            "pods.json",
            "--store",
            &store,
        ],
    ));

    std::fs::write(
        dir.join("berth.yaml"),
        format!(
            "listen: 127.0.0.1:0\ncatalog: catalog.yaml\nstore: {store}\n\
             registries:\n  {own}: {{insecure: true}}\npromotions: channels.yaml\n\
             api_tokens:\n\
             \x20 - {{name: alice-admin, sha256: {}, scope: admin}}\n\
             \x20 - {{name: bob-reader, sha256: {}, scope: read}}\n\
             ui: {{anonymous: catalog}}\n",
            sha256_hex("admin-secret"),
            sha256_hex("reader-secret")
        ),
    )
    .unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_berth"));
    command
        .args(["--log-json", "serve", "--config", "berth.yaml"])
        .current_dir(&dir)
        .env_remove("BERTH_LOG");
    let server = ServeProcess::start(command);
    let url = |path: &str| format!("http://{}{path}", server.address);
    let mut browser = Browser::start();
    let look = |browser: &mut Browser, path: &str, shot: &str| -> String {
        browser.open(&url(path));
        browser.screenshot(&shots().join(format!("{shot}.png")));
        browser.dom()
    };

    // Anonymous: the pages that show no secrets.
    let overview = look(&mut browser, "/", "overview");
    assert!(browser.location().ends_with("/ui/"), "/ redirects to /ui/");
    assert!(overview.contains("<h1>Overview</h1>"), "{overview}");
    assert!(
        overview.contains(r#"0</strong><a href="/ui/channels">promotions blocked</a> (0 due now)"#),
        "{overview}"
    );
    assert!(
        overview.contains("2</strong>catalog entries: 1 stable, 0 deprecated, 1 eol"),
        "{overview}"
    );
    let catalog = look(&mut browser, "/ui/catalog", "catalog");
    assert!(catalog.contains(r#"href="/ui/catalog/app""#), "{catalog}");
    assert!(
        catalog.contains(r#"<span class="state-eol">eol</span>"#),
        "{catalog}"
    );
    assert!(
        catalog.contains("old-team") && catalog.contains("web-team"),
        "{catalog}"
    );
    let entry = look(&mut browser, "/ui/catalog/app", "entry");
    assert!(
        entry.contains(short(&child)),
        "latest's digest on the entry: {entry}"
    );
    assert_eq!(
        entry.matches(">promotion<").count(),
        2,
        "two moves in the history: {entry}"
    );
    // latest's second move links to its diff; following it shows what the store knows
    // changed: the base (by lineage) became the image before, and the child's own layer.
    let link =
        browser.eval("document.querySelector('a[data-diff=\"latest\"]').getAttribute('href')");
    assert_eq!(
        link.as_str(),
        Some(format!("/ui/diff?before={base}&after={child}").as_str()),
        "{entry}"
    );
    browser.submit("document.querySelector('a[data-diff=\"latest\"]').click()");
    browser.screenshot(&shots().join("diff.png"));
    let diff = browser.dom();
    assert!(
        browser.location().ends_with(link.as_str().unwrap()),
        "{}",
        browser.location()
    );
    let inspected = |reference: &str| -> Vec<String> {
        let args = ["inspect", reference, "--json", "--insecure-registry", &own];
        let report: serde_json::Value = serde_json::from_str(&ok(&berth(&dir, &args))).unwrap();
        report["image"]["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|layer| layer["diff_id"].as_str().unwrap().to_string())
            .collect()
    };
    let child_layers = inspected(&format!("{own}/team/app@{child}"));
    let base_layers = inspected(&format!("{own}/team/app@{base}"));
    assert_eq!(
        child_layers[..base_layers.len()],
        base_layers[..],
        "the child is on the base"
    );
    let own_layer = &child_layers[base_layers.len()];
    for side in [
        format!(r#"data-side="before">{base}<"#),
        format!(r#"data-side="after">{child}<"#),
    ] {
        assert!(diff.contains(&side), "{side} in {diff}");
    }
    assert!(
        diff.contains(&format!(
            "{} shared; 0 replaced, 1 added, 0 removed",
            base_layers.len()
        )),
        "{diff}"
    );
    let added = diff
        .split(r#"<tr data-layer="added">"#)
        .nth(1)
        .and_then(|rest| rest.split("</tr>").next())
        .unwrap_or_else(|| panic!("no added layer in {diff}"));
    assert!(added.contains(own_layer.as_str()), "{own_layer} in {added}");
    let base_change = diff
        .split(r#"<dd data-base="changed">"#)
        .nth(1)
        .and_then(|rest| rest.split("</dd>").next())
        .unwrap_or_else(|| panic!("the base changed: {diff}"));
    assert!(
        base_change.contains(&format!(r#"href="/ui/images/{base}""#)),
        "{base_change}"
    );
    assert!(diff.contains(r#"data-os="unchanged""#), "{diff}");
    // The page names the command for the rest, and that command says the same of the layers.
    let command = browser.eval("document.querySelector('[data-command]').textContent");
    let command = command.as_str().unwrap();
    assert_eq!(
        command,
        format!("berth diff {own}/team/app@{base} {own}/team/app@{child}")
    );
    let mut args: Vec<&str> = command.split(' ').skip(1).collect();
    args.extend([
        "--json",
        "--no-layers",
        "--store",
        &store,
        "--insecure-registry",
        &own,
    ]);
    let report: serde_json::Value = serde_json::from_str(&ok(&berth(&dir, &args))).unwrap();
    assert_eq!(
        report["layers"]["added"][0]["diff_id"],
        own_layer.as_str(),
        "{report:#}"
    );
    assert_eq!(report["after"]["base"], base.as_str(), "{report:#}");
    // Only digests, and only digests the store knows.
    let get = |path: String| {
        let (status, _, page) = server.exchange("GET", &path, &[], "");
        (status, page)
    };
    let (status, page) = get(format!("/ui/diff?before=latest&after={child}"));
    assert_eq!(status, 400, "{page}");
    assert!(
        page.contains("before: &quot;latest&quot; is not a digest"),
        "{page}"
    );
    let (status, page) = get(format!("/ui/diff?before={base}"));
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("after: missing"), "{page}");
    let unknown = format!("sha256:{}", "0".repeat(64));
    let (status, page) = get(format!("/ui/diff?before={base}&after={unknown}"));
    assert_eq!(status, 404, "{page}");
    assert!(
        page.contains(&format!(
            "berth knows no image or index <code>{unknown}</code>"
        )),
        "{page}"
    );
    let image_moves = look(&mut browser, &format!("/ui/images/{child}"), "image-moves");
    assert!(
        image_moves.contains(&format!(
            r#"href="/ui/diff?before={base}&amp;after={child}""#
        )),
        "the image's channel moves link to the diff: {image_moves}"
    );

    let channels = look(&mut browser, "/ui/channels", "channels");
    assert!(channels.contains(r#"data-channel="latest""#), "{channels}");
    assert!(
        !channels.contains("/ui/channels/rollback"),
        "no forms without an admin: {channels}"
    );
    assert!(
        channels.contains("by hand only"),
        "the manual rule: {channels}"
    );
    let images = look(&mut browser, "/ui/images", "images");
    for digest in [&base, &child] {
        assert!(images.contains(short(digest)), "{digest} in {images}");
    }
    let image = look(&mut browser, &format!("/ui/images/{child}"), "image");
    assert!(
        image.contains(&format!("/ui/images/{base}")),
        "the child's base chain: {image}"
    );
    look(&mut browser, "/ui/usage?state=eol", "usage-anonymous");
    assert!(
        browser.location().ends_with("/ui/signin"),
        "who runs what needs a sign-in"
    );

    // A reader signs in through the form: the campaign and the audit log, but no buttons.
    let sign_in = |browser: &mut Browser, token: &str| {
        browser.open(&url("/ui/signin"));
        browser.submit(&format!(
            "document.getElementById('token').value = '{token}'; document.querySelector('main form').requestSubmit()"
        ));
        assert!(
            browser.location().ends_with("/ui/"),
            "signed in: {}",
            browser.location()
        );
    };
    sign_in(&mut browser, "reader-secret");
    let usage = look(&mut browser, "/ui/usage?state=eol", "usage");
    assert!(
        usage.contains("tools") && usage.contains("old-report"),
        "{usage}"
    );
    assert!(usage.contains("sign out (bob-reader)"), "{usage}");
    let channels = look(&mut browser, "/ui/channels", "channels-reader");
    assert!(
        !channels.contains("/ui/channels/rollback"),
        "a read token gets no forms: {channels}"
    );

    // Forms are refused without this session's CSRF token, and from a read token.
    let admin = server.sign_in("admin-secret");
    let form = |cookie: &str, body: &str| {
        let (status, _, page) = server.exchange(
            "POST",
            "/ui/channels/rollback",
            &[
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("Cookie", cookie),
            ],
            body,
        );
        (status, page)
    };
    let (status, page) = form(&admin, "name=app&channel=latest");
    assert_eq!(status, 403, "{page}");
    assert!(page.contains("CSRF token is missing"), "{page}");
    let (status, _) = form(&admin, "name=app&channel=latest&csrf=0000");
    assert_eq!(status, 403);
    let reader = server.sign_in("reader-secret");
    let (status, page) = form(&reader, "name=app&channel=latest&csrf=0000");
    assert_eq!(status, 403);
    assert!(page.contains("not an admin token"), "{page}");
    assert_eq!(
        digest_at(&format!("{own}/team/app:latest")),
        child,
        "nothing moved"
    );

    // An admin rolls latest back through the form in the browser: the tag moves.
    browser.open(&url("/ui/signout"));
    sign_in(&mut browser, "admin-secret");
    let channels = look(&mut browser, "/ui/channels?image=app", "channels-admin");
    assert!(channels.contains("roll back latest"), "{channels}");
    browser.submit("document.querySelector('tr[data-channel=\"latest\"] form').requestSubmit()");
    let done = browser.dom();
    browser.screenshot(&shots().join("rolled-back.png"));
    assert!(done.contains(r#"data-outcome="done""#), "{done}");
    assert!(done.contains(&base), "{done}");
    assert_eq!(
        digest_at(&format!("{own}/team/app:latest")),
        base,
        "the tag moved back"
    );
    // And promotes staging to latest again through the rule's form.
    browser.open(&url("/ui/channels?image=app"));
    browser
        .submit("document.querySelector('tr[data-rule=\"staging->latest\"] form').requestSubmit()");
    let done = browser.dom();
    assert!(done.contains(r#"data-outcome="done""#), "{done}");
    assert_eq!(
        digest_at(&format!("{own}/team/app:latest")),
        child,
        "promoted again"
    );
    let audit = look(&mut browser, "/ui/audit", "audit");
    assert!(
        audit.contains("channel.rollback") && audit.contains("alice-admin"),
        "{audit}"
    );
    look(&mut browser, "/ui/retention", "retention");
    drop(browser);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Issue #14: a sign-in is kept in the store, so it outlives the `berth serve` that made it (a
/// restart on the same SQLite file keeps it), and a token taken out of `api_tokens` no longer
/// carries it after the restart that applies the change.
#[test]
fn a_sign_in_survives_a_restart_unless_its_token_is_removed() {
    let dir = std::env::temp_dir().join(format!("berth-dashboard-restart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("catalog.yaml"),
        "images:\n  app:\n    description: an image\n    owners: [web-team]\n    image: registry.example/team/app\n",
    )
    .unwrap();
    let config = |tokens: &[(&str, &str)]| {
        let mut text = format!(
            "listen: 127.0.0.1:0\ncatalog: catalog.yaml\nstore: sqlite://{}\nui: {{anonymous: catalog}}\napi_tokens:\n",
            dir.join("berth.db").display()
        );
        for (name, secret) in tokens {
            text.push_str(&format!(
                "  - {{name: {name}, sha256: {}, scope: admin}}\n",
                sha256_hex(secret)
            ));
        }
        std::fs::write(dir.join("berth.yaml"), text).unwrap();
    };
    let serve = || {
        let mut command = Command::new(env!("CARGO_BIN_EXE_berth"));
        command
            .args(["--log-json", "serve", "--config", "berth.yaml"])
            .current_dir(&dir)
            .env_remove("BERTH_LOG");
        ServeProcess::start(command)
    };
    let audit = |server: &ServeProcess, cookie: &str| {
        let (status, head, page) = server.exchange("GET", "/ui/audit", &[("Cookie", cookie)], "");
        (status, format!("{head}\n{page}"))
    };

    config(&[
        ("alice-admin", "alice-secret"),
        ("carol-admin", "carol-secret"),
    ]);
    let server = serve();
    let alice = server.sign_in("alice-secret");
    let carol = server.sign_in("carol-secret");
    let (status, page) = audit(&server, &alice);
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("sign out (alice-admin)"), "{page}");
    drop(server);

    let server = serve();
    for (cookie, name) in [(&alice, "alice-admin"), (&carol, "carol-admin")] {
        let (status, page) = audit(&server, cookie);
        assert_eq!(status, 200, "still signed in after the restart: {page}");
        assert!(page.contains(&format!("sign out ({name})")), "{page}");
    }
    drop(server);

    // Carol's token is removed from the config: her session ends, Alice's does not.
    config(&[("alice-admin", "alice-secret")]);
    let server = serve();
    let (status, page) = audit(&server, &carol);
    assert_eq!(status, 303, "to the sign-in: {page}");
    assert!(page.contains("location: /ui/signin"), "{page}");
    let (status, page) = audit(&server, &alice);
    assert_eq!(status, 200, "{page}");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The raw manifest bytes of a test bed image, as skopeo reads them.
fn raw_manifest(image: &str) -> Vec<u8> {
    let plain = Testbed::get().plain();
    berth_testkit::skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{plain}/{image}"),
    ])
    .into_bytes()
}

#[test]
fn a_multi_platform_channel_move_is_diffed_per_platform() {
    let testbed = Testbed::get();
    let registry = OwnRegistry::start();
    let own = registry.address.clone();
    let dir = std::env::temp_dir().join(format!("berth-dashboard-index-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let store = format!("sqlite://{}", dir.join("berth.db").display());
    std::fs::write(
        dir.join("catalog.yaml"),
        format!(
            "images:\n  tools:\n    image: {own}/team/tools\n    channels: [staging, latest]\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("channels.yaml"),
        "promotions:\n  - {from: staging, to: latest}\n",
    )
    .unwrap();
    let common = [
        "--catalog",
        "catalog.yaml",
        "--store",
        &store,
        "--insecure-registry",
        &own,
    ];
    let sync = || ok(&berth(&dir, &[&["sync"][..], &common].concat()));
    let promote = || {
        let args = [
            &["promote", "tools", "--from", "staging", "--to", "latest"][..],
            &common,
            &["--rules", "channels.yaml"],
        ]
        .concat();
        ok(&berth(&dir, &args))
    };

    // v1: the test bed's index (linux/amd64 = the base, linux/arm64, an attestation).
    registry.copy_from_testbed("berth/multi:1", "team/tools:staging");
    let v1 = testbed.digest("berth/multi:1");
    sync();
    promote();
    // v2: linux/amd64 rebuilt as the child (the base plus one layer), linux/arm64 the same, no
    // attestation; an index put by hand, as a CI's `docker buildx` would push it.
    registry.copy_from_testbed("berth/child:1", "team/tools:amd64-build");
    let child = testbed.digest("berth/child:1");
    let child_size = raw_manifest("berth/child:1").len();
    let mut index: serde_json::Value =
        serde_json::from_slice(&raw_manifest("berth/multi:1")).unwrap();
    let entries = index["manifests"].as_array_mut().unwrap();
    entries.retain(|entry| entry["platform"]["os"] != "unknown");
    assert_eq!(entries.len(), 2, "{index:#}");
    let arm64 = entries
        .iter()
        .find(|entry| entry["platform"]["architecture"] == "arm64")
        .map(|entry| entry["digest"].as_str().unwrap().to_string())
        .unwrap();
    for entry in entries.iter_mut() {
        if entry["platform"]["architecture"] == "amd64" {
            entry["digest"] = json!(child);
            entry["size"] = json!(child_size);
        }
    }
    let v2 = registry.put_manifest("team/tools", "staging", index.to_string().as_bytes());
    assert!(index.to_string().contains(&arm64), "{index:#}");
    sync();
    promote();
    assert_eq!(digest_at(&format!("{own}/team/tools:latest")), v2);

    std::fs::write(
        dir.join("berth.yaml"),
        format!(
            "listen: 127.0.0.1:0\ncatalog: catalog.yaml\nstore: {store}\n\
             registries:\n  {own}: {{insecure: true}}\npromotions: channels.yaml\n"
        ),
    )
    .unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_berth"));
    command
        .args(["--log-json", "serve", "--config", "berth.yaml"])
        .current_dir(&dir)
        .env_remove("BERTH_LOG");
    let server = ServeProcess::start(command);
    let mut browser = Browser::start();
    browser.open(&format!("http://{}/ui/catalog/tools", server.address));
    let entry = browser.dom();
    let link =
        browser.eval("document.querySelector('a[data-diff=\"latest\"]').getAttribute('href')");
    assert_eq!(
        link.as_str(),
        Some(format!("/ui/diff?before={v1}&after={v2}").as_str()),
        "{entry}"
    );
    browser.submit("document.querySelector('a[data-diff=\"latest\"]').click()");
    browser.screenshot(&shots().join("diff-index.png"));
    let diff = browser.dom();
    assert!(
        browser.location().ends_with(link.as_str().unwrap()),
        "{}",
        browser.location()
    );
    let platforms = browser.eval("document.querySelector('[data-platforms]').textContent");
    assert_eq!(platforms.as_str(), Some("2 on both"), "{diff}");
    // Each platform in its own section: amd64 gained the child's layer on the base, arm64 is
    // the same image.
    let section = |platform: &str| -> String {
        diff.split(&format!("<h2>Image {platform}</h2>"))
            .nth(1)
            .and_then(|rest| rest.split("</section>").next())
            .unwrap_or_else(|| panic!("no section for {platform}: {diff}"))
            .to_string()
    };
    let amd64 = section("linux/amd64");
    let base = testbed.digest("berth/base:1");
    assert!(
        amd64.contains(&format!(r#"href="/ui/images/{base}""#))
            && amd64.contains(&format!(r#"href="/ui/images/{child}""#)),
        "the amd64 images, base → child: {amd64}"
    );
    assert!(amd64.contains("0 replaced, 1 added, 0 removed"), "{amd64}");
    assert!(amd64.contains(r#"<dd data-base="changed">"#), "{amd64}");
    let arm64_section = section("linux/arm64");
    assert!(
        arm64_section.contains("The same image: nothing differs."),
        "{arm64_section}"
    );
    // `berth diff`, the command the page names, compares this machine's platform and agrees.
    let command = browser.eval("document.querySelector('[data-command]').textContent");
    let command = command.as_str().unwrap();
    assert_eq!(
        command,
        format!("berth diff {own}/team/tools@{v1} {own}/team/tools@{v2}")
    );
    let mut args: Vec<&str> = command.split(' ').skip(1).collect();
    args.extend([
        "--json",
        "--no-layers",
        "--platform",
        "linux/amd64",
        "--store",
        &store,
        "--insecure-registry",
        &own,
    ]);
    let report: serde_json::Value = serde_json::from_str(&ok(&berth(&dir, &args))).unwrap();
    assert_eq!(report["after"]["image"], child.as_str(), "{report:#}");
    assert_eq!(
        report["layers"]["added"].as_array().map(Vec::len),
        Some(1),
        "{report:#}"
    );

    // An index replaced by a single-platform image: arm64 is gone, amd64 is the same image.
    let (status, _, page) = server.exchange(
        "GET",
        &format!("/ui/diff?before={v2}&after={child}"),
        &[],
        "",
    );
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("1 on both; removed: linux/arm64"), "{page}");
    assert!(page.contains("The same image: nothing differs."), "{page}");
    assert!(
        !page.contains("<h2>Image linux/arm64</h2>"),
        "no arm64 section: {page}"
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
