//! Keys and cryptographic operations: sealing secrets at rest, keyed hashes, session tokens and
//! password hashes.
//!
//! The keys secret is a JSON object `{"active_version": "1", "master_1": "...", "master_2": "..."}`.
//! From every master key, HKDF-SHA256 derives an AES-256-GCM sealing key (info `twofa seal key`). New
//! values are sealed with the active version, and values sealed under any listed version still open, so
//! keys can be rotated by adding a version and making it active. Keyed hashes use a separate key,
//! derived from the active master only (info `twofa hash key`).

use std::collections::BTreeMap;
use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use data_encoding::HEXLOWER;
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::ports::{random_bytes, Random};
use crate::secret::{SecretBytes, SecretString};

/// Shortest accepted master key, in characters.
pub const MIN_MASTER_KEY_CHARS: usize = 32;

const SEAL_KEY_INFO: &[u8] = b"twofa seal key";
const HASH_KEY_INFO: &[u8] = b"twofa hash key";
const NONCE_BYTES: usize = 12;

/// Argon2id memory cost in KiB (19 MiB).
pub const PASSWORD_MEMORY_KIB: u32 = 19_456;
/// Argon2id number of passes over memory.
pub const PASSWORD_ITERATIONS: u32 = 2;
/// Argon2id degree of parallelism.
pub const PASSWORD_LANES: u32 = 1;

/// Argon2id hash, with the parameters above, of a password that is not used anywhere. It is verified
/// when a login names an unknown user, so that the response takes as long as for a wrong password.
const DUMMY_PASSWORD_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$dHdvZmEtZHVtbXktc2FsdA$vKRiK8S3xzgsrmkOP7g9ta+d/IxMRIfzsCNObcwRzsg";

type HmacSha256 = Hmac<Sha256>;

/// Error for an invalid keys secret. Messages name the field at fault and never contain key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeysError {
    #[error("keys secret is not a JSON object: {0}")]
    InvalidJson(String),
    #[error("keys secret is missing the field `{0}`")]
    MissingField(String),
    #[error("keys secret field `{field}` is invalid: {reason}")]
    InvalidField { field: String, reason: &'static str },
    #[error("keys secret has an unknown field `{0}`, expected only `active_version` and `master_<version>`")]
    UnknownField(String),
}

/// Error from sealing, opening or password hashing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("sealing failed")]
    SealFailed,
    #[error("sealed value is malformed, expected `v<version>.<nonce>.<ciphertext>`")]
    MalformedSealed,
    #[error("sealed value uses key version {0}, which the keys secret does not contain")]
    UnknownKeyVersion(u32),
    /// Wrong key, wrong associated data or an altered ciphertext.
    #[error("sealed value failed authentication")]
    OpenFailed,
    #[error("password hashing failed: {0}")]
    PasswordHash(String),
}

/// Keys derived from the keys secret: one sealing cipher per version and the keyed-hash key.
#[derive(Clone)]
pub struct Keys {
    active_version: u32,
    ciphers: BTreeMap<u32, Aes256Gcm>,
    hash_mac: HmacSha256,
}

