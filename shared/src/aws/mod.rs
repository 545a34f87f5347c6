//! Adapters of the ports for AWS: SNS for SMS, SES v2 for email, Secrets Manager for keys, and
//! the bootstrap that builds an [`crate::service::App`] from the environment at cold start.
//! The DynamoDB adapter is [`crate::store::dynamo`].

pub mod bootstrap;
pub mod failed_batch;
pub mod secrets;
pub mod ses;
pub mod sns;
pub mod stream_poller;

use aws_config::{BehaviorVersion, SdkConfig};

/// Loads the one SDK configuration shared by every client. It honours `AWS_ENDPOINT_URL`, which
/// points the clients at moto in tests.
pub async fn sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).load().await
}
