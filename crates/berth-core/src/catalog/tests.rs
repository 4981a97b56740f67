//! Validation rules, one case each, through one `check(files, expect)` helper: the expected text
//! is every diagnostic as `berth catalog check` prints it (file:line:column: severity: field:
//! message), so the tests pin behaviour, not the API.

use chrono::{DateTime, Utc};

use super::{Format, Source, load};

/// The moment the tests evaluate at.
fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-22T12:00:00Z")
        .map(|moment| moment.to_utc())
        .unwrap_or_default()
}

fn check_format(format: Format, files: &[(&str, &str)], expect: &str) {
    let sources: Vec<Source<'_>> = files
        .iter()
        .map(|(name, text)| Source { name, text })
        .collect();
    let loaded = load(&sources, format, now());
    let got: Vec<String> = loaded.diagnostics.iter().map(ToString::to_string).collect();
    assert_eq!(got.join("\n"), expect.trim(), "files: {files:#?}");
    let has_errors = loaded.diagnostics.iter().any(|d| d.is_error());
    assert_eq!(
        loaded.catalog.is_some(),
        !has_errors,
        "a catalog exactly when there is no error"
    );
}

/// Loads `files` (name, text) as one berth catalog and compares every diagnostic with `expect`.
fn check(files: &[(&str, &str)], expect: &str) {
    check_format(Format::Berth, files, expect);
}

fn check_one(text: &str, expect: &str) {
    check(&[("c.yaml", text)], expect);
}

#[test]
fn a_valid_catalog_has_no_diagnostics() {
    check_one(
        "
images:
  bookworm:
    image: 127.0.0.1:5050/berth/base
  python3.12:
    aliases: [python3]
    base: bookworm
    variants:
      jobs: {image: 127.0.0.1:5050/berth/child}
",
        "",
    );
}

#[test]
fn unknown_fields_at_every_level() {
    check_one(
        "
images:
  a:
    imgae: x
    variants:
      jobs:
        image: a/jobs
        extras: {}
    owners:
      - {name: me, mail: me@example.org}
version: 1
",
        "
c.yaml:4:5: error: images.a.imgae: unknown field `imgae`; did you mean `image`?
c.yaml:8:9: error: images.a.variants.jobs.extras: unknown field `extras`; did you mean `extra`?
c.yaml:10:20: error: images.a.owners[0].mail: unknown field `mail`; expected one of: name, contact
c.yaml:11:1: error: version: unknown field `version`; expected one of: images
",
    );
}

#[test]
fn duplicate_canonical_names_in_a_file_and_across_files() {
    check(
        &[
            (
                "one.yaml",
                "images:\n  a: {image: x/a}\n  a: {image: x/b}\n",
            ),
            ("two.yaml", "images:\n  a: {image: x/c}\n"),
        ],
        "
one.yaml:3:3: error: images.a: duplicate canonical name \"a\" (first at one.yaml:2:3)
two.yaml:2:3: error: images.a: duplicate canonical name \"a\" (first at one.yaml:2:3)
",
    );
}

#[test]
fn aliases_used_twice_or_equal_to_a_name() {
    check_one(
        "
images:
  a:
    aliases: [old-a, b, a, old-a]
    image: x/a
  b:
    aliases: [old-a]
    image: x/b
",
        "
c.yaml:4:22: error: images.a.aliases[1]: alias \"b\" is the canonical name of another entry (c.yaml:6:3)
c.yaml:4:25: error: images.a.aliases[2]: alias \"a\" is the entry's own name
c.yaml:4:28: error: images.a.aliases[3]: alias \"old-a\" listed twice
c.yaml:7:15: error: images.b.aliases[0]: alias \"old-a\" is already an alias of \"a\" (c.yaml:3:3)
",
    );
}

#[test]
fn replacement_and_base_must_name_entries() {
    check_one(
        "
images:
  python3.11:
    aliases: [py311]
    replacement: pyhton3.12
    base: bookwrm
    image: x/python311
  python3.12:
    replacement: py311
    base: python3.12
    image: x/python312
",
        "
c.yaml:5:18: error: images.python3.11.replacement: \"pyhton3.12\" names no entry in the catalog; did you mean python3.12, python3.11?
c.yaml:6:11: error: images.python3.11.base: \"bookwrm\" names no entry in the catalog
c.yaml:9:18: error: images.python3.12.replacement: \"py311\" is an alias of \"python3.11\"; name the entry itself
c.yaml:10:11: error: images.python3.12.base: an image cannot be built on itself
",
    );
}

#[test]
fn cycles_in_base_are_reported_once() {
    check_one(
        "
images:
  c: {base: a, image: x/c}
  a: {base: b, image: x/a}
  b: {base: c, image: x/b}
  d: {base: a, image: x/d}
",
        "
c.yaml:4:13: error: images.a.base: base cycle: a → b → c → a
",
    );
}