impl fmt::Debug for Keys {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Keys")
            .field("active_version", &self.active_version)
            .field("versions", &self.ciphers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Keys {
    /// Parses the keys secret JSON and derives the keys.
    pub fn from_secret_json(json: &str) -> Result<Keys, KeysError> {
        let fields: Map<String, Value> =
            serde_json::from_str(json).map_err(|error| KeysError::InvalidJson(error.to_string()))?;

        let mut active_version = None;
        let mut masters = BTreeMap::new();
        for (name, value) in &fields {
            if name == "active_version" {
                active_version = Some(parse_active_version(value)?);
            } else if let Some(suffix) = name.strip_prefix("master_") {
                let version = parse_version(suffix).ok_or_else(|| KeysError::InvalidField {
                    field: name.clone(),
                    reason: "the version after `master_` must be a positive integer without leading zeros",
                })?;
                masters.insert(version, parse_master(name, value)?);
            } else {
                return Err(KeysError::UnknownField(name.clone()));
            }
        }

        let active_version = active_version.ok_or_else(|| KeysError::MissingField("active_version".into()))?;
        let active_master = masters
            .get(&active_version)
            .ok_or_else(|| KeysError::MissingField(format!("master_{active_version}")))?;

        let hash_key = derive_key(active_version, active_master, HASH_KEY_INFO)?;
        let hash_mac = <HmacSha256 as Mac>::new_from_slice(hash_key.as_slice())
            .map_err(|_| key_derivation_error(active_version))?;

        let mut ciphers = BTreeMap::new();
        for (version, master) in &masters {
            let seal_key = derive_key(*version, master, SEAL_KEY_INFO)?;
            let cipher = Aes256Gcm::new_from_slice(seal_key.as_slice()).map_err(|_| key_derivation_error(*version))?;
            ciphers.insert(*version, cipher);
        }

        Ok(Keys {
            active_version,
            ciphers,
            hash_mac,
        })
    }

    /// Creates a fresh keys secret JSON with one random master key, for the local run.
    pub fn generate_for_local(random: &dyn Random) -> SecretString {
        let master = Zeroizing::new(random_bytes::<32>(random));
        let json = serde_json::json!({
            "active_version": "1",
            "master_1": URL_SAFE_NO_PAD.encode(master.as_slice()),
        });
        SecretString::new(json.to_string())
    }

    /// Returns the key version that [`Keys::seal`] uses.
    pub fn active_version(&self) -> u32 {
        self.active_version
    }

    /// Encrypts `plaintext` with the active key as `v<version>.<base64url nonce>.<base64url ciphertext>`.
    ///
    /// `aad` binds the ciphertext to its item (for example the user id): [`Keys::open`] fails unless it
    /// gets the same bytes. The nonce is 12 random bytes.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8], random: &dyn Random) -> Result<String, CryptoError> {
        let cipher = self.ciphers.get(&self.active_version).ok_or(CryptoError::SealFailed)?;
        let nonce = random_bytes::<NONCE_BYTES>(random);

        let ciphertext = cipher
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: plaintext, aad })
            .map_err(|_| CryptoError::SealFailed)?;

        Ok(format!(
            "v{}.{}.{}",
            self.active_version,
            URL_SAFE_NO_PAD.encode(nonce),
            URL_SAFE_NO_PAD.encode(ciphertext)
        ))
    }

    /// Decrypts a value made by [`Keys::seal`] with the key of the version it names.
    pub fn open(&self, sealed: &str, aad: &[u8]) -> Result<SecretBytes, CryptoError> {
        let mut parts = sealed.split('.');
        let (Some(version), Some(nonce), Some(ciphertext), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(CryptoError::MalformedSealed);
        };

        let version = version
            .strip_prefix('v')
            .and_then(parse_version)
            .ok_or(CryptoError::MalformedSealed)?;
        let nonce = URL_SAFE_NO_PAD
            .decode(nonce)
            .map_err(|_| CryptoError::MalformedSealed)?;
        if nonce.len() != NONCE_BYTES {
            return Err(CryptoError::MalformedSealed);
        }
        let ciphertext = URL_SAFE_NO_PAD
            .decode(ciphertext)
            .map_err(|_| CryptoError::MalformedSealed)?;

        let cipher = self
            .ciphers
            .get(&version)
            .ok_or(CryptoError::UnknownKeyVersion(version))?;
        cipher
            .decrypt(Nonce::from_slice(&nonce), Payload { msg: &ciphertext, aad })
            .map(SecretBytes::new)
            .map_err(|_| CryptoError::OpenFailed)
    }

    /// Computes HMAC-SHA256 of `data` under the keyed-hash key, as base64url without padding.
    ///
    /// `purpose` separates uses (for example `sms code` and `phone number`): the MAC input is the
    /// purpose length as 8 big-endian bytes, the purpose, then `data`, so no two (purpose, data) pairs
    /// give the same input. Changing the active key version changes every keyed hash.
    pub fn keyed_hash(&self, purpose: &str, data: &[u8]) -> String {
        let mut mac = self.hash_mac.clone();
        mac.update(&(purpose.len() as u64).to_be_bytes());
        mac.update(purpose.as_bytes());
        mac.update(data);
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }
}

