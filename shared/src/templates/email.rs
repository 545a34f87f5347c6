//! Notification emails about 2FA changes, in Czech and English.
//!
//! An email states what changed, for which user, when (UTC) and from which IP address, and what to
//! do if the recipient did not make the change. It never carries a code, a secret or a full phone
//! number: the only detail it shows is the safe detail of the outbox record (a masked number or
//! the new login method), and [`safe_detail`] drops a detail that looks like more than that.

use crate::model::{Language, Method, NotificationEvent, OutboxRecord};
use crate::service::provisioning::ADMIN_SOURCE;

/// A rendered notification email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedEmail {
    pub subject: String,
    pub body: String,
}

/// Renders the email about `record` in `language`. `service_name` names the service in the
/// subject and in the advice.
pub fn render(record: &OutboxRecord, language: Language, service_name: &str) -> RenderedEmail {
    let texts = match language {
        Language::En => english(record.event),
        Language::Cs => czech(record.event),
    };
    let labels = Labels::of(language);

    let mut body = format!("{}\n\n", texts.summary);
    body.push_str(&format!("{}: {}\n", labels.user, record.username));
    body.push_str(&format!("{}: {}\n", labels.time, format_utc(record.occurred_at)));
    if record.source_ip == ADMIN_SOURCE {
        body.push_str(&format!("{}: {}\n", labels.source, labels.administrator));
    } else {
        body.push_str(&format!("{}: {}\n", labels.ip_address, record.source_ip));
    }
    if let Some(detail) = record
        .detail
        .as_deref()
        .and_then(|detail| render_detail(record.event, detail, language))
    {
        body.push_str(&detail);
        body.push('\n');
    }
    body.push('\n');
    body.push_str(&labels.advice.replace("{service}", service_name));
    body.push_str("\n\n");
    body.push_str(&labels.footer.replace("{service}", service_name));
    body.push('\n');

    RenderedEmail {
        subject: format!("{service_name}: {}", texts.subject),
        body,
    }
}

/// The event-specific subject and first paragraph.
struct EventTexts {
    subject: &'static str,
    summary: &'static str,
}

fn english(event: NotificationEvent) -> EventTexts {
    let (subject, summary) = match event {
        NotificationEvent::SmsNumberAdded => (
            "phone number added",
            "A phone number for two-factor authentication was added. It becomes active once it is verified with a code.",
        ),
        NotificationEvent::SmsNumberChanged => (
            "phone number change started",
            "A new phone number for two-factor authentication was entered. It replaces the current number once it is verified with a code.",
        ),
        NotificationEvent::SmsNumberVerified => (
            "phone number verified",
            "A phone number was verified and now receives the login codes of two-factor authentication.",
        ),
        NotificationEvent::SmsNumberDeleted => (
            "phone number removed",
            "The phone number was removed from two-factor authentication. Login codes are no longer sent to it.",
        ),
        NotificationEvent::OtpDeviceActivated => (
            "authenticator app connected",
            "An authenticator app was connected and now provides the login codes of two-factor authentication.",
        ),
        NotificationEvent::OtpDeviceDisabled => (
            "authenticator app disconnected",
            "Verification with an authenticator app was turned off. Its codes are no longer accepted.",
        ),
        NotificationEvent::LoginMethodChanged => (
            "login method changed",
            "The method used for the second step of the login was changed.",
        ),
        NotificationEvent::TwoFactorDisabled => (
            "two-factor authentication turned off",
            "Two-factor authentication was turned off. The phone number and authenticator app of the user were removed, and a password alone now logs in.",
        ),
        NotificationEvent::TwoFactorEnabled => (
            "two-factor authentication turned on",
            "Two-factor authentication was turned on. At the next login the user sets up a phone number or an authenticator app.",
        ),
        NotificationEvent::SecurityContactChanged => (
            "Security contact changed",
            "The Security contact of the customer account was changed. Notifications about security changes now go to the new contact.",
        ),
        NotificationEvent::AdminReset => (
            "two-factor authentication reset",
            "An administrator reset two-factor authentication. All phone numbers and authenticator apps of the user were removed, and the user sets up a new one at the next login.",
        ),
    };
    EventTexts { subject, summary }
}

