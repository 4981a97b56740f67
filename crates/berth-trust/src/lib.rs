//! berth-trust: keyed verification of container image signatures and attestations, pure.
//!
//! Nothing here performs I/O, reads a clock or touches the network: callers fetch the bytes
//! (cosign's `.sig` manifest and its payload blob, an attestation's DSSE envelope) and hand them
//! over with the keys the platform trusts. Cryptography is ring's, and only ring's.
//!
//! - [`TrustedKey`]: an ECDSA P-256 or Ed25519 public key from a PEM SubjectPublicKeyInfo.
//! - [`verify_simple_signing`]: a cosign "simple signing" signature over an image digest.
//! - [`verify_dsse`] and [`verify_attestation`]: DSSE envelopes, and in-toto statements in them.
//! - [`verify_bundle`]: a Sigstore bundle's DSSE envelope (cosign 3's form), keyed only.
//! - [`Statement`]: an in-toto statement, its SLSA provenance or test-result predicate read into
//!   plain structs.
//!
//! Every input is bounded before it is parsed ([`MAX_PAYLOAD_BYTES`], [`MAX_SIGNATURES`],
//! [`MAX_JSON_DEPTH`]), signatures are checked over the exact bytes before those bytes are read,
//! and JSON with duplicate keys is refused.

mod bundle;
mod der;
mod dsse;
mod json;
mod key;
mod simple;
mod statement;

pub use bundle::{COSIGN_SIGN_V1, SIGSTORE_BUNDLE_PREFIX, bundle_predicate_type, verify_bundle};
pub use dsse::{Attestation, DsseVerified, pae, verify_attestation, verify_dsse};
pub use key::{KeyAlgorithm, KeyError, KeyProblem, MAX_PEM_BYTES, TrustedKey};
pub use simple::{SIMPLE_SIGNING_TYPE, Verified, repository_of, verify_simple_signing};
pub use statement::{
    IN_TOTO_PAYLOAD_TYPE, Predicate, Provenance, ResourceRef, SLSA_PROVENANCE_V1,
    SLSA_PROVENANCE_V02, STATEMENT_V01, STATEMENT_V1, Statement, Subject, TEST_RESULT_V01,
    TestResult,
};

/// The largest payload or envelope read (1 MiB); anything bigger is refused unread.
pub const MAX_PAYLOAD_BYTES: usize = 1024 * 1024;
/// The most signatures one DSSE envelope may carry.
pub const MAX_SIGNATURES: usize = 16;
/// The deepest JSON nesting read (arrays and objects); deeper documents are refused.
pub const MAX_JSON_DEPTH: usize = 64;
/// The longest base64 signature text read (a DER P-256 signature is at most 72 bytes).
pub const MAX_SIGNATURE_BASE64: usize = 1024;

/// Why a signature, envelope or statement is not trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("no trusted keys to verify against")]
    NoTrustedKeys,
    #[error("signed by none of the trusted keys: {}", keys.join(", "))]
    NotSignedByTrustedKey { keys: Vec<String> },
    #[error("the signature is not base64")]
    SignatureNotBase64,
    #[error(
        "the signature is truncated or malformed ({bytes} bytes): not the shape of a signature by any trusted key (an ASN.1 DER ECDSA P-256 signature, or 64 bytes for Ed25519)"
    )]
    SignatureMalformed { bytes: usize },
    #[error("the {what} is {size} bytes, over the {limit}-byte limit")]
    TooLarge {
        what: &'static str,
        size: usize,
        limit: usize,
    },
    #[error("the {what} nests JSON deeper than {limit} levels")]
    TooDeep { what: &'static str, limit: usize },
    #[error("the {what} is not JSON: {error}")]
    NotJson { what: &'static str, error: String },
    #[error("the payload is not cosign simple signing: {0}")]
    NotSimpleSigning(String),
    #[error("the signature is for image {signed}, not {expected}")]
    OtherDigest { signed: String, expected: String },
    #[error("the signature is for repository {signed}, not {expected}")]
    OtherRepository { signed: String, expected: String },
    #[error("the envelope is not DSSE: {0}")]
    NotDsse(String),
    #[error("the envelope has {count} signatures, over the limit of {limit}")]
    TooManySignatures { count: usize, limit: usize },
    #[error("the envelope's payload type is {found:?}, not {expected:?}")]
    OtherPayloadType { found: String, expected: String },
    #[error("the payload is not an in-toto statement: {0}")]
    NotStatement(String),
    #[error("the {predicate_type} predicate is malformed: {problem}")]
    BadPredicate {
        predicate_type: String,
        problem: String,
    },
    #[error("the bundle is not a Sigstore bundle berth reads: {0}")]
    NotBundle(String),
    #[error(
        "a keyless bundle (signed with a Fulcio certificate) no trusted key signed: berth verifies bundles signed by a trusted key only"
    )]
    Keyless,
    #[error("the statement's subjects do not include image {image_digest}")]
    SubjectNotCovered { image_digest: String },
}

/// The first of `keys` whose signature over `message` is `signature`.
fn verify_with_keys<'k>(
    keys: &'k [TrustedKey],
    message: &[u8],
    signature: &[u8],
) -> Result<&'k TrustedKey, Refusal> {
    if keys.is_empty() {
        return Err(Refusal::NoTrustedKeys);
    }
    if !keys.iter().any(|key| key.fits(signature)) {
        return Err(Refusal::SignatureMalformed {
            bytes: signature.len(),
        });
    }
    keys.iter()
        .find(|key| key.fits(signature) && key.verifies(message, signature))
        .ok_or_else(|| Refusal::NotSignedByTrustedKey {
            keys: key_names(keys),
        })
}

fn key_names(keys: &[TrustedKey]) -> Vec<String> {
    keys.iter().map(|key| key.name().to_owned()).collect()
}
