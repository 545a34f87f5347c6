//! Condition and update expressions with placeholders generated per request.
//!
//! Every attribute name becomes a `#nN` placeholder and every value a `:vN` placeholder, so no name
//! or value is ever spliced into an expression.
//!
//! Expiry: the store port treats an item whose `expires_at` is at or before now as absent, but
//! DynamoDB keeps such an item until its TTL process deletes it. A condition `C` is therefore
//! compiled as `(live AND C on the item) OR (NOT live AND C on no item)`. "C on no item" is a
//! constant that the memory store's evaluator computes, and "live" is
//! `attribute_exists(pk) AND (attribute_not_exists(expires_at) OR expires_at > :now)`.

use std::collections::{HashMap, HashSet};

use aws_sdk_dynamodb::types::AttributeValue;

use super::attribute::to_attribute;
use crate::store::memory::{evaluate, validate_update};
use crate::store::{Condition, StoreError, Update, EXPIRES_AT, PK};

/// ExpressionAttributeNames: placeholder to attribute name.
pub(crate) type NameMap = HashMap<String, String>;

/// ExpressionAttributeValues: placeholder to value.
pub(crate) type ValueMap = HashMap<String, AttributeValue>;

/// The placeholders of one request.
#[derive(Default)]
pub(crate) struct Placeholders {
    names: NameMap,
    values: ValueMap,
    now: Option<String>,
}

impl Placeholders {
    /// Returns the placeholder of an attribute name, reusing it when the name repeats.
    pub(crate) fn name(&mut self, name: &str) -> String {
        if let Some((placeholder, _)) = self.names.iter().find(|(_, existing)| existing.as_str() == name) {
            return placeholder.clone();
        }
        let placeholder = format!("#n{}", self.names.len());
        self.names.insert(placeholder.clone(), name.to_owned());
        placeholder
    }

    /// Returns a new placeholder for a value.
    pub(crate) fn value(&mut self, value: AttributeValue) -> String {
        let placeholder = format!(":v{}", self.values.len());
        self.values.insert(placeholder.clone(), value);
        placeholder
    }

    /// Returns the placeholder of the current time in Unix seconds, one per request.
    pub(crate) fn now(&mut self, now: i64) -> String {
        if let Some(placeholder) = &self.now {
            return placeholder.clone();
        }
        let placeholder = self.value(AttributeValue::N(now.to_string()));
        self.now = Some(placeholder.clone());
        placeholder
    }

    /// Returns the name and value maps of the request for its expressions.
    ///
    /// Placeholders that no expression uses are dropped, because constant folding can discard a
    /// compiled part and DynamoDB rejects unused placeholders. A map is `None` where empty, because
    /// DynamoDB rejects empty maps too.
    pub(crate) fn into_maps(self, expressions: &[&str]) -> (Option<NameMap>, Option<ValueMap>) {
        let used: HashSet<&str> = expressions
            .iter()
            .flat_map(|expression| placeholders_in(expression))
            .collect();
        let names: HashMap<_, _> = self
            .names
            .into_iter()
            .filter(|(placeholder, _)| used.contains(placeholder.as_str()))
            .collect();
        let values: HashMap<_, _> = self
            .values
            .into_iter()
            .filter(|(placeholder, _)| used.contains(placeholder.as_str()))
            .collect();
        (
            (!names.is_empty()).then_some(names),
            (!values.is_empty()).then_some(values),
        )
    }
}

/// Returns the `#name` and `:value` placeholders of an expression.
fn placeholders_in(expression: &str) -> Vec<&str> {
    let is_part = |character: char| character.is_ascii_alphanumeric() || character == '_';
    let mut found = Vec::new();
    for (start, character) in expression.char_indices() {
        if character != '#' && character != ':' {
            continue;
        }
        let rest = &expression[start + 1..];
        let length = rest.find(|character: char| !is_part(character)).unwrap_or(rest.len());
        if length > 0 {
            found.push(&expression[start..start + 1 + length]);
        }
    }
    found
}

/// A compiled condition whose constants are folded, so that no request needs a literal true or false.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    Always,
    Never,
    Text(String),
}

