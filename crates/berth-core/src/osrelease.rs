//! os-release parsing and the OS identity berth derives from it: `debian-12-amd64`, and the libc
//! family an image runs on.
//!
//! Pure: the text comes from `berth-layers`, which reads it out of an image's layers.
//!
//! # Parsing
//! The freedesktop `os-release(5)` format: one `KEY=value` per line, `#` comment lines, blank
//! lines. A value is a shell word: unquoted (a backslash escapes the next character),
//! `'single quoted'` (literal) or `"double quoted"` (a backslash escapes `\ " $ `` ` ``), and
//! segments may be concatenated. What follows the word on the line is ignored. Lines that are
//! not assignments, keys that are not `[A-Za-z_][A-Za-z0-9_]*`, and unterminated quotes are
//! skipped, as systemd skips them: the text comes from images, not from operators.
//!
//! # Identity: `<id>-<version>-<architecture>`
//! - `id`: `ID`, lowercased (`linux` when absent, as the spec says).
//! - `version`, from `VERSION_ID` by distribution:
//!
//!   | `ID`                                                      | rule        | example           |
//!   |-----------------------------------------------------------|-------------|-------------------|
//!   | ubuntu                                                    | as written  | `22.04`           |
//!   | debian, rhel, centos, rocky, almalinux, ol, amzn, fedora, or `ID_LIKE` has rhel | major | `9.4` → `9` |
//!   | everything else (alpine, opensuse-leap, photon, …)        | major.minor | `3.20.3` → `3.20` |
//!
//!   The rules are checked top down, by `ID` only (Ubuntu is `ID_LIKE=debian` yet keeps
//!   `22.04`).
//!
//!   Without `VERSION_ID` (Debian testing and sid, Arch): `VERSION_CODENAME` (`trixie`), then
//!   `BUILD_ID` (`rolling`); with none of them the version part is left out (`arch-amd64`).
//! - `architecture`: see [`Architecture`]: `amd64`, `arm64`, `armv7`, `armv6`, `armv5`, `i386`,
//!   `ppc64le`, `s390x`, `riscv64`; anything else as given, lowercased.
//!
//! Each part keeps only `[a-z0-9._]`; other characters become `_`, so `-` only ever separates.
//! (`opensuse-leap` is the exception the spec allows in `ID`: it is kept.)
//!
//! # libc family
//! From the dynamic loaders present in the image ([`Architecture::loaders`]) and, when both
//! families are present, from the distribution (see [`libc_family`]).

use std::collections::BTreeMap;
use std::fmt;

/// The fields of an os-release file berth uses, plus every field as written.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct OsRelease {
    /// `ID`, lowercased; `linux` when the file has none (os-release(5)).
    pub id: String,
    /// `ID_LIKE`, split on whitespace: the distributions this one derives from, closest first.
    pub id_like: Vec<String>,
    /// `NAME`; `Linux` when the file has none.
    pub name: String,
    /// `VERSION_ID`: the version the identity is derived from.
    pub version_id: Option<String>,
    /// `VERSION_CODENAME`: stands in for the version on Debian testing and sid.
    pub version_codename: Option<String>,
    /// `PRETTY_NAME`, for people.
    pub pretty_name: Option<String>,
    /// `VARIANT_ID` (`container`, `server`): distinguishes editions of one release.
    pub variant_id: Option<String>,
    /// `BUILD_ID`: rolling distributions (Arch: `rolling`) have nothing else.
    pub build_id: Option<String>,
    /// Every assignment in the file, the ones above included, so nothing read is lost.
    pub fields: BTreeMap<String, String>,
}

