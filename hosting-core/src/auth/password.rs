//! Password hashing with argon2id, stored as PHC strings.
//!
//! The hash string carries its own parameters, so raising the [`PasswordPolicy`] later keeps
//! old hashes verifiable; [`PasswordPolicy::needs_rehash`] says when to re-hash one after a
//! successful login.

use std::fmt;
use std::hint::black_box;
use std::str::FromStr;

use argon2::password_hash::phc;
use argon2::{ARGON2ID_IDENT, Algorithm, Argon2, Block, Params, Version};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use subtle::ConstantTimeEq;

use super::secret::random_bytes;
use crate::error::{Error, InvalidValue, Result};
use crate::types::Password;

/// The length of the outputs new hashes store: argon2's default, 32 bytes.
const OUTPUT_LEN: usize = 32;

/// The argon2id cost parameters new hashes are made with.
///
/// The default is OWASP's recommendation (19 MiB, 2 passes, 1 lane). Tests lower it; an
/// operator may raise it. Parameters outside [`PasswordPolicy::MAX`] are refused, so a stored
/// hash cannot make a login allocate without bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordPolicy {
    /// Memory per hash, in KiB.
    pub memory_kib: u32,
    /// Passes over the memory.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl PasswordPolicy {
    /// OWASP's argon2id parameters: m = 19 MiB, t = 2, p = 1.
    pub const OWASP: Self = Self {
        memory_kib: 19 * 1024,
        iterations: 2,
        parallelism: 1,
    };

    /// The largest parameters accepted, in a policy and in a stored hash (1 GiB, 64 passes,
    /// 16 lanes).
    pub const MAX: Self = Self {
        memory_kib: 1024 * 1024,
        iterations: 64,
        parallelism: 16,
    };

    /// The field name used in errors about the policy itself.
    pub const FIELD: &'static str = "password_policy";

    /// Hashes `password` with a fresh random salt under this policy.
    pub fn hash(&self, password: &Password) -> Result<PasswordHash> {
        self.hash_in(password, &mut HashMemory::new())
    }

    /// [`PasswordPolicy::hash`] in `memory`, which keeps its pages for the next hash.
    pub fn hash_in(&self, password: &Password, memory: &mut HashMemory) -> Result<PasswordHash> {
        let salt = random_bytes::<16>()?;
        let argon2 = self.argon2()?;
        let mut out = [0u8; OUTPUT_LEN];
        argon2
            .hash_password_into_with_memory(
                password.expose().as_bytes(),
                &salt,
                &mut out,
                memory.blocks(argon2.params()),
            )
            .map_err(|e| Error::backend("argon2", e))?;
        let phc = phc::PasswordHash {
            algorithm: ARGON2ID_IDENT,
            version: Some(Version::V0x13.into()),
            params: phc::ParamsString::try_from(argon2.params())
                .map_err(|e| Error::backend("argon2", e))?,
            salt: Some(phc::Salt::new(&salt).map_err(|e| Error::backend("argon2", e))?),
            hash: Some(phc::Output::new(&out).map_err(|e| Error::backend("argon2", e))?),
        };
        Ok(PasswordHash(phc.to_string()))
    }

    /// Spends what checking a password against a hash made under this policy spends, and
    /// learns nothing: called when the account does not exist, so the answer's timing does not
    /// say whether it does.
    pub fn verify_against_dummy(&self, password: &Password) {
        self.verify_against_dummy_in(password, &mut HashMemory::new());
    }

    /// [`PasswordPolicy::verify_against_dummy`] in `memory`.
    pub fn verify_against_dummy_in(&self, password: &Password, memory: &mut HashMemory) {
        // Fixed salt: the result is thrown away, only the work matters.
        const DUMMY_SALT: [u8; 16] = *b"hosting-dummy-sa";
        if let Ok(argon2) = self.argon2() {
            let mut out = [0u8; OUTPUT_LEN];
            let done = argon2.hash_password_into_with_memory(
                password.expose().as_bytes(),
                &DUMMY_SALT,
                &mut out,
                memory.blocks(argon2.params()),
            );
            black_box((done.is_ok(), out));
        }
    }

    /// Whether `hash` was made with parameters other than this policy's, so it should be
    /// replaced by a fresh hash the next time the password is known.
    pub fn needs_rehash(&self, hash: &PasswordHash) -> bool {
        hash.params().is_none_or(|p| {
            (p.m_cost(), p.t_cost(), p.p_cost())
                != (self.memory_kib, self.iterations, self.parallelism)
        })
    }

    fn argon2(&self) -> Result<Argon2<'static>> {
        let bad = |reason: String| Error::Invalid {
            field: Self::FIELD.into(),
            reason: reason.into(),
        };
        if self.memory_kib > Self::MAX.memory_kib
            || self.iterations > Self::MAX.iterations
            || self.parallelism > Self::MAX.parallelism
        {
            return Err(bad(format!("must not exceed {:?}", Self::MAX)));
        }
        let params = Params::new(self.memory_kib, self.iterations, self.parallelism, None)
            .map_err(|e| bad(e.to_string()))?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self::OWASP
    }
}

