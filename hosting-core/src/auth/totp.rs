//! Time-based one-time passwords (RFC 6238): HMAC-SHA1, 30-second steps, 6 digits, the
//! parameters every authenticator app understands.

use std::fmt;

use chrono::{DateTime, Utc};
use data_encoding::BASE32_NOPAD;
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use subtle::ConstantTimeEq;

use super::secret::random_bytes;
use crate::error::{InvalidValue, Result};

/// A user's TOTP shared secret: 160 random bits (RFC 4226's recommended length).
///
/// It must be stored recoverably (the server computes codes from it), so it has no serde:
/// the store writes [`TotpSecret::to_base32`] on purpose, never by deriving. `Debug` prints
/// `***`; equality is constant-time.
#[derive(Clone)]
pub struct TotpSecret([u8; 20]);

impl TotpSecret {
    /// The field name used in errors.
    pub const FIELD: &'static str = "totp_secret";
    /// Seconds per time step.
    pub const PERIOD_SECS: u64 = 30;
    /// Digits per code.
    pub const DIGITS: u32 = 6;

    /// A new random secret.
    pub fn generate() -> Result<Self> {
        random_bytes().map(Self)
    }

    /// Reads the 32-character base32 form (RFC 4648 alphabet, no padding). Lower case is
    /// accepted because people copy secrets by hand.
    pub fn from_base32(s: &str) -> Result<Self, InvalidValue> {
        let bad = || {
            InvalidValue::new(
                Self::FIELD,
                "must be 32 base32 characters (A-Z, 2-7) without padding",
            )
        };
        if s.len() != 32 {
            return Err(bad());
        }
        let bytes = BASE32_NOPAD
            .decode(s.to_ascii_uppercase().as_bytes())
            .map_err(|_| bad())?;
        bytes.try_into().map(Self).map_err(|_| bad())
    }

    /// The secret as 32 upper-case base32 characters without padding: what the store keeps
    /// and what a user types into an app that cannot scan a QR code.
    pub fn to_base32(&self) -> String {
        BASE32_NOPAD.encode(&self.0)
    }

    /// The time step that `unix_secs` falls in.
    pub fn step_at(unix_secs: u64) -> u64 {
        unix_secs / Self::PERIOD_SECS
    }

    /// The 6-digit code valid at `unix_secs`.
    pub fn code_at(&self, unix_secs: u64) -> String {
        self.hotp(Self::step_at(unix_secs), Self::DIGITS)
    }

    /// Checks `code` against the steps within `window_steps` of `now`'s step and returns the
    /// step it matched. Steps at or before `last_used_step` are refused, so a code (or an older
    /// one) cannot be used twice; the caller stores the returned step as the new last one.
    /// Anything but exactly six ASCII digits is refused.
    pub fn verify(
        &self,
        code: &str,
        now: DateTime<Utc>,
        window_steps: u8,
        last_used_step: Option<u64>,
    ) -> Option<u64> {
        if code.len() != Self::DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let current = Self::step_at(u64::try_from(now.timestamp()).ok()?);
        let window = u64::from(window_steps);
        let mut matched = None;
        // Every candidate is computed and compared, so the time taken does not say which
        // step matched.
        for step in current.saturating_sub(window)..=current.saturating_add(window) {
            let fresh = last_used_step.is_none_or(|last| step > last);
            let same: bool = self
                .hotp(step, Self::DIGITS)
                .as_bytes()
                .ct_eq(code.as_bytes())
                .into();
            if same && fresh {
                matched = Some(step);
            }
        }
        matched
    }

    /// The `otpauth://` URI an authenticator app reads from a QR code. `issuer` names the
    /// panel, `account` the user (e.g. the e-mail); both are percent-encoded.
    pub fn provisioning_uri(&self, issuer: &str, account: &str) -> String {
        let issuer = percent_encode(issuer);
        format!(
            "otpauth://totp/{issuer}:{account}?secret={secret}&issuer={issuer}&algorithm=SHA1&digits={digits}&period={period}",
            account = percent_encode(account),
            secret = self.to_base32(),
            digits = Self::DIGITS,
            period = Self::PERIOD_SECS,
        )
    }

    /// RFC 4226 HOTP: HMAC-SHA1 over the big-endian counter, dynamic truncation, `digits`
    /// decimal digits with leading zeros.
    fn hotp(&self, counter: u64, digits: u32) -> String {
        let mut mac = <Hmac<Sha1> as KeyInit>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(&counter.to_be_bytes());
        let hs = mac.finalize().into_bytes();
        // SHA-1 output is 20 bytes and offset is at most 15, so offset + 4 <= 19.
        let offset = usize::from(hs[19] & 0x0f);
        let word = [hs[offset], hs[offset + 1], hs[offset + 2], hs[offset + 3]];
        let binary = u32::from_be_bytes(word) & 0x7fff_ffff;
        let value = u64::from(binary) % 10u64.pow(digits);
        format!("{value:0width$}", width = digits as usize)
    }
}

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpSecret(***)")
    }
}