impl OsRelease {
    /// Parses os-release text. Never fails: lines that do not parse are skipped.
    pub fn parse(text: &str) -> OsRelease {
        let fields: BTreeMap<String, String> = text.lines().filter_map(parse_line).collect();
        let get = |key: &str| fields.get(key).filter(|value| !value.is_empty()).cloned();
        OsRelease {
            id: get("ID").map_or_else(|| "linux".to_string(), |id| id.to_ascii_lowercase()),
            id_like: get("ID_LIKE")
                .map(|like| {
                    like.split_whitespace()
                        .map(str::to_ascii_lowercase)
                        .collect()
                })
                .unwrap_or_default(),
            name: get("NAME").unwrap_or_else(|| "Linux".to_string()),
            version_id: get("VERSION_ID"),
            version_codename: get("VERSION_CODENAME"),
            pretty_name: get("PRETTY_NAME"),
            variant_id: get("VARIANT_ID"),
            build_id: get("BUILD_ID"),
            fields,
        }
    }

    /// Whether this distribution is `name` or derives from it (`ID` or `ID_LIKE`).
    pub fn is_like(&self, name: &str) -> bool {
        self.id == name || self.id_like.iter().any(|like| like == name)
    }

    /// Whether the distribution's own libc is musl (Alpine and its relatives).
    pub fn is_musl_distribution(&self) -> bool {
        MUSL_DISTRIBUTIONS.iter().any(|name| self.is_like(name))
    }

    /// The version part of the identity, by the rules in the module documentation.
    pub fn identity_version(&self) -> Option<String> {
        let Some(version) = &self.version_id else {
            return self
                .version_codename
                .as_ref()
                .or(self.build_id.as_ref())
                .map(|version| sanitize(version));
        };
        let mut parts = version.split('.');
        let major = parts.next().unwrap_or_default();
        let major_only = MAJOR_ONLY.contains(&self.id.as_str()) || self.is_like("rhel");
        let shortened = if KEEP_WHOLE.contains(&self.id.as_str()) {
            version.clone()
        } else if major_only {
            major.to_string()
        } else {
            match parts.next() {
                Some(minor) => format!("{major}.{minor}"),
                None => major.to_string(),
            }
        };
        Some(sanitize(&shortened))
    }
}

/// Distributions (by `ID`; and any whose `ID_LIKE` has `rhel`) whose identity keeps only the
/// major version: their minor versions are point releases of one platform.
const MAJOR_ONLY: &[&str] = &[
    "debian",
    "rhel",
    "centos",
    "rocky",
    "almalinux",
    "ol",
    "amzn",
    "fedora",
];
/// Distributions whose whole `VERSION_ID` names the platform (`22.04` is not `22`).
const KEEP_WHOLE: &[&str] = &["ubuntu"];
/// Distributions (by `ID` or `ID_LIKE`) built on musl.
const MUSL_DISTRIBUTIONS: &[&str] = &["alpine", "postmarketos", "chimera", "adelie"];

/// One `KEY=value` line, or `None` for comments, blanks and lines that do not parse.
fn parse_line(line: &str) -> Option<(String, String)> {
    let line = line.trim_start();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let (key, rest) = line.split_once('=')?;
    let mut key_chars = key.chars();
    let first = key_chars.next()?;
    let valid_key = (first.is_ascii_alphabetic() || first == '_')
        && key_chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid_key {
        return None;
    }
    Some((key.to_string(), parse_word(rest)?))
}

/// The shell word at the start of `text`; `None` when a quote is not closed.
fn parse_word(text: &str) -> Option<String> {
    let mut value = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => loop {
                match chars.next()? {
                    '"' => break,
                    '\\' => match chars.next()? {
                        escaped @ ('\\' | '"' | '$' | '`') => value.push(escaped),
                        other => {
                            value.push('\\');
                            value.push(other);
                        }
                    },
                    other => value.push(other),
                }
            },
            '\'' => loop {
                match chars.next()? {
                    '\'' => break,
                    other => value.push(other),
                }
            },
            '\\' => value.push(chars.next().unwrap_or('\\')),
            c if c.is_whitespace() => break,
            other => value.push(other),
        }
    }
    Some(value)
}

