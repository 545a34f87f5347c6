//! The mailer on Amazon SES v2: one `SendEmail` call with simple UTF-8 text content per email.

use async_trait::async_trait;
use aws_sdk_sesv2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sesv2::operation::send_email::SendEmailError;
use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message};

use crate::ports::{Email, Mailer, SendError};

/// The character set of subjects and bodies.
const CHARSET: &str = "UTF-8";

/// Sends emails through SES v2 from a verified sender identity.
#[derive(Debug, Clone)]
pub struct SesMailer {
    pub client: aws_sdk_sesv2::Client,
    /// The sender address, `EMAIL_FROM`; SES accepts it only once its identity is verified.
    pub from: String,
}

impl SesMailer {
    pub fn new(client: aws_sdk_sesv2::Client, from: impl Into<String>) -> Self {
        Self {
            client,
            from: from.into(),
        }
    }
}

#[async_trait]
impl Mailer for SesMailer {
    async fn send(&self, email: &Email) -> Result<(), SendError> {
        let content = EmailContent::builder()
            .simple(
                Message::builder()
                    .subject(text_content(&email.subject)?)
                    .body(Body::builder().text(text_content(&email.body_text)?).build())
                    .build(),
            )
            .build();
        let destination = Destination::builder().to_addresses(&email.to).build();

        let sent = self
            .client
            .send_email()
            .from_email_address(&self.from)
            .destination(destination)
            .content(content)
            .send()
            .await;
        match sent {
            Ok(_) => Ok(()),
            Err(error) => Err(classify(&error)),
        }
    }
}

fn text_content(data: &str) -> Result<Content, SendError> {
    Content::builder()
        .data(data)
        .charset(CHARSET)
        .build()
        .map_err(|error| SendError::Permanent(format!("invalid SES content: {error}")))
}

/// Maps an SES error to a send error that carries the error code but never the message.
///
/// Temporary: throttling, the sending quota, a paused account, a 5xx, a timeout. Permanent: the
/// rest, such as `MessageRejected`, `MailFromDomainNotVerifiedException` and
/// `NotFoundException`. The notifier retries both kinds, because the usual permanent cause is a
/// sender identity that is not verified yet, which an operator fixes. A record that keeps
/// failing reaches the on-failure queue.
fn classify(error: &SdkError<SendEmailError>) -> SendError {
    match error {
        SdkError::ServiceError(context) => {
            let service_error = context.err();
            let code = service_error.code().unwrap_or("unknown");
            let status = context.raw().status().as_u16();
            let is_temporary = status >= 500
                || matches!(
                    service_error,
                    SendEmailError::TooManyRequestsException(_)
                        | SendEmailError::LimitExceededException(_)
                        | SendEmailError::SendingPausedException(_)
                );
            let description = format!("SES returned {code} (HTTP {status})");
            if is_temporary {
                SendError::Temporary(description)
            } else {
                SendError::Permanent(description)
            }
        }
        SdkError::TimeoutError(_) => SendError::Temporary("SES request timed out".into()),
        SdkError::DispatchFailure(_) => SendError::Temporary("SES request could not be sent".into()),
        SdkError::ResponseError(_) => SendError::Temporary("SES response could not be read".into()),
        _ => SendError::Temporary("SES request failed".into()),
    }
}
