//! Conversion between JSON values and DynamoDB attribute values.
//!
//! String ↔ `S`, number ↔ `N`, bool ↔ `BOOL`, null ↔ `NULL`, array ↔ `L`, object ↔ `M`. A number
//! read back is an `i64` when it is integral and fits, else a `u64`, else an `f64`.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{Number, Value};

use crate::store::{Item, Key, StoreError, PK, SK};

/// Converts a JSON value into an attribute value.
pub(crate) fn to_attribute(value: &Value) -> AttributeValue {
    match value {
        Value::Null => AttributeValue::Null(true),
        Value::Bool(flag) => AttributeValue::Bool(*flag),
        Value::Number(number) => AttributeValue::N(number.to_string()),
        Value::String(text) => AttributeValue::S(text.clone()),
        Value::Array(values) => AttributeValue::L(values.iter().map(to_attribute).collect()),
        Value::Object(map) => AttributeValue::M(to_attributes(map)),
    }
}

/// Converts an item into the attribute map of a request.
pub(crate) fn to_attributes(item: &Item) -> HashMap<String, AttributeValue> {
    item.iter()
        .map(|(name, value)| (name.clone(), to_attribute(value)))
        .collect()
}

/// Returns the key attributes of a request.
pub(crate) fn key_attributes(key: &Key) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (PK.to_owned(), AttributeValue::S(key.pk.clone())),
        (SK.to_owned(), AttributeValue::S(key.sk.clone())),
    ])
}

/// Converts an attribute value into a JSON value.
///
/// String and number sets become arrays. Binary values are rejected because the domain never
/// writes them.
pub(crate) fn from_attribute(value: &AttributeValue) -> Result<Value, StoreError> {
    match value {
        AttributeValue::S(text) => Ok(Value::String(text.clone())),
        AttributeValue::N(text) => parse_number(text),
        AttributeValue::Bool(flag) => Ok(Value::Bool(*flag)),
        AttributeValue::Null(_) => Ok(Value::Null),
        AttributeValue::L(values) => values
            .iter()
            .map(from_attribute)
            .collect::<Result<_, _>>()
            .map(Value::Array),
        AttributeValue::M(map) => from_attributes(map).map(Value::Object),
        AttributeValue::Ss(texts) => Ok(Value::Array(texts.iter().cloned().map(Value::String).collect())),
        AttributeValue::Ns(texts) => texts
            .iter()
            .map(|text| parse_number(text))
            .collect::<Result<_, _>>()
            .map(Value::Array),
        _ => Err(StoreError::Invalid(
            "attribute of an unsupported type (binary or unknown)".into(),
        )),
    }
}

/// Converts the attribute map of a response into an item.
pub(crate) fn from_attributes(attributes: &HashMap<String, AttributeValue>) -> Result<Item, StoreError> {
    attributes
        .iter()
        .map(|(name, value)| Ok((name.clone(), from_attribute(value)?)))
        .collect()
}

fn parse_number(text: &str) -> Result<Value, StoreError> {
    if let Ok(integer) = text.parse::<i64>() {
        return Ok(Value::from(integer));
    }
    if let Ok(integer) = text.parse::<u64>() {
        return Ok(Value::from(integer));
    }
    text.parse::<f64>()
        .ok()
        .and_then(Number::from_f64)
        .map(Value::Number)
        .ok_or_else(|| StoreError::Invalid(format!("number attribute {text} is not representable in JSON")))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn every_json_type_round_trips() {
        let value = json!({
            "text": "héllo",
            "empty_text": "",
            "integer": -42,
            "max": i64::MAX,
            "unsigned": u64::MAX,
            "fraction": 1.5,
            "flag": true,
            "nothing": null,
            "list": [1, "two", [3], {"four": 4}],
            "empty_list": [],
            "map": {"nested": {"deeper": false}},
            "empty_map": {},
        });

        let back = from_attribute(&to_attribute(&value));

        assert_eq!(back, Ok(value));
    }

    #[test]
    fn integral_number_reads_back_as_integer() {
        assert_eq!(from_attribute(&AttributeValue::N("7".into())), Ok(json!(7)));
        assert_eq!(from_attribute(&AttributeValue::N("-7".into())), Ok(json!(-7)));
        assert_eq!(from_attribute(&AttributeValue::N("0.25".into())), Ok(json!(0.25)));
    }

    #[test]
    fn binary_attribute_is_rejected() {
        let binary = AttributeValue::B(aws_sdk_dynamodb::primitives::Blob::new(vec![1, 2]));

        assert!(matches!(from_attribute(&binary), Err(StoreError::Invalid(_))));
    }
}