/// Lowercase, with characters outside `[a-z0-9._]` replaced by `_`.
fn sanitize(part: &str) -> String {
    part.chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A CPU architecture as the identity names it, from an OCI platform's `architecture` and
/// `variant` (`arm` + `v7` is `armv7`; `arm64` + `v8` is `arm64`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Architecture {
    Amd64,
    Arm64,
    ArmV7,
    ArmV6,
    ArmV5,
    I386,
    Ppc64le,
    S390x,
    Riscv64,
    /// Anything else, sanitized; no loader paths are known for it.
    Other(String),
}

impl Architecture {
    /// From OCI platform fields. Accepts the kernel's spellings too (`x86_64`, `aarch64`).
    /// `arm` without a variant is `armv7`, as containerd normalizes it.
    pub fn from_platform(architecture: &str, variant: Option<&str>) -> Architecture {
        let architecture = architecture.to_ascii_lowercase();
        let variant = variant.map(str::to_ascii_lowercase);
        match (architecture.as_str(), variant.as_deref()) {
            ("amd64" | "x86_64", _) => Architecture::Amd64,
            ("arm64" | "aarch64", _) => Architecture::Arm64,
            ("arm", Some("v5")) | ("armel", _) => Architecture::ArmV5,
            ("arm", Some("v6")) => Architecture::ArmV6,
            ("arm", _) | ("armhf", _) => Architecture::ArmV7,
            ("386" | "i386" | "i686", _) => Architecture::I386,
            ("ppc64le", _) => Architecture::Ppc64le,
            ("s390x", _) => Architecture::S390x,
            ("riscv64", _) => Architecture::Riscv64,
            (other, _) => Architecture::Other(sanitize(other)),
        }
    }

    /// The architecture part of an identity.
    pub fn as_str(&self) -> &str {
        match self {
            Architecture::Amd64 => "amd64",
            Architecture::Arm64 => "arm64",
            Architecture::ArmV7 => "armv7",
            Architecture::ArmV6 => "armv6",
            Architecture::ArmV5 => "armv5",
            Architecture::I386 => "i386",
            Architecture::Ppc64le => "ppc64le",
            Architecture::S390x => "s390x",
            Architecture::Riscv64 => "riscv64",
            Architecture::Other(name) => name,
        }
    }

    /// Where this architecture's dynamic loaders live (the ABI's `PT_INTERP` paths, relative
    /// to the image root): what a program needs to run, so what tells the libc family.
    pub fn loaders(&self) -> &'static [Loader] {
        match self {
            Architecture::Amd64 => &AMD64,
            Architecture::Arm64 => &ARM64,
            Architecture::ArmV7 | Architecture::ArmV6 => &ARMHF,
            Architecture::ArmV5 => &ARMEL,
            Architecture::I386 => &I386,
            Architecture::Ppc64le => &PPC64LE,
            Architecture::S390x => &S390X,
            Architecture::Riscv64 => &RISCV64,
            Architecture::Other(_) => &[],
        }
    }
}

impl fmt::Display for Architecture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A dynamic loader path and the libc it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Loader {
    pub libc: LibcFamily,
    /// Relative to the image root, without a leading `/`.
    pub path: &'static str,
}

const fn glibc(path: &'static str) -> Loader {
    Loader {
        libc: LibcFamily::Glibc,
        path,
    }
}

const fn musl(path: &'static str) -> Loader {
    Loader {
        libc: LibcFamily::Musl,
        path,
    }
}

const AMD64: [Loader; 2] = [
    glibc("lib64/ld-linux-x86-64.so.2"),
    musl("lib/ld-musl-x86_64.so.1"),
];
const ARM64: [Loader; 2] = [
    glibc("lib/ld-linux-aarch64.so.1"),
    musl("lib/ld-musl-aarch64.so.1"),
];
const ARMHF: [Loader; 3] = [
    glibc("lib/ld-linux-armhf.so.3"),
    musl("lib/ld-musl-armhf.so.1"),
    musl("lib/ld-musl-armv7.so.1"),
];
const ARMEL: [Loader; 2] = [glibc("lib/ld-linux.so.3"), musl("lib/ld-musl-arm.so.1")];
const I386: [Loader; 2] = [glibc("lib/ld-linux.so.2"), musl("lib/ld-musl-i386.so.1")];
const PPC64LE: [Loader; 2] = [
    glibc("lib64/ld64.so.2"),
    musl("lib/ld-musl-powerpc64le.so.1"),
];
const S390X: [Loader; 2] = [glibc("lib/ld64.so.1"), musl("lib/ld-musl-s390x.so.1")];
const RISCV64: [Loader; 2] = [
    glibc("lib/ld-linux-riscv64-lp64d.so.1"),
    musl("lib/ld-musl-riscv64.so.1"),
];

