//! Phone numbers for SMS, normalised to E.164 with the `phonenumber` crate (libphonenumber metadata).
//!
//! A [`PhoneNumber`] exists only for a valid mobile number. [`PhonePolicy`] checks the allow-list of
//! destination countries. Full numbers never appear in `Debug` output or error messages: `Debug`
//! prints the masked form `+420 *** *** 456`.

use std::fmt;
use std::str::FromStr;

use phonenumber::country::Id;
use phonenumber::metadata::DATABASE;
use phonenumber::{Mode, Type};

/// Maximum input length, in characters. An E.164 number has at most 15 digits, which leaves room for
/// an international prefix, spaces and punctuation.
const MAX_INPUT_CHARS: usize = 40;

/// Error for invalid phone-number configuration. Messages name the value at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhonePolicyError {
    #[error("default phone region `{0}` is not a known ISO 3166-1 alpha-2 country code such as CZ")]
    InvalidDefaultRegion(String),
    #[error("allowed SMS country `{0}` is not a known ISO 3166-1 alpha-2 country code such as CZ")]
    InvalidAllowedCountry(String),
    #[error("no allowed SMS countries are configured (set codes such as CZ,SK)")]
    NoAllowedCountries,
}

/// Error for a rejected phone number. Messages never contain the number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    #[error("phone number is invalid. Enter it with the country code, for example +420 601 123 456")]
    Invalid,
    /// The country is an ISO code such as `US`, or `+882` for calling codes that belong to no country.
    #[error("SMS codes cannot be sent to phone numbers of {country}")]
    CountryNotAllowed { country: String },
    #[error("phone number is not a mobile number, so it cannot receive SMS codes")]
    NotMobile,
}

/// A valid mobile phone number in E.164 form.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PhoneNumber {
    e164: String,
    calling_code: u16,
    country: Option<Id>,
}

/// Returns the ISO 3166-1 alpha-2 code of a country, such as `CZ`.
fn country_code(id: Id) -> String {
    id.as_ref().to_owned()
}

impl PhoneNumber {
    /// Parses a number stored in E.164 form, such as `+420601123456`. The country allow-list is not
    /// checked here: use [`PhonePolicy::check_allowed`] before sending.
    pub fn from_e164(e164: &str) -> Result<Self, PhoneError> {
        let is_e164_shape = e164.len() <= 16
            && e164
                .strip_prefix('+')
                .is_some_and(|digits| !digits.is_empty() && digits.bytes().all(|byte| byte.is_ascii_digit()));
        if !is_e164_shape {
            return Err(PhoneError::Invalid);
        }

        let number = phonenumber::parse(None, e164).map_err(|_| PhoneError::Invalid)?;
        let phone = Self::from_parsed(&number)?;
        if phone.e164 != e164 {
            return Err(PhoneError::Invalid);
        }
        Ok(phone)
    }

    fn from_parsed(number: &phonenumber::PhoneNumber) -> Result<Self, PhoneError> {
        if number.extension().is_some() || !phonenumber::is_valid(number) {
            return Err(PhoneError::Invalid);
        }
        if !matches!(number.number_type(&DATABASE), Type::Mobile | Type::FixedLineOrMobile) {
            return Err(PhoneError::NotMobile);
        }

        Ok(Self {
            e164: number.format().mode(Mode::E164).to_string(),
            calling_code: number.code().value(),
            country: number.country().id(),
        })
    }

    /// Returns the number in E.164 form, such as `+420601123456`.
    pub fn as_e164(&self) -> &str {
        &self.e164
    }

    /// Returns the ISO 3166-1 alpha-2 code of the number's country, such as `CZ`, or `None` for calling
    /// codes that belong to no country.
    pub fn country(&self) -> Option<String> {
        self.country.map(country_code)
    }

    /// Returns the country calling code, such as 420.
    pub fn calling_code(&self) -> u16 {
        self.calling_code
    }

    /// Returns the number with only the calling code and the last three digits visible, such as
    /// `+420 *** *** 456`. The mask does not show how many digits the number has.
    pub fn masked(&self) -> String {
        mask(self.calling_code, &self.e164)
    }

    fn country_label(&self) -> String {
        match self.country {
            Some(id) => country_code(id),
            None => format!("+{}", self.calling_code),
        }
    }
}

impl fmt::Debug for PhoneNumber {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "PhoneNumber({})", self.masked())
    }
}