#[test]
fn a_replacement_must_not_be_eol() {
    check_one(
        "
images:
  old:
    state: deprecated
    replacement: older
    image: x/old
  older:
    state: eol
    replacement: new
    image: x/older
  new: {image: x/new}
",
        "
c.yaml:5:18: error: images.old.replacement: replacement \"older\" is itself eol
",
    );
}

#[test]
fn invalid_image_references() {
    check_one(
        "
images:
  a:
    image: UPPER/case
    variants:
      jobs: {image: 'x/a:1.0'}
      web: {image: 'x/a@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef'}
      none: {}
",
        "
c.yaml:4:12: error: images.a.image: invalid image reference \"UPPER/case\": repository name must be lowercase
c.yaml:6:21: error: images.a.variants.jobs.image: \"x/a:1.0\" has a tag or digest; name the repository only (tags come from `channels`)
c.yaml:7:20: error: images.a.variants.web.image: \"x/a@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\" has a tag or digest; name the repository only (tags come from `channels`)
c.yaml:8:13: error: images.a.variants.none.image: missing field: a variant needs an image
",
    );
}

#[test]
fn dates_that_are_not_dates_and_out_of_order() {
    check_one(
        "
images:
  a:
    deprecated_on: 2027-13-01
    eol_on: next year
    replacement: b
    image: x/a
  b:
    deprecated_on: 2027-06-01
    eol_on: 2027-01-01
    replacement: a
    image: x/b
",
        "
c.yaml:4:20: error: images.a.deprecated_on: \"2027-13-01\" is not a date (YYYY-MM-DD)
c.yaml:5:13: error: images.a.eol_on: \"next year\" is not a date (YYYY-MM-DD)
c.yaml:10:13: error: images.b.eol_on: eol_on 2027-01-01 is before deprecated_on 2027-06-01
",
    );
}

#[test]
fn one_repository_belongs_to_one_entry() {
    check_one(
        "
images:
  a:
    variants:
      jobs: {image: docker.io/library/python}
      web: {image: python}
  b:
    image: index.docker.io/python
",
        "
c.yaml:8:12: error: images.b.image: repository python is already the image of \"a\" (variant jobs); one repository belongs to one entry
",
    );
}

#[test]
fn wrong_types_and_values() {
    check_one(
        "
images:
  a:
    state: retired
    aliases: not-a-list
    channels: []
    description: [x]
    variants:
      'bad name': {image: x/a}
  '-b': {image: x/b}
  c: just-text
",
        "
c.yaml:4:12: error: images.a.state: unknown state \"retired\"; expected stable, deprecated or eol
c.yaml:5:14: error: images.a.aliases: expected a list, found text
c.yaml:6:15: error: images.a.channels: an image needs at least one channel (leave the field out for [latest])
c.yaml:7:18: error: images.a.description: expected text, found a list
c.yaml:9:7: error: images.a.variants.bad name: invalid name \"bad name\": only letters, digits, '.', '_' and '-' are allowed
c.yaml:10:3: error: images.-b: invalid name \"-b\": must start with a letter or digit
c.yaml:11:6: error: images.c: expected a mapping, found text
",
    );
}

#[test]
fn an_entry_needs_an_image() {
    check_one(
        "
images:
  a:
    description: nothing to run
",
        "
c.yaml:3:3: error: images.a: an entry needs an `image` or `variants`
",
    );
}

#[test]
fn files_that_hold_no_catalog() {
    check(
        &[("empty.yaml", "")],
        "empty.yaml:1:1: error: the file is empty",
    );
    check(
        &[("none.yaml", "images: {}\n")],
        "none.yaml:1:1: error: the catalog has no images",
    );
    check(
        &[("broken.yaml", "images:\n  a: {image: x/a\n")],
        "broken.yaml:3:1: error: invalid YAML: while parsing a flow mapping, did not find expected ',' or '}'",
    );
    check(
        &[("list.yaml", "- a\n")],
        "list.yaml:1:1: error: expected a mapping, found a list",
    );
    check(
        &[("other.yaml", "kind: x\n")],
        "
other.yaml:1:1: error: kind: unknown field `kind`; expected one of: images
other.yaml:1:1: error: images: missing field: the catalog's entries go under `images`
",
    );
}

#[test]
fn fields_given_twice() {
    check_one(
        "
images:
  a:
    image: x/a
    image: x/b
",
        "
c.yaml:5:5: error: images.a.image: field given twice (first at line 4, column 5)
",
    );
}