/// The C library an image's programs are linked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LibcFamily {
    Glibc,
    Musl,
    /// No loader of either family: static binaries only (`scratch`, distroless/static), or an
    /// architecture berth knows no loader paths for.
    Unknown,
}

/// What is known so far about one libc family's loaders in an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    Present,
    Absent,
    /// Not known yet: layers that could still add or hide a loader have not been read.
    Pending,
}

/// Decides the libc family, or `None` while it cannot be decided yet.
///
/// One family present: that one. Neither: `Unknown`. Both (Debian with the `musl` package,
/// Alpine with `gcompat`): the distribution's own, musl for Alpine and its relatives
/// ([`OsRelease::is_musl_distribution`]), glibc otherwise. `musl_distribution` is `None` while
/// the os-release is not known yet, `Some(false)` when the image has none.
///
/// The rule lets a reader stop early: on Debian, glibc present settles it whatever musl is.
pub fn libc_family(
    glibc: Presence,
    musl: Presence,
    musl_distribution: Option<bool>,
) -> Option<LibcFamily> {
    use Presence::{Absent, Pending, Present};
    let by_distribution = |musl_distribution: bool| match musl_distribution {
        true => LibcFamily::Musl,
        false => LibcFamily::Glibc,
    };
    match (glibc, musl) {
        (Present, Absent) => Some(LibcFamily::Glibc),
        (Absent, Present) => Some(LibcFamily::Musl),
        (Absent, Absent) => Some(LibcFamily::Unknown),
        (Present, Present) => musl_distribution.map(by_distribution),
        (Present, Pending) => (musl_distribution == Some(false)).then_some(LibcFamily::Glibc),
        (Pending, Present) => (musl_distribution == Some(true)).then_some(LibcFamily::Musl),
        (Pending, _) | (_, Pending) => None,
    }
}

/// A stable name for what an image is: `debian-12-amd64`, `alpine-3.20-arm64`.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct OsIdentity {
    /// The whole identifier, `<id>-<version>-<architecture>` (see the module documentation).
    pub id: String,
}

impl OsIdentity {
    pub fn derive(os_release: &OsRelease, architecture: &Architecture) -> OsIdentity {
        let distribution = os_release
            .id
            .chars()
            .map(|c| {
                if c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-') {
                    c
                } else {
                    '_'
                }
            })
            .collect::<String>();
        let id = match os_release.identity_version() {
            Some(version) => format!("{distribution}-{version}-{architecture}"),
            None => format!("{distribution}-{architecture}"),
        };
        OsIdentity { id }
    }

    pub fn as_str(&self) -> &str {
        &self.id
    }
}

impl fmt::Display for OsIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `text` and derives the identity for `architecture` (`arch` or `arch/variant`).
    fn identity(text: &str, platform: &str) -> String {
        let (architecture, variant) = match platform.split_once('/') {
            Some((architecture, variant)) => (architecture, Some(variant)),
            None => (platform, None),
        };
        let architecture = Architecture::from_platform(architecture, variant);
        OsIdentity::derive(&OsRelease::parse(text), &architecture).id
    }

    const DEBIAN_12: &str = r#"PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
HOME_URL="https://www.debian.org/"
"#;
    const DEBIAN_TRIXIE_SID: &str = r#"PRETTY_NAME="Debian GNU/Linux trixie/sid"
