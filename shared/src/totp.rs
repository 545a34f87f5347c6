//! TOTP (RFC 6238): secrets, backup keys, code generation and verification, and the `otpauth` URI.
//!
//! Invariants:
//! - New devices get [`TotpParams::issued`] (SHA1, 6 digits, 30 s) and a 160-bit secret. The parameters
//!   are stored with each device and passed to every function here; nothing reads a global default.
//! - A code is accepted for time steps t−1, t and t+1 only when its step is later than the device's last
//!   accepted step, so a code cannot be replayed. The caller stores the returned step with a conditional
//!   write, so that two parallel requests cannot both pass.
//! - Secrets of at least 80 bits verify, so legacy 80-bit secrets keep working. Shorter secrets never
//!   verify, and [`parse_backup_key`] rejects them. totp-rs rejects secrets under 128 bits in
//!   `TOTP::new`, so codes come from `TOTP::new_unchecked` after this module has checked the inputs.

use std::fmt;

use data_encoding::BASE32_NOPAD;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::{Deserialize, Serialize};
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};
use zeroize::Zeroizing;

use crate::code::{SixDigitCode, CODE_DIGITS};
use crate::ports::Random;
use crate::secret::SecretBytes;

/// Length of a new secret in bytes (160 bits, 32 Base32 characters).
pub const SECRET_BYTES: usize = 20;

/// Shortest secret that verifies, in bytes (80 bits, as issued by some older services).
pub const MIN_SECRET_BYTES: usize = 10;

/// HMAC hash function of a TOTP device. Only SHA1 is issued, because authenticator apps ignore the
/// `algorithm` parameter. Devices stored with SHA256 or SHA512 can still be read and verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TotpAlgorithm {
    #[serde(rename = "SHA1")]
    Sha1,
    #[serde(rename = "SHA256")]
    Sha256,
    #[serde(rename = "SHA512")]
    Sha512,
}

impl TotpAlgorithm {
    /// Returns the name used in the `algorithm` parameter of an `otpauth` URI.
    pub fn uri_name(self) -> &'static str {
        match self {
            TotpAlgorithm::Sha1 => "SHA1",
            TotpAlgorithm::Sha256 => "SHA256",
            TotpAlgorithm::Sha512 => "SHA512",
        }
    }

    fn to_totp_rs(self) -> totp_rs::Algorithm {
        match self {
            TotpAlgorithm::Sha1 => totp_rs::Algorithm::SHA1,
            TotpAlgorithm::Sha256 => totp_rs::Algorithm::SHA256,
            TotpAlgorithm::Sha512 => totp_rs::Algorithm::SHA512,
        }
    }
}

impl fmt::Display for TotpAlgorithm {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.uri_name())
    }
}

/// Error for TOTP parameters outside the supported range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TotpParamsError {
    #[error("TOTP digits must be 6, 7 or 8, got {0}")]
    InvalidDigits(u32),
    #[error("TOTP period must be at least 1 second, got 0")]
    InvalidPeriod,
}

/// TOTP parameters of one device: hash function, number of digits and period in seconds.
///
/// Fields are private so that every value is valid: digits are 6 to 8 (RFC 4226 requires at least 6)
/// and the period is at least 1 second. Deserializing checks the same rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "TotpParamsFields")]
pub struct TotpParams {
    algorithm: TotpAlgorithm,
    digits: u32,
    period: u64,
}

#[derive(Deserialize)]
struct TotpParamsFields {
    algorithm: TotpAlgorithm,
    digits: u32,
    period: u64,
}

impl TryFrom<TotpParamsFields> for TotpParams {
    type Error = TotpParamsError;

    fn try_from(fields: TotpParamsFields) -> Result<Self, Self::Error> {
        TotpParams::new(fields.algorithm, fields.digits, fields.period)
    }
}

