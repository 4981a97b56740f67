//! `berth catalog` end to end: the real binary on the example files and on a broken catalog,
//! its output and exit codes (0 yes, 1 no, 2 the user's mistake).

use std::path::PathBuf;
use std::process::{Command, Output};

fn repository_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs `berth` with `args` in the repository root, without the caller's BERTH_ variables.
fn berth(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(args)
        .current_dir(repository_root())
        .env_remove("BERTH_CATALOG")
        .env_remove("BERTH_LOG")
        .output()
        .unwrap_or_else(|error| panic!("cannot run berth: {error}"))
}

/// Compares exit code, stdout and stderr with the expected ones.
fn check(args: &[&str], code: i32, stdout: &str, stderr: &str) {
    let output = berth(args);
    let got = (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).to_string(),
        String::from_utf8_lossy(&output.stderr).to_string(),
    );
    assert_eq!(
        got,
        (Some(code), stdout.to_string(), stderr.to_string()),
        "berth {args:?}"
    );
}

const DEMO: &str = "--catalog=examples/catalog.yaml";

#[test]
fn check_passes_the_demo_catalog() {
    check(
        &["catalog", DEMO, "check"],
        0,
        "examples/catalog.yaml: 8 images, 0 errors, 0 warnings\n",
        "",
    );
}