NAME="Debian GNU/Linux"
VERSION_CODENAME=trixie
ID=debian
"#;
    const ALPINE_3_20: &str = "NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.20.3\n\
        PRETTY_NAME=\"Alpine Linux v3.20\"\n";
    const UBUNTU_22_04: &str = "NAME=\"Ubuntu\"\nVERSION_ID=\"22.04\"\nID=ubuntu\n\
        ID_LIKE=debian\nVERSION_CODENAME=jammy\n";
    const ROCKY_9: &str = "NAME=\"Rocky Linux\"\nVERSION_ID=\"9.4\"\nID=\"rocky\"\n\
        ID_LIKE=\"rhel centos fedora\"\n";
    const UBI_8: &str = "NAME=\"Red Hat Enterprise Linux\"\nID=\"rhel\"\nVERSION_ID=\"8.10\"\n";
    const ARCH: &str = "NAME=\"Arch Linux\"\nID=arch\nBUILD_ID=rolling\n";
    const OPENSUSE_LEAP: &str = "NAME=\"openSUSE Leap\"\nVERSION_ID=\"15.5\"\n\
        ID=\"opensuse-leap\"\nID_LIKE=\"suse opensuse\"\n";

    #[test]
    fn identities_follow_the_per_distribution_rules() {
        let cases = [
            (DEBIAN_12, "amd64", "debian-12-amd64"),
            (DEBIAN_12, "arm64/v8", "debian-12-arm64"),
            (DEBIAN_12, "arm/v7", "debian-12-armv7"),
            (DEBIAN_12, "arm", "debian-12-armv7"),
            (DEBIAN_12, "arm/v5", "debian-12-armv5"),
            (DEBIAN_12, "386", "debian-12-i386"),
            (DEBIAN_TRIXIE_SID, "amd64", "debian-trixie-amd64"),
            (ALPINE_3_20, "arm64", "alpine-3.20-arm64"),
            (ALPINE_3_20, "arm/v6", "alpine-3.20-armv6"),
            (UBUNTU_22_04, "x86_64", "ubuntu-22.04-amd64"),
            (ROCKY_9, "aarch64", "rocky-9-arm64"),
            (UBI_8, "s390x", "rhel-8-s390x"),
            (ARCH, "amd64", "arch-rolling-amd64"),
            (OPENSUSE_LEAP, "ppc64le", "opensuse-leap-15.5-ppc64le"),
            (
                "ID=wolfi\nVERSION_ID=20230201\n",
                "amd64",
                "wolfi-20230201-amd64",
            ),
            (
                "ID=Photon\nVERSION_ID=5.0\n",
                "riscv64",
                "photon-5.0-riscv64",
            ),
            ("ID=gentoo\n", "amd64", "gentoo-amd64"),
            ("NAME=nothing\n", "amd64", "linux-amd64"),
            (
                "ID=odd\nVERSION_ID=\"1.2 beta/3\"\n",
                "mips64le",
                "odd-1.2_beta_3-mips64le",
            ),
        ];
        for (text, platform, expect) in cases {
            assert_eq!(identity(text, platform), expect, "{platform}: {text}");
        }
    }

    /// Parses `text` and compares `KEY=value` lines of every field with `expect`.
    fn check_fields(text: &str, expect: &[(&str, &str)]) {
        let parsed = OsRelease::parse(text);
        let got: Vec<(&str, &str)> = parsed
            .fields
            .iter()
            .map(|(key, value)| (key.as_str(), value.as_str()))
            .collect();
        assert_eq!(got, expect, "{text:?}");
    }

    #[test]
    fn parses_the_shell_subset_of_os_release() {
        check_fields("ID=debian", &[("ID", "debian")]);
        check_fields("# comment\n\n  ID=x\n", &[("ID", "x")]);
        check_fields("NAME=\"Debian GNU/Linux\"", &[("NAME", "Debian GNU/Linux")]);
        check_fields(
            "NAME='single $quoted \\n'",
            &[("NAME", "single $quoted \\n")],
        );
        check_fields(
            r#"NAME="a \"quoted\" \$word \\ \` \n""#,
            &[("NAME", r#"a "quoted" $word \ ` \n"#)],
        );
        check_fields(
            r"NAME=unquoted\ with\ escapes",
            &[("NAME", "unquoted with escapes")],
        );
        check_fields(r#"NAME="con"'cat'enated"#, &[("NAME", "concatenated")]);
        check_fields("NAME=value # trailing comment", &[("NAME", "value")]);
        check_fields("NAME=\"\"", &[("NAME", "")]);
        check_fields("NAME=\"unterminated\nID=kept", &[("ID", "kept")]);
        check_fields(
            "not an assignment\n1KEY=x\nKEY-X=y\n=z\nOK_1=v",
            &[("OK_1", "v")],
        );
        check_fields("ID=a\nID=b", &[("ID", "b")]);
        check_fields(
            "ID=a\r\nVERSION_ID=1\r\n",
            &[("ID", "a"), ("VERSION_ID", "1")],
        );
    }

    #[test]
    fn typed_fields_and_their_defaults() {
        let debian = OsRelease::parse(DEBIAN_12);
        assert_eq!(debian.id, "debian");
        assert_eq!(debian.name, "Debian GNU/Linux");
        assert_eq!(debian.version_id.as_deref(), Some("12"));
        assert_eq!(debian.version_codename.as_deref(), Some("bookworm"));
        assert_eq!(
            debian.pretty_name.as_deref(),
            Some("Debian GNU/Linux 12 (bookworm)")
        );
        let rocky = OsRelease::parse(ROCKY_9);
        assert_eq!(rocky.id_like, ["rhel", "centos", "fedora"]);
        assert!(rocky.is_like("rhel") && !rocky.is_like("debian"));
        let empty = OsRelease::parse("");
        assert_eq!((empty.id.as_str(), empty.name.as_str()), ("linux", "Linux"));
        assert_eq!(empty.version_id, None);
        assert!(OsRelease::parse(ALPINE_3_20).is_musl_distribution());
        assert!(OsRelease::parse("ID=postmarketos\nID_LIKE=alpine").is_musl_distribution());
        assert!(!debian.is_musl_distribution());
    }

    #[test]
    fn libc_family_decides_as_soon_as_it_can() {
        use LibcFamily::{Glibc, Musl, Unknown};
        use Presence::{Absent, Pending, Present};
        let cases = [
            (Present, Absent, None, Some(Glibc)),
            (Absent, Present, None, Some(Musl)),
            (Absent, Absent, Some(true), Some(Unknown)),
            (Present, Present, Some(false), Some(Glibc)),
            (Present, Present, Some(true), Some(Musl)),
            (Present, Present, None, None),
            (Present, Pending, Some(false), Some(Glibc)),
            (Present, Pending, Some(true), None),
            (Present, Pending, None, None),
            (Pending, Present, Some(true), Some(Musl)),
            (Pending, Present, Some(false), None),
            (Pending, Absent, Some(false), None),
            (Absent, Pending, Some(true), None),
            (Pending, Pending, Some(false), None),
        ];
        for (glibc, musl, musl_distribution, expect) in cases {
            assert_eq!(
                libc_family(glibc, musl, musl_distribution),
                expect,
                "glibc {glibc:?}, musl {musl:?}, musl distribution {musl_distribution:?}"
            );
        }
    }

    #[test]
    fn every_known_architecture_has_a_loader_of_each_family() {
        let known = [
            Architecture::Amd64,
            Architecture::Arm64,
            Architecture::ArmV7,
            Architecture::ArmV6,
            Architecture::ArmV5,
            Architecture::I386,
            Architecture::Ppc64le,
            Architecture::S390x,
            Architecture::Riscv64,
        ];
        for architecture in known {
            let loaders = architecture.loaders();
            for family in [LibcFamily::Glibc, LibcFamily::Musl] {
                assert!(
                    loaders.iter().any(|loader| loader.libc == family),
                    "{architecture} has no {family:?} loader"
                );
            }
            assert!(loaders.iter().all(|loader| !loader.path.starts_with('/')));
        }
        assert!(
            Architecture::from_platform("mips64le", None)
                .loaders()
                .is_empty()
        );
    }
}
