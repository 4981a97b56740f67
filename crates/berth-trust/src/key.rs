//! Trusted public keys: PEM SubjectPublicKeyInfo for ECDSA P-256 and Ed25519, read by hand.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::signature::{self, UnparsedPublicKey};
use sha2::{Digest as _, Sha256};

use crate::der::{self, Reader, TAG_BIT_STRING, TAG_OID, TAG_SEQUENCE};

/// The largest PEM text accepted for one key (a P-256 or Ed25519 PEM is under 200 bytes).
pub const MAX_PEM_BYTES: usize = 16 * 1024;

const OID_EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_PRIME256V1: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_SECP384R1: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
const OID_SECP521R1: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x23];
const OID_ED25519: &[u8] = &[0x2b, 0x65, 0x70];
const OID_ED448: &[u8] = &[0x2b, 0x65, 0x71];
const OID_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const OID_RSA_PSS: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a];

const BEGIN_PUBLIC_KEY: &str = "-----BEGIN PUBLIC KEY-----";
const END_PUBLIC_KEY: &str = "-----END PUBLIC KEY-----";

/// The signature scheme a trusted key verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAlgorithm {
    /// ECDSA over P-256 with SHA-256; signatures are ASN.1 DER (cosign's default keys).
    EcdsaP256Sha256,
    /// Ed25519; signatures are the raw 64 bytes.
    Ed25519,
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyAlgorithm::EcdsaP256Sha256 => "ECDSA P-256",
            KeyAlgorithm::Ed25519 => "Ed25519",
        })
    }
}

/// A public key the platform trusts, under a name people recognise.
///
/// `Debug` shows only the name: keys end up in logs and refusals, and the name is what tells
/// people which one.
#[derive(Clone, PartialEq, Eq)]
pub struct TrustedKey {
    name: String,
    algorithm: KeyAlgorithm,
    /// The key as ring takes it: 0x04||X||Y for P-256, 32 bytes for Ed25519.
    public_key: Vec<u8>,
    fingerprint: String,
}

impl fmt::Debug for TrustedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TrustedKey").field(&self.name).finish()
    }
}

/// Why a PEM is not a key berth can trust.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("trusted key {name}: {problem}")]
pub struct KeyError {
    /// The name the key was given.
    pub name: String,
    /// What is wrong with it.
    pub problem: KeyProblem,
}

/// What is wrong with a would-be trusted key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyProblem {
    #[error("the key has no name")]
    NoName,
    #[error("the PEM is {size} bytes, over the {limit}-byte limit")]
    TooLarge { size: usize, limit: usize },
    #[error("not a PEM public key (no \"{BEGIN_PUBLIC_KEY}\" block)")]
    NotPem,
    #[error("this is a private key; give the public key (openssl pkey -pubout)")]
    PrivateKey,
    #[error("this is a certificate, not a public key; certificates are not supported")]
    Certificate,
    #[error("more than one PEM block; give one public key per trusted key")]
    SeveralBlocks,
    #[error("the PEM's body is not base64")]
    NotBase64,
    #[error("RSA keys are not supported (ECDSA P-256 and Ed25519 are)")]
    Rsa,
    #[error("unsupported curve {0} (only P-256, prime256v1, is supported)")]
    UnsupportedCurve(String),
    #[error("unsupported key algorithm {0} (ECDSA P-256 and Ed25519 are supported)")]
    UnsupportedAlgorithm(String),
    #[error("compressed EC points are not supported; the point must be uncompressed (0x04||X||Y)")]
    CompressedPoint,
    #[error("malformed SubjectPublicKeyInfo: {0}")]
    Malformed(&'static str),
}

impl TrustedKey {
    /// Reads a `-----BEGIN PUBLIC KEY-----` PEM (SubjectPublicKeyInfo) for ECDSA P-256 or
    /// Ed25519. Text outside the block (explanatory lines, RFC 7468) is ignored; a second block
    /// is refused.
    pub fn from_pem(name: &str, pem: &str) -> Result<TrustedKey, KeyError> {
        let fail = |problem| KeyError {
            name: name.to_owned(),
            problem,
        };
        if name.trim().is_empty() {
            return Err(fail(KeyProblem::NoName));
        }
        if pem.len() > MAX_PEM_BYTES {
            return Err(fail(KeyProblem::TooLarge {
                size: pem.len(),
                limit: MAX_PEM_BYTES,
            }));
        }
        let der = pem_body(pem).map_err(fail)?;
        TrustedKey::from_spki_der(name, &der)
    }

    /// Reads a DER SubjectPublicKeyInfo for ECDSA P-256 or Ed25519.
    pub fn from_spki_der(name: &str, der: &[u8]) -> Result<TrustedKey, KeyError> {
        let fail = |problem| KeyError {
            name: name.to_owned(),
            problem,
        };
        if name.trim().is_empty() {
            return Err(fail(KeyProblem::NoName));
        }
        let (algorithm, public_key) = parse_spki(der).map_err(fail)?;
        let fingerprint = format!("sha256:{}", hex(&Sha256::digest(der)));
        Ok(TrustedKey {
            name: name.to_owned(),
            algorithm,
            public_key,
            fingerprint,
        })
    }