impl Expr {
    fn constant(holds: bool) -> Self {
        if holds {
            Expr::Always
        } else {
            Expr::Never
        }
    }

    fn and(self, other: Expr) -> Expr {
        match (self, other) {
            (Expr::Never, _) | (_, Expr::Never) => Expr::Never,
            (Expr::Always, other) | (other, Expr::Always) => other,
            (Expr::Text(left), Expr::Text(right)) => Expr::Text(format!("({left}) AND ({right})")),
        }
    }

    fn or(self, other: Expr) -> Expr {
        match (self, other) {
            (Expr::Always, _) | (_, Expr::Always) => Expr::Always,
            (Expr::Never, other) | (other, Expr::Never) => other,
            (Expr::Text(left), Expr::Text(right)) => Expr::Text(format!("({left}) OR ({right})")),
        }
    }

    /// Returns the ConditionExpression of a Put, Update or Delete: none when it always holds.
    pub(crate) fn into_optional(self, placeholders: &mut Placeholders) -> Option<String> {
        match self {
            Expr::Always => None,
            other => Some(other.render(placeholders)),
        }
    }

    /// Returns the expression text; a constant becomes a tautology or a contradiction on `pk`.
    pub(crate) fn render(self, placeholders: &mut Placeholders) -> String {
        let pk = placeholders.name(PK);
        match self {
            Expr::Always => format!("attribute_exists({pk}) OR attribute_not_exists({pk})"),
            Expr::Never => format!("attribute_exists({pk}) AND attribute_not_exists({pk})"),
            Expr::Text(text) => text,
        }
    }
}

/// Compiles a condition with the semantics of the store port, where an expired item is absent.
pub(crate) fn condition(condition: &Condition, now: i64, placeholders: &mut Placeholders) -> Expr {
    let on_item = on_live_item(condition, placeholders);
    let on_no_item = Expr::constant(evaluate(condition, None));
    live(now, placeholders)
        .and(on_item)
        .or(not_live(now, placeholders).and(on_no_item))
}

/// Returns the ConditionExpression of a Put or Delete: none without a condition or when the
/// condition always holds.
pub(crate) fn optional_condition(
    condition: Option<&Condition>,
    now: i64,
    placeholders: &mut Placeholders,
) -> Option<String> {
    let condition = condition?;
    self::condition(condition, now, placeholders).into_optional(placeholders)
}

/// Compiles the condition of an UpdateItem request.
///
/// UpdateItem changes the stored item, but an update that meets an expired item must start from a
/// fresh one. So where the port's condition holds on no item, this condition also fails on an
/// expired item. The caller then deletes that item and retries (see [`needs_expired_cleanup`]).
/// Where the port's condition fails on no item, the update must fail on an expired item anyway.
pub(crate) fn update_condition(condition: Option<&Condition>, now: i64, placeholders: &mut Placeholders) -> Expr {
    match condition {
        None => not_expired(now, placeholders),
        Some(condition) if evaluate(condition, None) => {
            let pk = placeholders.name(PK);
            let absent = Expr::Text(format!("attribute_not_exists({pk})"));
            not_expired(now, placeholders).and(absent.or(on_live_item(condition, placeholders)))
        }
        Some(condition) => self::condition(condition, now, placeholders),
    }
}

/// Returns true when an update failing on its condition may have met an expired item that has to
/// be deleted before the update is retried.
pub(crate) fn needs_expired_cleanup(condition: Option<&Condition>) -> bool {
    condition.is_none_or(|condition| evaluate(condition, None))
}

/// Returns the condition of a DeleteItem that removes an item only if it has expired.
pub(crate) fn expired(now: i64, placeholders: &mut Placeholders) -> String {
    let pk = placeholders.name(PK);
    let expires_at = placeholders.name(EXPIRES_AT);
    let now = placeholders.now(now);
    format!("attribute_exists({pk}) AND {expires_at} <= {now}")
}

