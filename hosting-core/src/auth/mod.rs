//! Security primitives for the panel's authentication (feature `auth`).
//!
//! Each piece is small and does one thing, so the login flow that combines them (in the panel)
//! stays readable and each rule here is tested on its own:
//! - [`password`]: argon2id hashes in PHC format, and a dummy verification for unknown accounts.
//! - [`totp`]: RFC 6238 one-time codes with replay refusal.
//! - [`recovery`]: single-use recovery codes, stored as hashes.
//! - [`token`]: opaque refresh and API tokens (stored as hashes) and signed, short-lived
//!   access tokens with key rotation.
//! - [`permission`]: what an API token may do.
//! - [`rate_limit`]: an in-memory, bounded request throttle and attempt budgets with backoff.
//!
//! Secrets (passwords, TOTP secrets, plaintext codes and tokens, signing keys) have a `Debug`
//! that prints `***`, no `Display` and no `Serialize`; each has one explicit way out.

pub mod password;
pub mod permission;
pub mod rate_limit;
pub mod recovery;
mod secret;
pub mod token;
pub mod totp;

pub use password::{
    HashMemory, PasswordHash, PasswordPolicy, generate_password, hash_password,
    verify_against_dummy, verify_password, verify_password_in,
};
pub use permission::{Permission, PermissionSet};
pub use rate_limit::{AttemptPolicy, AttemptRecord, RateLimiter, RetryAfter};
pub use recovery::RecoveryCodes;
pub use secret::SecretHash;
pub use token::{AccessClaims, Keyring, OpaqueToken, SigningKey, TokenError, TokenKind};
pub use totp::TotpSecret;