/// Derives a 32-byte key from a master key with HKDF-SHA256, without salt.
fn derive_key(version: u32, master: &str, info: &[u8]) -> Result<Zeroizing<[u8; 32]>, KeysError> {
    let mut key = Zeroizing::new([0u8; 32]);
    Hkdf::<Sha256>::new(None, master.as_bytes())
        .expand(info, key.as_mut_slice())
        .map_err(|_| key_derivation_error(version))?;
    Ok(key)
}

fn key_derivation_error(version: u32) -> KeysError {
    KeysError::InvalidField {
        field: format!("master_{version}"),
        reason: "no key could be derived from it",
    }
}

/// Parses a key version: a positive decimal integer without sign or leading zeros.
fn parse_version(text: &str) -> Option<u32> {
    let is_canonical = !text.is_empty() && !text.starts_with('0') && text.bytes().all(|byte| byte.is_ascii_digit());
    if !is_canonical {
        return None;
    }
    text.parse().ok()
}

fn parse_active_version(value: &Value) -> Result<u32, KeysError> {
    let version = match value {
        Value::String(text) => parse_version(text),
        Value::Number(number) => number
            .as_u64()
            .and_then(|number| u32::try_from(number).ok())
            .filter(|&version| version > 0),
        _ => None,
    };
    version.ok_or_else(|| KeysError::InvalidField {
        field: "active_version".into(),
        reason: "must be a positive integer such as \"1\"",
    })
}

fn parse_master<'a>(name: &str, value: &'a Value) -> Result<&'a str, KeysError> {
    let Value::String(master) = value else {
        return Err(KeysError::InvalidField {
            field: name.to_owned(),
            reason: "must be a string",
        });
    };
    if master.chars().count() < MIN_MASTER_KEY_CHARS {
        return Err(KeysError::InvalidField {
            field: name.to_owned(),
            reason: "must be at least 32 characters long",
        });
    }
    Ok(master)
}

