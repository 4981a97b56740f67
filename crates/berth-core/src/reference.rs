//! Image references, digests and tags, parsed and normalized as docker, containerd and skopeo do.
//!
//! Grammar (distribution/reference): `[host[:port]/]path[:tag][@algorithm:hex]`.
//! - The first path component is a host when it contains `.` or `:`, or equals `localhost`;
//!   otherwise the image lives on `docker.io`, and a single-component name there gains the
//!   `library/` namespace. `index.docker.io` and `registry-1.docker.io` are spellings of `docker.io`.
//! - Path components are lowercase (`[a-z0-9]+` joined by `.`, `_`, `__` or dashes).
//! - A tag is `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`; without tag and digest the tag is `latest`.
//! - Digests are `sha256` (64 hex) or `sha512` (128 hex), lowercase hex.
//! - The name (host and path) is at most 255 characters.

use std::fmt;
use std::str::FromStr;

/// The registry that names without a host refer to.
pub const DOCKER_HUB: &str = "docker.io";
/// Where Docker Hub's distribution API actually answers.
pub const DOCKER_HUB_API: &str = "registry-1.docker.io";
const NAME_TOTAL_LENGTH_MAX: usize = 255;
const TAG_LENGTH_MAX: usize = 128;

/// Why a string is not a valid reference, digest or tag. Each message quotes the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefError {
    #[error("empty image reference")]
    Empty,
    #[error("invalid image reference {input:?}: {reason}")]
    Invalid { input: String, reason: &'static str },
    #[error("invalid image reference {input:?}: repository name must be lowercase")]
    Uppercase { input: String },
    #[error("invalid image reference {input:?}: name longer than 255 characters")]
    NameTooLong { input: String },
    #[error("invalid tag {input:?}: {reason}")]
    InvalidTag { input: String, reason: &'static str },
    #[error("invalid digest {input:?}: {reason}")]
    InvalidDigest { input: String, reason: &'static str },
}

/// A digest algorithm berth accepts in references and verifies content against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DigestAlgorithm {
    Sha256,
    Sha512,
}

impl DigestAlgorithm {
    pub fn name(self) -> &'static str {
        match self {
            DigestAlgorithm::Sha256 => "sha256",
            DigestAlgorithm::Sha512 => "sha512",
        }
    }

    /// Length of the hex encoding of this algorithm's output.
    pub fn hex_len(self) -> usize {
        match self {
            DigestAlgorithm::Sha256 => 64,
            DigestAlgorithm::Sha512 => 128,
        }
    }
}

/// A validated content digest (`sha256:<64 hex>` or `sha512:<128 hex>`), safe to put in a URL.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    /// The whole `algorithm:hex` string, kept so that `as_str` borrows.
    text: String,
    algorithm: DigestAlgorithm,
}

impl Digest {
    pub fn parse(input: &str) -> Result<Digest, RefError> {
        let invalid = |reason| RefError::InvalidDigest {
            input: input.to_string(),
            reason,
        };
        let (algorithm, hex) = input
            .split_once(':')
            .ok_or_else(|| invalid("expected algorithm:hex"))?;
        let algorithm = match algorithm {
            "sha256" => DigestAlgorithm::Sha256,
            "sha512" => DigestAlgorithm::Sha512,
            _ => return Err(invalid("unsupported algorithm (sha256 or sha512)")),
        };
        if hex.len() != algorithm.hex_len() {
            return Err(invalid("wrong hex length for its algorithm"));
        }
        if !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(invalid("hex must be lowercase 0-9a-f"));
        }
        Ok(Digest {
            text: input.to_string(),
            algorithm,
        })
    }

    pub fn algorithm(&self) -> DigestAlgorithm {
        self.algorithm
    }

    pub fn hex(&self) -> &str {
        &self.text[self.algorithm.name().len() + 1..]
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// A digest as its raw bytes, for large in-memory tables (the webhook's knowledge snapshot, the
/// lineage index): 40 bytes inline for sha256 instead of a 71-character string on the heap.
/// Ordered as the digests' text is (every sha256 before every sha512, then by hex), so a table
/// sorted by key is sorted by digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum DigestKey {
    Sha256([u8; 32]),
    Sha512(Box<[u8; 64]>),
}

