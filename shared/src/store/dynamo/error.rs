//! Mapping of DynamoDB errors onto [`StoreError`].
//!
//! Only the operation and the error code are logged, never a request or a message, because
//! requests carry items and items can hold secrets. A failed condition is an expected outcome and
//! is not logged.

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{BuildError, DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;

use crate::store::StoreError;

/// Error codes of throttling and of temporary faults on the DynamoDB side.
const TEMPORARY_CODES: [&str; 6] = [
    "ThrottlingException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "InternalServerError",
    "ServiceUnavailable",
    "LimitExceededException",
];

/// The cause of a cancelled transaction.
#[derive(Debug, PartialEq)]
pub(crate) enum TransactionFailure {
    /// The conditions of these writes, in request order, did not hold.
    ConditionFailed(Vec<usize>),
    Other(StoreError),
}

/// Maps the error of a request other than TransactWriteItems.
pub(crate) fn store_error<E>(operation: &'static str, error: &SdkError<E, HttpResponse>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match error {
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or("UnknownError");
            let message = service.err().message().unwrap_or_default();
            service_error(operation, code, message, service.raw().status().as_u16())
        }
        _ => transport_error(operation, error),
    }
}

/// Maps the error of a TransactWriteItems request.
pub(crate) fn transaction_failure(error: &SdkError<TransactWriteItemsError, HttpResponse>) -> TransactionFailure {
    match error.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => {
            let codes: Vec<&str> = cancelled
                .cancellation_reasons()
                .iter()
                .map(|reason| reason.code().unwrap_or("None"))
                .collect();
            cancellation(&codes, cancelled.message().unwrap_or_default())
        }
        _ => TransactionFailure::Other(store_error("TransactWriteItems", error)),
    }
}

/// Maps a request that the SDK could not build, which is a bug in the adapter.
pub(crate) fn build_error(error: BuildError) -> StoreError {
    StoreError::Invalid(format!("DynamoDB request could not be built: {error}"))
}

/// Maps an error response by its code and HTTP status.
fn service_error(operation: &'static str, code: &str, message: &str, status: u16) -> StoreError {
    match code {
        "ConditionalCheckFailedException" => StoreError::ConditionFailed { index: None },
        "TransactionConflictException" => {
            tracing::warn!(operation, code, "DynamoDB request conflicted with a transaction");
            StoreError::TransactionConflict
        }
        "ValidationException" => {
            tracing::error!(operation, code, status, "DynamoDB rejected a request as invalid");
            StoreError::Invalid(format!("{operation}: {code}: {message}"))
        }
        _ if TEMPORARY_CODES.contains(&code) || status >= 500 => {
            tracing::warn!(
                operation,
                code,
                status,
                "DynamoDB throttled a request or is unavailable"
            );
            StoreError::Unavailable(format!("{operation}: {code}: {message}"))
        }
        _ => {
            tracing::error!(operation, code, status, "DynamoDB request failed");
            StoreError::Unavailable(format!("{operation}: {code}: {message}"))
        }
    }
}

/// Maps the cancellation reasons of a transaction, one code per write in request order.
///
/// A failed condition wins over other reasons, as the memory store reports it.
fn cancellation(codes: &[&str], message: &str) -> TransactionFailure {
    let failed: Vec<usize> = codes
        .iter()
        .enumerate()
        .filter(|(_, code)| **code == "ConditionalCheckFailed")
        .map(|(index, _)| index)
        .collect();
    if !failed.is_empty() {
        return TransactionFailure::ConditionFailed(failed);
    }

    let operation = "TransactWriteItems";
    let code = codes.iter().copied().find(|code| *code != "None").unwrap_or("None");
    let error = match code {
        "TransactionConflict" => {
            tracing::warn!(operation, code, "DynamoDB transaction conflicted with another one");
            StoreError::TransactionConflict
        }
        "ValidationError" => {
            tracing::error!(operation, code, "DynamoDB rejected a transaction as invalid");
            StoreError::Invalid(format!("{operation}: {code}: {message}"))
        }
        _ => {
            tracing::warn!(operation, code, "DynamoDB cancelled a transaction");
            StoreError::Unavailable(format!("{operation}: TransactionCanceledException ({code}): {message}"))
        }
    };
    TransactionFailure::Other(error)
}

