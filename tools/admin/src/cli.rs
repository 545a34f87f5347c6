//! The command line of `twofa-admin`.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use twofa_core::model::Language;

/// Provisions customer accounts and users of the two-factor authentication service, resets 2FA,
/// lists audit records and sends failed notifications again.
///
/// Works on the DynamoDB table named by TABLE_NAME, at AWS_ENDPOINT_URL when set, and reads the
/// same configuration as the Lambda functions (OTP_ISSUER, EMAIL_FROM, KEYS_SECRET_ID or KEYS_JSON).
/// Prints JSON on standard output; errors go to standard error with a non-zero exit status.
#[derive(Debug, Parser)]
#[command(name = "twofa-admin", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Source of a password. It is never a plain argument, because other users of the machine could
/// read it in the process list.
#[derive(Debug, Clone, clap::Args)]
pub struct PasswordSource {
    /// Read the password from standard input (one line; the line break is dropped). Without this
    /// option the password comes from the environment variable TWOFA_PASSWORD.
    #[arg(long)]
    pub password_stdin: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a customer account with its main account user (2FA is mandatory for it).
    CreateAccount {
        /// Name of the customer account (the organisation).
        #[arg(long)]
        name: String,
        #[arg(long)]
        username: String,
        /// Email address of the main account user.
        #[arg(long)]
        email: String,
        #[arg(long, value_enum, default_value = "en")]
        language: LanguageArg,
        #[command(flatten)]
        password: PasswordSource,
    },
    /// Create a sub-account user in an existing customer account.
    CreateUser {
        /// Customer account id, as printed by create-account.
        #[arg(long)]
        account: String,
        #[arg(long)]
        username: String,
        /// Email address of the user, where notifications about its own changes go.
        #[arg(long)]
        email: Option<String>,
        #[arg(long, value_enum, default_value = "en")]
        language: LanguageArg,
        /// Switch 2FA on for the sub-account; it then enrolls a factor at its first login.
        #[arg(long)]
        two_factor: bool,
        #[command(flatten)]
        password: PasswordSource,
    },
    /// Set a user's password, clear its password lockout and revoke its sessions.
    SetPassword {
        #[arg(long)]
        username: String,
        #[command(flatten)]
        password: PasswordSource,
    },
    /// Set the Security contact of a customer account; the previous and new contact are notified.
    SetSecurityContact {
        /// Customer account id.
        #[arg(long)]
        account: String,
        /// Name of the person holding the Security competency.
        #[arg(long)]
        name: String,
        #[arg(long)]
        email: String,
        #[arg(long, value_enum, default_value = "en")]
        language: LanguageArg,
    },
    /// Remove a user's factors, clear its lockouts and revoke its sessions; the user enrolls again.
    #[command(name = "reset-2fa")]
    ResetTwoFactor {
        #[arg(long)]
        username: String,
    },
    /// List a user's audit records, newest first.
    Audit {
        #[arg(long)]
        username: String,
        /// Maximum number of records to list.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: u32,
    },
    /// Store an active OTP device with a known secret. It becomes the login method when the user
    /// has none. Audited and notified like any 2FA change; the user's sessions end.
    AddTotp {
        #[arg(long)]
        username: String,
        /// Read the TOTP secret (Base32, as an authenticator app's backup key) from standard input.
        /// Without this option it comes from the environment variable TWOFA_TOTP_SECRET. It is never
        /// an argument, because other users of the machine could read it in the process list.
        #[arg(long)]
        secret_stdin: bool,
    },
    /// Store an active SMS number. It becomes the login method. Audited and notified like any 2FA
    /// change; the user's sessions end.
    AddSms {
        #[arg(long)]
        username: String,
        /// The phone number, in international form (+420 601 123 456) or in the national form of
        /// PHONE_DEFAULT_REGION.
        #[arg(long)]
        phone: String,
    },
    /// Send the unsent notification emails of outbox records again, after the cause of their
    /// failure is fixed. Emails already sent for a record are skipped.
    #[command(group(clap::ArgGroup::new("records").required(true).multiple(true)))]
    Redeliver {
        /// Event id of an outbox record (the part after OUTBOX# of its key). Repeatable.
        #[arg(long = "event-id", group = "records")]
        event_ids: Vec<String>,
        /// A file with the body of an on-failure queue message of the notifier, or - for standard
        /// input. The records of the batch it names are read back from the table's stream, which
        /// keeps them for 24 hours.
        #[arg(long, group = "records")]
        failure_message: Option<PathBuf>,
    },
}

/// The language of texts sent to a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LanguageArg {
    /// Czech
    Cs,
    /// English
    En,
}

impl From<LanguageArg> for Language {
    fn from(language: LanguageArg) -> Self {
        match language {
            LanguageArg::Cs => Language::Cs,
            LanguageArg::En => Language::En,
        }
    }
}