#[test]
fn warnings_do_not_reject_the_catalog() {
    check_one(
        "
images:
  gone:
    state: eol
    image: x/gone
  going:
    eol_on: 2027-06-01
    image: x/going
  child:
    base: ended
    image: x/child
  ended:
    eol_on: 2026-01-01
    replacement: next
    image: x/ended
  next:
    deprecated_on: 2026-02-01
    replacement: newest
    image: x/next
  newest: {image: x/newest}
  pointer:
    deprecated_on: 2026-01-01
    replacement: next
    image: x/pointer
",
        "
c.yaml:3:3: warning: images.gone: is eol but names no replacement for its users
c.yaml:6:3: warning: images.going: becomes eol on 2027-06-01 but names no replacement for its users
c.yaml:10:11: warning: images.child.base: built on \"ended\", which is eol
c.yaml:14:18: warning: images.ended.replacement: replacement \"next\" is itself deprecated; point at \"newest\" instead
c.yaml:23:18: warning: images.pointer.replacement: replacement \"next\" is itself deprecated; point at \"newest\" instead
",
    );
}

#[test]
fn toolforge_files_are_checked_the_same_way() {
    check_format(
        Format::Toolforge,
        &[(
            "images-v1.yaml",
            "
node12:
  aliases: [tf-node12]
  state: deprecated
  variants:
    jobs-framework: {image: docker-registry.tools.wmflabs.org/toolforge-node12-sssd-base}
node16:
  aliases: [tf-node12]
  variants:
    jobs-framework: {image: docker-registry.tools.wmflabs.org/toolforge-node16-sssd-base}
  replacement: node18
",
        )],
        "
images-v1.yaml:2:1: warning: node12: is deprecated but names no replacement for its users
images-v1.yaml:7:1: error: node16.state: missing field: Toolforge consumers read `state`
images-v1.yaml:8:13: error: node16.aliases[0]: alias \"tf-node12\" is already an alias of \"node12\" (images-v1.yaml:2:1)
images-v1.yaml:11:3: error: node16.replacement: unknown field `replacement`; expected one of: aliases, state, variants
",
    );
}

#[test]
fn smaller_rules() {
    check_one(
        "
images:
  a:
    replacement: a
    state: deprecated
    channels: [latest, latest, -bad]
    owners:
      - {contact: someone@example.org}
      - [nested]
    variants:
      jobs: {image: x/a, extra: [1, 2]}
      jobs: {image: x/a2}
      web: {image: x/a-web, extra: {ratio: .inf, size: 1, size: 2}}
",
        "
c.yaml:4:18: error: images.a.replacement: an entry cannot replace itself
c.yaml:6:24: error: images.a.channels[1]: channel \"latest\" listed twice
c.yaml:6:32: error: images.a.channels[2]: invalid tag \"-bad\": must start with a letter, digit or '_'
c.yaml:8:9: error: images.a.owners[0].name: missing field: an owner needs a name
c.yaml:9:9: error: images.a.owners[1]: expected a name or a mapping with `name` and `contact`
c.yaml:11:33: error: images.a.variants.jobs.extra: expected a mapping
c.yaml:12:7: error: images.a.variants.jobs: variant given twice (first at line 11, column 7)
c.yaml:13:44: error: images.a.variants.web.extra.ratio: \".inf\" is not a finite number
c.yaml:13:59: error: images.a.variants.web.extra.size: key given twice
",
    );
}

/// issue 15, item 6: a `*.yaml` link to /etc/shadow printed its lines as unknown fields (and
/// `berth serve` published them on /api/v1/status). A diagnostic quotes a key from the file as a
/// short, escaped excerpt only.
#[test]
fn unknown_keys_are_quoted_as_short_escaped_excerpts() {
    check_one(
        "root:$6$saltsaltsaltsalt$hashhashhashhashhashhashhashhashhash:19000:0:99999:7::\n\
         \"\\e[2Jx\": 1\n",
        "
c.yaml:1:1: error: root:$6$saltsaltsaltsalt$hashhas…: unknown field `root:$6$saltsaltsaltsalt$hashhas…`; expected one of: images
c.yaml:1:1: error: images: missing field: the catalog's entries go under `images`
c.yaml:2:1: error: \\u{1b}[2Jx: unknown field `\\u{1b}[2Jx`; expected one of: images
",
    );
}

/// issue 15, item 20: invalid UTF-8 was a fault (exit 3) with no place; it is a bad file with
/// the line and column of the first byte that is not UTF-8.
#[test]
fn invalid_utf8_is_a_bad_file_with_its_line() {
    let bytes = b"images:\n  caf\xc3\xa9: {image: x}\n  bad\xff: {}\n".to_vec();
    let diagnostic = super::read::utf8_text("c.yaml", bytes).unwrap_err();
    assert_eq!(
        diagnostic.to_string(),
        "c.yaml:3:6: error: not UTF-8 text (byte 0xff); save the file as UTF-8"
    );
    assert_eq!(
        super::read::utf8_text("c.yaml", "café\n".as_bytes().to_vec()).as_deref(),
        Ok("café\n")
    );
}
