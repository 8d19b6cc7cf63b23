//! Provenance of stored artefacts: a [`Fingerprint`] of everything that determined them, and
//! checksummed file frames so that a flipped byte or a swapped file is detected on read.
//!
//! A fingerprint is a list of named parts (`model`, `priors`, `seed`, ...), each with a SHA-256
//! digest of its canonical bytes. Keeping the parts separate lets a mismatch say *what* changed
//! ("priors, features"), not only that something did.

use crate::error::{InferError, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::Path;

/// Hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Hex SHA-256 of the little-endian bytes of `values` (e.g. a round's proposal draws).
pub fn sha256_f64(values: &[f64]) -> String {
    let mut h = Sha256::new();
    for v in values {
        h.update(v.to_le_bytes());
    }
    hex(&h.finalize())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Named digests of what determined an artefact's contents.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    parts: Vec<(String, String)>,
}

impl Fingerprint {
    /// An empty fingerprint.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds part `name` with the digest of `canonical` (its canonical bytes).
    pub fn with(mut self, name: &str, canonical: impl AsRef<[u8]>) -> Self {
        self.parts
            .push((name.to_string(), sha256_hex(canonical.as_ref())));
        self
    }

    /// The parts, in order, as (name, hex digest).
    pub fn parts(&self) -> &[(String, String)] {
        &self.parts
    }

    /// One digest of the whole fingerprint.
    pub fn digest(&self) -> String {
        let mut h = Sha256::new();
        for (n, d) in &self.parts {
            h.update(n.as_bytes());
            h.update([0]);
            h.update(d.as_bytes());
            h.update([0]);
        }
        hex(&h.finalize())
    }

    /// Names of the parts that differ between `self` (stored) and `other` (wanted), including
    /// parts present on one side only; empty when they are equal.
    pub fn changes(&self, other: &Fingerprint) -> Vec<String> {
        let get =
            |f: &Fingerprint, n: &str| f.parts.iter().find(|(k, _)| k == n).map(|(_, d)| d.clone());
        let mut names: Vec<&str> = self.parts.iter().map(|(n, _)| n.as_str()).collect();
        for (n, _) in &other.parts {
            if !names.contains(&n.as_str()) {
                names.push(n);
            }
        }
        names
            .into_iter()
            .filter(|n| get(self, n) != get(other, n))
            .map(str::to_string)
            .collect()
    }
}

/// Length of the checksum that ends a framed file.
const SUM_LEN: usize = 32;

/// Appends the SHA-256 of `payload` to it: the on-disk frame of a checksummed file.
pub fn frame(mut payload: Vec<u8>) -> Vec<u8> {
    let sum = Sha256::digest(&payload);
    payload.extend_from_slice(&sum);
    payload
}

/// Checks and strips the checksum of a framed file read from `path`.
pub fn unframe<'a>(path: &Path, bytes: &'a [u8]) -> Result<&'a [u8]> {
    if bytes.len() < SUM_LEN {
        return Err(InferError::Corrupt {
            path: path.into(),
            reason: format!("{} bytes is too short to hold its checksum", bytes.len()),
        });
    }
    let (payload, sum) = bytes.split_at(bytes.len() - SUM_LEN);
    if Sha256::digest(payload).as_slice() != sum {
        return Err(InferError::Corrupt {
            path: path.into(),
            reason: "checksum mismatch (the file was modified or damaged after it was written)"
                .into(),
        });
    }
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_name_the_parts_that_differ() {
        let a = Fingerprint::new()
            .with("model", "dv/dt = -v/tau")
            .with("seed", "1");
        let b = Fingerprint::new()
            .with("model", "dv/dt = -v/tau")
            .with("seed", "2");
        assert_eq!(a.changes(&a.clone()), Vec::<String>::new());
        assert_eq!(a.changes(&b), vec!["seed".to_string()]);
        assert_ne!(a.digest(), b.digest());
        let c = a.clone().with("features", "mean");
        assert_eq!(a.changes(&c), vec!["features".to_string()]);
    }

    #[test]
    fn a_flipped_byte_anywhere_is_detected() {
        let framed = frame(b"some payload bytes".to_vec());
        let p = Path::new("x.chunk");
        assert_eq!(unframe(p, &framed).unwrap(), b"some payload bytes");
        for i in 0..framed.len() {
            let mut bad = framed.clone();
            bad[i] ^= 0x10;
            let e = unframe(p, &bad).unwrap_err().to_string();
            assert!(e.contains("x.chunk") && e.contains("checksum"), "{e}");
        }
        assert!(unframe(p, &framed[..10]).is_err());
    }
}