fn czech(event: NotificationEvent) -> EventTexts {
    let (subject, summary) = match event {
        NotificationEvent::SmsNumberAdded => (
            "přidáno telefonní číslo",
            "Bylo přidáno telefonní číslo pro dvoufázové ověření. Aktivní bude po ověření kódem.",
        ),
        NotificationEvent::SmsNumberChanged => (
            "zahájena změna telefonního čísla",
            "Bylo zadáno nové telefonní číslo pro dvoufázové ověření. Stávající číslo nahradí po ověření kódem.",
        ),
        NotificationEvent::SmsNumberVerified => (
            "telefonní číslo ověřeno",
            "Telefonní číslo bylo ověřeno a nyní na něj chodí přihlašovací kódy dvoufázového ověření.",
        ),
        NotificationEvent::SmsNumberDeleted => (
            "telefonní číslo odebráno",
            "Telefonní číslo bylo odebráno z dvoufázového ověření. Přihlašovací kódy na něj už nechodí.",
        ),
        NotificationEvent::OtpDeviceActivated => (
            "připojena ověřovací aplikace",
            "Byla připojena ověřovací aplikace, která nyní poskytuje přihlašovací kódy dvoufázového ověření.",
        ),
        NotificationEvent::OtpDeviceDisabled => (
            "odpojena ověřovací aplikace",
            "Ověřování pomocí ověřovací aplikace bylo vypnuto. Její kódy už nejsou přijímány.",
        ),
        NotificationEvent::LoginMethodChanged => (
            "změněna metoda přihlášení",
            "Byla změněna metoda druhého kroku přihlášení.",
        ),
        NotificationEvent::TwoFactorDisabled => (
            "dvoufázové ověření vypnuto",
            "Dvoufázové ověření bylo vypnuto. Telefonní číslo i ověřovací aplikace uživatele byly odebrány a k přihlášení nyní stačí heslo.",
        ),
        NotificationEvent::TwoFactorEnabled => (
            "dvoufázové ověření zapnuto",
            "Dvoufázové ověření bylo zapnuto. Při příštím přihlášení si uživatel nastaví telefonní číslo nebo ověřovací aplikaci.",
        ),
        NotificationEvent::SecurityContactChanged => (
            "změněna bezpečnostní kontaktní osoba",
            "Bezpečnostní kontaktní osoba zákaznického účtu byla změněna. Upozornění na bezpečnostní změny nyní chodí novému kontaktu.",
        ),
        NotificationEvent::AdminReset => (
            "dvoufázové ověření resetováno",
            "Administrátor resetoval dvoufázové ověření. Všechna telefonní čísla a ověřovací aplikace uživatele byla odebrána a uživatel si při příštím přihlášení nastaví nové.",
        ),
    };
    EventTexts { subject, summary }
}

/// The fixed words of an email in one language.
struct Labels {
    user: &'static str,
    time: &'static str,
    ip_address: &'static str,
    source: &'static str,
    administrator: &'static str,
    phone_number: &'static str,
    login_method: &'static str,
    sms: &'static str,
    totp: &'static str,
    /// The advice for a recipient who did not make the change, with `{service}` replaced.
    advice: &'static str,
    footer: &'static str,
}

impl Labels {
    fn of(language: Language) -> Self {
        match language {
            Language::En => Self {
                user: "User",
                time: "Time",
                ip_address: "IP address",
                source: "Made by",
                administrator: "an administrator of the service",
                phone_number: "Phone number",
                login_method: "New login method",
                sms: "code by SMS",
                totp: "authenticator app",
                advice: "If you did not make this change, change your password right away and contact {service} support, who can reset two-factor authentication.",
                footer: "This message was sent automatically by {service}. It never asks for a code or a password.",
            },
            Language::Cs => Self {
                user: "Uživatel",
                time: "Čas",
                ip_address: "IP adresa",
                source: "Provedl",
                administrator: "administrátor služby",
                phone_number: "Telefonní číslo",
                login_method: "Nová metoda přihlášení",
                sms: "kód v SMS",
                totp: "ověřovací aplikace",
                advice: "Pokud jste tuto změnu neprovedli vy, ihned si změňte heslo a kontaktujte podporu {service}, která může dvoufázové ověření resetovat.",
                footer: "Tuto zprávu odeslala automaticky služba {service}. Nikdy po vás nežádá kód ani heslo.",
            },
        }
    }
}

/// Renders the detail line of an event, or `None` when the event has no detail to show or the
/// detail is not safe to show.
fn render_detail(event: NotificationEvent, detail: &str, language: Language) -> Option<String> {
    let labels = Labels::of(language);
    match event {
        NotificationEvent::LoginMethodChanged => {
            let method = match detail {
                "sms" => Method::Sms,
                "totp" => Method::Totp,
                _ => return None,
            };
            let name = match method {
                Method::Sms => labels.sms,
                Method::Totp => labels.totp,
            };
            Some(format!("{}: {name}", labels.login_method))
        }
        NotificationEvent::SmsNumberAdded
        | NotificationEvent::SmsNumberChanged
        | NotificationEvent::SmsNumberVerified
        | NotificationEvent::SmsNumberDeleted => {
            safe_detail(detail).map(|masked| format!("{}: {masked}", labels.phone_number))
        }
        _ => None,
    }
}

/// The maximum number of digits a masked phone number shows: the country code and the last few digits.
const MAX_DETAIL_DIGITS: usize = 7;

/// Returns the detail when it is short and shows at most [`MAX_DETAIL_DIGITS`] digits, so that
/// neither a full phone number nor a 6-digit code can reach an email by mistake.
pub fn safe_detail(detail: &str) -> Option<&str> {
    let digits = detail.chars().filter(char::is_ascii_digit).count();
    let longest_run = detail
        .split(|c: char| !c.is_ascii_digit())
        .map(str::len)
        .max()
        .unwrap_or_default();
    let is_safe = detail.len() <= 40 && digits <= MAX_DETAIL_DIGITS && longest_run < 6;
    is_safe.then_some(detail)
}

