//! Bearer secrets: opaque tokens the store looks up by hash (refresh tokens, API keys), and
//! short-lived access tokens signed with HMAC-SHA256 that need no lookup.
//!
//! An access token is `base64url(claims JSON) "." base64url(HMAC-SHA256(key, "hsa1." payload))`:
//! the `hsa1.` prefix binds the MAC to this format and version, so a MAC made for anything
//! else with the same key never verifies as an access token.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use data_encoding::{BASE64, BASE64URL_NOPAD};
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Deserializer, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::secret::{SecretHash, random_bytes};
use crate::error::{InvalidValue, Result};
use crate::model::{Role, TenantId, UserId};

// ---------------------------------------------------------------------------------------------
// Opaque tokens

/// What an [`OpaqueToken`] is for; its prefix says so, which lets a secret scanner recognise a
/// leaked token and keeps a refresh token from being accepted as an API key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenKind {
    /// A session's refresh token (`hsr_`).
    Refresh,
    /// An API key (`hsk_`).
    ApiKey,
}

impl TokenKind {
    /// The prefix its tokens start with.
    pub const fn prefix(self) -> &'static str {
        match self {
            TokenKind::Refresh => "hsr_",
            TokenKind::ApiKey => "hsk_",
        }
    }
}

/// A random bearer secret: a kind prefix and 32 random bytes in base64url (47 characters).
///
/// The store keeps only [`OpaqueToken::hash`]; the token itself is shown once through
/// [`OpaqueToken::expose`]. `Debug` prints the prefix only, there is no `Display` and no
/// `Serialize`; `Deserialize` and [`FromStr`] check the format. Equality is constant-time.
#[derive(Clone)]
pub struct OpaqueToken {
    kind: TokenKind,
    text: String,
}

impl OpaqueToken {
    /// The field name used in errors.
    pub const FIELD: &'static str = "token";
    /// Length of every token, prefix included.
    pub const LEN: usize = 4 + 43;

    /// A new random token of `kind`.
    pub fn generate(kind: TokenKind) -> Result<Self> {
        let random = random_bytes::<32>()?;
        Ok(Self {
            kind,
            text: format!("{}{}", kind.prefix(), BASE64URL_NOPAD.encode(&random)),
        })
    }

    /// Parses `s` and requires it to be of `kind`, so a refresh token is never taken for an
    /// API key or the other way round.
    pub fn parse_as(s: &str, kind: TokenKind) -> Result<Self, InvalidValue> {
        let token: Self = s.parse()?;
        if token.kind != kind {
            let rule = match kind {
                TokenKind::Refresh => "must be a refresh token (hsr_)",
                TokenKind::ApiKey => "must be an API key (hsk_)",
            };
            return Err(InvalidValue::new(Self::FIELD, rule));
        }
        Ok(token)
    }

    /// What the token is for.
    pub fn kind(&self) -> TokenKind {
        self.kind
    }

    /// The SHA-256 of the whole token: what the store keeps and looks the token up by.
    pub fn hash(&self) -> SecretHash {
        SecretHash::of(self.text.as_bytes())
    }

    /// The token itself, to hand to its owner once.
    pub fn expose(&self) -> &str {
        &self.text
    }
}

impl fmt::Debug for OpaqueToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OpaqueToken({}***)", self.kind.prefix())
    }
}

impl PartialEq for OpaqueToken {
    fn eq(&self, other: &Self) -> bool {
        self.text.as_bytes().ct_eq(other.text.as_bytes()).into()
    }
}

impl Eq for OpaqueToken {}

impl FromStr for OpaqueToken {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |rule: &'static str| InvalidValue::new(Self::FIELD, rule);
        if s.len() != Self::LEN {
            return Err(bad("must be 47 characters"));
        }
        let kind = [TokenKind::Refresh, TokenKind::ApiKey]
            .into_iter()
            .find(|kind| s.starts_with(kind.prefix()))
            .ok_or_else(|| bad("must start with hsr_ or hsk_"))?;
        let body = &s[kind.prefix().len()..];
        match BASE64URL_NOPAD.decode(body.as_bytes()) {
            Ok(bytes) if bytes.len() == 32 => Ok(Self {
                kind,
                text: s.to_owned(),
            }),
            _ => Err(bad("must be a prefix and 43 base64url characters")),
        }
    }
}

impl<'de> Deserialize<'de> for OpaqueToken {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        raw.parse().map_err(serde::de::Error::custom)
    }
}

// ---------------------------------------------------------------------------------------------
// Signed access tokens