impl TotpParams {
    /// Builds parameters, rejecting digits outside 6–8 and a zero period.
    pub fn new(algorithm: TotpAlgorithm, digits: u32, period: u64) -> Result<Self, TotpParamsError> {
        if !(6..=8).contains(&digits) {
            return Err(TotpParamsError::InvalidDigits(digits));
        }
        if period == 0 {
            return Err(TotpParamsError::InvalidPeriod);
        }
        Ok(Self {
            algorithm,
            digits,
            period,
        })
    }

    /// Returns the parameters given to every new device: SHA1, 6 digits, 30 seconds.
    pub fn issued() -> Self {
        Self {
            algorithm: TotpAlgorithm::Sha1,
            digits: 6,
            period: 30,
        }
    }

    pub fn algorithm(&self) -> TotpAlgorithm {
        self.algorithm
    }

    pub fn digits(&self) -> u32 {
        self.digits
    }

    /// Returns the period in seconds.
    pub fn period(&self) -> u64 {
        self.period
    }
}

/// Error for a typed backup key that cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TotpKeyError {
    #[error("backup key is empty")]
    Empty,
    /// The position counts characters from 1. The character itself is left out because it is part of a
    /// secret.
    #[error(
        "backup key has an invalid character at position {position}. A key contains only letters A-Z, \
         digits 2-7, spaces, hyphens and trailing '=' padding"
    )]
    InvalidCharacter { position: usize },
    #[error("backup key has an invalid length. Check that it was copied in full")]
    InvalidLength,
    #[error("backup key has {bits} bits, fewer than the minimum of 80. Connect the device again with a new key")]
    TooShort { bits: usize },
}

/// Creates a new random secret of [`SECRET_BYTES`] bytes.
pub fn new_secret(random: &dyn Random) -> SecretBytes {
    let mut bytes = vec![0u8; SECRET_BYTES];
    random.fill(&mut bytes);
    SecretBytes::new(bytes)
}

/// Parses a backup key as a user types it: Base32 in upper or lower case, with any spaces, hyphens and
/// trailing `=` padding. All such forms give the same bytes.
pub fn parse_backup_key(input: &str) -> Result<SecretBytes, TotpKeyError> {
    let mut normalized = Zeroizing::new(String::with_capacity(input.len()));
    let mut is_in_padding = false;

    for (index, character) in input.chars().enumerate() {
        if character.is_ascii_whitespace() || character == '-' {
            continue;
        }
        if character == '=' {
            is_in_padding = true;
            continue;
        }

        let upper = character.to_ascii_uppercase();
        let is_base32 = upper.is_ascii_uppercase() || ('2'..='7').contains(&upper);
        if !is_base32 || is_in_padding {
            return Err(TotpKeyError::InvalidCharacter { position: index + 1 });
        }
        normalized.push(upper);
    }

    if normalized.is_empty() {
        return Err(TotpKeyError::Empty);
    }

    let bytes = BASE32_NOPAD
        .decode(normalized.as_bytes())
        .map(SecretBytes::new)
        .map_err(|_| TotpKeyError::InvalidLength)?;
    if bytes.len() < MIN_SECRET_BYTES {
        return Err(TotpKeyError::TooShort { bits: bytes.len() * 8 });
    }
    Ok(bytes)
}

/// Formats a secret as a backup key for copying: upper-case Base32 with no padding and no spaces.
///
/// The result is the secret itself: show it only while the device is pending, and never log it.
pub fn format_backup_key(secret: &SecretBytes) -> String {
    BASE32_NOPAD.encode(secret.expose())
}

/// Formats a secret as a backup key for reading: groups of four characters separated by spaces.
pub fn format_backup_key_grouped(secret: &SecretBytes) -> String {
    let key = Zeroizing::new(format_backup_key(secret));
    let groups: Vec<&str> = key
        .as_bytes()
        .chunks(4)
        .filter_map(|group| std::str::from_utf8(group).ok())
        .collect();
    groups.join(" ")
}

