//! SMS texts carrying a one-time code.
//!
//! A text names the service and the code and warns against sharing it. It carries no link, so a
//! phishing copy of it cannot look more convincing than the original.
//!
//! NOTE: Czech diacritics make SNS send the text in UCS-2, where one segment carries 70 characters,
//! so a Czech text is billed as two segments.

use crate::code::SixDigitCode;
use crate::model::Language;

/// Renders the text of a login code. A login code expires with its challenge, which is at most
/// 5 minutes after the login started, so a resent code may have less time left.
pub fn login_code(language: Language, service_name: &str, code: &SixDigitCode) -> String {
    let code = code.as_str();
    match language {
        Language::En => format!("{service_name} login code: {code}. It expires within 5 minutes. Never share it."),
        Language::Cs => {
            format!("Přihlašovací kód {service_name}: {code}. Platnost vyprší do 5 minut. Nikomu ho nesdělujte.")
        }
    }
}

/// Renders the text of a code that verifies a newly added phone number. The code expires
/// 5 minutes after it is sent.
pub fn number_verification_code(language: Language, service_name: &str, code: &SixDigitCode) -> String {
    let code = code.as_str();
    match language {
        Language::En => {
            format!("{service_name} code to verify this phone number: {code}. It expires in 5 minutes. Never share it.")
        }
        Language::Cs => format!(
            "Kód {service_name} pro ověření tohoto telefonního čísla: {code}. Platnost vyprší za 5 minut. Nikomu ho nesdělujte."
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code() -> SixDigitCode {
        SixDigitCode::parse("005924").unwrap()
    }

    #[test]
    fn login_text_names_service_and_code() {
        let text = login_code(Language::En, "Example Hosting", &code());

        assert_eq!(
            text,
            "Example Hosting login code: 005924. It expires within 5 minutes. Never share it."
        );
    }

    #[test]
    fn czech_texts_keep_diacritics() {
        let login = login_code(Language::Cs, "Example Hosting", &code());
        let verification = number_verification_code(Language::Cs, "Example Hosting", &code());

        assert!(login.starts_with("Přihlašovací kód Example Hosting: 005924."));
        assert!(login.contains("Nikomu ho nesdělujte."));
        assert!(verification.contains("ověření tohoto telefonního čísla: 005924."));
    }

    #[test]
    fn texts_carry_no_link() {
        for language in [Language::Cs, Language::En] {
            for text in [
                login_code(language, "Example Hosting", &code()),
                number_verification_code(language, "Example Hosting", &code()),
            ] {
                assert!(!text.contains("://"), "{text}");
                assert!(!text.contains("www."), "{text}");
                assert!(text.contains("005924"), "{text}");
            }
        }
    }
}