/// Returns the FilterExpression that keeps only unexpired items.
pub(crate) fn unexpired_filter(now: i64, placeholders: &mut Placeholders) -> String {
    match not_expired(now, placeholders) {
        Expr::Text(text) => text,
        other => other.render(placeholders),
    }
}

fn live(now: i64, placeholders: &mut Placeholders) -> Expr {
    let pk = placeholders.name(PK);
    Expr::Text(format!("attribute_exists({pk})")).and(not_expired(now, placeholders))
}

fn not_live(now: i64, placeholders: &mut Placeholders) -> Expr {
    let pk = placeholders.name(PK);
    let expires_at = placeholders.name(EXPIRES_AT);
    let now = placeholders.now(now);
    Expr::Text(format!("attribute_not_exists({pk}) OR {expires_at} <= {now}"))
}

/// Returns an expression that is true for an absent item and for a live one.
///
/// NOTE: an `expires_at` that is not an integer never expires in the memory store. Here every
/// comparison with a non-number is false, so such an item is neither live nor expired to a
/// condition and is dropped by queries. The domain writes only integers there.
fn not_expired(now: i64, placeholders: &mut Placeholders) -> Expr {
    let expires_at = placeholders.name(EXPIRES_AT);
    let now = placeholders.now(now);
    Expr::Text(format!("attribute_not_exists({expires_at}) OR {expires_at} > {now}"))
}

/// Compiles a condition for the case that the item exists and has not expired.
fn on_live_item(condition: &Condition, placeholders: &mut Placeholders) -> Expr {
    match condition {
        Condition::Exists => Expr::Always,
        Condition::NotExists => Expr::Never,
        Condition::Equals(name, value) => compare(name, "=", to_attribute(value), placeholders),
        Condition::NotEquals(name, value) => {
            let name = placeholders.name(name);
            let value = placeholders.value(to_attribute(value));
            Expr::Text(format!("attribute_not_exists({name}) OR {name} <> {value}"))
        }
        Condition::LessThan(name, value) => compare(name, "<", AttributeValue::N(value.to_string()), placeholders),
        Condition::GreaterThan(name, value) => compare(name, ">", AttributeValue::N(value.to_string()), placeholders),
        Condition::AttributeExists(name) => Expr::Text(format!("attribute_exists({})", placeholders.name(name))),
        Condition::AttributeNotExists(name) => Expr::Text(format!("attribute_not_exists({})", placeholders.name(name))),
        Condition::And(conditions) => conditions.iter().fold(Expr::Always, |all, condition| {
            all.and(on_live_item(condition, placeholders))
        }),
        Condition::Or(conditions) => conditions.iter().fold(Expr::Never, |any, condition| {
            any.or(on_live_item(condition, placeholders))
        }),
    }
}

fn compare(name: &str, operator: &str, value: AttributeValue, placeholders: &mut Placeholders) -> Expr {
    let name = placeholders.name(name);
    let value = placeholders.value(value);
    Expr::Text(format!("{name} {operator} {value}"))
}

/// An attribute the domain never writes. An update that changes nothing removes it, because a
/// transaction's Update needs an expression and such an update must still create an absent item.
const NO_CHANGE_ATTRIBUTE: &str = "__no_change";

