//! Computing digests of content as it streams, to verify what a registry served.

use berth_core::{Digest, DigestAlgorithm};
use sha2::Digest as _;

/// An incremental hasher for either digest algorithm berth accepts.
pub enum ContentHasher {
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
}

impl ContentHasher {
    pub fn new(algorithm: DigestAlgorithm) -> ContentHasher {
        match algorithm {
            DigestAlgorithm::Sha256 => ContentHasher::Sha256(sha2::Sha256::new()),
            DigestAlgorithm::Sha512 => ContentHasher::Sha512(sha2::Sha512::new()),
        }
    }

    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            ContentHasher::Sha256(hasher) => hasher.update(bytes),
            ContentHasher::Sha512(hasher) => hasher.update(bytes),
        }
    }

    pub fn finish(self) -> Digest {
        let (name, hex) = match self {
            ContentHasher::Sha256(hasher) => ("sha256", hex(&hasher.finalize())),
            ContentHasher::Sha512(hasher) => ("sha512", hex(&hasher.finalize())),
        };
        Digest::parse(&format!("{name}:{hex}")).expect("a hash always forms a valid digest")
    }

    /// The digest of `bytes` under `algorithm`.
    pub fn digest_of(algorithm: DigestAlgorithm, bytes: &[u8]) -> Digest {
        let mut hasher = ContentHasher::new(algorithm);
        hasher.update(bytes);
        hasher.finish()
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut text, byte| {
            let _ = write!(text, "{byte:02x}");
            text
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        assert_eq!(
            ContentHasher::digest_of(DigestAlgorithm::Sha256, b"").to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert!(
            ContentHasher::digest_of(DigestAlgorithm::Sha512, b"abc")
                .hex()
                .starts_with("ddaf35a193617aba")
        );
    }
}
