//! `twofa-admin`: provisions customer accounts and users, sets passwords and the Security contact,
//! resets a user's 2FA, lists audit records and sends failed notifications again, on the service's
//! DynamoDB table.
//!
//! Every change goes through `twofa_core::service::provisioning`. Each one writes an audit record in
//! the same transaction. A change of 2FA (`reset-2fa`, `add-sms`, `add-totp`) or of the Security
//! contact also writes a notification, and a change of 2FA or of the password ends the user's
//! sessions.

mod cli;
mod commands;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::filter::LevelFilter;
use twofa_core::aws::bootstrap;

use crate::cli::Cli;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(twofa_core::lambda::log_filter(LevelFilter::WARN))
        .init();

    let app = match bootstrap::app_from_env().await {
        Ok(app) => app,
        Err(error) => {
            for problem in error.problems() {
                eprintln!("error: {problem}");
            }
            return ExitCode::FAILURE;
        }
    };

    match commands::run(&app, cli.command).await {
        Ok(output) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&output).unwrap_or_else(|_| output.to_string())
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