impl DigestKey {
    pub(crate) fn of(digest: &Digest) -> DigestKey {
        fn decode<const N: usize>(hex: &str) -> [u8; N] {
            let nibble = |b: u8| match b {
                b'0'..=b'9' => b - b'0',
                _ => b - b'a' + 10,
            };
            let mut bytes = [0u8; N];
            for (byte, pair) in bytes.iter_mut().zip(hex.as_bytes().chunks_exact(2)) {
                *byte = (nibble(pair[0]) << 4) | nibble(pair[1]);
            }
            bytes
        }
        // `Digest::parse` checked the hex: lowercase, and as long as its algorithm's.
        match digest.algorithm {
            DigestAlgorithm::Sha256 => DigestKey::Sha256(decode(digest.hex())),
            DigestAlgorithm::Sha512 => DigestKey::Sha512(Box::new(decode(digest.hex()))),
        }
    }

    pub(crate) fn to_digest(&self) -> Digest {
        let (algorithm, bytes): (DigestAlgorithm, &[u8]) = match self {
            DigestKey::Sha256(bytes) => (DigestAlgorithm::Sha256, bytes),
            DigestKey::Sha512(bytes) => (DigestAlgorithm::Sha512, &bytes[..]),
        };
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut text = String::with_capacity(algorithm.name().len() + 1 + 2 * bytes.len());
        text.push_str(algorithm.name());
        text.push(':');
        for byte in bytes {
            text.push(char::from(HEX[usize::from(byte >> 4)]));
            text.push(char::from(HEX[usize::from(byte & 0xf)]));
        }
        Digest { text, algorithm }
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for Digest {
    type Err = RefError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Digest::parse(s)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Digest::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A validated tag.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(String);

impl serde::Serialize for Tag {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl Tag {
    pub fn parse(input: &str) -> Result<Tag, RefError> {
        let invalid = |reason| RefError::InvalidTag {
            input: input.to_string(),
            reason,
        };
        let mut bytes = input.bytes();
        match bytes.next() {
            None => return Err(invalid("empty")),
            Some(first) if !(first.is_ascii_alphanumeric() || first == b'_') => {
                return Err(invalid("must start with a letter, digit or '_'"));
            }
            Some(_) => {}
        }
        if input.len() > TAG_LENGTH_MAX {
            return Err(invalid("longer than 128 characters"));
        }
        if !bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')) {
            return Err(invalid(
                "only letters, digits, '_', '.' and '-' are allowed",
            ));
        }
        Ok(Tag(input.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What to ask a registry for: a tag or a digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Reference {
    Tag(Tag),
    Digest(Digest),
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Tag(tag) => tag.fmt(f),
            Reference::Digest(digest) => digest.fmt(f),
        }
    }
}

/// A normalized image reference. Two spellings of the same image compare equal
/// (`ubuntu`, `docker.io/ubuntu:latest`, `index.docker.io/library/ubuntu`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImageRef {
    /// Registry host with optional port, lowercase; `docker.io` for Docker Hub.
    registry: String,
    /// Repository path inside the registry (`library/ubuntu`).
    repository: String,
    /// The tag; `latest` when the input had neither tag nor digest.
    tag: Option<Tag>,
    digest: Option<Digest>,
}

impl ImageRef {
    pub fn parse(input: &str) -> Result<ImageRef, RefError> {
        if input.is_empty() {
            return Err(RefError::Empty);
        }
        let invalid = |reason| RefError::Invalid {
            input: input.to_string(),
            reason,
        };
        let (rest, digest) = match input.split_once('@') {
            Some((rest, digest)) => (rest, Some(Digest::parse(digest)?)),
            None => (input, None),
        };
        // A ':' after the last '/' separates the tag; one before it belongs to a host port.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let at = last_slash + i;
                (&rest[..at], Some(Tag::parse(&rest[at + 1..])?))
            }
            None => (rest, None),
        };
        if name.is_empty() {
            return Err(invalid("missing repository name"));
        }
        if name.len() > NAME_TOTAL_LENGTH_MAX {
            return Err(RefError::NameTooLong {
                input: input.to_string(),
            });
        }
        let (host, path) = match name.split_once('/') {
            Some((first, remainder)) if first.contains(['.', ':']) || first == "localhost" => {
                (Some(first), remainder)
            }
            _ => (None, name),
        };
        let registry = match host {
            Some(host) => {
                if !is_valid_host(host) {
                    return Err(invalid("invalid registry host"));
                }
                let host = host.to_ascii_lowercase();
                if host == "index.docker.io" || host == DOCKER_HUB_API {
                    DOCKER_HUB.to_string()
                } else {
                    host
                }
            }
            None => DOCKER_HUB.to_string(),
        };
        // "must be lowercase" only when lowercase is all it lacks (not for "Bad Ref").
        if path.bytes().any(|b| b.is_ascii_uppercase())
            && path
                .to_ascii_lowercase()
                .split('/')
                .all(is_valid_path_component)
        {
            return Err(RefError::Uppercase {
                input: input.to_string(),
            });
        }
        if !path.split('/').all(is_valid_path_component) {
            return Err(invalid(
                "path components are [a-z0-9] separated by '.', '_', '__' or '-'",
            ));
        }
        let repository = if registry == DOCKER_HUB && !path.contains('/') {
            format!("library/{path}")
        } else {
            path.to_string()
        };
        let tag = match (tag, &digest) {
            (None, None) => Some(Tag("latest".to_string())),
            (tag, _) => tag,
        };
        Ok(ImageRef {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// Builds a reference from parts already known to be valid (as a registry names them).
    pub fn from_parts(
        registry: &str,
        repository: &str,
        reference: Reference,
    ) -> Result<ImageRef, RefError> {
        let name = format!("{registry}/{repository}");
        let parsed = ImageRef::parse(&name)?;
        Ok(match reference {
            Reference::Tag(tag) => parsed.with_tag(tag),
            Reference::Digest(digest) => parsed.with_digest_only(digest),
        })
    }

    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The host to speak the distribution API to (Docker Hub answers elsewhere than its name).
    pub fn api_host(&self) -> &str {
        if self.registry == DOCKER_HUB {
            DOCKER_HUB_API
        } else {
            &self.registry
        }
    }

    pub fn repository(&self) -> &str {
        &self.repository
    }

    pub fn tag(&self) -> Option<&Tag> {
        self.tag.as_ref()
    }

    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// What to fetch: the digest when there is one (it is exact), else the tag.
    pub fn reference(&self) -> Reference {
        match (&self.digest, &self.tag) {
            (Some(digest), _) => Reference::Digest(digest.clone()),
            (None, Some(tag)) => Reference::Tag(tag.clone()),
            (None, None) => unreachable!("parse gives every reference a tag or a digest"),
        }
    }

    /// The same repository at another tag, dropping any digest.
    pub fn with_tag(&self, tag: Tag) -> ImageRef {
        ImageRef {
            tag: Some(tag),
            digest: None,
            ..self.clone()
        }
    }

    /// The same reference pinned to `digest`, keeping the tag (`name:tag@digest`).
    pub fn with_digest(&self, digest: Digest) -> ImageRef {
        ImageRef {
            digest: Some(digest),
            ..self.clone()
        }
    }

    /// The same repository by digest alone.
    pub fn with_digest_only(&self, digest: Digest) -> ImageRef {
        ImageRef {
            tag: None,
            digest: Some(digest),
            ..self.clone()
        }
    }

    /// `registry/repository`, the name without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The fully qualified form: `docker.io/library/ubuntu:latest`.
    pub fn canonical(&self) -> String {
        let mut text = self.name();
        self.push_suffix(&mut text);
        text
    }

    /// The short form people type: `ubuntu:latest`, `myorg/app:1`, `quay.io/x/y:2`.
    pub fn familiar(&self) -> String {
        let mut text = if self.registry == DOCKER_HUB {
            self.repository
                .strip_prefix("library/")
                .filter(|rest| !rest.contains('/'))
                .unwrap_or(&self.repository)
                .to_string()
        } else {
            self.name()
        };
        self.push_suffix(&mut text);
        text
    }

    fn push_suffix(&self, text: &mut String) {
        if let Some(tag) = &self.tag {
            text.push(':');
            text.push_str(tag.as_str());
        }
        if let Some(digest) = &self.digest {
            text.push('@');
            text.push_str(digest.as_str());
        }
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.canonical())
    }
}

impl FromStr for ImageRef {
    type Err = RefError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ImageRef::parse(s)
    }
}

impl serde::Serialize for ImageRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.canonical())
    }
}

