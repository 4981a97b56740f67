//! DSSE envelopes (secure-systems-lab/dsse): signatures over PAE(payloadType, payload).

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde_json::Value;

use crate::statement::{IN_TOTO_PAYLOAD_TYPE, Statement};
use crate::{
    MAX_PAYLOAD_BYTES, MAX_SIGNATURE_BASE64, MAX_SIGNATURES, Refusal, TrustedKey, json, key_names,
};

/// DSSE allows standard and URL-safe base64, padded or not.
const LENIENT: GeneralPurposeConfig =
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
const STANDARD_ANY: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, LENIENT);
const URL_SAFE_ANY: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, LENIENT);

pub(crate) fn decode(text: &str) -> Option<Vec<u8>> {
    STANDARD_ANY
        .decode(text)
        .or_else(|_| URL_SAFE_ANY.decode(text))
        .ok()
}

/// A DSSE envelope with a signature a trusted key verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DsseVerified {
    /// The envelope's `payloadType` (signed).
    pub payload_type: String,
    /// The decoded payload (signed).
    pub payload: Vec<u8>,
    /// The name of the trusted key that verified a signature.
    pub key: String,
    /// That key's fingerprint.
    pub key_fingerprint: String,
}

/// An in-toto statement from a verified DSSE envelope, covering the image asked about.
#[derive(Debug, Clone, PartialEq)]
pub struct Attestation {
    /// The name of the trusted key that verified the envelope.
    pub key: String,
    /// The statement.
    pub statement: Statement,
}

/// DSSE's pre-authentication encoding: `"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`,
/// lengths in ASCII decimal bytes. This is what DSSE signatures sign.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let header = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    );
    let mut encoded = Vec::with_capacity(header.len() + payload.len());
    encoded.extend_from_slice(header.as_bytes());
    encoded.extend_from_slice(payload);
    encoded
}

/// Verifies a DSSE envelope (`{"payloadType", "payload", "signatures": [{"keyid", "sig"}]}`):
/// accepted when any of its signatures verifies with any of `keys` over PAE(payloadType,
/// payload). `keyid` is a hint DSSE leaves unauthenticated, so it is not used.
pub fn verify_dsse(envelope: &[u8], keys: &[TrustedKey]) -> Result<DsseVerified, Refusal> {
    let document = json::parse(envelope, "envelope")?;
    let not_dsse = |problem: &str| Refusal::NotDsse(problem.to_owned());
    let top = document
        .as_object()
        .ok_or_else(|| not_dsse("not a JSON object"))?;
    let payload_type = match top.get("payloadType") {
        Some(Value::String(text)) => text,
        Some(_) => return Err(not_dsse("payloadType is not a string")),
        None => return Err(not_dsse("payloadType is missing")),
    };
    let payload = match top.get("payload") {
        Some(Value::String(text)) => {
            decode(text).ok_or_else(|| not_dsse("payload is not base64"))?
        }
        Some(_) => return Err(not_dsse("payload is not a string")),
        None => return Err(not_dsse("payload is missing")),
    };
    let signatures = match top.get("signatures") {
        Some(Value::Array(signatures)) => signatures,
        Some(_) => return Err(not_dsse("signatures is not an array")),
        None => return Err(not_dsse("signatures is missing")),
    };
    if signatures.is_empty() {
        return Err(not_dsse("signatures is empty"));
    }
    if signatures.len() > MAX_SIGNATURES {
        return Err(Refusal::TooManySignatures {
            count: signatures.len(),
            limit: MAX_SIGNATURES,
        });
    }
    let mut decoded = Vec::with_capacity(signatures.len());
    for (index, signature) in signatures.iter().enumerate() {
        let sig = match signature.get("sig") {
            Some(Value::String(text)) => text,
            Some(_) => {
                return Err(not_dsse(&format!(
                    "signatures[{index}].sig is not a string"
                )));
            }
            None => return Err(not_dsse(&format!("signatures[{index}].sig is missing"))),
        };
        if sig.len() > MAX_SIGNATURE_BASE64 {
            return Err(Refusal::TooLarge {
                what: "signature",
                size: sig.len(),
                limit: MAX_SIGNATURE_BASE64,
            });
        }
        decoded.push(decode(sig).ok_or(Refusal::SignatureNotBase64)?);
    }
    if keys.is_empty() {
        return Err(Refusal::NoTrustedKeys);
    }
    let message = pae(payload_type, &payload);
    let mut any_fits = false;
    for signature in &decoded {
        for key in keys.iter().filter(|key| key.fits(signature)) {
            any_fits = true;
            if key.verifies(&message, signature) {
                return Ok(DsseVerified {
                    payload_type: payload_type.clone(),
                    payload,
                    key: key.name().to_owned(),
                    key_fingerprint: key.fingerprint().to_owned(),
                });
            }
        }
    }
    if any_fits {
        Err(Refusal::NotSignedByTrustedKey {
            keys: key_names(keys),
        })
    } else {
        Err(Refusal::SignatureMalformed {
            bytes: decoded.first().map_or(0, Vec::len),
        })
    }
}

/// Verifies a DSSE envelope of an in-toto statement (`application/vnd.in-toto+json`) and
/// requires the statement's subjects to include `image_digest` (`sha256:<hex>`).
pub fn verify_attestation(
    envelope: &[u8],
    keys: &[TrustedKey],
    image_digest: &str,
) -> Result<Attestation, Refusal> {
    let verified = verify_dsse(envelope, keys)?;
    if verified.payload_type != IN_TOTO_PAYLOAD_TYPE {
        return Err(Refusal::OtherPayloadType {
            found: verified.payload_type,
            expected: IN_TOTO_PAYLOAD_TYPE.to_owned(),
        });
    }
    debug_assert!(verified.payload.len() <= MAX_PAYLOAD_BYTES);
    let statement = Statement::parse(&verified.payload)?;
    if !statement.covers(image_digest) {
        return Err(Refusal::SubjectNotCovered {
            image_digest: image_digest.to_owned(),
        });
    }
    Ok(Attestation {
        key: verified.key,
        statement,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_matches_the_spec_example() {
        // protocol.md's test vector.
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
        assert_eq!(pae("", b""), b"DSSEv1 0  0 ".to_vec());
    }

    #[test]
    fn both_base64_alphabets_decode() {
        assert_eq!(decode("-_8"), Some(vec![0xfb, 0xff]));
        assert_eq!(decode("+/8="), Some(vec![0xfb, 0xff]));
        assert_eq!(decode("not base64!"), None);
    }
}
