//! Single-use recovery codes for a user who lost their second factor.
//!
//! Codes are shown once and stored as [`SecretHash`]es. Each is 12 characters from a
//! 32-letter alphabet (60 random bits), written `xxxx-xxxx-xxxx`, so it survives being read
//! aloud or copied from paper.

use std::fmt;

use super::secret::{SecretHash, random_bytes};
use crate::error::{Error, InvalidValue, Result};

/// Lower-case letters and digits without `0 1 l o`, which are read as each other.
const ALPHABET: &[u8; 32] = b"abcdefghijkmnpqrstuvwxyz23456789";
/// Characters per code, without dashes.
const CODE_CHARS: usize = 12;
/// Characters per dash-separated group.
const GROUP: usize = 4;

/// A freshly generated set of recovery codes: the plaintext to show once, and the hashes to
/// store. `Debug` shows the hashes only.
#[derive(Clone)]
pub struct RecoveryCodes {
    codes: Vec<String>,
    hashes: Vec<SecretHash>,
}

impl RecoveryCodes {
    /// The field name used in errors about a presented code.
    pub const FIELD: &'static str = "recovery_code";
    /// The most codes one set may hold.
    pub const MAX_COUNT: usize = 64;

    /// `n` new codes (1 to [`Self::MAX_COUNT`]).
    pub fn generate(n: usize) -> Result<Self> {
        if !(1..=Self::MAX_COUNT).contains(&n) {
            return Err(Error::Invalid {
                field: "count".into(),
                reason: format!("must be 1 to {}", Self::MAX_COUNT).into(),
            });
        }
        let mut codes = Vec::with_capacity(n);
        let mut hashes = Vec::with_capacity(n);
        while codes.len() < n {
            let random = random_bytes::<CODE_CHARS>()?;
            // 256 is a multiple of 32, so masking keeps every letter equally likely.
            let plain: String = random
                .iter()
                .map(|b| char::from(ALPHABET[usize::from(b & 31)]))
                .collect();
            let hash = SecretHash::of(plain.as_bytes());
            if hashes.contains(&hash) {
                continue; // one in 2^60; a set never holds the same code twice
            }
            codes.push(format_code(&plain));
            hashes.push(hash);
        }
        Ok(Self { codes, hashes })
    }

    /// The plaintext codes, `xxxx-xxxx-xxxx`, to show the user once.
    pub fn plaintext(&self) -> &[String] {
        &self.codes
    }

    /// The hashes to store, in the same order as [`Self::plaintext`].
    pub fn hashes(&self) -> &[SecretHash] {
        &self.hashes
    }

    /// Splits into plaintext codes and hashes.
    pub fn into_parts(self) -> (Vec<String>, Vec<SecretHash>) {
        (self.codes, self.hashes)
    }
}

impl fmt::Debug for RecoveryCodes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecoveryCodes")
            .field("codes", &"***")
            .field("hashes", &self.hashes)
            .finish()
    }
}

fn format_code(plain: &str) -> String {
    let mut out = String::with_capacity(CODE_CHARS + CODE_CHARS / GROUP);
    for (i, c) in plain.chars().enumerate() {
        if i > 0 && i % GROUP == 0 {
            out.push('-');
        }
        out.push(c);
    }
    out
}

/// The canonical form of a typed code: lower case, dashes and whitespace removed; `None` if
/// what is left is not 12 characters of the alphabet.
fn normalise(input: &str) -> Option<String> {
    if input.len() > 64 {
        return None;
    }
    let plain: String = input
        .chars()
        .filter(|c| *c != '-' && !c.is_whitespace())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let valid = plain.len() == CODE_CHARS && plain.bytes().all(|b| ALPHABET.contains(&b));
    valid.then_some(plain)
}

/// The hash a presented code is looked up by, after normalising it (case, dashes, spaces).
pub fn hash_code(input: &str) -> Result<SecretHash, InvalidValue> {
    normalise(input)
        .map(|plain| SecretHash::of(plain.as_bytes()))
        .ok_or_else(|| {
            InvalidValue::new(
                RecoveryCodes::FIELD,
                "must be 12 letters and digits, as xxxx-xxxx-xxxx",
            )
        })
}

/// Whether a presented code is the one `hash` was made from, compared in constant time.
pub fn matches(input: &str, hash: &SecretHash) -> bool {
    hash_code(input).is_ok_and(|presented| presented.ct_eq(hash))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used)]

    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn generated_codes_have_the_format_and_match_their_hashes() {
        let set = RecoveryCodes::generate(10).expect("generate");
        assert_eq!(set.plaintext().len(), 10);
        assert_eq!(set.hashes().len(), 10);
        for (code, hash) in set.plaintext().iter().zip(set.hashes()) {
            assert_eq!(code.len(), 14, "{code}");
            let groups: Vec<&str> = code.split('-').collect();
            assert_eq!(groups.len(), 3);
            for group in groups {
                assert_eq!(group.len(), 4);
                assert!(group.bytes().all(|b| ALPHABET.contains(&b)), "{code}");
            }
            assert!(matches(code, hash));
        }
        let distinct: BTreeSet<_> = set.plaintext().iter().collect();
        assert_eq!(distinct.len(), 10);
        // Each code matches only its own hash.
        assert!(!matches(&set.plaintext()[0], &set.hashes()[1]));
    }

    #[test]
    fn alphabet_has_no_ambiguous_characters() {
        let letters: BTreeSet<u8> = ALPHABET.iter().copied().collect();
        assert_eq!(letters.len(), 32);
        for ambiguous in *b"01lo" {
            assert!(!letters.contains(&ambiguous));
        }
    }

    #[test]
    fn input_is_normalised() {
        let hash = hash_code("abcd-efgh-jkmn").expect("valid");
        for typed in [
            "abcd-efgh-jkmn",
            "ABCD-EFGH-JKMN",
            "abcdefghjkmn",
            "abcd efgh jkmn",
            " abcd-efgh-jkmn\n",
            "ab-cd-ef-gh-jk-mn",
        ] {
            assert!(matches(typed, &hash), "{typed:?}");
        }
        for wrong in [
            "abcd-efgh-jkmp",
            "abcd-efgh-jkm",
            "abcd-efgh-jkmnp",
            "abcd-efgh-jkm0",
            "abcd_efgh_jkmn",
            "",
        ] {
            assert!(!matches(wrong, &hash), "{wrong:?}");
        }
        assert_eq!(
            hash_code("nope").map_err(|e| e.field),
            Err(RecoveryCodes::FIELD.into())
        );
    }

    #[test]
    fn count_is_bounded() {
        for n in [0, RecoveryCodes::MAX_COUNT + 1] {
            let err = RecoveryCodes::generate(n).expect_err("refused");
            assert!(matches!(err, Error::Invalid { ref field, .. } if field == "count"));
        }
        assert!(RecoveryCodes::generate(RecoveryCodes::MAX_COUNT).is_ok());
    }

    #[test]
    fn debug_hides_the_codes() {
        let set = RecoveryCodes::generate(2).expect("generate");
        let debug = format!("{set:?}");
        for code in set.plaintext() {
            assert!(!debug.contains(code.as_str()));
        }
        assert!(debug.contains("***"));
    }
}