/// Returns the time step of `unix` seconds. Times before 1970 count as step 0.
pub fn time_step(params: &TotpParams, unix: i64) -> u64 {
    u64::try_from(unix).unwrap_or(0) / params.period
}

/// Generates the code of a time step, zero-padded to `params.digits()` digits.
pub fn generate_code(secret: &SecretBytes, params: &TotpParams, step: u64) -> String {
    // NOTE: with the totp-rs feature `otpauth` enabled, `new_unchecked` also takes issuer and account
    // arguments, so enabling that feature anywhere in the workspace breaks this call at compile time.
    // A period of 1 makes totp-rs use `step` itself as the HOTP counter. The digits are 6 to 8, which
    // totp-rs handles without overflow.
    let totp = totp_rs::TOTP::new_unchecked(
        params.algorithm.to_totp_rs(),
        params.digits as usize,
        0,
        1,
        secret.expose().to_vec(),
    );
    totp.generate(step)
}

/// Verifies a code against time steps t−1, t and t+1 around `now_unix`, and returns the accepted step.
///
/// A step is accepted only if it is later than `last_used_step`. All three candidates are computed
/// and compared in constant time, with no early exit. If several steps match, the latest one is
/// returned, so that the stored last step blocks as much as possible. Returns `None` for a secret
/// shorter than [`MIN_SECRET_BYTES`] and for a device whose codes do not have 6 digits.
pub fn verify_code(
    secret: &SecretBytes,
    params: &TotpParams,
    code: &SixDigitCode,
    now_unix: i64,
    last_used_step: Option<u64>,
) -> Option<u64> {
    if secret.len() < MIN_SECRET_BYTES || params.digits as usize != CODE_DIGITS {
        return None;
    }

    let current = time_step(params, now_unix);
    let candidates = [current.checked_sub(1), Some(current), current.checked_add(1)];

    let mut is_accepted = Choice::from(0);
    let mut accepted_step = 0u64;
    for step in candidates.into_iter().flatten() {
        let expected = Zeroizing::new(generate_code(secret, params, step));
        let is_match = expected.as_bytes().ct_eq(code.as_str().as_bytes());
        let is_later = Choice::from(u8::from(last_used_step.is_none_or(|last| step > last)));

        let accept = is_match & is_later;
        accepted_step = u64::conditional_select(&accepted_step, &step, accept);
        is_accepted |= accept;
    }

    bool::from(is_accepted).then_some(accepted_step)
}

/// Characters left unencoded in `otpauth` URI components: the RFC 3986 unreserved set. Everything
/// else, including `:`, `@`, `+`, `&`, `#`, space and non-ASCII bytes, is percent-encoded.
const URI_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// Builds the `otpauth://totp/` URI that authenticator apps read from the QR code.
///
/// The label is `ISSUER:ACCOUNT` with a literal colon, and the issuer is repeated in the `issuer`
/// parameter. Both parts are percent-encoded, so a space is `%20` (never `+`) and a colon inside the
/// issuer or account is `%3A`. The URI contains the secret.
pub fn otpauth_uri(issuer: &str, account: &str, secret: &SecretBytes, params: &TotpParams) -> String {
    let issuer = utf8_percent_encode(issuer, URI_COMPONENT).to_string();
    let account = utf8_percent_encode(account, URI_COMPONENT);
    let key = Zeroizing::new(format_backup_key(secret));

    format!(
        "otpauth://totp/{issuer}:{account}?secret={key}&issuer={issuer}&algorithm={algorithm}&digits={digits}&period={period}",
        key = key.as_str(),
        algorithm = params.algorithm.uri_name(),
        digits = params.digits,
        period = params.period,
    )
}

#[cfg(test)]
mod tests {
    use percent_encoding::percent_decode_str;

    use super::*;

    const RFC_KEY_BASE32: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
    const RFC_TIMES: [i64; 6] = [59, 1111111109, 1111111111, 1234567890, 2000000000, 20000000000];