    /// The key's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The scheme the key verifies.
    pub fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }

    /// The key id: `sha256:<hex of the SHA-256 of the SubjectPublicKeyInfo DER>`.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Whether `signature` has the shape this key's scheme produces (a DER ECDSA signature, or
    /// 64 bytes for Ed25519). Says nothing of validity.
    pub(crate) fn fits(&self, signature: &[u8]) -> bool {
        match self.algorithm {
            KeyAlgorithm::EcdsaP256Sha256 => der::is_ecdsa_p256_signature(signature),
            KeyAlgorithm::Ed25519 => signature.len() == 64,
        }
    }

    /// Whether `signature` is this key's signature over exactly `message`.
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        let algorithm: &'static dyn signature::VerificationAlgorithm = match self.algorithm {
            KeyAlgorithm::EcdsaP256Sha256 => &signature::ECDSA_P256_SHA256_ASN1,
            KeyAlgorithm::Ed25519 => &signature::ED25519,
        };
        UnparsedPublicKey::new(algorithm, &self.public_key)
            .verify(message, signature)
            .is_ok()
    }
}

/// The DER inside the one `PUBLIC KEY` PEM block of `pem`.
fn pem_body(pem: &str) -> Result<Vec<u8>, KeyProblem> {
    let Some(start) = pem.find(BEGIN_PUBLIC_KEY) else {
        return Err(if pem.contains("PRIVATE KEY-----") {
            KeyProblem::PrivateKey
        } else if pem.contains("-----BEGIN RSA PUBLIC KEY-----") {
            KeyProblem::Rsa
        } else if pem.contains("-----BEGIN CERTIFICATE-----") {
            KeyProblem::Certificate
        } else {
            KeyProblem::NotPem
        });
    };
    let after_begin = &pem[start + BEGIN_PUBLIC_KEY.len()..];
    let Some(end) = after_begin.find(END_PUBLIC_KEY) else {
        return Err(KeyProblem::NotPem);
    };
    let after_end = &after_begin[end + END_PUBLIC_KEY.len()..];
    if pem[..start].contains("-----BEGIN ") || after_end.contains("-----BEGIN ") {
        return Err(KeyProblem::SeveralBlocks);
    }
    let body: String = after_begin[..end]
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    if body.is_empty() {
        return Err(KeyProblem::Malformed("the PEM block is empty"));
    }
    STANDARD.decode(body).map_err(|_| KeyProblem::NotBase64)
}

/// The algorithm and raw public key of a SubjectPublicKeyInfo:
/// SEQUENCE { SEQUENCE { OID algorithm, parameters OPTIONAL }, BIT STRING key }.
fn parse_spki(der: &[u8]) -> Result<(KeyAlgorithm, Vec<u8>), KeyProblem> {
    let spki = der::single(der, TAG_SEQUENCE, "not a SEQUENCE").map_err(KeyProblem::Malformed)?;
    let mut fields = Reader::new(spki);
    let algorithm_id = fields
        .read(TAG_SEQUENCE, "no AlgorithmIdentifier")
        .map_err(KeyProblem::Malformed)?;
    let bit_string = fields
        .read(TAG_BIT_STRING, "no subjectPublicKey BIT STRING")
        .map_err(KeyProblem::Malformed)?;
    if !fields.is_empty() {
        return Err(KeyProblem::Malformed("trailing fields after the key"));
    }
    let mut algorithm_fields = Reader::new(algorithm_id);
    let oid = algorithm_fields
        .read(TAG_OID, "no algorithm OID")
        .map_err(KeyProblem::Malformed)?;
    let (&unused_bits, key) = bit_string
        .split_first()
        .ok_or(KeyProblem::Malformed("empty BIT STRING"))?;
    if unused_bits != 0 {
        return Err(KeyProblem::Malformed(
            "the key's BIT STRING is not whole bytes",
        ));
    }
    match oid {
        OID_RSA | OID_RSA_PSS => Err(KeyProblem::Rsa),
        OID_EC_PUBLIC_KEY => {
            if algorithm_fields.peek_tag() != Some(TAG_OID) {
                return Err(KeyProblem::Malformed(
                    "EC key without a named curve (explicit curve parameters are not supported)",
                ));
            }
            let curve = algorithm_fields
                .read(TAG_OID, "no curve OID")
                .map_err(KeyProblem::Malformed)?;
            if !algorithm_fields.is_empty() {
                return Err(KeyProblem::Malformed("trailing algorithm parameters"));
            }
            match curve {
                OID_PRIME256V1 => {}
                OID_SECP384R1 => {
                    return Err(KeyProblem::UnsupportedCurve("P-384 (secp384r1)".to_owned()));
                }
                OID_SECP521R1 => {
                    return Err(KeyProblem::UnsupportedCurve("P-521 (secp521r1)".to_owned()));
                }
                other => return Err(KeyProblem::UnsupportedCurve(der::oid_text(other))),
            }
            match key.first() {
                Some(0x04) if key.len() == 65 => Ok((KeyAlgorithm::EcdsaP256Sha256, key.to_vec())),
                Some(0x02 | 0x03) if key.len() == 33 => Err(KeyProblem::CompressedPoint),
                _ => Err(KeyProblem::Malformed(
                    "a P-256 point is 65 bytes, 0x04||X||Y",
                )),
            }
        }
        OID_ED25519 => {
            if !algorithm_fields.is_empty() {
                return Err(KeyProblem::Malformed(
                    "Ed25519 takes no algorithm parameters",
                ));
            }
            if key.len() != 32 {
                return Err(KeyProblem::Malformed("an Ed25519 key is 32 bytes"));
            }
            Ok((KeyAlgorithm::Ed25519, key.to_vec()))
        }
        OID_ED448 => Err(KeyProblem::UnsupportedAlgorithm(
            "Ed448 (1.3.101.113)".to_owned(),
        )),
        other => Err(KeyProblem::UnsupportedAlgorithm(der::oid_text(other))),
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        text.push(char::from(DIGITS[usize::from(b >> 4)]));
        text.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    text
}