/// Maps a failure without an error response: construction, timeout, dispatch or an unreadable
/// response.
///
/// Only a dispatch failure keeps its cause (such as "connection refused"), because the other
/// causes can quote the request or the response body.
fn transport_error<E>(operation: &'static str, error: &SdkError<E, HttpResponse>) -> StoreError
where
    E: std::error::Error + 'static,
{
    let kind = match error {
        SdkError::ConstructionFailure(_) => "request construction failed",
        SdkError::TimeoutError(_) => "request timed out",
        SdkError::DispatchFailure(failure) if failure.is_timeout() => "request timed out",
        SdkError::DispatchFailure(_) => "request could not be sent",
        SdkError::ResponseError(_) => "response could not be read",
        _ => "request failed",
    };
    tracing::warn!(operation, kind, "DynamoDB request failed");
    match error {
        SdkError::DispatchFailure(_) => {
            StoreError::Unavailable(format!("{operation}: {kind}: {}", DisplayErrorContext(error)))
        }
        _ => StoreError::Unavailable(format!("{operation}: {kind}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_condition_is_condition_failed() {
        let error = service_error(
            "PutItem",
            "ConditionalCheckFailedException",
            "The conditional request failed",
            400,
        );

        assert_eq!(error, StoreError::ConditionFailed { index: None });
    }

    #[test]
    fn throttling_and_server_faults_are_unavailable() {
        for (code, status) in [
            ("ThrottlingException", 400),
            ("ProvisionedThroughputExceededException", 400),
            ("RequestLimitExceeded", 400),
            ("InternalServerError", 500),
            ("SomethingNew", 503),
        ] {
            let error = service_error("GetItem", code, "try later", status);

            assert_eq!(error, StoreError::Unavailable(format!("GetItem: {code}: try later")));
        }
    }

    #[test]
    fn unexpected_code_is_unavailable_with_code_and_message() {
        let error = service_error(
            "Query",
            "ResourceNotFoundException",
            "Requested resource not found",
            400,
        );

        assert_eq!(
            error,
            StoreError::Unavailable("Query: ResourceNotFoundException: Requested resource not found".into())
        );
    }

    #[test]
    fn validation_is_invalid() {
        let error = service_error("UpdateItem", "ValidationException", "Invalid UpdateExpression", 400);

        assert!(matches!(error, StoreError::Invalid(_)));
    }

    #[test]
    fn conflict_outside_a_transaction_is_transaction_conflict() {
        let error = service_error("UpdateItem", "TransactionConflictException", "", 400);

        assert_eq!(error, StoreError::TransactionConflict);
    }

    #[test]
    fn cancellation_reports_every_failed_condition() {
        let failure = cancellation(
            &[
                "None",
                "ConditionalCheckFailed",
                "TransactionConflict",
                "ConditionalCheckFailed",
            ],
            "",
        );

        assert_eq!(failure, TransactionFailure::ConditionFailed(vec![1, 3]));
    }

    #[test]
    fn cancellation_for_conflict_is_transaction_conflict() {
        let failure = cancellation(&["None", "TransactionConflict"], "");

        assert_eq!(failure, TransactionFailure::Other(StoreError::TransactionConflict));
    }

    #[test]
    fn cancellation_for_throttling_is_unavailable() {
        let failure = cancellation(&["ThrottlingError", "None"], "Throughput exceeds the limit");

        assert_eq!(
            failure,
            TransactionFailure::Other(StoreError::Unavailable(
                "TransactWriteItems: TransactionCanceledException (ThrottlingError): Throughput exceeds the limit"
                    .into()
            ))
        );
    }
}