/// An argon2id password hash in PHC string format (`$argon2id$v=19$m=..,t=..,p=..$salt$hash`).
///
/// Parsing (and serde) accepts only argon2id, version 19, with a salt of at least 8 bytes, an
/// output of at least 16 bytes and parameters within [`PasswordPolicy::MAX`]. `Debug` shows
/// the parameters only: the salt and output are what an offline guesser needs.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(String);

impl PasswordHash {
    /// The field name used in errors.
    pub const FIELD: &'static str = "password_hash";

    /// The PHC string, for the store.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn parsed(&self) -> Option<phc::PasswordHash> {
        phc::PasswordHash::new(&self.0).ok()
    }

    fn params(&self) -> Option<Params> {
        self.parsed().and_then(|h| Params::try_from(&h).ok())
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.params() {
            Some(p) => write!(
                f,
                "PasswordHash(argon2id m={},t={},p={} ***)",
                p.m_cost(),
                p.t_cost(),
                p.p_cost()
            ),
            None => f.write_str("PasswordHash(***)"),
        }
    }
}

fn parse_password_hash(s: &str) -> Result<String, InvalidValue> {
    let bad = |rule: &'static str| InvalidValue::new(PasswordHash::FIELD, rule);
    if s.len() > 512 {
        return Err(bad("must be at most 512 bytes"));
    }
    let phc = phc::PasswordHash::new(s).map_err(|_| bad("must be a PHC string"))?;
    if phc.algorithm != ARGON2ID_IDENT {
        return Err(bad("must be an argon2id hash"));
    }
    if phc.version != Some(Version::V0x13.into()) {
        return Err(bad("must be argon2 version 19"));
    }
    if phc.salt.as_ref().is_none_or(|salt| salt.len() < 8) {
        return Err(bad("must carry a salt of at least 8 bytes"));
    }
    if phc.hash.as_ref().is_none_or(|out| out.len() < 16) {
        return Err(bad("must carry an output of at least 16 bytes"));
    }
    let params = Params::try_from(&phc).map_err(|_| bad("has invalid argon2 parameters"))?;
    if params.m_cost() > PasswordPolicy::MAX.memory_kib
        || params.t_cost() > PasswordPolicy::MAX.iterations
        || params.p_cost() > PasswordPolicy::MAX.parallelism
    {
        return Err(bad("has parameters above the allowed maximum"));
    }
    if !params.keyid().is_empty() || !params.data().is_empty() {
        return Err(bad("must not carry a key id or associated data"));
    }
    Ok(s.to_owned())
}

impl FromStr for PasswordHash {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_password_hash(s).map(Self)
    }
}

impl TryFrom<String> for PasswordHash {
    type Error = InvalidValue;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl Serialize for PasswordHash {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for PasswordHash {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        raw.parse().map_err(serde::de::Error::custom)
    }
}

/// Hashes `password` under [`PasswordPolicy::OWASP`].
pub fn hash_password(password: &Password) -> Result<PasswordHash> {
    PasswordPolicy::default().hash(password)
}

/// Whether `password` matches `hash`, using the parameters the hash was made with. The
/// comparison of outputs is constant-time.
pub fn verify_password(password: &Password, hash: &PasswordHash) -> bool {
    verify_password_in(password, hash, &mut HashMemory::new())
}

/// [`verify_password`] in `memory`, which keeps its pages for the next hash.
pub fn verify_password_in(
    password: &Password,
    hash: &PasswordHash,
    memory: &mut HashMemory,
) -> bool {
    let Some(phc) = hash.parsed() else {
        return false;
    };
    let (Some(salt), Some(expected)) = (&phc.salt, &phc.hash) else {
        return false;
    };
    let Ok(stored) = Params::try_from(&phc) else {
        return false;
    };
    let Ok(params) = Params::new(
        stored.m_cost(),
        stored.t_cost(),
        stored.p_cost(),
        Some(expected.len()),
    ) else {
        return false;
    };
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let mut out = vec![0u8; expected.len()];
    argon2
        .hash_password_into_with_memory(
            password.expose().as_bytes(),
            salt.as_ref(),
            &mut out,
            memory.blocks(argon2.params()),
        )
        .is_ok()
        && bool::from(out.as_slice().ct_eq(expected.as_bytes()))
}

/// Argon2's working memory (19 MiB under the default policy), kept from one hash to the next:
/// a login then neither asks the allocator for fresh pages, which glibc would keep per thread
/// afterwards, nor waits for the kernel to zero them.
#[derive(Debug, Default)]
pub struct HashMemory(Vec<Block>);

impl HashMemory {
    /// No memory yet; the first hash allocates it.
    pub fn new() -> Self {
        Self::default()
    }