impl<'de> serde::Deserialize<'de> for ImageRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        ImageRef::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// `host[:port]` or `[ipv6][:port]`, host labels of letters, digits and inner dashes.
fn is_valid_host(host: &str) -> bool {
    let (name, port) = if let Some(rest) = host.strip_prefix('[') {
        let Some((inside, after)) = rest.split_once(']') else {
            return false;
        };
        if inside.is_empty() || !inside.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return false;
        }
        match after {
            "" => return true,
            _ => match after.strip_prefix(':') {
                Some(port) => ("ipv6", Some(port)),
                None => return false,
            },
        }
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (host, None),
        }
    };
    if let Some(port) = port
        && (port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()))
    {
        return false;
    }
    !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// `[a-z0-9]+` runs separated by `.`, `_`, `__` or one or more `-`.
fn is_valid_path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    if bytes.is_empty() || !is_alnum(bytes[0]) || !is_alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if is_alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !is_alnum(bytes[i]) {
            i += 1;
        }
        let separator = &component[start..i];
        let ok = matches!(separator, "." | "_" | "__") || separator.bytes().all(|b| b == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn a_digest_key_gives_the_digest_back_and_sorts_as_its_text() {
        let digests: Vec<Digest> = [
            SHA.to_string(),
            format!("sha256:{}", "f0".repeat(32)),
            format!("sha256:{}", "00".repeat(32)),
            format!("sha512:{}", "ab".repeat(64)),
            format!("sha512:{}", "0a".repeat(64)),
        ]
        .iter()
        .map(|text| Digest::parse(text).unwrap())
        .collect();
        for digest in &digests {
            assert_eq!(DigestKey::of(digest).to_digest(), *digest);
        }
        let mut by_text = digests.clone();
        by_text.sort();
        let mut by_key = digests;
        by_key.sort_by_key(DigestKey::of);
        assert_eq!(by_key, by_text);
    }

    /// Parses `input` and compares its canonical form with `expect` (or the error's text with
    /// `expect` when it starts with `error:`).
    fn check(input: &str, expect: &str) {
        let got = match ImageRef::parse(input) {
            Ok(reference) => reference.canonical(),
            Err(error) => format!("error: {error}"),
        };
        assert_eq!(got, expect, "input {input:?}");
    }

    #[test]
    fn normalizes_as_the_ecosystem_does() {
        let sha512 = format!("sha512:{}", "ab".repeat(64));
        let cases: &[(&str, String)] = &[
            ("ubuntu", "docker.io/library/ubuntu:latest".into()),
            ("ubuntu:22.04", "docker.io/library/ubuntu:22.04".into()),
            ("docker.io/ubuntu", "docker.io/library/ubuntu:latest".into()),
            (
                "index.docker.io/library/ubuntu",
                "docker.io/library/ubuntu:latest".into(),
            ),
            (
                "registry-1.docker.io/library/ubuntu",
                "docker.io/library/ubuntu:latest".into(),
            ),
            ("myorg/app", "docker.io/myorg/app:latest".into()),
            ("localhost/a", "localhost/a:latest".into()),
            ("localhost:5000/a", "localhost:5000/a:latest".into()),
            ("localhost:5000/a:1.0", "localhost:5000/a:1.0".into()),
            (
                "127.0.0.1:5000/ns/img",
                "127.0.0.1:5000/ns/img:latest".into(),
            ),
            ("[::1]:5000/img:v1", "[::1]:5000/img:v1".into()),
            (
                "Registry.Example.COM/ns/img",
                "registry.example.com/ns/img:latest".into(),
            ),
            (
                &format!("registry.example.com:443/ns/img:tag@{SHA}"),
                format!("registry.example.com:443/ns/img:tag@{SHA}"),
            ),
            (
                &format!("ubuntu@{SHA}"),
                format!("docker.io/library/ubuntu@{SHA}"),
            ),
            (
                &format!("quay.io/a/b@{sha512}"),
                format!("quay.io/a/b@{sha512}"),
            ),
            (
                "a.b/c__d/e-f.g_h:T_a.g-1",
                "a.b/c__d/e-f.g_h:T_a.g-1".into(),
            ),
            ("ns/a---b", "docker.io/ns/a---b:latest".into()),
        ];
        for (input, expect) in cases {
            check(input, expect);
        }
    }

    #[test]
    fn rejects_what_the_ecosystem_rejects() {
        let long_name = format!("example.com/{}", "a".repeat(250));
        let long_tag = format!("img:{}", "t".repeat(129));
        let cases: &[(&str, &str)] = &[
            ("", "error: empty image reference"),
            (
                "UPPER/case",
                "error: invalid image reference \"UPPER/case\": repository name must be lowercase",
            ),
            (
                "Ubuntu",
                "error: invalid image reference \"Ubuntu\": repository name must be lowercase",
            ),
            // issue 15, item 20: a space is not a case problem.
            (
                "Bad Ref",
                "error: invalid image reference \"Bad Ref\": path components are [a-z0-9] \
                 separated by '.', '_', '__' or '-'",
            ),
            ("ubuntu:", "error: invalid tag \"\": empty"),
            (
                "ubuntu:-x",
                "error: invalid tag \"-x\": must start with a letter, digit or '_'",
            ),
            (
                &long_tag,
                "error: invalid tag \"ttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttt\": longer than 128 characters",
            ),
            (
                "ubuntu@sha256:abc",
                "error: invalid digest \"sha256:abc\": wrong hex length for its algorithm",
            ),
            (
                "ubuntu@md5:0123456789abcdef0123456789abcdef",
                "error: invalid digest \"md5:0123456789abcdef0123456789abcdef\": unsupported algorithm (sha256 or sha512)",
            ),
            (
                &format!("ubuntu@{}", SHA.to_uppercase().replace("SHA256", "sha256")),
                "error: invalid digest \"sha256:0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF\": hex must be lowercase 0-9a-f",
            ),
            (
                "a//b",
                "error: invalid image reference \"a//b\": path components are [a-z0-9] separated by '.', '_', '__' or '-'",
            ),
            (
                "a/-b",
                "error: invalid image reference \"a/-b\": path components are [a-z0-9] separated by '.', '_', '__' or '-'",
            ),
            (
                "a/b_",
                "error: invalid image reference \"a/b_\": path components are [a-z0-9] separated by '.', '_', '__' or '-'",
            ),
            (
                "a/b___c",
                "error: invalid image reference \"a/b___c\": path components are [a-z0-9] separated by '.', '_', '__' or '-'",
            ),
            (
                "-bad.host/x",
                "error: invalid image reference \"-bad.host/x\": invalid registry host",
            ),
            (
                "host:99999999/x",
                "error: invalid image reference \"host:99999999/x\": invalid registry host",
            ),
            (
                "example.com/",
                "error: invalid image reference \"example.com/\": path components are [a-z0-9] separated by '.', '_', '__' or '-'",
            ),
            (
                ":tag",
                "error: invalid image reference \":tag\": missing repository name",
            ),
            (
                &long_name,
                &format!(
                    "error: invalid image reference {long_name:?}: name longer than 255 characters"
                ),
            ),
            (
                "a b",
                "error: invalid image reference \"a b\": path components are [a-z0-9] separated by '.', '_', '__' or '-'",
            ),
        ];
        for (input, expect) in cases {
            check(input, expect);
        }
    }

    #[test]
    fn equivalent_spellings_are_equal() {
        let spellings = [
            "ubuntu",
            "ubuntu:latest",
            "docker.io/ubuntu",
            "docker.io/library/ubuntu:latest",
            "index.docker.io/library/ubuntu",
        ];
        let first = ImageRef::parse(spellings[0]).unwrap();
        for spelling in spellings {
            assert_eq!(ImageRef::parse(spelling).unwrap(), first, "{spelling}");
        }
        assert_ne!(first, ImageRef::parse("ubuntu:24.04").unwrap());
        assert_ne!(first, ImageRef::parse("localhost/ubuntu").unwrap());
    }

    #[test]
    fn familiar_forms() {
        let cases = [
            ("docker.io/library/ubuntu", "ubuntu:latest"),
            ("docker.io/myorg/app:1", "myorg/app:1"),
            ("quay.io/a/b:2", "quay.io/a/b:2"),
            (
                "localhost:5000/library/x",
                "localhost:5000/library/x:latest",
            ),
        ];
        for (input, expect) in cases {
            assert_eq!(
                ImageRef::parse(input).unwrap().familiar(),
                expect,
                "{input}"
            );
        }
    }

    #[test]
    fn reference_prefers_the_digest() {
        let pinned = ImageRef::parse(&format!("img:1@{SHA}")).unwrap();
        assert_eq!(pinned.reference().to_string(), SHA);
        assert_eq!(pinned.tag().unwrap().as_str(), "1");
        let tagged = ImageRef::parse("img:1").unwrap();
        assert_eq!(tagged.reference().to_string(), "1");
        assert_eq!(tagged.api_host(), DOCKER_HUB_API);
        let local = ImageRef::parse("localhost:5000/img").unwrap();
        assert_eq!(local.api_host(), "localhost:5000");
    }

    #[test]
    fn digest_parts() {
        let digest = Digest::parse(SHA).unwrap();
        assert_eq!(digest.algorithm(), DigestAlgorithm::Sha256);
        assert_eq!(digest.hex(), &SHA[7..]);
        assert!(Digest::parse("sha256").is_err());
        assert!(Digest::parse(&format!("{SHA}/../x")).is_err());
    }
}
