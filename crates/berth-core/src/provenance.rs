//! What an image says about where it came from — the OCI `org.opencontainers.image.*` keys,
//! from the manifest's annotations first, then the config's labels — and how its base claim
//! compares with the base found by layer lineage; and what a pipeline recorded about a digest
//! it built and tested ([`Record`], checked by [`Record::check`]), which the `provenance`
//! policy rule reads. Pure: `berth provenance`, the API and the dashboard's image page all
//! read it.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::Digest;

pub const SOURCE: &str = "org.opencontainers.image.source";
pub const REVISION: &str = "org.opencontainers.image.revision";
pub const CREATED: &str = "org.opencontainers.image.created";
pub const BASE_NAME: &str = "org.opencontainers.image.base.name";
pub const BASE_DIGEST: &str = "org.opencontainers.image.base.digest";

/// One key's value and where it was found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Claimed {
    pub value: String,
    /// `annotation` (the manifest) or `label` (the config).
    pub from: &'static str,
}

/// The image's own claims.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Claims {
    pub source: Option<Claimed>,
    pub revision: Option<Claimed>,
    pub created: Option<Claimed>,
    pub base_name: Option<Claimed>,
    pub base_digest: Option<Claimed>,
}

/// How the base claim compares with layer lineage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BaseCheck {
    /// The claimed digest is the lineage base, or an index through which its tags reach it.
    Agrees,
    /// Lineage found another base, or none: the claim is stale or wrong.
    Disagrees,
    /// The image claims no base digest.
    NoClaim,
    /// Nothing knows the image's lineage to compare with.
    Unverified,
}

impl BaseCheck {
    pub fn as_str(self) -> &'static str {
        match self {
            BaseCheck::Agrees => "agrees",
            BaseCheck::Disagrees => "disagrees",
            BaseCheck::NoClaim => "no-claim",
            BaseCheck::Unverified => "unverified",
        }
    }
}

fn claimed(
    annotations: &BTreeMap<String, String>,
    labels: &BTreeMap<String, String>,
    key: &str,
) -> Option<Claimed> {
    match (annotations.get(key), labels.get(key)) {
        (Some(value), _) => Some(Claimed {
            value: value.clone(),
            from: "annotation",
        }),
        (None, Some(value)) => Some(Claimed {
            value: value.clone(),
            from: "label",
        }),
        (None, None) => None,
    }
}

/// The claims of an image with these manifest annotations and config labels.
pub fn claims(annotations: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> Claims {
    Claims {
        source: claimed(annotations, labels, SOURCE),
        revision: claimed(annotations, labels, REVISION),
        created: claimed(annotations, labels, CREATED),
        base_name: claimed(annotations, labels, BASE_NAME),
        base_digest: claimed(annotations, labels, BASE_DIGEST),
    }
}

/// The base claim against lineage: `lineage` is `None` when nothing knows the image, else the
/// base found (if any) and the indexes through which that base's tags reach it.
pub fn check_base(claims: &Claims, lineage: Option<(Option<&Digest>, &[Digest])>) -> BaseCheck {
    let Some(claim) = &claims.base_digest else {
        return BaseCheck::NoClaim;
    };
    let Some((base, indexes)) = lineage else {
        return BaseCheck::Unverified;
    };
    let agrees = base.is_some_and(|base| {
        claim.value == base.as_str() || indexes.iter().any(|index| claim.value == index.as_str())
    });
    if agrees {
        BaseCheck::Agrees
    } else {
        BaseCheck::Disagrees
    }
}

/// What a pipeline's tests came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Tests {
    Passed,
    Failed,
}

impl Tests {
    pub fn parse(text: &str) -> Option<Tests> {
        match text {
            "passed" => Some(Tests::Passed),
            "failed" => Some(Tests::Failed),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Tests::Passed => "passed",
            Tests::Failed => "failed",
        }
    }
}

/// What a signature or attestation says of a digest, once a trusted key verified it (berth
/// sync reads them from the registry and verifies them; only verified ones reach policy
/// knowledge). The key is named by its fingerprint, so a renamed key still counts and a
/// replaced key file under the same name does not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Signed {
    pub kind: SignedKind,
    /// The SHA-256 of the key's SubjectPublicKeyInfo, hex (berth-trust's fingerprint).
    pub key: String,
    /// The name the key had in the policy when it verified this.
    pub key_name: String,
    /// An attestation's in-toto predicate type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub predicate_type: Option<String>,
    /// What a SLSA provenance statement says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub builder: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_repository: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_commit: Option<String>,
    /// What an in-toto test-result statement says: `PASSED` is passed, anything else
    /// (`FAILED`, `WARNED`) is not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tests: Option<Tests>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tests_url: Option<String>,
}

/// A signature over the digest (cosign simple signing), or a signed statement about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SignedKind {
    Signature,
    Attestation,
}

impl SignedKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SignedKind::Signature => "signature",
            SignedKind::Attestation => "attestation",
        }
    }

    pub fn parse(text: &str) -> Option<SignedKind> {
        match text {
            "signature" => Some(SignedKind::Signature),
            "attestation" => Some(SignedKind::Attestation),
            _ => None,
        }
    }
}

