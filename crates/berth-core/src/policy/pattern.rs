//! Repository patterns (`registry.example.com/team/**`), their path half without a host
//! ([`PathPattern`], `team/m*`: `berth sync --include`/`--exclude`) and name globs (`tool-*`),
//! matched by exact host and whole path segments, never by string prefix:
//! `registry.example.com.evil.io` and `registry.example.com-x/app` are other hosts, not longer
//! spellings of the allowed one. One syntax and one matcher for policy and sync
//! (docs/patterns.md).

use std::fmt;

use crate::reference::ImageRef;

/// An allowed place for images: an exact registry host (with port, if any) and path segments,
/// where a segment may be `**` (any number of segments, none included) or contain `*` (any
/// characters within that one segment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositoryPattern {
    /// As written, for messages.
    text: String,
    /// Lowercase host; `docker.io` for Docker Hub, as references normalize it.
    host: String,
    segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// `**`: zero or more whole segments.
    Any,
    /// A segment glob, where `*` stands for any run of characters inside the segment.
    Glob(String),
}

impl RepositoryPattern {
    pub fn parse(text: &str) -> Result<RepositoryPattern, String> {
        let Some((host, path)) = text.split_once('/') else {
            return Err(format!(
                "{text:?} names no repository; write `{text}/**` to allow every repository of \
                 that registry"
            ));
        };
        let host = host.to_ascii_lowercase();
        if host.is_empty() || host.contains('*') {
            return Err(format!(
                "{text:?}: the registry host must be written out in full (no `*`): hosts are \
                 compared exactly"
            ));
        }
        if !(host.contains(['.', ':']) || host == "localhost") {
            return Err(format!(
                "{text:?}: the first segment must be a registry host (registry.example.com, \
                 docker.io, localhost:5000)"
            ));
        }
        if host.contains(['@']) || path.contains([':', '@']) {
            return Err(format!(
                "{text:?}: a pattern names repositories only, without tag or digest"
            ));
        }
        let host = match host.as_str() {
            "index.docker.io" | "registry-1.docker.io" => "docker.io".to_string(),
            _ => host,
        };
        let segments = parse_segments(text, path)?;
        Ok(RepositoryPattern {
            text: text.to_string(),
            host,
            segments,
        })
    }

    /// Whether `reference`'s registry is this host and its repository path matches.
    pub fn matches(&self, reference: &ImageRef) -> bool {
        if reference.registry() != self.host {
            return false;
        }
        let path: Vec<&str> = reference.repository().split('/').collect();
        segments_match(&self.segments, &path)
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for RepositoryPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Repository path segments, without a host: `team/*`, `**/base`, `team/m*`. The same syntax
/// and matcher as the path of a [`RepositoryPattern`]: `**` is any number of whole segments
/// (none included), `*` inside a segment any run of characters within it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPattern {
    /// As written, for messages.
    text: String,
    segments: Vec<Segment>,
}

impl PathPattern {
    /// Leading and trailing `/` are ignored (`/team/**/` is `team/**`).
    pub fn parse(text: &str) -> Result<PathPattern, String> {
        let trimmed = text.trim_matches('/');
        if trimmed.is_empty() {
            return Err(format!("pattern {text:?} is empty"));
        }
        if trimmed.contains([':', '@']) {
            return Err(format!(
                "{text:?}: a pattern names repositories only, without tag or digest"
            ));
        }
        Ok(PathPattern {
            text: text.to_string(),
            segments: parse_segments(text, trimmed)?,
        })
    }

