//! The catalog against the example files: berth's demo catalog (dated states, aliases,
//! variants) and a realistic Toolforge `images-v1.yaml`: loading, effective states over time,
//! resolution both ways, listing, and round trips through every export format.

use std::path::PathBuf;

use berth_core::ImageRef;
use berth_core::catalog::read::{ENTRY_FIELDS, FILE_FIELDS, OWNER_FIELDS, VARIANT_FIELDS};
use berth_core::catalog::yaml::{self, Value};
use berth_core::catalog::{
    Catalog, Format, Loaded, SCHEMA_JSON, Source, State, export::ExportError, load,
};
use chrono::{DateTime, Utc};

fn at(moment: &str) -> DateTime<Utc> {
    let text = if moment.len() == 10 {
        format!("{moment}T00:00:00Z")
    } else {
        moment.to_string()
    };
    DateTime::parse_from_rfc3339(&text)
        .unwrap_or_else(|error| panic!("bad moment {moment}: {error}"))
        .to_utc()
}

/// The day these tests stand on.
fn today() -> DateTime<Utc> {
    at("2026-11-22T12:00:00Z")
}

fn example(name: &str) -> (String, String) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    (format!("examples/{name}"), text)
}

fn load_text(name: &str, text: &str, format: Format) -> Loaded {
    load(&[Source { name, text }], format, today())
}

fn valid(loaded: Loaded) -> Catalog {
    let lines: Vec<String> = loaded.diagnostics.iter().map(ToString::to_string).collect();
    match loaded.catalog {
        Some(catalog) => catalog,
        None => panic!("invalid catalog:\n{}", lines.join("\n")),
    }
}

fn demo() -> Catalog {
    let (name, text) = example("catalog.yaml");
    let loaded = load_text(&name, &text, Format::Berth);
    assert_eq!(loaded.diagnostics, [], "the demo catalog is clean");
    valid(loaded)
}

fn toolforge() -> (String, Catalog) {
    let (name, text) = example("toolforge-images-v1.yaml");
    let catalog = valid(load_text(&name, &text, Format::Toolforge));
    (text, catalog)
}

#[test]
fn effective_states_follow_the_dates() {
    let catalog = demo();
    let cases = [
        // python3.11: deprecated_on 2026-07-01, eol_on 2027-01-01
        ("python3.11", "2026-06-30T23:59:59Z", State::Stable),
        ("python3.11", "2026-07-01", State::Deprecated),
        ("python3.11", "2026-12-31T23:59:59Z", State::Deprecated),
        ("python3.11", "2027-01-01", State::Eol),
        // node20: eol_on 2026-04-30 with no deprecation date
        ("node20", "2026-04-29T23:59:59Z", State::Stable),
        ("node20", "2026-04-30", State::Eol),
        // bullseye: declared deprecated, eol_on 2026-08-31
        ("bullseye", "2024-01-01", State::Deprecated),
        ("bullseye", "2026-08-30T23:59:59Z", State::Deprecated),
        ("bullseye", "2026-08-31", State::Eol),
        // node22: deprecated_on 2027-04-30, eol_on 2027-10-31
        ("node22", "2027-04-29T23:59:59Z", State::Stable),
        ("node22", "2027-04-30", State::Deprecated),
        ("node22", "2027-10-31", State::Eol),
        ("bookworm", "2030-01-01", State::Stable),
    ];
    for (name, moment, expect) in cases {
        let entry = catalog.get(name).unwrap_or_else(|| panic!("no {name}"));
        assert_eq!(
            entry.lifecycle.at(at(moment)).state,
            expect,
            "{name} at {moment}"
        );
    }
}

