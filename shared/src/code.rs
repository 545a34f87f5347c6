//! One-time codes typed by a user: exactly six ASCII digits, kept as a string.
//!
//! A code is never a number, because `005924` and `5924` are different codes and only the first is valid.
//! Input is not trimmed or normalised: full-width or Arabic-Indic digits, signs and spaces are invalid.

use std::fmt;

use crate::ports::{random_bytes, Random};

/// Number of digits of an SMS or TOTP code.
pub const CODE_DIGITS: usize = 6;

/// Error for a typed code that is not six ASCII digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    #[error("code must be exactly 6 digits 0-9, with no spaces or other characters")]
    InvalidFormat,
}

/// A code of exactly six ASCII digits `0`–`9`.
#[derive(Clone, PartialEq, Eq)]
pub struct SixDigitCode(String);

impl SixDigitCode {
    /// Parses a code as typed, rejecting anything but six ASCII digits.
    pub fn parse(input: &str) -> Result<Self, CodeError> {
        if input.len() != CODE_DIGITS || !input.bytes().all(|byte| byte.is_ascii_digit()) {
            return Err(CodeError::InvalidFormat);
        }
        Ok(Self(input.to_owned()))
    }

    /// Returns the six digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SixDigitCode {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("SixDigitCode(..)")
    }
}

/// Largest multiple of one million that fits in a `u32`. Samples at or above it are drawn again.
const SAMPLE_LIMIT: u32 = (u32::MAX / 1_000_000) * 1_000_000;

/// Generates an SMS code uniformly distributed over `000000`–`999999`.
///
/// Draws 32-bit values and rejects those at or above [`SAMPLE_LIMIT`], so that the remainder modulo one
/// million has no bias. A draw is rejected with probability below 0.03 %, so the loop ends quickly
/// unless `random` is broken and keeps returning values above the limit.
pub fn generate_sms_code(random: &dyn Random) -> SixDigitCode {
    loop {
        let sample = u32::from_be_bytes(random_bytes::<4>(random));
        if sample < SAMPLE_LIMIT {
            return SixDigitCode(format!("{:06}", sample % 1_000_000));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::ports::OsRandom;

    /// Returns the queued 32-bit values in order, big endian.
    struct QueuedRandom(Mutex<Vec<u32>>);

    impl QueuedRandom {
        fn new(values: &[u32]) -> Self {
            Self(Mutex::new(values.iter().rev().copied().collect()))
        }
    }

    impl Random for QueuedRandom {
        fn fill(&self, buffer: &mut [u8]) {
            let value = self.0.lock().unwrap().pop().expect("no queued random value left");
            buffer.copy_from_slice(&value.to_be_bytes());
        }
    }

    #[test]
    fn parse_accepts_six_ascii_digits() {
        for input in ["005924", "000000", "999999", "123456"] {
            let code = SixDigitCode::parse(input).unwrap();
            assert_eq!(code.as_str(), input);
        }
    }

    #[test]
    fn parse_rejects_malformed_codes() {
        let invalid = [
            "",
            "5924",
            "05924",
            "+5924",
            "+05924",
            "-05924",
            "0059240",
            "00592",
            "００５９２４",
            "٠٠٥٩٢٤",
            "۰۰۵۹۲۴",
            " 005924",
            "005924 ",
            "005 924",
            "005924\n",
            "00592a",
            "0x5924",
            "5.9240",
        ];
        for input in invalid {
            assert_eq!(
                SixDigitCode::parse(input),
                Err(CodeError::InvalidFormat),
                "input {input:?}"
            );
        }
    }

    #[test]
    fn debug_is_redacted() {
        let code = SixDigitCode::parse("005924").unwrap();

        assert_eq!(format!("{code:?}"), "SixDigitCode(..)");
    }

    #[test]
    fn sms_code_keeps_leading_zeros() {
        let random = QueuedRandom::new(&[42]);

        assert_eq!(generate_sms_code(&random).as_str(), "000042");
    }

    #[test]
    fn sms_code_rejects_biased_samples() {
        let random = QueuedRandom::new(&[u32::MAX, SAMPLE_LIMIT, SAMPLE_LIMIT - 1]);

        assert_eq!(generate_sms_code(&random).as_str(), "999999");
    }

    #[test]
    fn sms_code_limit_is_multiple_of_million() {
        assert_eq!(SAMPLE_LIMIT % 1_000_000, 0);
        assert!(u64::from(SAMPLE_LIMIT) + 1_000_000 > u64::from(u32::MAX));
    }

    #[test]
    fn sms_codes_from_os_random_are_valid() {
        for _ in 0..1000 {
            let code = generate_sms_code(&OsRandom);
            assert!(SixDigitCode::parse(code.as_str()).is_ok());
        }
    }
}