impl PartialEq for TotpSecret {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for TotpSecret {}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used)]

    use proptest::prelude::*;

    use super::*;

    fn rfc_secret() -> TotpSecret {
        TotpSecret(*b"12345678901234567890")
    }

    fn at(unix: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(unix, 0).expect("in range")
    }

    #[test]
    fn rfc6238_appendix_b_sha1_vectors() {
        let secret = rfc_secret();
        for (time, code) in [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ] {
            assert_eq!(secret.hotp(TotpSecret::step_at(time), 8), code, "T={time}");
            // The 6-digit code is the same number modulo 10^6.
            assert_eq!(secret.code_at(time), code[2..], "T={time}");
        }
    }

    #[test]
    fn rfc4226_appendix_d_hotp_vectors() {
        let expected = [
            "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583",
            "399871", "520489",
        ];
        for (counter, code) in (0u64..).zip(expected) {
            assert_eq!(rfc_secret().hotp(counter, 6), code);
        }
    }

    #[test]
    fn verify_returns_the_step_and_refuses_replay() {
        let secret = rfc_secret();
        let now = at(1_111_111_111);
        let code = secret.code_at(1_111_111_111);
        let step = secret.verify(&code, now, 1, None).expect("valid");
        assert_eq!(step, TotpSecret::step_at(1_111_111_111));
        assert_eq!(secret.verify(&code, now, 1, Some(step)), None);
        // An older code after a newer one was used is a replay too.
        let previous = secret.code_at(1_111_111_111 - 30);
        assert_eq!(secret.verify(&previous, now, 1, Some(step)), None);
        assert_eq!(
            secret.verify(&previous, now, 1, Some(step - 2)),
            Some(step - 1)
        );
    }

    #[test]
    fn window_edges() {
        let secret = rfc_secret();
        // Last second of a step: the next step is one away, two steps is outside a window of 1.
        let step = 40_000_000u64;
        let now_secs = step * 30 + 29;
        let now = at(i64::try_from(now_secs).expect("fits"));
        let code_of = |s: u64| secret.hotp(s, 6);
        for (offset, window, accepted) in [
            (0i64, 0u8, true),
            (1, 0, false),
            (-1, 0, false),
            (1, 1, true),
            (-1, 1, true),
            (2, 1, false),
            (-2, 1, false),
            (2, 2, true),
            (-2, 2, true),
        ] {
            let s = step.checked_add_signed(offset).expect("in range");
            let result = secret.verify(&code_of(s), now, window, None);
            assert_eq!(
                result,
                accepted.then_some(s),
                "offset {offset} window {window}"
            );
        }
        // First second of the next step.
        let later = at(i64::try_from(now_secs + 1).expect("fits"));
        assert_eq!(secret.verify(&code_of(step), later, 0, None), None);
        assert_eq!(secret.verify(&code_of(step), later, 1, None), Some(step));
    }

    #[test]
    fn malformed_codes_are_refused() {
        let secret = rfc_secret();
        let now = at(59);
        let code = secret.code_at(59);
        assert_eq!(code, "287082");
        for bad in [
            "",
            "28708",
            "2870820",
            "28708a",
            "287 82",
            " 287082",
            "287082\n",
            "２８７０８２",
            "+87082",
            "-87082",
        ] {
            assert_eq!(secret.verify(bad, now, 1, None), None, "{bad:?}");
        }
        assert!(secret.verify(&code, now, 1, None).is_some());
        // Before 1970 nothing matches.
        assert_eq!(secret.verify(&code, at(-1), 1, None), None);
    }

    #[test]
    fn base32_round_trip() {
        let secret = TotpSecret::generate().expect("random");
        let text = secret.to_base32();
        assert_eq!(text.len(), 32);
        assert_eq!(TotpSecret::from_base32(&text), Ok(secret.clone()));
        assert_eq!(
            TotpSecret::from_base32(&text.to_ascii_lowercase()),
            Ok(secret)
        );
        assert_eq!(rfc_secret().to_base32(), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        for bad in [
            "",
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJ",
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ====",
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJ1",
            "GEZDGNBVGY3TQOJQ GEZDGNBVGY3TQOJ",
        ] {
            let err = TotpSecret::from_base32(bad).expect_err(bad);
            assert_eq!(err.field, TotpSecret::FIELD);
        }
    }

    #[test]
    fn debug_hides_the_secret() {
        let secret = rfc_secret();
        assert_eq!(format!("{secret:?}"), "TotpSecret(***)");
    }

    #[test]
    fn provisioning_uri_is_percent_encoded() {
        let uri = rfc_secret().provisioning_uri("Acme Hosting", "bob+1@example.com");
        assert_eq!(
            uri,
            "otpauth://totp/Acme%20Hosting:bob%2B1%40example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Acme%20Hosting&algorithm=SHA1&digits=6&period=30"
        );
        let tricky = rfc_secret().provisioning_uri("a:b&c=d", "x?y#z/é");
        assert!(tricky.starts_with("otpauth://totp/a%3Ab%26c%3Dd:x%3Fy%23z%2F%C3%A9?"));
    }

    proptest! {
        #[test]
        fn code_is_always_six_ascii_digits(key in any::<[u8; 20]>(), t in any::<u64>()) {
            let code = TotpSecret(key).code_at(t);
            prop_assert_eq!(code.len(), 6);
            prop_assert!(code.bytes().all(|b| b.is_ascii_digit()));
        }

        #[test]
        fn own_code_verifies(key in any::<[u8; 20]>(), t in 0i64..=253_402_300_799) {
            let secret = TotpSecret(key);
            let unix = u64::try_from(t).unwrap_or_default();
            let step = TotpSecret::step_at(unix);
            prop_assert_eq!(secret.verify(&secret.code_at(unix), at(t), 0, None), Some(step));
        }
    }
}