    fn rfc_sha1_key() -> SecretBytes {
        SecretBytes::from_slice(b"12345678901234567890")
    }

    fn code(digits: &str) -> SixDigitCode {
        SixDigitCode::parse(digits).unwrap()
    }

    fn issued() -> TotpParams {
        TotpParams::issued()
    }

    fn assert_rfc_vectors(algorithm: TotpAlgorithm, key: &[u8], expected: [&str; 6]) {
        let params = TotpParams::new(algorithm, 8, 30).unwrap();
        let secret = SecretBytes::from_slice(key);
        for (time, expected_code) in RFC_TIMES.iter().zip(expected) {
            let step = time_step(&params, *time);
            assert_eq!(
                generate_code(&secret, &params, step),
                expected_code,
                "{algorithm} at {time}"
            );
        }
    }

    #[test]
    fn rfc6238_sha1_vectors() {
        let expected = ["94287082", "07081804", "14050471", "89005924", "69279037", "65353130"];
        assert_rfc_vectors(TotpAlgorithm::Sha1, b"12345678901234567890", expected);
    }

    #[test]
    fn rfc6238_sha256_vectors() {
        let expected = ["46119246", "68084774", "67062674", "91819424", "90698825", "77737706"];
        assert_rfc_vectors(TotpAlgorithm::Sha256, b"12345678901234567890123456789012", expected);
    }

    #[test]
    fn rfc6238_sha512_vectors() {
        let key = b"1234567890123456789012345678901234567890123456789012345678901234";
        let expected = ["90693936", "25091201", "99943326", "93441116", "38618901", "47863826"];
        assert_rfc_vectors(TotpAlgorithm::Sha512, key, expected);
    }

    #[test]
    fn field_case_table_six_digits() {
        let secret = parse_backup_key(RFC_KEY_BASE32).unwrap();
        let table = [
            (59, "287082"),
            (1111111051, "731029"),
            (1111111109, "081804"),
            (1111111111, "050471"),
            (1111111141, "266759"),
            (1111111171, "306183"),
            (1234567890, "005924"),
        ];
        for (time, expected) in table {
            let step = time_step(&issued(), time);
            assert_eq!(generate_code(&secret, &issued(), step), expected, "at {time}");
            assert!(
                verify_code(&secret, &issued(), &code(expected), time, None).is_some(),
                "at {time}"
            );
        }
    }

    #[test]
    fn window_accepts_neighbouring_steps_only() {
        let secret = rfc_sha1_key();
        let now = 1111111111;
        let current = time_step(&issued(), now);

        assert_eq!(
            verify_code(&secret, &issued(), &code("081804"), now, None),
            Some(current - 1)
        );
        assert_eq!(
            verify_code(&secret, &issued(), &code("050471"), now, None),
            Some(current)
        );
        assert_eq!(
            verify_code(&secret, &issued(), &code("266759"), now, None),
            Some(current + 1)
        );
        assert_eq!(verify_code(&secret, &issued(), &code("731029"), now, None), None);
        assert_eq!(verify_code(&secret, &issued(), &code("306183"), now, None), None);
    }

    #[test]
    fn replay_of_same_or_older_step_fails() {
        let secret = rfc_sha1_key();
        let now = 1111111111;
        let accepted = verify_code(&secret, &issued(), &code("050471"), now, None).unwrap();

        let last = Some(accepted);
        assert_eq!(verify_code(&secret, &issued(), &code("050471"), now, last), None);
        assert_eq!(verify_code(&secret, &issued(), &code("081804"), now, last), None);
        assert_eq!(
            verify_code(&secret, &issued(), &code("266759"), now, last),
            Some(accepted + 1)
        );
    }

    #[test]
    fn wrong_guess_does_not_block_right_code() {
        let secret = rfc_sha1_key();
        let now = 1111111111;

        assert_eq!(verify_code(&secret, &issued(), &code("000000"), now, None), None);
        assert!(verify_code(&secret, &issued(), &code("050471"), now, None).is_some());
    }

