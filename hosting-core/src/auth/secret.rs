//! What the store keeps instead of a high-entropy secret, and the one source of randomness.

use std::fmt;
use std::str::FromStr;

use data_encoding::HEXLOWER;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::{Error, InvalidValue, Result};

/// The SHA-256 of a secret (a refresh or API token, a recovery code), as stored.
///
/// A fast hash is enough because the secrets it is used for are random, not chosen by people;
/// it is also the lookup key, so a stolen table yields no usable token. Serde and
/// [`FromStr`] use 64 lower-case hex digits.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SecretHash([u8; 32]);

impl SecretHash {
    /// The field name used in errors.
    pub const FIELD: &'static str = "secret_hash";

    /// The hash of `secret`.
    pub(crate) fn of(secret: &[u8]) -> Self {
        Self(Sha256::digest(secret).into())
    }

    /// The hash as 64 lower-case hex digits, e.g. for a database column.
    pub fn to_hex(&self) -> String {
        HEXLOWER.encode(&self.0)
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Equality that takes the same time wherever the hashes differ.
    pub fn ct_eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Debug for SecretHash {
    // Enough to tell two apart in a log, not enough to use as a lookup key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretHash({}…)", HEXLOWER.encode(&self.0[..4]))
    }
}

impl FromStr for SecretHash {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || InvalidValue::new(Self::FIELD, "must be 64 lower-case hex digits");
        if s.len() != 64 {
            return Err(bad());
        }
        let bytes = HEXLOWER.decode(s.as_bytes()).map_err(|_| bad())?;
        bytes.try_into().map(Self).map_err(|_| bad())
    }
}

impl Serialize for SecretHash {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for SecretHash {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        raw.parse().map_err(serde::de::Error::custom)
    }
}

/// `N` bytes from the operating system's CSPRNG.
pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).map_err(|e| Error::backend("getrandom", e))?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_abc_round_trips_as_hex() {
        let h = SecretHash::of(b"abc");
        let hex = h.to_hex();
        assert_eq!(
            hex,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(hex.parse::<SecretHash>(), Ok(h.clone()));
        let json = serde_json::to_string(&h).unwrap_or_default();
        assert_eq!(json, format!("\"{hex}\""));
        assert!(format!("{h:?}").starts_with("SecretHash(ba7816bf"));
        assert!(!format!("{h:?}").contains(&hex));
    }

    #[test]
    fn parse_refuses_other_spellings() {
        let upper = "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD";
        for bad in ["", "ab", upper, &"g".repeat(64), &"a".repeat(66)] {
            let err = bad.parse::<SecretHash>().err();
            assert_eq!(err.map(|e| e.field), Some(SecretHash::FIELD.into()));
        }
    }

    #[test]
    fn ct_eq_agrees_with_eq() {
        let a = SecretHash::of(b"a");
        let b = SecretHash::of(b"b");
        assert!(a.ct_eq(&a.clone()));
        assert!(!a.ct_eq(&b));
    }

    #[test]
    fn random_bytes_differ() {
        let a = random_bytes::<32>().ok();
        let b = random_bytes::<32>().ok();
        assert!(a.is_some());
        assert_ne!(a, b);
    }
}