/// Why an access token was refused. Callers answer each the same way (401) but log and count
/// them apart: a burst of bad signatures is an attack, expiries are routine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not an access token: too long, wrong shape, bad encoding or bad claims.
    #[error("malformed access token")]
    Malformed,
    /// Well-formed, but no current key signed it.
    #[error("access token signature does not verify")]
    BadSignature,
    /// Signed and valid, but past its expiry.
    #[error("access token expired")]
    Expired,
}

/// What an access token asserts. Times are Unix seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessClaims {
    /// The login session it was minted for (revoking the session stops refreshes).
    pub session: i64,
    /// The user.
    pub user: UserId,
    /// The user's tenant.
    pub tenant: TenantId,
    /// The role the user held when the token was minted (the panel acts with the current one).
    pub role: Role,
    /// The user's credential generation when the token was minted: a password change,
    /// suspension, role change or refresh replay moves it in the store, and a token carrying an
    /// older one is refused at once, in every panel process.
    pub generation: i64,
    /// Whether the token only lets its holder enrol a second factor (its tenant requires one
    /// and the user has none yet).
    pub enrol_only: bool,
    /// When it was minted.
    pub issued_at: i64,
    /// The first second it is no longer valid.
    pub expires_at: i64,
}

impl AccessClaims {
    /// The claims as JSON, the same as `Serialize` writes. Written by hand because every field
    /// is a number or a role name, so signing cannot fail.
    fn to_json(&self) -> String {
        format!(
            r#"{{"session":{},"user":{},"tenant":{},"role":"{}","generation":{},"enrol_only":{},"issued_at":{},"expires_at":{}}}"#,
            self.session,
            self.user.0,
            self.tenant.0,
            self.role,
            self.generation,
            self.enrol_only,
            self.issued_at,
            self.expires_at
        )
    }
}

/// The MAC input's prefix: format and version of the token.
const DOMAIN: &[u8] = b"hsa1.";
/// Longer tokens are refused before any decoding or hashing.
const MAX_TOKEN_LEN: usize = 4096;

/// A secret HMAC-SHA256 key that signs access tokens; at least 32 bytes.
///
/// For the config file it is read and written as standard base64 (`openssl rand -base64 32`
/// makes one). `Debug` prints `***`; there is no `Display` and no `Serialize`.
#[derive(Clone)]
pub struct SigningKey(Vec<u8>);

impl SigningKey {
    /// The field name used in errors.
    pub const FIELD: &'static str = "signing_key";
    /// The shortest key accepted, in bytes (HMAC-SHA256's output size).
    pub const MIN_LEN: usize = 32;
    /// The longest key accepted, in bytes.
    pub const MAX_LEN: usize = 1024;

    /// A new random 32-byte key.
    pub fn generate() -> Result<Self> {
        random_bytes::<32>().map(|bytes| Self(bytes.to_vec()))
    }

    /// A key from raw bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, InvalidValue> {
        if !(Self::MIN_LEN..=Self::MAX_LEN).contains(&bytes.len()) {
            return Err(InvalidValue::new(
                Self::FIELD,
                "must be 32 to 1024 bytes (generate one with `openssl rand -base64 32`)",
            ));
        }
        Ok(Self(bytes.to_vec()))
    }

    /// A key from standard, padded base64; surrounding whitespace is ignored.
    pub fn from_base64(s: &str) -> Result<Self, InvalidValue> {
        let bytes = BASE64
            .decode(s.trim().as_bytes())
            .map_err(|_| InvalidValue::new(Self::FIELD, "must be standard base64"))?;
        Self::from_bytes(&bytes)
    }

    /// The key as standard, padded base64, to write into a config file.
    pub fn to_base64(&self) -> String {
        BASE64.encode(&self.0)
    }

    /// Signs `claims` into an access token.
    pub fn sign(&self, claims: &AccessClaims) -> String {
        let payload = BASE64URL_NOPAD.encode(claims.to_json().as_bytes());
        let tag = self.mac(&payload).finalize().into_bytes();
        format!("{payload}.{}", BASE64URL_NOPAD.encode(&tag))
    }

    /// The claims of `token` if this key signed it and it has not expired at `now`.
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<AccessClaims, TokenError> {
        let (payload, tag) = split(token)?;
        if !self.signed(payload, &tag) {
            return Err(TokenError::BadSignature);
        }
        claims(payload, now)
    }

    fn mac(&self, payload: &str) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(DOMAIN);
        mac.update(payload.as_bytes());
        mac
    }

    /// Constant-time check of `tag` over `payload`.
    fn signed(&self, payload: &str, tag: &[u8]) -> bool {
        self.mac(payload).verify_slice(tag).is_ok()
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey(***)")
    }
}