#[test]
fn check_reports_every_problem_and_exits_one() {
    let dir = std::env::temp_dir().join(format!("berth-cli-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|error| panic!("{error}"));
    let file = dir.join("catalog.yaml");
    let text = "\
images:
  python3.11:
    aliases: [py311, python3.12]
    eol_on: 2027-01-01
    deprecated_on: 2027-06-01
    replacement: python3.13
    variants:
      jobs: {image: 'registry.example.org/py:3.11'}
  python3.12:
    imgae: registry.example.org/py312
  old:
    state: eol
    image: registry.example.org/old
";
    std::fs::write(&file, text).unwrap_or_else(|error| panic!("{error}"));
    let path = file.display().to_string();
    let expect = format!(
        "\
{path}:3:22: error: images.python3.11.aliases[1]: alias \"python3.12\" is the canonical name of another entry ({path}:9:3)
{path}:4:13: error: images.python3.11.eol_on: eol_on 2027-01-01 is before deprecated_on 2027-06-01
{path}:6:18: error: images.python3.11.replacement: \"python3.13\" names no entry in the catalog; did you mean python3.11, python3.12?
{path}:8:21: error: images.python3.11.variants.jobs.image: \"registry.example.org/py:3.11\" has a tag or digest; name the repository only (tags come from `channels`)
{path}:9:3: error: images.python3.12: an entry needs an `image` or `variants`
{path}:10:5: error: images.python3.12.imgae: unknown field `imgae`; did you mean `image`?
{path}:11:3: warning: images.old: is eol but names no replacement for its users
{path}: 6 errors, 1 warning
"
    );
    check(&["catalog", "--catalog", &path, "check"], 1, &expect, "");
    let output = berth(&["catalog", "--catalog", &path, "check", "--json"]);
    let report: serde_json::Value =
        serde_json::from_slice(&output.stdout).unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(
        (report["ok"].clone(), report["errors"].clone()),
        (false.into(), 6.into())
    );
    assert_eq!(report["diagnostics"][0]["line"], 3);
    // Any other command refuses an invalid catalog as the user's mistake.
    let output = berth(&["catalog", "--catalog", &path, "list"]);
    assert_eq!(output.status.code(), Some(2));
    let _ = std::fs::remove_dir_all(dir);
}

/// issue 15, item 1: a catalog of 20,000 block-nested levels overflowed the stack (exit 134);
/// it is a catalog error like any other, with its place.
#[test]
fn a_deeply_nested_catalog_is_reported_not_a_crash() {
    let dir = std::env::temp_dir().join(format!("berth-cli-deep-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|error| panic!("{error}"));
    let file = dir.join("catalog.yaml");
    std::fs::write(&file, format!("{}x\n", "- ".repeat(20_000))).unwrap();
    let path = file.display().to_string();
    let catalog = format!("--catalog={path}");
    check(
        &["catalog", &catalog, "check"],
        1,
        &format!(
            "{path}:1:257: error: invalid YAML: collections nest deeper than 128 levels\n\
             {path}: 1 error, 0 warnings\n"
        ),
        "",
    );
}

#[test]
fn answers_and_exit_codes() {
    let at = "--now=2026-11-22";
    check(
        &[
            "catalog",
            DEMO,
            at,
            "resolve",
            "tf-python311",
            "--variant",
            "webservice",
        ],
        0,
        "127.0.0.1:5050/berth/python311-web:latest\n",
        "berth: python3.11: deprecated since 2026-07-01, end of life from 2027-01-01; use python3.12\n",
    );
    check(
        &[
            "catalog",
            DEMO,
            at,
            "resolve",
            "node24",
            "--variant",
            "jobs",
            "--channel",
            "staging",
        ],
        0,
        "127.0.0.1:5050/berth/node24:staging\n",
        "",
    );
    check(
        &["catalog", DEMO, at, "resolve", "pyhton3.12"],
        1,
        "",
        "berth: no image named \"pyhton3.12\"; did you mean python3.12, python3.11?\n",
    );
    check(
        &[
            "catalog",
            DEMO,
            at,
            "which",
            "127.0.0.1:5050/berth/multi@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ],
        0,
        "node20 jobs (eol since 2026-04-30)\n",
        "berth: node20: end of life since 2026-04-30; use node22\n",
    );
    check(
        &["catalog", DEMO, at, "which", "quay.io/someone/else"],
        1,
        "",
        "berth: quay.io/someone/else:latest is not an image of the catalog\n",
    );
    check(
        &["catalog", DEMO, "which", "Not/A/Reference"],
        2,
        "",
        "berth: invalid image reference \"Not/A/Reference\": repository name must be lowercase\n",
    );
    check(
        &["catalog", DEMO, "--now", "soon", "list"],
        2,
        "",
        "berth: --now: \"soon\" is not a moment: expected RFC 3339 (2027-01-01T09:30:00Z) or a day (2027-01-01)\n",
    );
    check(
        &["catalog", "--catalog", "no/such/catalog.yaml", "list"],
        2,
        "",
        "berth: no catalog at no/such/catalog.yaml (give --catalog PATH or set BERTH_CATALOG)\n",
    );
    check(
        &["catalog", DEMO, at, "list", "--all"],
        0,
        "\
NAME        STATE       VARIANTS          NOTICE
bookworm    stable      (default)
node22      stable      jobs, webservice  deprecated from 2027-04-30; use node24
node24      stable      jobs, webservice
php8.2      stable      jobs, webservice
python3.12  stable      jobs, webservice
python3.11  deprecated  jobs, webservice  deprecated since 2026-07-01, end of life from 2027-01-01; use python3.12
bullseye    eol         (default)         end of life since 2026-08-31; use bookworm
node20      eol         jobs, webservice  end of life since 2026-04-30; use node22
",
        "",
    );
}

#[test]
fn the_catalog_comes_from_the_environment_when_no_flag_says() {
    let output = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["catalog", "show", "debian12", "--json"])
        .current_dir(repository_root())
        .env("BERTH_CATALOG", "examples/catalog.yaml")
        .output()
        .unwrap_or_else(|error| panic!("{error}"));
    let shown: serde_json::Value =
        serde_json::from_slice(&output.stdout).unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(shown["name"], "bookworm");
    assert_eq!(shown["base_of"].as_array().map(Vec::len), Some(6));
}

#[test]
fn toolforge_import_and_export_through_the_binary() {
    let dir = std::env::temp_dir().join(format!("berth-cli-toolforge-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|error| panic!("{error}"));
    let imported = berth(&[
        "catalog",
        "import",
        "--format",
        "toolforge",
        "examples/toolforge-images-v1.yaml",
    ]);
    assert_eq!(imported.status.code(), Some(0));
    let berth_file = dir.join("imported.yaml");
    std::fs::write(&berth_file, &imported.stdout).unwrap_or_else(|error| panic!("{error}"));
    let catalog_flag = format!("--catalog={}", berth_file.display());
    let exported = berth(&["catalog", &catalog_flag, "export", "--format", "toolforge"]);
    assert_eq!(exported.status.code(), Some(0));
    let direct = berth(&[
        "catalog",
        "--catalog=examples/toolforge-images-v1.yaml",
        "--catalog-format=toolforge",
        "export",
        "--format",
        "toolforge",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&exported.stdout),
        String::from_utf8_lossy(&direct.stdout)
    );
    let configmap = berth(&[
        "catalog",
        &catalog_flag,
        "export",
        "--format",
        "configmap",
        "--namespace",
        "tf-public",
    ]);
    let text = String::from_utf8_lossy(&configmap.stdout);
    assert!(
        text.starts_with("apiVersion: v1\nkind: ConfigMap\n"),
        "{text}"
    );
    assert!(
        text.contains("\n  images-v1.yaml: |\n    bookworm:\n"),
        "{text}"
    );
    check(
        &["catalog", DEMO, "export", "--format", "toolforge"],
        2,
        "",
        "berth: Toolforge consumers pick images by variant, and these entries have none: bookworm, bullseye\n",
    );
    let schema = berth(&["catalog", "schema"]);
    let schema: serde_json::Value =
        serde_json::from_slice(&schema.stdout).unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(schema["title"], "berth catalog");
    let _ = std::fs::remove_dir_all(dir);
}