/// What a pipeline reported about a digest it built (and tested): `berth provenance record`,
/// `POST /api/v1/provenance`. The latest record of a digest is the one that counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Record {
    /// The source repository's URL.
    pub source: Option<String>,
    /// The commit built.
    pub commit: Option<String>,
    /// The build's page, and its logs.
    pub build: Option<String>,
    pub logs: Option<String>,
    pub tests: Option<Tests>,
    pub tests_url: Option<String>,
    /// The token's name (API) or `$BERTH_ACTOR` (CLI).
    pub recorded_by: String,
    pub recorded_at: DateTime<Utc>,
}

/// Longest URL or commit kept.
const FIELD_MAX: usize = 2048;

impl Record {
    /// The first problem of a record, naming its field: URLs must be `http(s)://`, a commit is
    /// 7 to 64 hexadecimal digits, nothing longer than 2 KiB, and a record says something.
    pub fn check(&self) -> Result<(), String> {
        for (field, value) in [
            ("source", &self.source),
            ("build", &self.build),
            ("logs", &self.logs),
            ("tests_url", &self.tests_url),
        ] {
            if let Some(value) = value {
                let rest = value
                    .strip_prefix("https://")
                    .or_else(|| value.strip_prefix("http://"));
                if rest.is_none_or(|rest| rest.is_empty() || rest.starts_with('/')) {
                    return Err(format!(
                        "{field}: {value:?} is not an http:// or https:// URL"
                    ));
                }
                if value.len() > FIELD_MAX || value.chars().any(char::is_whitespace) {
                    return Err(format!("{field}: not a URL (too long, or with spaces)"));
                }
            }
        }
        if let Some(commit) = &self.commit
            && !(7..=64).contains(&commit.len())
        {
            return Err(format!(
                "commit: {commit:?} is not 7 to 64 hexadecimal digits"
            ));
        }
        if let Some(commit) = &self.commit
            && !commit.chars().all(|c| c.is_ascii_hexdigit())
        {
            return Err(format!(
                "commit: {commit:?} is not 7 to 64 hexadecimal digits"
            ));
        }
        if self.tests_url.is_some() && self.tests.is_none() {
            return Err("tests_url: given without a test result (tests: passed or failed)".into());
        }
        if [&self.source, &self.commit, &self.build, &self.logs]
            .iter()
            .all(|value| value.is_none())
            && self.tests.is_none()
        {
            return Err(
                "the record says nothing: give a source, commit, build, logs or tests".into(),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_checked_field_by_field() {
        let record = Record {
            source: Some("https://git.example/app".into()),
            commit: Some("0123abc".into()),
            build: None,
            logs: None,
            tests: Some(Tests::Passed),
            tests_url: None,
            recorded_by: "ci".into(),
            recorded_at: DateTime::from_timestamp(0, 0).unwrap(),
        };
        assert_eq!(record.check(), Ok(()));
        let bad = |change: fn(&mut Record)| {
            let mut record = record.clone();
            change(&mut record);
            record.check().unwrap_err()
        };
        assert!(bad(|r| r.source = Some("git@x:y".into())).starts_with("source:"));
        assert!(bad(|r| r.commit = Some("xyz1234".into())).starts_with("commit:"));
        assert!(bad(|r| r.commit = Some("abc".into())).starts_with("commit:"));
        assert!(
            bad(|r| {
                r.tests = None;
                r.tests_url = Some("https://ci.example/1".into());
            })
            .starts_with("tests_url:")
        );
        assert!(
            bad(|r| {
                r.source = None;
                r.commit = None;
                r.tests = None;
            })
            .contains("says nothing")
        );
    }

    fn digest(n: u8) -> Digest {
        Digest::parse(&format!("sha256:{n:064x}")).unwrap()
    }

    #[test]
    fn annotations_win_over_labels_and_the_base_claim_is_checked() {
        let annotations = BTreeMap::from([(BASE_DIGEST.to_string(), digest(1).to_string())]);
        let labels = BTreeMap::from([
            (BASE_DIGEST.to_string(), digest(9).to_string()),
            (SOURCE.to_string(), "https://git.example/app".to_string()),
        ]);
        let claims = claims(&annotations, &labels);
        assert_eq!(claims.base_digest.as_ref().unwrap().from, "annotation");
        assert_eq!(claims.source.as_ref().unwrap().from, "label");
        assert_eq!(
            check_base(&claims, Some((Some(&digest(1)), &[]))),
            BaseCheck::Agrees
        );
        // Claimed by the base's index.
        assert_eq!(
            check_base(&claims, Some((Some(&digest(2)), &[digest(1)]))),
            BaseCheck::Agrees
        );
        assert_eq!(
            check_base(&claims, Some((Some(&digest(2)), &[]))),
            BaseCheck::Disagrees
        );
        // An index alone is no base: lineage found none.
        assert_eq!(
            check_base(&claims, Some((None, &[digest(1)]))),
            BaseCheck::Disagrees
        );
        assert_eq!(check_base(&claims, None), BaseCheck::Unverified);
        assert_eq!(check_base(&Claims::default(), None), BaseCheck::NoClaim);
    }
}