impl<'de> Deserialize<'de> for SigningKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::from_base64(&raw).map_err(serde::de::Error::custom)
    }
}

/// The keys access tokens are checked against: tokens are signed with `current`; tokens
/// signed with `previous` still verify, so a key can be rotated without logging everyone out
/// (keep the old key as `previous` for one access-token lifetime, then drop it).
#[derive(Debug, Clone)]
pub struct Keyring {
    /// Signs new tokens and verifies.
    pub current: SigningKey,
    /// Only verifies.
    pub previous: Option<SigningKey>,
}

impl Keyring {
    /// A keyring with one key.
    pub fn new(current: SigningKey) -> Self {
        Self {
            current,
            previous: None,
        }
    }

    /// Makes `next` the signing key and keeps the current one for verification only.
    #[must_use]
    pub fn rotate(self, next: SigningKey) -> Self {
        Self {
            current: next,
            previous: Some(self.current),
        }
    }

    /// Signs with the current key.
    pub fn sign(&self, claims: &AccessClaims) -> String {
        self.current.sign(claims)
    }

    /// The claims of `token` if either key signed it and it has not expired at `now`.
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<AccessClaims, TokenError> {
        let (payload, tag) = split(token)?;
        let signed = self.current.signed(payload, &tag)
            || self
                .previous
                .as_ref()
                .is_some_and(|key| key.signed(payload, &tag));
        if !signed {
            return Err(TokenError::BadSignature);
        }
        claims(payload, now)
    }
}

/// The payload (still encoded) and the decoded MAC, checking only the shape.
fn split(token: &str) -> Result<(&str, Vec<u8>), TokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::Malformed);
    }
    let (payload, tag) = token.split_once('.').ok_or(TokenError::Malformed)?;
    if payload.is_empty() || tag.contains('.') {
        return Err(TokenError::Malformed);
    }
    let tag = BASE64URL_NOPAD
        .decode(tag.as_bytes())
        .map_err(|_| TokenError::Malformed)?;
    if tag.len() != 32 {
        return Err(TokenError::Malformed);
    }
    Ok((payload, tag))
}