/// Masks a stored E.164 number like [`PhoneNumber::masked`], for logs and responses.
///
/// Works for any stored string: a number that is no longer valid or mobile is masked the same way,
/// and a string that is not in E.164 form becomes `+*** *** ***`.
pub fn mask_e164(e164: &str) -> String {
    let is_e164_shape = e164
        .strip_prefix('+')
        .is_some_and(|digits| digits.len() <= 15 && digits.bytes().all(|byte| byte.is_ascii_digit()));
    let number = is_e164_shape.then(|| phonenumber::parse(None, e164).ok()).flatten();
    match number {
        Some(number) => mask(number.code().value(), e164),
        None => "+*** *** ***".to_owned(),
    }
}

/// Formats `+<calling code> *** *** <last three digits>`. When the national part has fewer than six
/// digits, all of them are hidden, so that a short number never shows half of its digits.
fn mask(calling_code: u16, e164: &str) -> String {
    let national = e164
        .trim_start_matches('+')
        .strip_prefix(calling_code.to_string().as_str())
        .unwrap_or_default();
    if national.len() < 6 {
        return format!("+{calling_code} *** ***");
    }
    let last_three = national.get(national.len() - 3..).unwrap_or_default();
    format!("+{calling_code} *** *** {last_three}")
}

/// The phone-number rules from configuration: the region of numbers typed without a country code,
/// and the countries SMS codes may be sent to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhonePolicy {
    default_region: Id,
    allowed_countries: Vec<Id>,
}

impl PhonePolicy {
    /// Builds a policy from configuration strings such as `"CZ"` and `"CZ,SK"`. Codes are ISO 3166-1
    /// alpha-2, in any case, with optional spaces around the commas.
    pub fn new(default_region: &str, allowed_countries: &str) -> Result<Self, PhonePolicyError> {
        let default_region = parse_country(default_region)
            .ok_or_else(|| PhonePolicyError::InvalidDefaultRegion(default_region.trim().to_owned()))?;

        let mut allowed = Vec::new();
        for code in allowed_countries
            .split(',')
            .map(str::trim)
            .filter(|code| !code.is_empty())
        {
            let id = parse_country(code).ok_or_else(|| PhonePolicyError::InvalidAllowedCountry(code.to_owned()))?;
            if !allowed.contains(&id) {
                allowed.push(id);
            }
        }
        if allowed.is_empty() {
            return Err(PhonePolicyError::NoAllowedCountries);
        }

        Ok(Self {
            default_region,
            allowed_countries: allowed,
        })
    }

    /// Returns the ISO code of the region used for numbers typed without a country code.
    pub fn default_region(&self) -> String {
        country_code(self.default_region)
    }

    /// Returns the ISO codes of the countries SMS codes may be sent to.
    pub fn allowed_countries(&self) -> Vec<String> {
        self.allowed_countries.iter().map(|id| country_code(*id)).collect()
    }

    /// Parses a number as typed: international (`+420 601 123 456`, `00420601123456`,
    /// `(+420) 601-123-456`) or national in the default region (`601 123 456`).
    ///
    /// Rejects letters and other characters than digits, spaces, `+`, `-`, `.`, `/` and parentheses,
    /// because libphonenumber would otherwise read letters as keypad digits. Then rejects invalid numbers,
    /// numbers outside the allowed countries, and numbers that are not mobile numbers.
    pub fn parse(&self, input: &str) -> Result<PhoneNumber, PhoneError> {
        if !has_phone_characters_only(input) {
            return Err(PhoneError::Invalid);
        }

        let number = phonenumber::parse(Some(self.default_region), input).map_err(|_| PhoneError::Invalid)?;
        let country = number.country().id();
        if !country.is_some_and(|id| self.allowed_countries.contains(&id)) {
            let country = match country {
                Some(id) => country_code(id),
                None => format!("+{}", number.code().value()),
            };
            return Err(PhoneError::CountryNotAllowed { country });
        }

        PhoneNumber::from_parsed(&number)
    }

    /// Checks that a number, for example one read back from the store, is in an allowed country.
    pub fn check_allowed(&self, phone: &PhoneNumber) -> Result<(), PhoneError> {
        if phone.country.is_some_and(|id| self.allowed_countries.contains(&id)) {
            Ok(())
        } else {
            Err(PhoneError::CountryNotAllowed {
                country: phone.country_label(),
            })
        }
    }
}

fn parse_country(code: &str) -> Option<Id> {
    let code = code.trim().to_ascii_uppercase();
    if code.len() != 2 || !code.bytes().all(|byte| byte.is_ascii_uppercase()) {
        return None;
    }
    Id::from_str(&code).ok()
}