/// Lists at `moment` as `name state [notice]` lines.
fn listing(catalog: &Catalog, all: bool, moment: &str) -> String {
    catalog
        .list(all, at(moment))
        .images
        .iter()
        .map(|item| {
            let notice = item.lifecycle.notice.as_deref().unwrap_or("");
            format!("{} {} {notice}", item.name, item.lifecycle.state)
                .trim_end()
                .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn listing_shows_stable_entries_first_and_the_rest_on_request() {
    let catalog = demo();
    assert_eq!(
        listing(&catalog, false, "2026-11-22"),
        "\
bookworm stable
node22 stable deprecated from 2027-04-30; use node24
node24 stable
php8.2 stable
python3.12 stable"
    );
    assert_eq!(
        listing(&catalog, true, "2026-11-22"),
        "\
bookworm stable
node22 stable deprecated from 2027-04-30; use node24
node24 stable
php8.2 stable
python3.12 stable
python3.11 deprecated deprecated since 2026-07-01, end of life from 2027-01-01; use python3.12
bullseye eol end of life since 2026-08-31; use bookworm
node20 eol end of life since 2026-04-30; use node22"
    );
    assert_eq!(
        listing(&catalog, false, "2026-01-01"),
        "\
bookworm stable
node20 stable end of life from 2026-04-30; use node22
node22 stable deprecated from 2027-04-30; use node24
node24 stable
php8.2 stable
python3.11 stable deprecated from 2026-07-01; use python3.12
python3.12 stable"
    );
}

/// Resolves and prints `image [variant] channel state`, or the error message.
fn resolve(catalog: &Catalog, name: &str, variant: Option<&str>, channel: Option<&str>) -> String {
    match catalog.resolve(name, variant, channel, today()) {
        Ok(found) => format!(
            "{} {} {} {} {}",
            found.image,
            found.name,
            found.variant.as_deref().unwrap_or("-"),
            found.channel,
            found.lifecycle.state
        ),
        Err(error) => format!("error: {error}"),
    }
}

#[test]
fn names_and_aliases_resolve_to_images() {
    let catalog = demo();
    let cases: &[(&str, Option<&str>, Option<&str>, &str)] = &[
        (
            "bookworm",
            None,
            None,
            "127.0.0.1:5050/berth/base:latest bookworm - latest stable",
        ),
        // A consumer without its own variant gets the default image.
        (
            "debian12",
            Some("jobs"),
            None,
            "127.0.0.1:5050/berth/base:latest bookworm - latest stable",
        ),
        (
            "python3.11",
            Some("jobs"),
            None,
            "127.0.0.1:5050/berth/child:latest python3.11 jobs latest deprecated",
        ),
        (
            "tf-python311",
            Some("webservice"),
            None,
            "127.0.0.1:5050/berth/python311-web:latest python3.11 webservice latest deprecated",
        ),
        (
            "node24",
            Some("jobs"),
            None,
            "127.0.0.1:5050/berth/node24:latest node24 jobs latest stable",
        ),
        (
            "node24",
            Some("jobs"),
            Some("staging"),
            "127.0.0.1:5050/berth/node24:staging node24 jobs staging stable",
        ),
        (
            "node24",
            Some("jobs"),
            Some("beta"),
            "error: node24 is not published under channel \"beta\"; its channels: staging, latest",
        ),
        (
            "python3.12",
            None,
            None,
            "error: python3.12 has no default image; choose a variant: jobs, webservice",
        ),
        (
            "python3.12",
            Some("cron"),
            None,
            "error: python3.12 has no variant \"cron\" and no default image; its variants: jobs, webservice",
        ),
        (
            "pyhton3.12",
            None,
            None,
            "error: no image named \"pyhton3.12\"; did you mean python3.12, python3.11?",
        ),
        (
            "python",
            None,
            None,
            "error: no image named \"python\"; did you mean python3.12, python3.11?",
        ),
        ("ruby", None, None, "error: no image named \"ruby\""),
    ];
    for (name, variant, channel, expect) in cases {
        assert_eq!(
            resolve(&catalog, name, *variant, *channel),
            *expect,
            "{name} {variant:?} {channel:?}"
        );
    }
    let extra = catalog
        .resolve("python3.11", Some("webservice"), None, today())
        .map(|found| serde_json::Value::Object(found.extra));
    assert_eq!(
        extra,
        Ok(serde_json::json!({"wstype": "uwsgi", "port": 8000}))
    );
}

#[test]
fn any_spelling_of_a_catalog_image_finds_its_name() {
    let catalog = demo();
    let digest = format!("sha256:{}", "ab".repeat(32));
    let cases = [
        ("127.0.0.1:5050/berth/child", "python3.11 jobs latest"),
        (
            "127.0.0.1:5050/berth/child:latest",
            "python3.11 jobs latest",
        ),
        ("127.0.0.1:5050/berth/child:1", "python3.11 jobs -"),
        (
            &format!("127.0.0.1:5050/berth/child@{digest}"),
            "python3.11 jobs -",
        ),
        (
            &format!("127.0.0.1:5050/berth/node24:staging@{digest}"),
            "node24 jobs staging",
        ),
        ("127.0.0.1:5050/berth/base:1", "bookworm - -"),
        (
            "127.0.0.1:5050/berth/unknown",
            "error: 127.0.0.1:5050/berth/unknown:latest is not an image of the catalog",
        ),
        (
            "localhost:5050/berth/base",
            "error: localhost:5050/berth/base:latest is not an image of the catalog",
        ),
    ];
    for (reference, expect) in cases {
        let parsed = ImageRef::parse(reference).unwrap_or_else(|error| panic!("{error}"));
        let got = match catalog.which(&parsed, today()) {
            Ok(found) => format!(
                "{} {} {}",
                found.name,
                found.variant.as_deref().unwrap_or("-"),
                found.channel.as_deref().unwrap_or("-")
            ),
            Err(error) => format!("error: {error}"),
        };
        assert_eq!(got, expect, "{reference}");
    }
}

#[test]
fn docker_hub_spellings_are_one_repository() {
    let text = "
images:
  python:
    image: python
    variants:
      # Shares the default image's repository: the default image answers reverse lookups.
      jobs: {image: docker.io/library/python}
      web: {image: index.docker.io/library/python-web}
";
    let catalog = valid(load_text("hub.yaml", text, Format::Berth));
    let cases = [
        ("python", "python -"),
        ("docker.io/python:3.12", "python -"),
        ("registry-1.docker.io/library/python", "python -"),
        ("python-web:1", "python web"),
    ];
    for (reference, expect) in cases {
        let parsed = ImageRef::parse(reference).unwrap_or_else(|error| panic!("{error}"));
        let found = catalog
            .which(&parsed, today())
            .unwrap_or_else(|error| panic!("{error}"));
        let got = format!("{} {}", found.name, found.variant.as_deref().unwrap_or("-"));
        assert_eq!(got, expect, "{reference}");
    }
}

#[test]
fn two_variants_on_one_repository_answer_with_the_first_by_name() {
    let text = "
images:
  app:
    variants:
      web: {image: x/app}
      jobs: {image: x/app}
      cron: {image: x/app}
";
    let catalog = valid(load_text("shared.yaml", text, Format::Berth));
    let parsed = ImageRef::parse("x/app").unwrap_or_else(|error| panic!("{error}"));
    for _ in 0..3 {
        let found = catalog
            .which(&parsed, today())
            .unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(found.variant.as_deref(), Some("cron"));
    }
}

#[test]
fn a_directory_of_files_is_one_catalog() {
    let sources = [
        Source {
            name: "catalog.d/10-bases.yaml",
            text: "images:\n  bookworm: {image: x/base}\n",
        },
        Source {
            name: "catalog.d/20-python.yaml",
            text: "images:\n  python3.12: {base: bookworm, variants: {jobs: {image: x/py}}}\n",
        },
    ];
    let catalog = valid(load(&sources, Format::Berth, today()));
    assert_eq!(catalog.len(), 2);
    let shown = catalog
        .show("python3.12", today())
        .unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(shown.source.to_string(), "catalog.d/20-python.yaml:2:3");
    let base = catalog
        .show("bookworm", today())
        .unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(base.base_of, ["python3.12"]);
}

#[test]
fn toolforge_round_trips_unchanged_in_meaning() {
    let (_, imported) = toolforge();
    assert_eq!(imported.len(), 20);
    let exported = imported
        .to_toolforge_yaml(today())
        .unwrap_or_else(|error| panic!("{error}"));
    let reimported = valid(load_text("exported.yaml", &exported, Format::Toolforge));
    assert_eq!(imported.entries(), reimported.entries());
    let again = reimported
        .to_toolforge_yaml(today())
        .unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(exported, again, "exporting is deterministic");
    // Through berth's format and back: still the same model.
    let as_berth = imported.to_berth_yaml();
    let from_berth = valid(load_text("berth.yaml", &as_berth, Format::Berth));
    assert_eq!(imported.entries(), from_berth.entries());
    let back = from_berth
        .to_toolforge_yaml(today())
        .unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(exported, back);
}

#[test]
fn toolforge_export_reads_as_the_original_does() {
    let (original, imported) = toolforge();
    let exported = imported
        .to_toolforge_yaml(today())
        .unwrap_or_else(|error| panic!("{error}"));
    // Compare the two files as plain data (the JSON a consumer's YAML loader would build).
    assert_eq!(as_json(&original), as_json(&exported));
    assert!(exported.starts_with(
        "\
bookworm:
  aliases:
    - tf-bookworm
  state: stable
  variants:
    jobs-framework:
      image: docker-registry.tools.wmflabs.org/toolforge-bookworm-sssd
bullseye:
"
    ));
}

/// A YAML document as JSON, by the core schema (what a consumer's loader sees).
fn as_json(text: &str) -> serde_json::Value {
    fn convert(node: &yaml::Node) -> serde_json::Value {
        match &node.value {
            Value::Scalar(scalar) => scalar.to_json().unwrap_or_else(|error| panic!("{error}")),
            Value::Sequence(items) => items.iter().map(convert).collect(),
            Value::Mapping(pairs) => pairs
                .iter()
                .map(|(key, value)| {
                    let Value::Scalar(key) = &key.value else {
                        panic!("complex key")
                    };
                    (key.text.to_string(), convert(value))
                })
                .collect::<serde_json::Map<_, _>>()
                .into(),
        }
    }
    let root = yaml::parse(text)
        .unwrap_or_else(|error| panic!("{error:?}"))
        .unwrap_or_else(|| panic!("empty document"));
    convert(&root)
}

#[test]
fn berth_export_round_trips() {
    let catalog = demo();
    let exported = catalog.to_berth_yaml();
    let reloaded = valid(load_text("exported.yaml", &exported, Format::Berth));
    assert_eq!(catalog.entries(), reloaded.entries());
    assert_eq!(exported, reloaded.to_berth_yaml());
}

#[test]
fn berth_to_toolforge_folds_dates_into_the_state_of_the_day() {
    let text = "
images:
  python3.11:
    aliases: [tf-python311]
    deprecated_on: 2026-07-01
    eol_on: 2027-01-01
    replacement: python3.12
    variants: {jobs-framework: {image: x/py311}}
  python3.12:
    variants: {jobs-framework: {image: x/py312}, webservice: {image: x/py312-web, extra: {wstype: uwsgi}}}
";
    let catalog = valid(load_text("c.yaml", text, Format::Berth));
    let state_on = |day: &str| {
        let exported = catalog
            .to_toolforge_yaml(at(day))
            .unwrap_or_else(|error| panic!("{error}"));
        as_json(&exported)["python3.11"]["state"].clone()
    };
    assert_eq!(state_on("2026-06-30"), "stable");
    assert_eq!(state_on("2026-07-01"), "deprecated");
    assert_eq!(state_on("2027-01-01"), "eol");
    // The demo catalog's bases have no variants: Toolforge consumers could not pick them.
    assert_eq!(
        demo().to_toolforge_yaml(today()),
        Err(ExportError::NoVariants {
            entries: vec!["bookworm".to_string(), "bullseye".to_string()]
        })
    );
}

#[test]
fn configmap_holds_the_toolforge_file() {
    let (_, catalog) = toolforge();
    let manifest = catalog
        .to_configmap_yaml(today(), "image-config", Some("tf-public"))
        .unwrap_or_else(|error| panic!("{error}"));
    let json = as_json(&manifest);
    assert_eq!(json["apiVersion"], "v1");
    assert_eq!(json["kind"], "ConfigMap");
    assert_eq!(json["metadata"]["name"], "image-config");
    assert_eq!(json["metadata"]["namespace"], "tf-public");
    let embedded = json["data"]["images-v1.yaml"].as_str().unwrap_or_default();
    assert_eq!(Ok(embedded.to_string()), catalog.to_toolforge_yaml(today()));
    assert!(
        catalog
            .to_configmap_yaml(today(), "Image_Config", None)
            .is_err()
    );
}

#[test]
fn the_schema_knows_exactly_the_fields_the_reader_accepts() {
    let schema: serde_json::Value =
        serde_json::from_str(SCHEMA_JSON).unwrap_or_else(|error| panic!("schema: {error}"));
    let keys = |value: &serde_json::Value| -> Vec<String> {
        let mut keys: Vec<String> = value
            .as_object()
            .map(|map| map.keys().cloned().collect())
            .unwrap_or_default();
        keys.sort();
        keys
    };
    let sorted = |fields: &[&str]| -> Vec<String> {
        let mut fields: Vec<String> = fields.iter().map(ToString::to_string).collect();
        fields.sort();
        fields
    };
    let defs = &schema["$defs"];
    assert_eq!(keys(&schema["properties"]), sorted(FILE_FIELDS));
    assert_eq!(keys(&defs["entry"]["properties"]), sorted(ENTRY_FIELDS));
    assert_eq!(keys(&defs["variant"]["properties"]), sorted(VARIANT_FIELDS));
    let owner = &defs["entry"]["properties"]["owners"]["items"]["oneOf"][1]["properties"];
    assert_eq!(keys(owner), sorted(OWNER_FIELDS));
}