    #[test]
    fn leading_zeros_are_kept() {
        let secret = rfc_sha1_key();
        let now = 1234567890;

        assert_eq!(generate_code(&secret, &issued(), time_step(&issued(), now)), "005924");
        assert!(verify_code(&secret, &issued(), &code("005924"), now, None).is_some());
        for typed in ["5924", "05924", "+5924", "0059240", "００５９２４"] {
            assert!(SixDigitCode::parse(typed).is_err(), "{typed:?} must be invalid");
        }
    }

    #[test]
    fn typed_key_forms_give_same_bytes() {
        let forms = [
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ",
            "gezdgnbvgy3tqojqgezdgnbvgy3tqojq",
            "gezd gnbv gy3t qojq gezd gnbv gy3t qojq",
            "GEZD-GNBV-GY3T-QOJQ-GEZD-GNBV-GY3T-QOJQ",
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ====",
            " GeZd gNbV-gy3t\tqojq gezd gnbv gy3t qojq == ",
        ];
        for form in forms {
            let secret = parse_backup_key(form).unwrap();
            assert_eq!(secret.expose(), b"12345678901234567890", "form {form:?}");
        }
    }

    #[test]
    fn backup_key_rejects_invalid_input() {
        assert_eq!(parse_backup_key("").err(), Some(TotpKeyError::Empty));
        assert_eq!(parse_backup_key(" - = ").err(), Some(TotpKeyError::Empty));
        assert_eq!(
            parse_backup_key("GEZDGNBVGY3TQOJ1").err(),
            Some(TotpKeyError::InvalidCharacter { position: 16 })
        );
        assert_eq!(
            parse_backup_key("GEZD_GNBV").err(),
            Some(TotpKeyError::InvalidCharacter { position: 5 })
        );
        assert_eq!(
            parse_backup_key("GEZDGNBV=GY3TQOJQ").err(),
            Some(TotpKeyError::InvalidCharacter { position: 10 })
        );
        assert_eq!(
            parse_backup_key("ＧEZDGNBVGY3TQOJQ").err(),
            Some(TotpKeyError::InvalidCharacter { position: 1 })
        );
        assert_eq!(
            parse_backup_key("GEZDGNBVGY3TQOJQG").err(),
            Some(TotpKeyError::InvalidLength)
        );
        assert_eq!(
            parse_backup_key("GEZDGNBV").err(),
            Some(TotpKeyError::TooShort { bits: 40 })
        );
    }

    #[test]
    fn backup_key_errors_do_not_show_the_key() {
        let error = parse_backup_key("GEZDGNBVGY3TQOJ1").unwrap_err();

        assert!(!error.to_string().contains("GEZD"));
    }

    #[test]
    fn backup_key_formats_without_padding_or_spaces() {
        let secret = rfc_sha1_key();

        assert_eq!(format_backup_key(&secret), RFC_KEY_BASE32);
        assert_eq!(
            format_backup_key_grouped(&secret),
            "GEZD GNBV GY3T QOJQ GEZD GNBV GY3T QOJQ"
        );
    }

    #[test]
    fn backup_key_round_trips_new_secret() {
        let secret = new_secret(&crate::ports::OsRandom);
        let key = format_backup_key(&secret);

        assert_eq!(secret.len(), SECRET_BYTES);
        assert_eq!(key.len(), 32);
        assert!(!key.contains('='));
        assert_eq!(parse_backup_key(&key).unwrap().expose(), secret.expose());
        assert_eq!(
            parse_backup_key(&format_backup_key_grouped(&secret)).unwrap().expose(),
            secret.expose()
        );
    }