/// Compiles an update into an UpdateExpression.
pub(crate) fn update_expression(update: &Update, placeholders: &mut Placeholders) -> Result<String, StoreError> {
    validate_update(update)?;

    let mut set = Vec::new();
    for (name, value) in &update.set {
        let name = placeholders.name(name);
        let value = placeholders.value(to_attribute(value));
        set.push(format!("{name} = {value}"));
    }
    for (name, values) in &update.append {
        let name = placeholders.name(name);
        let empty = placeholders.value(AttributeValue::L(Vec::new()));
        let values = placeholders.value(AttributeValue::L(values.iter().map(to_attribute).collect()));
        set.push(format!(
            "{name} = list_append(if_not_exists({name}, {empty}), {values})"
        ));
    }

    let mut add = Vec::new();
    for (name, delta) in &update.add {
        let name = placeholders.name(name);
        let delta = placeholders.value(AttributeValue::N(delta.to_string()));
        add.push(format!("{name} {delta}"));
    }

    let remove: Vec<String> = update.remove.iter().map(|name| placeholders.name(name)).collect();

    let clauses: Vec<String> = [("SET", set), ("ADD", add), ("REMOVE", remove)]
        .into_iter()
        .filter(|(_, actions)| !actions.is_empty())
        .map(|(keyword, actions)| format!("{keyword} {}", actions.join(", ")))
        .collect();
    if clauses.is_empty() {
        return Ok(format!("REMOVE {}", placeholders.name(NO_CHANGE_ATTRIBUTE)));
    }
    Ok(clauses.join(" "))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn compile(condition: &Condition) -> (String, Option<NameMap>) {
        let mut placeholders = Placeholders::default();
        let text = self::condition(condition, 100, &mut placeholders).render(&mut placeholders);
        let (names, _) = placeholders.into_maps(&[&text]);
        (text, names)
    }

    #[test]
    fn exists_requires_a_live_item() {
        let (text, names) = compile(&Condition::Exists);

        assert_eq!(
            text,
            "(attribute_exists(#n0)) AND (attribute_not_exists(#n1) OR #n1 > :v0)"
        );
        assert_eq!(
            names,
            Some(HashMap::from([
                ("#n0".into(), "pk".into()),
                ("#n1".into(), "expires_at".into())
            ]))
        );
    }

    #[test]
    fn not_exists_accepts_an_expired_item() {
        let (text, _) = compile(&Condition::NotExists);

        assert_eq!(text, "attribute_not_exists(#n0) OR #n1 <= :v0");
    }

    #[test]
    fn attribute_names_are_placeholders() {
        let (text, names) = compile(&Condition::equals("last step) OR (x", json!(1)));

        assert!(!text.contains("last step"));
        assert!(names.is_some_and(|names| names.values().any(|name| name == "last step) OR (x")));
    }

    #[test]
    fn unconditional_update_fails_only_on_an_expired_item() {
        let mut placeholders = Placeholders::default();

        let expression = update_condition(None, 100, &mut placeholders);

        assert_eq!(expression, Expr::Text("attribute_not_exists(#n0) OR #n0 > :v0".into()));
        assert!(needs_expired_cleanup(None));
        assert!(!needs_expired_cleanup(Some(&Condition::Exists)));
    }

    #[test]
    fn folded_parts_leave_no_unused_placeholders() {
        let condition = Condition::Or(vec![Condition::Exists, Condition::equals("state", "pending")]);
        let mut placeholders = Placeholders::default();
        let text = self::condition(&condition, 100, &mut placeholders).render(&mut placeholders);

        let (names, values) = placeholders.into_maps(&[&text]);

        assert!(names.is_some_and(|names| names.values().all(|name| name != "state")));
        assert_eq!(values.map(|values| values.len()), Some(1));
    }

    #[test]
    fn placeholders_are_found_whole() {
        assert_eq!(
            placeholders_in("#n1 = :v10 AND attribute_exists(#n10)"),
            vec!["#n1", ":v10", "#n10"]
        );
    }

    #[test]
    fn empty_or_never_holds() {
        let (text, _) = compile(&Condition::Or(Vec::new()));

        assert_eq!(text, "attribute_exists(#n0) AND attribute_not_exists(#n0)");
    }

    #[test]
    fn update_expression_has_all_clauses() {
        let mut placeholders = Placeholders::default();
        let update = Update::new()
            .set("a", 1)
            .append("log", vec![json!("x")])
            .add("count", 2)
            .remove("b");

        let expression = update_expression(&update, &mut placeholders);

        assert_eq!(
            expression,
            Ok("SET #n0 = :v0, #n1 = list_append(if_not_exists(#n1, :v1), :v2) ADD #n2 :v3 REMOVE #n3".into())
        );
    }

    #[test]
    fn empty_update_removes_an_unused_attribute() {
        let mut placeholders = Placeholders::default();

        assert_eq!(
            update_expression(&Update::new(), &mut placeholders),
            Ok("REMOVE #n0".into())
        );
    }
}
