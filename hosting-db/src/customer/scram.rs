//! PostgreSQL SCRAM-SHA-256 verifiers computed on the panel's side, as libpq's
//! `PQencryptPasswordConn` (psql's `\password`) does: the server receives only the verifier, so
//! no statement log, `pg_stat_statements` entry or error message can hold the password.

use data_encoding::BASE64;
use hmac::{Hmac, KeyInit, Mac};
use hosting_core::{Error, Result};
use sha2::{Digest, Sha256};

/// PBKDF2 rounds: PostgreSQL's default `scram_iterations`.
const ITERATIONS: u32 = 4096;
/// Salt length in bytes, as PostgreSQL's own verifiers.
const SALT_LEN: usize = 16;

/// A verifier for `password` with a fresh random salt:
/// `SCRAM-SHA-256$4096:<salt>$<StoredKey>:<ServerKey>`, each part in base64.
pub(super) fn verifier(password: &str) -> Result<String> {
    let mut salt = [0u8; SALT_LEN];
    getrandom::fill(&mut salt).map_err(|e| Error::backend("getrandom", e))?;
    Ok(verifier_with_salt(password, &salt, ITERATIONS))
}

fn verifier_with_salt(password: &str, salt: &[u8], iterations: u32) -> String {
    let salted = salted_password(password, salt, iterations);
    let client_key = hmac(&salted, b"Client Key");
    let stored_key = Sha256::digest(client_key);
    let server_key = hmac(&salted, b"Server Key");
    format!(
        "SCRAM-SHA-256${iterations}:{}${}:{}",
        BASE64.encode(salt),
        BASE64.encode(&stored_key),
        BASE64.encode(&server_key)
    )
}

/// PBKDF2-HMAC-SHA256 of the SASLprep'd password, one 32-byte block (RFC 5802 `Hi`). A
/// password SASLprep refuses is used byte for byte, as libpq does, so the server accepts what
/// libpq-based clients send.
fn salted_password(password: &str, salt: &[u8], iterations: u32) -> [u8; 32] {
    let prepared = stringprep::saslprep(password);
    let key = prepared.as_deref().unwrap_or(password).as_bytes();
    let mut block = Vec::with_capacity(salt.len() + 4);
    block.extend_from_slice(salt);
    block.extend_from_slice(&1u32.to_be_bytes());
    let mut u = hmac(key, &block);
    let mut result = u;
    for _ in 1..iterations {
        u = hmac(key, &u);
        for (r, x) in result.iter_mut().zip(u) {
            *r ^= x;
        }
    }
    result
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(data);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used)] // a failed expectation is a failed test

    use super::*;

    /// The parts of a verifier: iterations, salt, StoredKey, ServerKey (decoded).
    fn parse(verifier: &str) -> (u32, Vec<u8>, Vec<u8>, Vec<u8>) {
        let rest = verifier.strip_prefix("SCRAM-SHA-256$").expect("mechanism");
        let (iterations_salt, keys) = rest.split_once('$').expect("'$' before the keys");
        let (iterations, salt) = iterations_salt.split_once(':').expect("iterations:salt");
        let (stored, server) = keys.split_once(':').expect("StoredKey:ServerKey");
        let decode = |s: &str| BASE64.decode(s.as_bytes()).expect("base64");
        (
            iterations.parse().expect("iterations"),
            decode(salt),
            decode(stored),
            decode(server),
        )
    }

    /// RFC 7677's example exchange (user "user", password "pencil"): a server holding our
    /// verifier computes the same signature, and the client's proof checks against it.
    #[test]
    fn matches_the_rfc_7677_exchange() {
        let salt = BASE64.decode(b"W22ZaJ0SNY7soEsUEjb6gQ==").expect("salt");
        let (_, _, stored_key, server_key) = parse(&verifier_with_salt("pencil", &salt, 4096));
        let auth_message = "n=user,r=rOprNGfwEbeRWgbNEkqO,\
            r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,\
            c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        assert_eq!(
            BASE64.encode(&hmac(&server_key, auth_message.as_bytes())),
            "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
        // The server's check: SHA256(proof XOR ClientSignature) == StoredKey.
        let proof = BASE64
            .decode(b"dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
            .expect("proof");
        let signature = hmac(&stored_key, auth_message.as_bytes());
        let client_key: Vec<u8> = proof.iter().zip(signature).map(|(p, s)| p ^ s).collect();
        assert_eq!(
            Sha256::digest(&client_key).as_slice(),
            stored_key.as_slice()
        );
    }

    /// A verifier PostgreSQL 15 itself stored for `CREATE ROLE … PASSWORD 'pw-ünï "\$$'` with
    /// `password_encryption = 'scram-sha-256'`.
    #[test]
    fn matches_a_verifier_postgresql_computed() {
        let server = SERVER_VECTOR;
        let (iterations, salt, _, _) = parse(server);
        assert_eq!(
            verifier_with_salt(SERVER_VECTOR_PASSWORD, &salt, iterations),
            server
        );
    }

    const SERVER_VECTOR_PASSWORD: &str = "pw-ünï \"\\$$";
    const SERVER_VECTOR: &str = "SCRAM-SHA-256$4096:g9/qTG8HpH6M9FJN+2nkvg==$\
        vfD43Lg3YF+EtcVssVsnA531dvb4S5VLVMQBDlr8yNw=:YI6JHiFskiPzxcIprMhBjNwOSR61soCOKPlvz2BQ4iQ=";

    #[test]
    fn has_the_server_format_and_a_fresh_salt_each_time() {
        let a = verifier("same password").expect("verifier");
        let b = verifier("same password").expect("verifier");
        let (iterations, salt_a, stored, server) = parse(&a);
        assert_eq!(iterations, 4096);
        assert_eq!(salt_a.len(), 16);
        assert_eq!((stored.len(), server.len()), (32, 32));
        assert_ne!(parse(&b).1, salt_a, "each verifier gets its own salt");
        assert_ne!(a, b);
    }

    #[test]
    fn saslprep_maps_spaces_and_falls_back_to_raw_bytes() {
        let salt = [7u8; 16];
        // SASLprep maps a no-break space to a space.
        assert_eq!(
            salted_password("a\u{00A0}b", &salt, 2),
            salted_password("a b", &salt, 2)
        );
        // A prohibited character (here U+0007) is kept as it is rather than refused.
        assert_ne!(
            salted_password("a\u{0007}b", &salt, 2),
            salted_password("ab", &salt, 2)
        );
    }
}
