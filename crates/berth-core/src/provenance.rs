//! What an image says about where it came from — the OCI `org.opencontainers.image.*` keys,
//! from the manifest's annotations first, then the config's labels — and how its base claim
//! compares with the base found by layer lineage. Pure: `berth provenance` and the dashboard's
//! image page both read it.

use std::collections::BTreeMap;

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

#[cfg(test)]
mod tests {
    use super::*;

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