    #[test]
    fn legacy_80_bit_secret_verifies() {
        let secret = parse_backup_key("GEZDGNBVGY3TQOJQ").unwrap();
        assert_eq!(secret.expose(), b"1234567890");

        // Expected codes computed independently with Python's hmac module (HMAC-SHA1, RFC 4226 truncation).
        for (time, expected) in [(59, "263420"), (1111111111, "624539"), (1234567890, "919219")] {
            assert_eq!(generate_code(&secret, &issued(), time_step(&issued(), time)), expected);
            assert!(verify_code(&secret, &issued(), &code(expected), time, None).is_some());
        }
    }

    #[test]
    fn secret_shorter_than_80_bits_never_verifies() {
        let secret = SecretBytes::from_slice(b"123456789");
        let expected = generate_code(&secret, &issued(), time_step(&issued(), 59));

        assert_eq!(verify_code(&secret, &issued(), &code(&expected), 59, None), None);
        assert_eq!(
            verify_code(&SecretBytes::default(), &issued(), &code("000000"), 59, None),
            None
        );
    }

    #[test]
    fn verify_uses_stored_parameters() {
        let secret = rfc_sha1_key();
        let sha256 = TotpParams::new(TotpAlgorithm::Sha256, 6, 30).unwrap();
        let sixty_seconds = TotpParams::new(TotpAlgorithm::Sha1, 6, 60).unwrap();
        let eight_digits = TotpParams::new(TotpAlgorithm::Sha1, 8, 30).unwrap();
        let now = 1111111111;

        let sha256_code = generate_code(&secret, &sha256, time_step(&sha256, now));
        assert!(verify_code(&secret, &sha256, &code(&sha256_code), now, None).is_some());
        assert_eq!(verify_code(&secret, &issued(), &code(&sha256_code), now, None), None);

        let slow_code = generate_code(&secret, &sixty_seconds, time_step(&sixty_seconds, now));
        assert_eq!(
            verify_code(&secret, &sixty_seconds, &code(&slow_code), now, None),
            Some(time_step(&sixty_seconds, now))
        );

        assert_eq!(verify_code(&secret, &eight_digits, &code("050471"), now, None), None);
    }

    #[test]
    fn extreme_times_do_not_panic() {
        let secret = rfc_sha1_key();

        assert_eq!(time_step(&issued(), -1), 0);
        assert_eq!(time_step(&issued(), i64::MIN), 0);
        let first = generate_code(&secret, &issued(), 0);
        assert_eq!(verify_code(&secret, &issued(), &code(&first), -100, None), Some(0));
        assert_eq!(verify_code(&secret, &issued(), &code(&first), 0, Some(0)), None);

        let one_second = TotpParams::new(TotpAlgorithm::Sha1, 6, 1).unwrap();
        let latest = i64::MAX as u64;
        let latest_code = generate_code(&secret, &one_second, latest);
        assert_eq!(generate_code(&secret, &one_second, u64::MAX).len(), 6);
        assert_eq!(
            verify_code(&secret, &one_second, &code(&latest_code), i64::MAX, Some(latest - 1)),
            Some(latest)
        );
    }

    #[test]
    fn params_serialize_with_uri_names() {
        let json = serde_json::to_string(&TotpParams::issued()).unwrap();

        assert_eq!(json, r#"{"algorithm":"SHA1","digits":6,"period":30}"#);
        assert_eq!(serde_json::from_str::<TotpParams>(&json).unwrap(), TotpParams::issued());
        let sha512: TotpParams = serde_json::from_str(r#"{"algorithm":"SHA512","digits":8,"period":60}"#).unwrap();
        assert_eq!(sha512.algorithm(), TotpAlgorithm::Sha512);
        assert_eq!(sha512.digits(), 8);
        assert_eq!(sha512.period(), 60);
    }

    #[test]
    fn params_reject_invalid_values() {
        assert_eq!(
            TotpParams::new(TotpAlgorithm::Sha1, 5, 30),
            Err(TotpParamsError::InvalidDigits(5))
        );
        assert_eq!(
            TotpParams::new(TotpAlgorithm::Sha1, 10, 30),
            Err(TotpParamsError::InvalidDigits(10))
        );
        assert_eq!(
            TotpParams::new(TotpAlgorithm::Sha1, 6, 0),
            Err(TotpParamsError::InvalidPeriod)
        );
        for json in [
            r#"{"algorithm":"SHA1","digits":0,"period":30}"#,
            r#"{"algorithm":"SHA1","digits":6,"period":0}"#,
            r#"{"algorithm":"MD5","digits":6,"period":30}"#,
        ] {
            assert!(serde_json::from_str::<TotpParams>(json).is_err(), "{json}");
        }
    }

    fn query_parameter<'a>(uri: &'a str, name: &str) -> Option<&'a str> {
        let query = uri.split_once('?')?.1;
        query
            .split('&')
            .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
    }