/// Decodes claims whose MAC has been checked, then checks expiry.
fn claims(payload: &str, now: DateTime<Utc>) -> Result<AccessClaims, TokenError> {
    let json = BASE64URL_NOPAD
        .decode(payload.as_bytes())
        .map_err(|_| TokenError::Malformed)?;
    let claims: AccessClaims = serde_json::from_slice(&json).map_err(|_| TokenError::Malformed)?;
    if claims.issued_at > claims.expires_at {
        return Err(TokenError::Malformed);
    }
    if now.timestamp() >= claims.expires_at {
        return Err(TokenError::Expired);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used)]

    use proptest::prelude::*;

    use super::*;

    fn at(unix: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(unix, 0).expect("in range")
    }

    fn claims() -> AccessClaims {
        AccessClaims {
            session: 7,
            user: UserId(42),
            tenant: TenantId(3),
            role: Role::Reseller,
            generation: 5,
            enrol_only: false,
            issued_at: 1_000,
            expires_at: 1_900,
        }
    }

    fn key(byte: u8) -> SigningKey {
        SigningKey::from_bytes(&[byte; 32]).expect("32 bytes")
    }

    #[test]
    fn opaque_tokens_have_prefix_length_and_hash() {
        for kind in [TokenKind::Refresh, TokenKind::ApiKey] {
            let token = OpaqueToken::generate(kind).expect("random");
            assert_eq!(token.kind(), kind);
            assert_eq!(token.expose().len(), OpaqueToken::LEN);
            assert!(token.expose().starts_with(kind.prefix()));
            let parsed: OpaqueToken = token.expose().parse().expect("own format");
            assert_eq!(parsed, token);
            assert_eq!(parsed.kind(), kind);
            assert_eq!(parsed.hash(), token.hash());
            assert_eq!(
                token.hash(),
                SecretHash::of(token.expose().as_bytes()),
                "the hash covers the prefix"
            );
        }
        let a = OpaqueToken::generate(TokenKind::ApiKey).expect("random");
        let b = OpaqueToken::generate(TokenKind::ApiKey).expect("random");
        assert_ne!(a, b);
        assert_ne!(a.hash(), b.hash());
    }

    /// `body`'s last character with one of its unused low bits set.
    fn non_canonical_last(body: &str) -> char {
        const URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let last = body.as_bytes()[42];
        let index = URL.iter().position(|&c| c == last).expect("base64url");
        char::from(URL[index | 1])
    }

    #[test]
    fn opaque_token_parse_refuses_bad_input() {
        let good = OpaqueToken::generate(TokenKind::Refresh).expect("random");
        let body = &good.expose()[4..];
        let cases = [
            String::new(),
            format!("hsx_{body}"),
            format!("HSR_{body}"),
            format!("hsr_{}", &body[1..]),
            format!("hsr_{body}A"),
            format!("hsr_{}+", &body[1..]),
            format!("hsr_{}=", &body[1..]),
            format!("hsr_{} ", &body[1..]),
            // The last character carries 2 unused bits; a spelling with them set is refused.
            format!("hsr_{}{}", &body[..42], non_canonical_last(body)),
        ];
        for bad in &cases {
            let err = bad.parse::<OpaqueToken>().expect_err(bad);
            assert_eq!(err.field, "token", "{bad}");
        }
        let json = format!("\"{}\"", good.expose());
        let back: OpaqueToken = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back, good);
        assert!(serde_json::from_str::<OpaqueToken>("\"hsr_short\"").is_err());
    }

    #[test]
    fn parse_as_checks_the_kind() {
        let refresh = OpaqueToken::generate(TokenKind::Refresh).expect("random");
        assert_eq!(
            OpaqueToken::parse_as(refresh.expose(), TokenKind::Refresh),
            Ok(refresh.clone())
        );
        let err = OpaqueToken::parse_as(refresh.expose(), TokenKind::ApiKey).expect_err("kind");
        assert_eq!(err.field, "token");
        let err = crate::Error::from(err);
        assert!(matches!(err, crate::Error::Invalid { ref field, .. } if field == "token"));
    }

    #[test]
    fn opaque_token_debug_hides_the_secret() {
        let token = OpaqueToken::generate(TokenKind::ApiKey).expect("random");
        assert_eq!(format!("{token:?}"), "OpaqueToken(hsk_***)");
    }

    #[test]
    fn sign_then_verify() {
        let key = key(1);
        let token = key.sign(&claims());
        assert_eq!(key.verify(&token, at(1_000)), Ok(claims()));
        assert_eq!(key.verify(&token, at(1_899)), Ok(claims()));
        assert_eq!(key.verify(&token, at(1_900)), Err(TokenError::Expired));
        // The payload is plain JSON in base64url, no padding.
        let (payload, _) = token.split_once('.').expect("two parts");
        let json = BASE64URL_NOPAD.decode(payload.as_bytes()).expect("b64");
        let parsed: AccessClaims = serde_json::from_slice(&json).expect("json");
        assert_eq!(parsed, claims());
        assert_eq!(
            serde_json::to_string(&claims()).expect("json"),
            claims().to_json(),
            "the hand-written JSON is what serde writes"
        );
        assert!(!token.contains('='));
    }

    #[test]
    fn the_mac_covers_the_domain_prefix() {
        let key = key(1);
        let token = key.sign(&claims());
        let (payload, tag) = token.split_once('.').expect("two parts");
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&[1u8; 32]).expect("key");
        mac.update(format!("hsa1.{payload}").as_bytes());
        let expected = BASE64URL_NOPAD.encode(&mac.finalize().into_bytes());
        assert_eq!(tag, expected);
    }

    #[test]
    fn wrong_key_and_tampering_are_bad_signatures() {
        let token = key(1).sign(&claims());
        assert_eq!(
            key(2).verify(&token, at(1_000)),
            Err(TokenError::BadSignature)
        );

        let admin = AccessClaims {
            role: Role::Admin,
            ..claims()
        };
        let forged_payload = BASE64URL_NOPAD.encode(admin.to_json().as_bytes());
        let (_, tag) = token.split_once('.').expect("two parts");
        let forged = format!("{forged_payload}.{tag}");
        assert_eq!(
            key(1).verify(&forged, at(1_000)),
            Err(TokenError::BadSignature)
        );

        // An expired token signed by another key is reported as a bad signature, not expiry:
        // nothing unauthenticated is interpreted.
        assert_eq!(
            key(2).verify(&token, at(5_000)),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn malformed_tokens() {
        let key = key(1);
        let token = key.sign(&claims());
        let (payload, tag) = token.split_once('.').expect("two parts");
        let long = "a".repeat(MAX_TOKEN_LEN + 1);
        let cases = [
            String::new(),
            ".".to_owned(),
            payload.to_owned(),
            format!("{payload}."),
            format!(".{tag}"),
            format!("{payload}.{tag}.x"),
            format!("{payload}.{tag}="),
            format!("{payload}.{}", &tag[1..]),
            format!("{payload}.{tag}AA"),
            format!("{payload}.!{}", &tag[1..]),
            long,
        ];
        for bad in &cases {
            assert_eq!(
                key.verify(bad, at(1_000)),
                Err(TokenError::Malformed),
                "{bad}"
            );
        }
    }

    #[test]
    fn signed_garbage_claims_are_malformed() {
        let key = key(1);
        let sign_raw = |json: &str| {
            let payload = BASE64URL_NOPAD.encode(json.as_bytes());
            let tag = key.mac(&payload).finalize().into_bytes();
            format!("{payload}.{}", BASE64URL_NOPAD.encode(&tag))
        };
        let extra = claims().to_json().replacen('{', r#"{"admin":true,"#, 1);
        let backwards = AccessClaims {
            issued_at: 2_000,
            ..claims()
        }
        .to_json();
        for json in [
            "not json",
            "{}",
            r#"{"session":7}"#,
            &extra,
            &claims().to_json().replace("reseller", "root"),
            &backwards,
        ] {
            assert_eq!(
                key.verify(&sign_raw(json), at(1_000)),
                Err(TokenError::Malformed),
                "{json}"
            );
        }
        assert_eq!(
            key.verify(&sign_raw(&claims().to_json()), at(1_000)),
            Ok(claims())
        );
    }

    #[test]
    fn keyring_accepts_previous_key_until_dropped() {
        let old = Keyring::new(key(1));
        let old_token = old.sign(&claims());
        let rotated = old.rotate(key(2));
        let new_token = rotated.sign(&claims());
        assert_eq!(rotated.verify(&old_token, at(1_000)), Ok(claims()));
        assert_eq!(rotated.verify(&new_token, at(1_000)), Ok(claims()));
        assert_eq!(key(2).verify(&new_token, at(1_000)), Ok(claims()));
        assert_eq!(
            rotated.verify(&old_token, at(1_900)),
            Err(TokenError::Expired)
        );

        let dropped = Keyring {
            previous: None,
            ..rotated.clone()
        };
        assert_eq!(
            dropped.verify(&old_token, at(1_000)),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            rotated.rotate(key(3)).verify(&old_token, at(1_000)),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn signing_key_import_export() {
        let key = SigningKey::generate().expect("random");
        let text = key.to_base64();
        assert_eq!(text.len(), 44);
        let back = SigningKey::from_base64(&format!("{text}\n")).expect("own format");
        let token = key.sign(&claims());
        assert_eq!(back.verify(&token, at(1_000)), Ok(claims()));
        let from_toml: SigningKey =
            serde_json::from_str(&format!("\"{text}\"")).expect("deserialize");
        assert_eq!(from_toml.verify(&token, at(1_000)), Ok(claims()));

        let short = BASE64.encode(&[0u8; 31]);
        for bad in ["", "not base64!", short.as_str()] {
            let err = SigningKey::from_base64(bad).expect_err(bad);
            assert_eq!(err.field, SigningKey::FIELD);
        }
        assert!(SigningKey::from_bytes(&[0; 1025]).is_err());
        assert_eq!(format!("{key:?}"), "SigningKey(***)");
        assert!(!format!("{:?}", Keyring::new(key)).contains(&text));
    }

    proptest! {
        #[test]
        fn any_claims_round_trip(
            session in any::<i64>(),
            user in any::<i64>(),
            tenant in any::<i64>(),
            role in prop::sample::select(Role::ALL.to_vec()),
            generation in any::<i64>(),
            enrol_only in any::<bool>(),
            issued_at in -1_000_000i64..1_000_000,
            ttl in 1i64..100_000,
        ) {
            let claims = AccessClaims {
                session,
                user: UserId(user),
                tenant: TenantId(tenant),
                role,
                generation,
                enrol_only,
                issued_at,
                expires_at: issued_at + ttl,
            };
            let key = key(9);
            let token = key.sign(&claims);
            prop_assert_eq!(key.verify(&token, at(issued_at)), Ok(claims));
        }

        #[test]
        fn random_input_never_verifies(input in ".{0,300}") {
            prop_assert!(key(1).verify(&input, at(0)).is_err());
        }
    }
}