    /// Whether a repository path (`team/app`, no host) matches.
    pub fn matches(&self, path: &str) -> bool {
        let path: Vec<&str> = path.split('/').collect();
        segments_match(&self.segments, &path)
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for PathPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// The segments of a pattern's path (`text` is the whole pattern, for messages).
fn parse_segments(text: &str, path: &str) -> Result<Vec<Segment>, String> {
    let mut segments = Vec::new();
    for segment in path.split('/') {
        if segment.is_empty() {
            return Err(format!("{text:?} has an empty path segment"));
        }
        if segment == "**" {
            if segments.last() != Some(&Segment::Any) {
                segments.push(Segment::Any);
            }
        } else if segment.contains("**") {
            return Err(format!(
                "{text:?}: `**` must be a whole segment (`a/**/b`, not `a**`)"
            ));
        } else {
            segments.push(Segment::Glob(segment.to_string()));
        }
    }
    Ok(segments)
}

fn segments_match(pattern: &[Segment], path: &[&str]) -> bool {
    match pattern.split_first() {
        None => path.is_empty(),
        Some((Segment::Any, rest)) => {
            (0..=path.len()).any(|skip| segments_match(rest, &path[skip..]))
        }
        Some((Segment::Glob(glob), rest)) => match path.split_first() {
            Some((first, remaining)) => glob_match(glob, first) && segments_match(rest, remaining),
            None => false,
        },
    }
}

/// `*` matches any run of characters (none included); everything else matches itself.
pub fn glob_match(glob: &str, text: &str) -> bool {
    let mut parts = glob.split('*');
    let Some(first) = parts.next() else {
        return text.is_empty();
    };
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        // No `*` at all: the whole text must have been the literal.
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 15, item 15: a path pattern is a repository pattern's path, with the same globs;
    /// `team/m*` (which the policy accepted and sync refused) matches within one segment.
    #[test]
    fn path_patterns_match_as_the_path_of_a_repository_pattern() {
        let cases = [
            ("team/m*", "team/mail", true),
            ("team/m*", "team/app", false),
            ("team/m*", "team/mail/x", false),
            ("team/*", "team/app", true),
            ("team/*", "team-x/app", false),
            ("team/*", "team/app/x", false),
            ("**", "a/b/c", true),
            ("**/base", "base", true),
            ("**/base", "x/y/base", true),
            ("/team/**/", "team/x/y", true),
            ("tool-*/*", "tool-a/b", true),
        ];
        for (pattern, path, expected) in cases {
            let parsed = PathPattern::parse(pattern).unwrap();
            assert_eq!(parsed.matches(path), expected, "{pattern} {path}");
            let whole =
                RepositoryPattern::parse(&format!("r.example/{}", pattern.trim_matches('/')))
                    .unwrap();
            let reference = ImageRef::parse(&format!("r.example/{path}")).unwrap();
            assert_eq!(
                whole.matches(&reference),
                expected,
                "r.example/{pattern} {path}"
            );
        }
        for bad in ["", "/", "a//b", "a**", "team/app:1"] {
            assert!(PathPattern::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn hosts_are_exact_and_segments_whole() {
        // (pattern, image, matches)
        let cases = [
            (
                "registry.example.com/**",
                "registry.example.com/app:1",
                true,
            ),
            (
                "registry.example.com/**",
                "registry.example.com/team/app@sha256:0000000000000000000000000000000000000000000000000000000000000000",
                true,
            ),
            ("registry.example.com/**", "REGISTRY.EXAMPLE.COM/app", true),
            // Look-alike hosts: a longer host, a host with a suffix, a port, a subdomain.
            (
                "registry.example.com/**",
                "registry.example.com.evil.io/app",
                false,
            ),
            (
                "registry.example.com/**",
                "registry.example.com-x/app",
                false,
            ),
            (
                "registry.example.com/**",
                "registry.example.com:5000/app",
                false,
            ),
            (
                "registry.example.com/**",
                "evil.registry.example.com/app",
                false,
            ),
            (
                "registry.example.com/**",
                "evil.io/registry.example.com/app",
                false,
            ),
            ("registry.example.com/**", "app", false),
            // Segments: `*` is one segment, `**` any number, text globs stay inside a segment.
            (
                "registry.example.com/team/*",
                "registry.example.com/team/app",
                true,
            ),
            (
                "registry.example.com/team/*",
                "registry.example.com/team/sub/app",
                false,
            ),
            (
                "registry.example.com/team/*",
                "registry.example.com/team",
                false,
            ),
            (
                "registry.example.com/team/*",
                "registry.example.com/team-x/app",
                false,
            ),
            (
                "registry.example.com/team/**",
                "registry.example.com/teamx/app",
                false,
            ),
            (
                "registry.example.com/team/**",
                "registry.example.com/team/a/b/c",
                true,
            ),
            (
                "registry.example.com/**/base",
                "registry.example.com/base",
                true,
            ),
            (
                "registry.example.com/**/base",
                "registry.example.com/x/y/base",
                true,
            ),
            (
                "registry.example.com/**/base",
                "registry.example.com/x/base-evil",
                false,
            ),
            (
                "registry.example.com/toolforge-*",
                "registry.example.com/toolforge-python311",
                true,
            ),
            (
                "registry.example.com/toolforge-*",
                "registry.example.com/toolforge/python",
                false,
            ),
            (
                "registry.example.com/app",
                "registry.example.com/app:2",
                true,
            ),
            (
                "registry.example.com/app",
                "registry.example.com/app/x",
                false,
            ),
            (
                "registry.example.com/app",
                "registry.example.com/apps",
                false,
            ),
            // Docker Hub: references normalize to docker.io/library/...
            ("docker.io/library/*", "python:3.12", true),
            (
                "docker.io/library/*",
                "index.docker.io/library/python",
                true,
            ),
            ("index.docker.io/library/python", "python", true),
            ("docker.io/library/*", "someone/python", false),
            (
                "127.0.0.1:5050/berth/**",
                "127.0.0.1:5050/berth/base:1",
                true,
            ),
            (
                "127.0.0.1:5050/berth/**",
                "127.0.0.1:5051/berth/base:1",
                false,
            ),
            ("localhost/x", "localhost/x", true),
        ];
        for (pattern, image, expect) in cases {
            let parsed = RepositoryPattern::parse(pattern).unwrap();
            let image_ref = ImageRef::parse(&image.to_ascii_lowercase()).unwrap();
            assert_eq!(parsed.matches(&image_ref), expect, "{pattern} vs {image}");
        }
    }

    #[test]
    fn patterns_that_would_be_prefixes_are_refused() {
        let cases = [
            (
                "registry.example.com",
                "names no repository; write `registry.example.com/**`",
            ),
            ("*.example.com/**", "must be written out in full"),
            ("registry.example.*/**", "must be written out in full"),
            ("team/app", "the first segment must be a registry host"),
            ("registry.example.com/app:1", "without tag or digest"),
            ("registry.example.com//app", "empty path segment"),
            ("registry.example.com/a**", "`**` must be a whole segment"),
        ];
        for (pattern, expect) in cases {
            let error = RepositoryPattern::parse(pattern).unwrap_err();
            assert!(error.contains(expect), "{pattern}: {error}");
        }
    }

    #[test]
    fn globs() {
        let cases = [
            ("tool-*", "tool-x", true),
            ("tool-*", "tool-", true),
            ("tool-*", "tools-x", false),
            ("*-system", "kube-system", true),
            ("kube-system", "kube-system", true),
            ("kube-system", "kube-system2", false),
            ("a*b*c", "abc", true),
            ("a*b*c", "a-b-b-c", true),
            ("a*b*c", "a-c", false),
            ("*", "", true),
            ("ab*ab", "ab", false),
        ];
        for (glob, text, expect) in cases {
            assert_eq!(glob_match(glob, text), expect, "{glob} vs {text}");
        }
    }
}