/// Checks that `input` is short and has only digits, whitespace, `-`, `.`, `/`, parentheses and at
/// most one `+`, placed before every digit.
fn has_phone_characters_only(input: &str) -> bool {
    if input.chars().count() > MAX_INPUT_CHARS {
        return false;
    }

    let mut has_digit = false;
    let mut has_plus = false;
    for character in input.chars() {
        match character {
            '0'..='9' => has_digit = true,
            '+' if !has_digit && !has_plus => has_plus = true,
            '-' | '.' | '/' | '(' | ')' => {}
            _ if character.is_whitespace() => {}
            _ => return false,
        }
    }
    has_digit
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> PhonePolicy {
        PhonePolicy::new("CZ", "CZ,SK").unwrap()
    }

    #[test]
    fn policy_parses_configuration() {
        let policy = PhonePolicy::new(" cz ", "CZ, sk,,CZ").unwrap();

        assert_eq!(policy.default_region(), "CZ");
        assert_eq!(policy.allowed_countries(), vec!["CZ", "SK"]);
    }

    #[test]
    fn policy_errors_name_bad_value() {
        assert_eq!(
            PhonePolicy::new("XX", "CZ"),
            Err(PhonePolicyError::InvalidDefaultRegion("XX".into()))
        );
        assert_eq!(
            PhonePolicy::new("CZE", "CZ"),
            Err(PhonePolicyError::InvalidDefaultRegion("CZE".into()))
        );
        assert_eq!(
            PhonePolicy::new("", "CZ"),
            Err(PhonePolicyError::InvalidDefaultRegion(String::new()))
        );
        assert_eq!(
            PhonePolicy::new("CZ", "CZ,Slovakia"),
            Err(PhonePolicyError::InvalidAllowedCountry("Slovakia".into()))
        );
        assert_eq!(
            PhonePolicy::new("CZ", "CZ;SK"),
            Err(PhonePolicyError::InvalidAllowedCountry("CZ;SK".into()))
        );
        assert_eq!(PhonePolicy::new("CZ", " , "), Err(PhonePolicyError::NoAllowedCountries));

        let message = PhonePolicy::new("CZ", "CZ,QQ").unwrap_err().to_string();
        assert!(message.contains("`QQ`"), "{message}");
    }

    #[test]
    fn accepts_common_input_forms() {
        for input in [
            "+420 601 123 456",
            "+420601123456",
            "00420601123456",
            "00420 601 123 456",
            "(+420) 601-123-456",
            "+420 (601) 123-456",
            "+420.601.123.456",
            "601 123 456",
            "601123456",
            "601/123/456",
            "\u{a0}+420\u{a0}601\u{a0}123\u{a0}456 ",
        ] {
            let phone = policy()
                .parse(input)
                .unwrap_or_else(|error| panic!("{input:?}: {error}"));
            assert_eq!(phone.as_e164(), "+420601123456", "{input:?}");
            assert_eq!(phone.country(), Some("CZ".to_owned()), "{input:?}");
            assert_eq!(phone.calling_code(), 420);
        }
    }

    #[test]
    fn accepts_other_allowed_country() {
        let phone = policy().parse("+421 912 123 456").unwrap();

        assert_eq!(phone.as_e164(), "+421912123456");
        assert_eq!(phone.country(), Some("SK".to_owned()));
    }

    #[test]
    fn national_number_uses_default_region() {
        let slovak = PhonePolicy::new("SK", "CZ,SK").unwrap();

        assert_eq!(slovak.parse("0912 123 456").unwrap().as_e164(), "+421912123456");
        assert_eq!(slovak.parse("+420 601 123 456").unwrap().as_e164(), "+420601123456");
    }

    #[test]
    fn rejects_invalid_numbers() {
        for input in [
            "",
            "   ",
            "12345",
            "+420 12",
            "+420 601 123 4567",
            "+420 601 123 45",
            "+",
            "++420601123456",
            "+420 601 +123 456",
            "420+601123456",
            "0",
            "1234567890123456789012345678901234567890123",
        ] {
            assert_eq!(policy().parse(input), Err(PhoneError::Invalid), "{input:?}");
        }
    }

    #[test]
    fn rejects_letters_and_other_characters() {
        for input in [
            "+420 601 ABC 456",
            "+420 601 123 456 ext 12",
            "+420 601 123 456;ext=12",
            "+420 601 123 456#12",
            "tel:+420601123456",
            "+420 601 123 45６",
            "+420 ６０１ 123 456",
            "+420_601_123_456",
            "+420 601 123 456\u{0}",
        ] {
            assert_eq!(policy().parse(input), Err(PhoneError::Invalid), "{input:?}");
        }
    }

    #[test]
    fn rejects_countries_outside_allow_list() {
        let cases = [
            ("+882 3421234", "+882"),
            ("+979 123 456 789", "+979"),
            ("+1 201 555 0123", "US"),
            ("+44 7400 123456", "GB"),
            ("0049 1512 3456789", "DE"),
        ];
        for (input, country) in cases {
            assert_eq!(
                policy().parse(input),
                Err(PhoneError::CountryNotAllowed {
                    country: country.to_owned()
                }),
                "{input:?}"
            );
        }
    }

    #[test]
    fn rejects_numbers_that_are_not_mobile() {
        for input in [
            "+420 212 345 678",
            "+420 900 123 456",
            "+420 800 123 456",
            "+421 221 234 567",
        ] {
            assert_eq!(policy().parse(input), Err(PhoneError::NotMobile), "{input:?}");
        }
    }

    #[test]
    fn masked_shows_calling_code_and_last_three_digits() {
        let czech = policy().parse("+420 601 123 456").unwrap();
        let slovak = policy().parse("+421 912 123 456").unwrap();

        assert_eq!(czech.masked(), "+420 *** *** 456");
        assert_eq!(slovak.masked(), "+421 *** *** 456");
    }

    #[test]
    fn mask_e164_masks_stored_strings() {
        assert_eq!(mask_e164("+420601123456"), "+420 *** *** 456");
        assert_eq!(mask_e164("+420212345678"), "+420 *** *** 678");
        assert_eq!(mask_e164("+8823421234"), "+882 *** *** 234");
        assert_eq!(mask_e164("+42060"), "+420 *** ***");
        for garbage in [
            "",
            "+",
            "420601123456",
            "+420 601 123 456",
            "+4206011234567890",
            "secret",
        ] {
            assert_eq!(mask_e164(garbage), "+*** *** ***", "{garbage:?}");
        }
    }

    #[test]
    fn debug_prints_masked_form() {
        let phone = policy().parse("+420 601 123 456").unwrap();

        assert_eq!(format!("{phone:?}"), "PhoneNumber(+420 *** *** 456)");
        assert!(!format!("{:?}", Some(&phone)).contains("601"));
    }

    #[test]
    fn errors_do_not_contain_the_number() {
        for input in ["+420 601 123 45", "+1 201 555 0123", "+420 212 345 678"] {
            let message = policy().parse(input).unwrap_err().to_string();
            assert!(!message.contains("201 555"), "{message}");
            assert!(!message.contains("2015550123"), "{message}");
            assert!(!message.contains("345"), "{message}");
        }
    }

    #[test]
    fn from_e164_reads_stored_numbers() {
        let phone = PhoneNumber::from_e164("+420601123456").unwrap();

        assert_eq!(phone, policy().parse("601 123 456").unwrap());
        assert_eq!(phone.country(), Some("CZ".to_owned()));
        for stored in [
            "420601123456",
            "+420 601 123 456",
            "+420601123456 ",
            "+4206011234",
            "",
            "+",
        ] {
            assert_eq!(PhoneNumber::from_e164(stored), Err(PhoneError::Invalid), "{stored:?}");
        }
    }

    #[test]
    fn check_allowed_applies_current_policy() {
        let phone = PhoneNumber::from_e164("+421912123456").unwrap();
        let czech_only = PhonePolicy::new("CZ", "CZ").unwrap();

        assert_eq!(policy().check_allowed(&phone), Ok(()));
        assert_eq!(
            czech_only.check_allowed(&phone),
            Err(PhoneError::CountryNotAllowed { country: "SK".into() })
        );
        let international = PhoneNumber::from_e164("+8823421234").unwrap();
        assert_eq!(international.country(), None);
        assert_eq!(
            policy().check_allowed(&international),
            Err(PhoneError::CountryNotAllowed { country: "+882".into() })
        );
    }

    #[test]
    fn parse_never_panics_on_phone_characters() {
        const ROUNDS: usize = 20_000;
        const ALPHABET: &[u8] = b"0123456789000111444222+ -()./";
        let policy = policy();
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };

        for _ in 0..ROUNDS {
            let length = (next() % 24) as usize;
            let prefix = ["", "+", "00", "+420", "+421", "0"][(next() % 6) as usize];
            let mut input = prefix.to_owned();
            for _ in 0..length {
                input.push(ALPHABET[(next() % ALPHABET.len() as u64) as usize] as char);
            }

            let result = std::panic::catch_unwind(|| policy.parse(&input));
            assert!(result.is_ok(), "parse panicked on {input:?}");
            if let Ok(Ok(phone)) = result {
                assert_eq!(PhoneNumber::from_e164(phone.as_e164()), Ok(phone.clone()), "{input:?}");
            }
        }
    }
}
