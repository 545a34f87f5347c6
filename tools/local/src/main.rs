//! `twofa-local`: every route of the two-factor authentication API on one local HTTP server, through
//! the same handler code as the Lambda functions, with a seeded demo customer account.

mod cli;
mod console;
mod notify;
mod seed;
mod server;
mod setup;

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use tokio::net::TcpListener;
use tracing_subscriber::filter::LevelFilter;

use crate::cli::Cli;
use crate::seed::SeededAccount;
use crate::server::LocalState;

/// An error that stops the local run.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("{0}")]
    Store(String),
    #[error("seeding failed: {0}")]
    Seed(String),
    #[error("listening on {address} failed: {source}")]
    Listen {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("the server failed: {0}")]
    Serve(std::io::Error),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_target(false)
        .with_ansi(std::io::stdout().is_terminal())
        .with_env_filter(twofa_core::lambda::log_filter(LevelFilter::INFO))
        .init();

    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), LocalError> {
    let seed = match &cli.seed {
        Some(path) => seed::read_file(path).map_err(LocalError::Seed)?,
        None => seed::demo(),
    };
    let local = setup::build(&cli).await?;
    let listener = TcpListener::bind(cli.listen)
        .await
        .map_err(|source| LocalError::Listen {
            address: cli.listen,
            source,
        })?;
    let address = listener.local_addr().map_err(|source| LocalError::Listen {
        address: cli.listen,
        source,
    })?;

    let seeded = seed::apply(&local.app, &seed)
        .await
        .map_err(|error| LocalError::Seed(error.to_string()))?;
    print_banner(&cli, address, &seeded);

    let _notifier = notify::spawn(local.app.clone(), local.notifications);
    let state = Arc::new(LocalState::new(local.app, local.outbox));
    let service = server::router(state).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, service)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(LocalError::Serve)
}

/// Prints where the API listens, how messages are delivered, and the seeded credentials.
fn print_banner(cli: &Cli, address: SocketAddr, seeded: &[SeededAccount]) {
    println!("twofa-local: every API route on http://{address}");
    match &cli.dynamodb_endpoint {
        Some(endpoint) => println!("  store: DynamoDB at {endpoint}"),
        None => println!("  store: in memory (lost when the server stops)"),
    }
    if cli.aws_messaging {
        println!("  messages: sent through SNS and SES v2");
    } else {
        println!("  messages: printed here and listed at GET http://{address}/_local/outbox");
    }

    for account in seeded {
        match &account.account_id {
            Some(id) => println!("\nCustomer account \"{}\" (account id {id}):", account.name),
            None => println!(
                "\nCustomer account \"{}\": exists already, kept as it was:",
                account.name
            ),
        }
        for user in &account.users {
            let role = if user.is_main { "main account" } else { "sub-account " };
            let factor = match (seed::login_method(user), &user.phone) {
                (Some(twofa_core::model::Method::Sms), Some(phone)) => {
                    format!("2FA by SMS to {phone}")
                }
                (Some(method), _) => format!("2FA by {}", method.as_str()),
                (None, _) if user.is_main || user.two_factor_enabled == Some(true) => {
                    "2FA on, no factor yet: enrolls at login".to_owned()
                }
                (None, _) => "2FA off".to_owned(),
            };
            println!(
                "  {role}  username {:<14} password {:<24} {factor}",
                user.username,
                user.password.expose()
            );
        }
        if let Some(contact) = &account.security_contact {
            println!("  Security contact: {} <{}>", contact.name, contact.email);
        }
    }
    println!();
}

/// Completes on Ctrl-C or, on Unix, SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %error, "listening for Ctrl-C failed");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(error = %error, "listening for SIGTERM failed");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();

    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
    tracing::info!("shutting down");
}