    fn decode(component: &str) -> String {
        percent_decode_str(component).decode_utf8().unwrap().into_owned()
    }

    #[test]
    fn otpauth_uri_has_expected_shape() {
        let uri = otpauth_uri("Acme", "alice", &rfc_sha1_key(), &issued());

        assert_eq!(
            uri,
            "otpauth://totp/Acme:alice?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Acme\
             &algorithm=SHA1&digits=6&period=30"
        );
    }

    #[test]
    fn otpauth_uri_encodes_special_characters() {
        let cases = [
            ("Acme Corp", "alice smith"),
            ("Acme", "alice@example.com"),
            ("A+B", "x+y@example.com"),
            ("Ops & Co", "a&b=c"),
            ("Team #1", "user#2?"),
            ("Acme: Ops", "dept:alice"),
            ("Žluťoučký kůň", "Příliš žluťoučký"),
            ("100%", "50% off/"),
        ];
        for (issuer, account) in cases {
            let uri = otpauth_uri(issuer, account, &rfc_sha1_key(), &issued());

            assert!(!uri.contains(' '), "{uri}");
            assert!(!uri.contains('+'), "{uri}");
            assert!(uri.is_ascii(), "{uri}");

            let rest = uri.strip_prefix("otpauth://totp/").unwrap();
            let label = rest.split_once('?').unwrap().0;
            assert!(!label.contains(['/', '?', '#', '&']), "{uri}");
            let (label_issuer, label_account) = label.split_once(':').unwrap();
            assert!(!label_account.contains(':'), "{uri}");
            assert_eq!(decode(label_issuer), issuer);
            assert_eq!(decode(label_account), account);

            assert_eq!(query_parameter(&uri, "issuer").map(decode).as_deref(), Some(issuer));
            assert_eq!(query_parameter(&uri, "secret"), Some(RFC_KEY_BASE32));
            assert_eq!(query_parameter(&uri, "algorithm"), Some("SHA1"));
            assert_eq!(query_parameter(&uri, "digits"), Some("6"));
            assert_eq!(query_parameter(&uri, "period"), Some("30"));
        }
    }

    #[test]
    fn otpauth_uri_encodes_czech_issuer() {
        let uri = otpauth_uri("Žluťoučký kůň", "kůň@example.cz", &rfc_sha1_key(), &issued());
        let issuer = "%C5%BDlu%C5%A5ou%C4%8Dk%C3%BD%20k%C5%AF%C5%88";

        assert!(
            uri.starts_with(&format!("otpauth://totp/{issuer}:k%C5%AF%C5%88%40example.cz?")),
            "{uri}"
        );
        assert!(uri.contains(&format!("&issuer={issuer}&")), "{uri}");
    }

    #[test]
    fn otpauth_uri_uses_device_parameters() {
        let params = TotpParams::new(TotpAlgorithm::Sha256, 8, 60).unwrap();
        let uri = otpauth_uri("Acme", "alice", &rfc_sha1_key(), &params);

        assert!(uri.ends_with("&algorithm=SHA256&digits=8&period=60"), "{uri}");
    }
}
