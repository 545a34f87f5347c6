//! Wrappers for secret values: TOTP secrets, passwords and session tokens.
//!
//! Both types redact their `Debug` output, implement no `Display` and overwrite their buffer with zeros
//! when dropped. Read the value only through `expose()`, at the spot that needs it.

use std::fmt;

use serde::{Deserialize, Deserializer};
use zeroize::Zeroizing;

/// Secret bytes, such as a TOTP secret or a decrypted payload.
#[derive(Clone, Default)]
pub struct SecretBytes(Zeroizing<Vec<u8>>);

impl SecretBytes {
    /// Wraps `bytes`, taking ownership so that no unwrapped copy remains.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// Copies `bytes` into a new secret.
    pub fn from_slice(bytes: &[u8]) -> Self {
        Self::new(bytes.to_vec())
    }

    /// Returns the secret bytes.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Returns the length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<Vec<u8>> for SecretBytes {
    fn from(bytes: Vec<u8>) -> Self {
        Self::new(bytes)
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("SecretBytes(..)")
    }
}

/// A secret string, such as a password or a session token.
///
/// It deserializes from a JSON string, so a request body can carry a password straight into it.
#[derive(Clone, Default)]
pub struct SecretString(Zeroizing<String>);

impl SecretString {
    /// Wraps `value`, taking ownership so that no unwrapped copy remains.
    pub fn new(value: String) -> Self {
        Self(Zeroizing::new(value))
    }

    /// Returns the secret text.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Returns the length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for SecretString {
    fn from(value: String) -> Self {
        Self::new(value)
    }
}

impl From<&str> for SecretString {
    fn from(value: &str) -> Self {
        Self::new(value.to_owned())
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("SecretString(..)")
    }
}

impl<'de> Deserialize<'de> for SecretString {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_bytes_debug_is_redacted() {
        let secret = SecretBytes::from_slice(b"12345678901234567890");

        let debug = format!("{secret:?}");

        assert_eq!(debug, "SecretBytes(..)");
        assert!(!debug.contains("49"), "no byte value may appear: {debug}");
    }

    #[test]
    fn secret_bytes_expose_returns_bytes() {
        let secret = SecretBytes::new(vec![1, 2, 3]);

        assert_eq!(secret.expose(), &[1, 2, 3]);
        assert_eq!(secret.len(), 3);
        assert!(!secret.is_empty());
        assert!(SecretBytes::default().is_empty());
    }

    #[test]
    fn secret_string_debug_is_redacted() {
        let secret = SecretString::from("hunter2");

        assert_eq!(format!("{secret:?}"), "SecretString(..)");
        assert_eq!(format!("{:?}", Some(&secret)), "Some(SecretString(..))");
    }

    #[test]
    fn secret_string_deserializes_from_json_string() {
        #[derive(Deserialize, Debug)]
        struct Login {
            password: SecretString,
        }

        let login: Login = serde_json::from_str(r#"{"password": "correct horse"}"#).unwrap();

        assert_eq!(login.password.expose(), "correct horse");
        assert!(!format!("{login:?}").contains("correct horse"));
    }

    #[test]
    fn secret_string_rejects_non_string_json() {
        let result: Result<SecretString, _> = serde_json::from_str("12345");

        assert!(result.is_err());
    }
}