/// Compares two hashes in constant time. Strings of different lengths are unequal.
pub fn hashes_equal(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// Returns the SHA-256 of a session token in lower-case hex, the form in which sessions are stored.
pub fn hash_session_token(token: &str) -> String {
    HEXLOWER.encode(&Sha256::digest(token.as_bytes()))
}

/// Creates a session token: 32 random bytes as base64url without padding (43 characters).
pub fn new_session_token(random: &dyn Random) -> SecretString {
    let bytes = Zeroizing::new(random_bytes::<32>(random));
    SecretString::new(URL_SAFE_NO_PAD.encode(bytes.as_slice()))
}

fn password_hasher() -> Result<Argon2<'static>, CryptoError> {
    let params = Params::new(PASSWORD_MEMORY_KIB, PASSWORD_ITERATIONS, PASSWORD_LANES, None)
        .map_err(|error| CryptoError::PasswordHash(error.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hashes a password with argon2id (19 MiB, 2 passes, 1 lane) and a random 16-byte salt, as a PHC string.
pub fn hash_password(password: &SecretString, random: &dyn Random) -> Result<String, CryptoError> {
    let salt = SaltString::encode_b64(&random_bytes::<16>(random))
        .map_err(|error| CryptoError::PasswordHash(error.to_string()))?;
    let hash = password_hasher()?
        .hash_password(password.expose().as_bytes(), &salt)
        .map_err(|error| CryptoError::PasswordHash(error.to_string()))?;
    Ok(hash.to_string())
}

/// Checks a password against a PHC string. The algorithm variant and parameters come from the PHC
/// string, so hashes made with other argon2 parameters still verify. A malformed hash returns `false`.
pub fn verify_password(password: &SecretString, phc: &str) -> bool {
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    Argon2::default()
        .verify_password(password.expose().as_bytes(), &hash)
        .is_ok()
}

/// Verifies `password` against a fixed dummy hash with the production parameters and discards the
/// result, so that a login for an unknown user costs the same time as one with a wrong password.
pub fn verify_dummy_password(password: &SecretString) {
    std::hint::black_box(verify_password(password, DUMMY_PASSWORD_HASH));
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::ports::OsRandom;

    const MASTER_1: &str = "first master key, 32 characters or more";
    const MASTER_2: &str = "second master key, also long enough!";

    fn keys_json(active: &str, masters: &[(u32, &str)]) -> String {
        let mut fields = Map::new();
        fields.insert("active_version".into(), Value::String(active.into()));
        for (version, master) in masters {
            fields.insert(format!("master_{version}"), Value::String((*master).into()));
        }
        Value::Object(fields).to_string()
    }

    fn keys(active: &str, masters: &[(u32, &str)]) -> Keys {
        Keys::from_secret_json(&keys_json(active, masters)).unwrap()
    }

    /// Returns the same byte for every request, to make sealed values predictable.
    struct FixedRandom(u8);

    impl Random for FixedRandom {
        fn fill(&self, buffer: &mut [u8]) {
            buffer.fill(self.0);
        }
    }

    /// Records how many bytes were requested.
    struct CountingRandom(Mutex<usize>);

    impl Random for CountingRandom {
        fn fill(&self, buffer: &mut [u8]) {
            *self.0.lock().unwrap() += buffer.len();
            OsRandom.fill(buffer);
        }
    }

    #[test]
    fn keys_parse_versions_and_active() {
        let keys = keys("2", &[(1, MASTER_1), (2, MASTER_2)]);

        assert_eq!(keys.active_version(), 2);
        assert_eq!(format!("{keys:?}"), "Keys { active_version: 2, versions: [1, 2], .. }");
    }

    #[test]
    fn keys_accept_numeric_active_version() {
        let json = format!(r#"{{"active_version": 1, "master_1": "{MASTER_1}"}}"#);

        assert_eq!(Keys::from_secret_json(&json).unwrap().active_version(), 1);
    }

    #[test]
    fn keys_errors_name_the_field() {
        let short = "too short to be a master key";
        let cases = [
            ("[]".to_owned(), "not a JSON object"),
            ("not json".to_owned(), "not a JSON object"),
            (
                format!(r#"{{"master_1": "{MASTER_1}"}}"#),
                "missing the field `active_version`",
            ),
            (keys_json("2", &[(1, MASTER_1)]), "missing the field `master_2`"),
            (keys_json("0", &[(1, MASTER_1)]), "`active_version` is invalid"),
            (keys_json("01", &[(1, MASTER_1)]), "`active_version` is invalid"),
            (
                format!(r#"{{"active_version": true, "master_1": "{MASTER_1}"}}"#),
                "`active_version` is invalid",
            ),
            (
                keys_json("1", &[(1, short)]),
                "`master_1` is invalid: must be at least 32 characters",
            ),
            (
                r#"{"active_version": "1", "master_1": 12345}"#.to_owned(),
                "`master_1` is invalid: must be a string",
            ),
            (
                format!(r#"{{"active_version": "1", "master_1": "{MASTER_1}", "master_x": "{MASTER_2}"}}"#),
                "`master_x` is invalid",
            ),
            (
                format!(r#"{{"active_version": "1", "master_1": "{MASTER_1}", "master_01": "{MASTER_2}"}}"#),
                "`master_01` is invalid",
            ),
            (
                format!(r#"{{"active_version": "1", "master_1": "{MASTER_1}", "activeVersion": "1"}}"#),
                "unknown field `activeVersion`",
            ),
        ];
        for (json, expected) in cases {
            let message = Keys::from_secret_json(&json).unwrap_err().to_string();
            assert!(message.contains(expected), "{json}: {message}");
            assert!(!message.contains(short), "{message}");
            assert!(!message.contains(MASTER_1), "{message}");
            assert!(!message.contains(MASTER_2), "{message}");
        }
    }

    #[test]
    fn master_length_counts_characters() {
        let czech = "ž".repeat(32);
        let too_short = "ž".repeat(31);

        assert!(Keys::from_secret_json(&keys_json("1", &[(1, &czech)])).is_ok());
        assert!(Keys::from_secret_json(&keys_json("1", &[(1, &too_short)])).is_err());
    }

    #[test]
    fn generated_local_keys_parse() {
        let json = Keys::generate_for_local(&OsRandom);
        let other = Keys::generate_for_local(&OsRandom);

        let keys = Keys::from_secret_json(json.expose()).unwrap();
        assert_eq!(keys.active_version(), 1);
        assert_ne!(json.expose(), other.expose());
        assert_eq!(format!("{json:?}"), "SecretString(..)");
    }

    #[test]
    fn seal_and_open_round_trip() {
        let keys = keys("1", &[(1, MASTER_1)]);

        let sealed = keys.seal(b"12345678901234567890", b"user-1", &OsRandom).unwrap();

        assert!(sealed.starts_with("v1."), "{sealed}");
        assert_eq!(sealed.split('.').count(), 3);
        assert_eq!(keys.open(&sealed, b"user-1").unwrap().expose(), b"12345678901234567890");
    }

    #[test]
    fn seal_uses_fresh_nonce() {
        let keys = keys("1", &[(1, MASTER_1)]);
        let random = CountingRandom(Mutex::new(0));

        let first = keys.seal(b"secret", b"user-1", &random).unwrap();
        let second = keys.seal(b"secret", b"user-1", &random).unwrap();

        assert_ne!(first, second);
        assert_eq!(*random.0.lock().unwrap(), 2 * NONCE_BYTES);
    }

    #[test]
    fn open_rejects_other_aad() {
        let keys = keys("1", &[(1, MASTER_1)]);
        let sealed = keys.seal(b"secret", b"user-1", &OsRandom).unwrap();

        assert_eq!(keys.open(&sealed, b"user-2").unwrap_err(), CryptoError::OpenFailed);
        assert_eq!(keys.open(&sealed, b"").unwrap_err(), CryptoError::OpenFailed);
    }

    #[test]
    fn open_rejects_altered_values() {
        let keys = keys("1", &[(1, MASTER_1)]);
        let sealed = keys.seal(b"secret", b"user-1", &FixedRandom(7)).unwrap();
        let parts: Vec<&str> = sealed.split('.').collect();

        let mut ciphertext = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        ciphertext[0] ^= 1;
        let altered_ciphertext = format!("{}.{}.{}", parts[0], parts[1], URL_SAFE_NO_PAD.encode(&ciphertext));
        let altered_nonce = format!("{}.{}.{}", parts[0], URL_SAFE_NO_PAD.encode([8u8; 12]), parts[2]);

        assert_eq!(
            keys.open(&altered_ciphertext, b"user-1").unwrap_err(),
            CryptoError::OpenFailed
        );
        assert_eq!(
            keys.open(&altered_nonce, b"user-1").unwrap_err(),
            CryptoError::OpenFailed
        );
    }

    #[test]
    fn open_rejects_malformed_values() {
        let keys = keys("1", &[(1, MASTER_1)]);
        let sealed = keys.seal(b"secret", b"user-1", &OsRandom).unwrap();
        let (_, rest) = sealed.split_once('.').unwrap();
        let short_nonce = URL_SAFE_NO_PAD.encode([0u8; 8]);

        for malformed in [
            String::new(),
            "v1".to_owned(),
            "v1.abc".to_owned(),
            format!("{sealed}.extra"),
            format!("1.{rest}"),
            format!("v.{rest}"),
            format!("v01.{rest}"),
            format!("v-1.{rest}"),
            format!("v1.{short_nonce}.{}", sealed.rsplit('.').next().unwrap()),
            format!("v1.!!!.{}", sealed.rsplit('.').next().unwrap()),
            format!("{sealed}="),
        ] {
            assert_eq!(
                keys.open(&malformed, b"user-1").unwrap_err(),
                CryptoError::MalformedSealed,
                "{malformed:?}"
            );
        }
    }

    #[test]
    fn rotation_keeps_old_versions_open() {
        let old_keys = keys("1", &[(1, MASTER_1)]);
        let rotated = keys("2", &[(1, MASTER_1), (2, MASTER_2)]);
        let retired = keys("2", &[(2, MASTER_2)]);

        let old_sealed = old_keys.seal(b"old secret", b"user-1", &OsRandom).unwrap();
        let new_sealed = rotated.seal(b"new secret", b"user-1", &OsRandom).unwrap();

        assert!(new_sealed.starts_with("v2."), "{new_sealed}");
        assert_eq!(rotated.open(&old_sealed, b"user-1").unwrap().expose(), b"old secret");
        assert_eq!(rotated.open(&new_sealed, b"user-1").unwrap().expose(), b"new secret");
        assert_eq!(
            retired.open(&old_sealed, b"user-1").unwrap_err(),
            CryptoError::UnknownKeyVersion(1)
        );
        assert_eq!(
            old_keys.open(&new_sealed, b"user-1").unwrap_err(),
            CryptoError::UnknownKeyVersion(2)
        );
    }

    #[test]
    fn keys_with_same_version_but_other_master_do_not_open() {
        let keys_a = keys("1", &[(1, MASTER_1)]);
        let keys_b = keys("1", &[(1, MASTER_2)]);
        let sealed = keys_a.seal(b"secret", b"user-1", &OsRandom).unwrap();

        assert_eq!(keys_b.open(&sealed, b"user-1").unwrap_err(), CryptoError::OpenFailed);
    }

    #[test]
    fn keyed_hash_matches_independent_computation() {
        let keys = keys("1", &[(1, "0123456789abcdef0123456789abcdef")]);

        // Computed with Python's hmac and hashlib: HKDF-SHA256 (no salt, info `twofa hash key`) of the
        // master, then HMAC-SHA256 of 8-byte big-endian purpose length, purpose and data.
        assert_eq!(
            keys.keyed_hash("sms code", b"005924"),
            "Xgro-8Md2j7K1or7ZMrN_jovsu73n6YRvZqgALVQ6UI"
        );
    }

    #[test]
    fn keyed_hash_separates_purposes() {
        let keys = keys("1", &[(1, MASTER_1)]);

        let code = keys.keyed_hash("sms code", b"005924");
        assert_eq!(code, keys.keyed_hash("sms code", b"005924"));
        assert_ne!(code, keys.keyed_hash("phone number", b"005924"));
        assert_ne!(keys.keyed_hash("ab", b"c"), keys.keyed_hash("a", b"bc"));
        assert_eq!(code.len(), 43);
    }

    #[test]
    fn keyed_hash_uses_active_master() {
        let version_1 = keys("1", &[(1, MASTER_1), (2, MASTER_2)]);
        let version_2 = keys("2", &[(1, MASTER_1), (2, MASTER_2)]);
        let only_2 = keys("2", &[(2, MASTER_2)]);

        assert_ne!(
            version_1.keyed_hash("sms code", b"1"),
            version_2.keyed_hash("sms code", b"1")
        );
        assert_eq!(
            version_2.keyed_hash("sms code", b"1"),
            only_2.keyed_hash("sms code", b"1")
        );
    }

    #[test]
    fn hash_key_differs_from_seal_key() {
        let keys = keys("1", &[(1, MASTER_1)]);
        let seal_key = derive_key(1, MASTER_1, SEAL_KEY_INFO).unwrap();
        let hash_key = derive_key(1, MASTER_1, HASH_KEY_INFO).unwrap();

        assert_ne!(seal_key.as_slice(), hash_key.as_slice());
        let mut mac = <HmacSha256 as Mac>::new_from_slice(hash_key.as_slice()).unwrap();
        mac.update(&8u64.to_be_bytes());
        mac.update(b"sms code");
        mac.update(b"1");
        assert_eq!(
            keys.keyed_hash("sms code", b"1"),
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        );
    }

    #[test]
    fn hashes_equal_compares_exactly() {
        assert!(hashes_equal("abc", "abc"));
        assert!(!hashes_equal("abc", "abd"));
        assert!(!hashes_equal("abc", "abcd"));
        assert!(!hashes_equal("", "a"));
        assert!(hashes_equal("", ""));
    }

    #[test]
    fn session_token_hash_is_sha256_hex() {
        assert_eq!(
            hash_session_token("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn session_tokens_are_32_random_bytes() {
        let token = new_session_token(&OsRandom);
        let other = new_session_token(&OsRandom);

        assert_eq!(token.len(), 43);
        assert_eq!(URL_SAFE_NO_PAD.decode(token.expose()).unwrap().len(), 32);
        assert_ne!(token.expose(), other.expose());
        assert_eq!(format!("{token:?}"), "SecretString(..)");
    }

    #[test]
    fn password_hash_round_trip() {
        let password = SecretString::from("correct horse battery staple");

        let phc = hash_password(&password, &OsRandom).unwrap();

        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify_password(&password, &phc));
        assert!(!verify_password(
            &SecretString::from("correct horse battery stapl"),
            &phc
        ));
    }

    #[test]
    fn password_hash_uses_random_salt() {
        let password = SecretString::from("same password");

        assert_ne!(
            hash_password(&password, &OsRandom).unwrap(),
            hash_password(&password, &OsRandom).unwrap()
        );
    }

    #[test]
    fn verify_password_accepts_other_parameters() {
        let password = SecretString::from("password");
        let params = Params::new(8, 1, 1, None).unwrap();
        let salt = SaltString::encode_b64(b"another salt!!").unwrap();
        let argon2i = Argon2::new(Algorithm::Argon2i, Version::V0x13, params.clone());
        let argon2id = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);

        for hasher in [argon2i, argon2id] {
            let phc = hasher.hash_password(b"password", &salt).unwrap().to_string();
            assert!(verify_password(&password, &phc), "{phc}");
            assert!(!verify_password(&SecretString::from("Password"), &phc), "{phc}");
        }
    }

    #[test]
    fn verify_password_rejects_malformed_hashes() {
        let password = SecretString::from("password");

        for phc in [
            "",
            "password",
            "$argon2id$",
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA",
            "$2b$12$abcdefghijklmnopqrstuv",
        ] {
            assert!(!verify_password(&password, phc), "{phc:?}");
        }
    }

    #[test]
    fn dummy_hash_uses_production_parameters() {
        let hash = PasswordHash::new(DUMMY_PASSWORD_HASH).unwrap();
        let params = Params::try_from(&hash).unwrap();

        assert_eq!(hash.algorithm.as_str(), "argon2id");
        assert_eq!(params.m_cost(), PASSWORD_MEMORY_KIB);
        assert_eq!(params.t_cost(), PASSWORD_ITERATIONS);
        assert_eq!(params.p_cost(), PASSWORD_LANES);
        assert!(verify_password(
            &SecretString::from("twofa dummy password"),
            DUMMY_PASSWORD_HASH
        ));
        verify_dummy_password(&SecretString::from("anything"));
    }
}