    /// The bytes held.
    pub fn bytes(&self) -> usize {
        self.0.len() * Block::SIZE
    }

    /// Gives back all but what `policy` needs, after a hash made with larger parameters (an
    /// old hash verified under a policy since lowered).
    pub fn shrink_to(&mut self, policy: &PasswordPolicy) {
        let keep = usize::try_from(policy.memory_kib).unwrap_or(usize::MAX);
        if self.0.len() > keep {
            self.0.truncate(keep);
            self.0.shrink_to_fit();
        }
    }

    fn blocks(&mut self, params: &Params) -> &mut [Block] {
        let count = params.block_count();
        if self.0.len() < count {
            self.0.resize(count, Block::new());
        }
        &mut self.0[..count]
    }
}

/// [`PasswordPolicy::verify_against_dummy`] under the default policy: call it when no account
/// matches a login, so the failure takes as long as a wrong password would.
pub fn verify_against_dummy(password: &Password) {
    PasswordPolicy::default().verify_against_dummy(password);
}

/// A new random password of 24 characters from letters and digits without look-alikes (about
/// 140 bits), for accounts and customer databases whose first password the panel chooses. It
/// holds no quotes or symbols, so it survives any client's connection string unescaped.
pub fn generate_password() -> Result<Password> {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    const LEN: usize = 24;
    // Bytes at or above the largest multiple of the alphabet's size are skipped, so every
    // character is equally likely.
    let limit = 256 - 256 % ALPHABET.len();
    let mut text = String::with_capacity(LEN);
    while text.len() < LEN {
        for b in random_bytes::<64>()? {
            if usize::from(b) < limit && text.len() < LEN {
                text.push(char::from(ALPHABET[usize::from(b) % ALPHABET.len()]));
            }
        }
    }
    Ok(text.parse()?)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used)]

    use std::time::{Duration, Instant};

    use super::*;

    /// Cheap enough for unit tests; argon2's minimum is 8 KiB per lane.
    const FAST: PasswordPolicy = PasswordPolicy {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };

    fn pw(s: &str) -> Password {
        s.parse().expect("valid password")
    }

    #[test]
    fn hash_then_verify() {
        let hash = FAST.hash(&pw("correct horse")).expect("hash");
        assert!(hash.as_str().starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        assert!(verify_password(&pw("correct horse"), &hash));
        assert!(!verify_password(&pw("correct horsf"), &hash));
        // A fresh salt each time.
        assert_ne!(FAST.hash(&pw("correct horse")).expect("hash"), hash);
    }

    #[test]
    fn default_policy_is_owasp_and_verifies() {
        assert_eq!(
            PasswordPolicy::default(),
            PasswordPolicy {
                memory_kib: 19_456,
                iterations: 2,
                parallelism: 1
            }
        );
        let hash = hash_password(&pw("a long passphrase")).expect("hash");
        assert!(hash.as_str().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(verify_password(&pw("a long passphrase"), &hash));
        assert!(!PasswordPolicy::default().needs_rehash(&hash));
        assert!(FAST.needs_rehash(&hash));
    }

    #[test]
    fn reused_memory_agrees_with_the_argon2_crate_both_ways() {
        use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
        let argon2 = FAST.argon2().expect("policy");
        let theirs = argon2
            .hash_password_with_salt(b"s3cret pass", b"somesalt-16bytes")
            .expect("hash");
        let theirs: PasswordHash = theirs.to_string().parse().expect("PHC");
        let mut memory = HashMemory::new();
        assert!(verify_password_in(&pw("s3cret pass"), &theirs, &mut memory));
        assert!(!verify_password_in(
            &pw("s3cret pasS"),
            &theirs,
            &mut memory
        ));

        let ours = FAST.hash_in(&pw("s3cret pass"), &mut memory).expect("hash");
        let parsed = phc::PasswordHash::new(ours.as_str()).expect("PHC");
        assert!(argon2.verify_password(b"s3cret pass", &parsed).is_ok());
        assert_eq!(
            memory.bytes(),
            64 * 1024,
            "the memory is kept for the next hash"
        );
    }

    #[test]
    fn memory_grown_by_a_costlier_old_hash_is_given_back() {
        let costly = PasswordPolicy {
            memory_kib: 256,
            ..FAST
        };
        let old = costly.hash(&pw("password1")).expect("hash");
        let mut memory = HashMemory::new();
        assert!(verify_password_in(&pw("password1"), &old, &mut memory));
        assert_eq!(memory.bytes(), 256 * 1024);
        memory.shrink_to(&FAST);
        assert_eq!(memory.bytes(), 64 * 1024);
    }

    #[test]
    fn unicode_and_quotes_are_hashed_as_given() {
        let secret = pw("pässwört \"'; \\ 🔑");
        let hash = FAST.hash(&secret).expect("hash");
        assert!(verify_password(&secret, &hash));
        assert!(!verify_password(&pw("passwort \"'; \\ 🔑"), &hash));
    }

    #[test]
    fn parse_accepts_argon2id_only() {
        let good = FAST.hash(&pw("password1")).expect("hash");
        let text = good.as_str().to_owned();
        assert_eq!(text.parse::<PasswordHash>(), Ok(good.clone()));

        let argon2i = text.replacen("$argon2id$", "$argon2i$", 1);
        let v16 = text.replacen("$v=19$", "$v=16$", 1);
        let huge = text.replacen("m=64,", "m=4194304,", 1);
        let no_hash = text.rsplit_once('$').map(|(head, _)| head.to_owned());
        let bcrypt = "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW";
        for bad in [
            "",
            "plaintext",
            bcrypt,
            &argon2i,
            &v16,
            &huge,
            &no_hash.unwrap_or_default(),
            &"$argon2id$".repeat(100),
        ] {
            let err = bad.parse::<PasswordHash>().expect_err(bad);
            assert_eq!(err.field, PasswordHash::FIELD);
        }
    }

    #[test]
    fn serde_is_the_phc_string_and_validates() {
        let hash = FAST.hash(&pw("password1")).expect("hash");
        let json = serde_json::to_string(&hash).expect("serialize");
        assert_eq!(json, format!("\"{}\"", hash.as_str()));
        let back: PasswordHash = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back, hash);
        assert!(serde_json::from_str::<PasswordHash>("\"$2b$12$abc\"").is_err());
    }

    #[test]
    fn debug_hides_salt_and_output() {
        let hash = FAST.hash(&pw("password1")).expect("hash");
        let debug = format!("{hash:?}");
        assert_eq!(debug, "PasswordHash(argon2id m=64,t=1,p=1 ***)");
        let salt_and_output = hash.as_str().rsplitn(3, '$').take(2);
        for part in salt_and_output {
            assert!(!debug.contains(part));
        }
    }

    #[test]
    fn policy_bounds_are_enforced() {
        let too_big = PasswordPolicy {
            memory_kib: PasswordPolicy::MAX.memory_kib + 1,
            ..FAST
        };
        let too_small = PasswordPolicy {
            memory_kib: 1,
            ..FAST
        };
        for policy in [too_big, too_small] {
            let err = policy.hash(&pw("password1")).expect_err("refused");
            assert!(
                matches!(&err, Error::Invalid { field, .. } if field == PasswordPolicy::FIELD),
                "{err:?}"
            );
        }
    }

    #[test]
    fn dummy_costs_about_a_verification() {
        // Large enough that the hash dominates; the bounds are loose so a busy machine passes.
        let policy = PasswordPolicy {
            memory_kib: 4096,
            iterations: 1,
            parallelism: 1,
        };
        let secret = pw("password1");
        let hash = policy.hash(&secret).expect("hash");
        let median = |f: &dyn Fn()| {
            let mut times: Vec<Duration> = (0..5)
                .map(|_| {
                    let start = Instant::now();
                    f();
                    start.elapsed()
                })
                .collect();
            times.sort();
            times[2]
        };
        let real = median(&|| {
            black_box(verify_password(&pw("wrong password"), &hash));
        });
        let dummy = median(&|| policy.verify_against_dummy(&secret));
        let ratio = dummy.as_secs_f64() / real.as_secs_f64();
        assert!(
            (0.25..4.0).contains(&ratio),
            "dummy {dummy:?} vs real {real:?}"
        );
    }

    #[test]
    fn generated_passwords_are_long_alphanumeric_and_distinct() {
        let a = generate_password().expect("password");
        let b = generate_password().expect("password");
        assert_eq!(a.expose().len(), 24);
        assert!(a.expose().bytes().all(|c| c.is_ascii_alphanumeric()));
        assert!(!a.expose().contains(['0', 'O', 'l', '1', 'I']));
        assert_ne!(a, b);
    }
}
