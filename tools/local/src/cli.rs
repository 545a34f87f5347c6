//! The command line of `twofa-local`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

/// Serves every route of the two-factor authentication API on one local HTTP server, through the
/// same handler code as the Lambda functions.
///
/// By default the store is in memory, SMS and emails are printed here and listed at
/// GET /_local/outbox, and a demo customer account is seeded. The keys are generated at start
/// unless KEYS_JSON is set; OTP_ISSUER, EMAIL_FROM, SMS_ALLOWED_COUNTRIES, PHONE_DEFAULT_REGION and
/// TABLE_NAME are read from the environment when set.
#[derive(Debug, Parser)]
#[command(name = "twofa-local", version)]
pub struct Cli {
    /// Address and port to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:3000")]
    pub listen: SocketAddr,

    /// Seed the store from this JSON file (see docs/seed-format.md) instead of the demo account.
    #[arg(long, value_name = "FILE")]
    pub seed: Option<PathBuf>,

    /// Use the DynamoDB API at this URL (DynamoDB Local, moto) instead of the in-memory store. The
    /// table TABLE_NAME is created when missing, and notifications come from its stream.
    #[arg(long, value_name = "URL")]
    pub dynamodb_endpoint: Option<String>,

    /// Send SMS through SNS and emails through SES v2 with the AWS configuration of the
    /// environment, instead of printing them.
    #[arg(long)]
    pub aws_messaging: bool,
}
