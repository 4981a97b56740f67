//! A minimal DER reader: just enough TLV parsing for SubjectPublicKeyInfo and ECDSA signatures.
//!
//! Strict DER only: low tag numbers, definite minimal lengths of at most four bytes, every length
//! checked against what remains. Nothing here allocates beyond an OID's dotted text.

/// A DER problem, described for a person.
pub(crate) type DerError = &'static str;

pub(crate) const TAG_INTEGER: u8 = 0x02;
pub(crate) const TAG_BIT_STRING: u8 = 0x03;
pub(crate) const TAG_OID: u8 = 0x06;
pub(crate) const TAG_SEQUENCE: u8 = 0x30;

/// Reads consecutive TLVs from a byte slice.
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Reader { rest: bytes }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// The next TLV's tag without consuming it.
    pub(crate) fn peek_tag(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    /// The next TLV: its tag and contents.
    pub(crate) fn read_any(&mut self) -> Result<(u8, &'a [u8]), DerError> {
        let (&tag, after_tag) = self.rest.split_first().ok_or("truncated DER")?;
        if tag & 0x1f == 0x1f {
            return Err("DER high tag numbers are not supported");
        }
        let (&first, mut after_len) = after_tag.split_first().ok_or("truncated DER")?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let count = usize::from(first & 0x7f);
            if count == 0 {
                return Err("indefinite DER length");
            }
            if count > 4 {
                return Err("DER length too large");
            }
            if after_len.len() < count {
                return Err("truncated DER");
            }
            let (len_bytes, rest) = after_len.split_at(count);
            after_len = rest;
            if len_bytes[0] == 0 {
                return Err("non-minimal DER length");
            }
            let len = len_bytes
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
            if len < 0x80 {
                return Err("non-minimal DER length");
            }
            len
        };
        if after_len.len() < len {
            return Err("truncated DER");
        }
        let (contents, rest) = after_len.split_at(len);
        self.rest = rest;
        Ok((tag, contents))
    }

    /// The next TLV, which must have `tag`.
    pub(crate) fn read(&mut self, tag: u8, what: DerError) -> Result<&'a [u8], DerError> {
        match self.read_any()? {
            (found, contents) if found == tag => Ok(contents),
            _ => Err(what),
        }
    }
}

/// The contents of the single TLV that `bytes` must consist of.
pub(crate) fn single(bytes: &[u8], tag: u8, what: DerError) -> Result<&[u8], DerError> {
    let mut reader = Reader::new(bytes);
    let contents = reader.read(tag, what)?;
    if !reader.is_empty() {
        return Err("trailing bytes after DER");
    }
    Ok(contents)
}

/// An OBJECT IDENTIFIER's contents as dotted decimal ("1.2.840.10045.2.1"), for messages.
pub(crate) fn oid_text(contents: &[u8]) -> String {
    let mut arcs: Vec<u64> = Vec::new();
    let mut value: u64 = 0;
    for &byte in contents {
        if value > (u64::MAX >> 7) {
            return "(an OID too long to show)".to_owned();
        }
        value = (value << 7) | u64::from(byte & 0x7f);
        if byte & 0x80 == 0 {
            if arcs.is_empty() {
                let first = (value / 40).min(2);
                arcs.push(first);
                arcs.push(value - first * 40);
            } else {
                arcs.push(value);
            }
            value = 0;
        }
    }
    if arcs.is_empty() || contents.last().is_some_and(|b| b & 0x80 != 0) {
        return "(a malformed OID)".to_owned();
    }
    arcs.iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

/// Whether `sig` has the shape of an ASN.1 DER ECDSA P-256 signature: SEQUENCE { INTEGER r,
/// INTEGER s }, each integer 1 to 33 bytes, nothing after. Cryptographic validity is ring's.
pub(crate) fn is_ecdsa_p256_signature(sig: &[u8]) -> bool {
    let Ok(body) = single(sig, TAG_SEQUENCE, "not a SEQUENCE") else {
        return false;
    };
    let mut reader = Reader::new(body);
    for _ in 0..2 {
        match reader.read(TAG_INTEGER, "not an INTEGER") {
            Ok(int) if (1..=33).contains(&int.len()) => {}
            _ => return false,
        }
    }
    reader.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oid_text_decodes_multi_byte_arcs() {
        assert_eq!(
            oid_text(&[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01]),
            "1.2.840.10045.2.1"
        );
        assert_eq!(oid_text(&[0x2b, 0x65, 0x70]), "1.3.101.112");
        assert_eq!(oid_text(&[0x2a, 0x86]), "(a malformed OID)");
    }

    #[test]
    fn lengths_are_bounded_and_minimal() {
        // Claims 0x10000 bytes, has 1.
        assert_eq!(
            Reader::new(&[0x30, 0x83, 0x01, 0x00, 0x00, 0x00]).read_any(),
            Err("truncated DER")
        );
        assert_eq!(
            Reader::new(&[0x30, 0x81, 0x05, 0, 0, 0, 0, 0]).read_any(),
            Err("non-minimal DER length")
        );
        assert_eq!(
            Reader::new(&[0x30, 0x80, 0x00, 0x00]).read_any(),
            Err("indefinite DER length")
        );
        assert_eq!(
            Reader::new(&[0x30, 0x85, 1, 1, 1, 1, 1]).read_any(),
            Err("DER length too large")
        );
        let mut ok = Reader::new(&[0x02, 0x01, 0x05, 0x05, 0x00]);
        assert_eq!(ok.read_any(), Ok((0x02, &[0x05][..])));
        assert_eq!(ok.read_any(), Ok((0x05, &[][..])));
        assert!(ok.is_empty());
    }

    #[test]
    fn ecdsa_signature_shape() {
        assert!(is_ecdsa_p256_signature(&[
            0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01
        ]));
        // Trailing byte inside the sequence, and a missing second integer.
        assert!(!is_ecdsa_p256_signature(&[
            0x30, 0x07, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01, 0x00
        ]));
        assert!(!is_ecdsa_p256_signature(&[0x30, 0x03, 0x02, 0x01, 0x01]));
        assert!(!is_ecdsa_p256_signature(&[]));
    }
}
