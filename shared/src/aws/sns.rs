//! The SMS sender on Amazon SNS: one `Publish` call per message, straight to a phone number.

use async_trait::async_trait;
use aws_sdk_sns::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sns::operation::publish::PublishError;
use aws_sdk_sns::types::MessageAttributeValue;

use crate::phone::mask_e164;
use crate::ports::{SendError, Sms, SmsSender};

/// Message attribute that marks an SMS as transactional, so SNS routes it for reliability.
const SMS_TYPE_ATTRIBUTE: &str = "AWS.SNS.SMS.SMSType";
/// Message attribute with the alphanumeric sender id shown where the destination supports one.
const SENDER_ID_ATTRIBUTE: &str = "AWS.SNS.SMS.SenderID";

/// Sends SMS messages through SNS `Publish` with `PhoneNumber` set.
#[derive(Debug, Clone)]
pub struct SnsSmsSender {
    pub client: aws_sdk_sns::Client,
    pub sender_id: Option<String>,
}

impl SnsSmsSender {
    pub fn new(client: aws_sdk_sns::Client, sender_id: Option<String>) -> Self {
        Self { client, sender_id }
    }
}

#[async_trait]
impl SmsSender for SnsSmsSender {
    async fn send(&self, sms: &Sms) -> Result<(), SendError> {
        let mut request = self
            .client
            .publish()
            .phone_number(&sms.phone_e164)
            .message(&sms.text)
            .message_attributes(SMS_TYPE_ATTRIBUTE, string_attribute("Transactional")?);
        if let Some(sender_id) = &self.sender_id {
            request = request.message_attributes(SENDER_ID_ATTRIBUTE, string_attribute(sender_id)?);
        }

        match request.send().await {
            Ok(_) => Ok(()),
            Err(error) => {
                let error = classify(&error);
                tracing::warn!(phone = %mask_e164(&sms.phone_e164), error = %error, "SNS publish failed");
                Err(error)
            }
        }
    }
}

/// Builds a `String` message attribute.
fn string_attribute(value: &str) -> Result<MessageAttributeValue, SendError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .map_err(|error| SendError::Permanent(format!("invalid SNS message attribute: {error}")))
}

/// Maps an SNS error to a send error that carries the error code but never the request.
///
/// Only an invalid phone number is permanent, so the caller can ask the user for another number.
/// Everything else is temporary: throttling, a 5xx, a timeout, and also our own configuration
/// errors such as a missing permission. The user can do nothing about those but try again later.
fn classify(error: &SdkError<PublishError>) -> SendError {
    match error {
        SdkError::ServiceError(context) => {
            let service_error = context.err();
            let code = service_error.code().unwrap_or("unknown");
            let status = context.raw().status().as_u16();
            if is_invalid_phone_number(service_error) {
                SendError::Permanent(format!("SNS rejected the phone number ({code})"))
            } else {
                SendError::Temporary(format!("SNS returned {code} (HTTP {status})"))
            }
        }
        SdkError::TimeoutError(_) => SendError::Temporary("SNS request timed out".into()),
        SdkError::DispatchFailure(_) => SendError::Temporary("SNS request could not be sent".into()),
        SdkError::ResponseError(_) => SendError::Temporary("SNS response could not be read".into()),
        _ => SendError::Temporary("SNS request failed".into()),
    }
}

/// Returns true when SNS rejected the `PhoneNumber` parameter. SNS names it in the message, as in
/// "Invalid parameter: PhoneNumber Reason: ..."; moto writes "Phone number does not meet the E164
/// format".
fn is_invalid_phone_number(error: &PublishError) -> bool {
    let is_invalid_parameter = matches!(
        error,
        PublishError::InvalidParameterException(_) | PublishError::InvalidParameterValueException(_)
    );
    let names_phone_number = error.message().is_some_and(|message| {
        let message = message.to_ascii_lowercase();
        message.contains("phonenumber") || message.contains("phone number")
    });
    is_invalid_parameter && names_phone_number
}