/// Formats Unix seconds as `2026-01-01 12:00 UTC`.
pub fn format_utc(unix_seconds: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(unix_seconds) {
        Ok(at) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02} UTC",
            at.year(),
            u8::from(at.month()),
            at.day(),
            at.hour(),
            at.minute()
        ),
        Err(_) => format!("{unix_seconds} (Unix time)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVENTS: [NotificationEvent; 11] = [
        NotificationEvent::SmsNumberAdded,
        NotificationEvent::SmsNumberChanged,
        NotificationEvent::SmsNumberVerified,
        NotificationEvent::SmsNumberDeleted,
        NotificationEvent::OtpDeviceActivated,
        NotificationEvent::OtpDeviceDisabled,
        NotificationEvent::LoginMethodChanged,
        NotificationEvent::TwoFactorDisabled,
        NotificationEvent::TwoFactorEnabled,
        NotificationEvent::SecurityContactChanged,
        NotificationEvent::AdminReset,
    ];

    fn record(event: NotificationEvent, detail: Option<&str>) -> OutboxRecord {
        OutboxRecord {
            event_id: "event-1".into(),
            event,
            account_id: "account-1".into(),
            user_id: "user-1".into(),
            username: "alice.example".into(),
            occurred_at: 1_767_268_800,
            source_ip: "198.51.100.7".into(),
            detail: detail.map(str::to_owned),
            previous_contact: None,
            recipients: Vec::new(),
            expires_at: 1_769_860_800,
        }
    }

    #[test]
    fn time_is_formatted_in_utc() {
        assert_eq!(format_utc(1_767_268_800), "2026-01-01 12:00 UTC");
        assert_eq!(format_utc(0), "1970-01-01 00:00 UTC");
    }

    #[test]
    fn every_event_names_user_time_ip_and_advice() {
        for event in EVENTS {
            for language in [Language::En, Language::Cs] {
                let email = render(&record(event, None), language, "Example Hosting");

                assert!(
                    email.subject.starts_with("Example Hosting: "),
                    "{event:?} {language:?}: {}",
                    email.subject
                );
                assert!(email.body.contains("alice.example"), "{event:?} {language:?}");
                assert!(email.body.contains("2026-01-01 12:00 UTC"), "{event:?} {language:?}");
                assert!(email.body.contains("198.51.100.7"), "{event:?} {language:?}");
                let advice = if language == Language::En {
                    "change your password"
                } else {
                    "změňte heslo"
                };
                assert!(email.body.contains(advice), "{event:?} {language:?}");
            }
        }
    }

    #[test]
    fn subjects_differ_per_event() {
        for language in [Language::En, Language::Cs] {
            let subjects: std::collections::BTreeSet<String> = EVENTS
                .iter()
                .map(|event| render(&record(*event, None), language, "S").subject)
                .collect();
            assert_eq!(subjects.len(), EVENTS.len(), "{language:?}");
        }
    }

    #[test]
    fn czech_email_keeps_diacritics() {
        let email = render(
            &record(NotificationEvent::TwoFactorDisabled, None),
            Language::Cs,
            "Example Hosting",
        );

        assert!(email.subject.contains("dvoufázové ověření vypnuto"));
        assert!(email.body.contains("Uživatel: alice.example"));
        assert!(email.body.contains("Čas: 2026-01-01 12:00 UTC"));
    }

    #[test]
    fn masked_number_is_shown() {
        let email = render(
            &record(NotificationEvent::SmsNumberVerified, Some("+420 *** *** 789")),
            Language::En,
            "S",
        );

        assert!(email.body.contains("Phone number: +420 *** *** 789"));
    }

    #[test]
    fn full_number_or_code_is_never_shown() {
        for detail in ["+420603123789", "+420 603 123 789", "123456", "code 005924"] {
            let email = render(
                &record(NotificationEvent::SmsNumberAdded, Some(detail)),
                Language::En,
                "S",
            );

            assert!(!email.body.contains(detail), "{detail}");
            assert!(!email.body.contains("Phone number:"), "{detail}");
        }
    }

    #[test]
    fn login_method_is_named() {
        let email = render(
            &record(NotificationEvent::LoginMethodChanged, Some("totp")),
            Language::En,
            "S",
        );
        assert!(email.body.contains("New login method: authenticator app"));

        let email = render(
            &record(NotificationEvent::LoginMethodChanged, Some("sms")),
            Language::Cs,
            "S",
        );
        assert!(email.body.contains("Nová metoda přihlášení: kód v SMS"));
    }

    #[test]
    fn admin_change_names_administrator() {
        let mut admin = record(NotificationEvent::AdminReset, None);
        admin.source_ip = ADMIN_SOURCE.into();

        let email = render(&admin, Language::En, "S");

        assert!(email.body.contains("Made by: an administrator of the service"));
        assert!(!email.body.contains("IP address"));
    }
}
