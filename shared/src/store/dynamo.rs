//! The DynamoDB adapter of the [`Store`] port.
//!
//! One table stores every item under `pk` (string, partition key) and `sk` (string, sort key). Reads
//! are strongly consistent, queries never scan, and every condition is a ConditionExpression, so
//! DynamoDB enforces it atomically with the write.
//!
//! Expiry: DynamoDB deletes an item some time after its `expires_at` passes, so the adapter hides
//! expired items itself. `get` drops them, `query` filters them out, and conditions treat them as
//! absent (see [`expression`]). An update that meets an expired item must start from a fresh item,
//! as the memory store does. UpdateItem cannot do that, so the adapter deletes the expired item with
//! a conditional delete and retries. Deleting an expired item changes nothing the port can observe.

mod attribute;
mod error;
mod expression;
mod table;

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, Delete, Put, ReturnValue, TransactWriteItem};
use aws_sdk_dynamodb::Client;

use self::attribute::{from_attributes, key_attributes, to_attributes};
use self::error::{build_error, store_error, transaction_failure, TransactionFailure};
use self::expression::{needs_expired_cleanup, Placeholders};
use super::memory::validate_transaction;
use super::{is_expired, key_of, Condition, Item, Key, Order, QueryPage, Store, StoreError, Update, Write, PK, SK};
use crate::ports::Clock;

/// How often a write that met an expired item deletes it and tries again before it reports
/// [`StoreError::TransactionConflict`]. Each further attempt means another writer raced it.
const MAX_ATTEMPTS: usize = 3;

/// The outcome of one attempt at a transaction that did not fail.
#[derive(Debug, PartialEq, Eq)]
enum Attempt {
    Done,
    Retry,
}

/// The DynamoDB store.
pub struct DynamoStore {
    client: Client,
    table: String,
    clock: Arc<dyn Clock>,
}

impl DynamoStore {
    /// Creates a store on `table`; the client comes from the shared SDK configuration.
    pub fn new(client: Client, table: impl Into<String>, clock: Arc<dyn Clock>) -> Self {
        Self {
            client,
            table: table.into(),
            clock,
        }
    }

    /// Creates the table as the SAM template defines it, waits until it is ACTIVE and enables TTL
    /// on `expires_at`. A table that already exists is kept, so the call is idempotent.
    ///
    /// For the local run, tests and the admin tool; in AWS the template creates the table.
    pub async fn create_table(client: &Client, table: &str) -> Result<(), StoreError> {
        table::create_table(client, table).await
    }

    /// Applies an update, deleting an expired item in the way first (see the module documentation).
    async fn update_item(
        &self,
        key: &Key,
        update: &Update,
        condition: Option<&Condition>,
        return_new: bool,
    ) -> Result<Option<Item>, StoreError> {
        for _ in 0..MAX_ATTEMPTS {
            let now = self.clock.now();
            match self.send_update(key, update, condition, return_new, now).await {
                Err(StoreError::ConditionFailed { .. }) if needs_expired_cleanup(condition) => {
                    let deleted = self.delete_if_expired(key, now).await?;
                    if !deleted && condition.is_some() {
                        return Err(StoreError::ConditionFailed { index: None });
                    }
                }
                result => return result,
            }
        }
        Err(StoreError::TransactionConflict)
    }

    async fn send_update(
        &self,
        key: &Key,
        update: &Update,
        condition: Option<&Condition>,
        return_new: bool,
        now: i64,
    ) -> Result<Option<Item>, StoreError> {
        let mut placeholders = Placeholders::default();
        let update_expression = expression::update_expression(update, &mut placeholders)?;
        let condition_expression =
            expression::update_condition(condition, now, &mut placeholders).into_optional(&mut placeholders);
        let (names, values) =
            placeholders.into_maps(&[&update_expression, condition_expression.as_deref().unwrap_or_default()]);

        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_attributes(key)))
            .update_expression(update_expression)
            .set_condition_expression(condition_expression)
            .set_expression_attribute_names(names)
            .set_expression_attribute_values(values);
        if return_new {
            request = request.return_values(ReturnValue::AllNew);
        }
        let output = request
            .send()
            .await
            .map_err(|error| store_error("UpdateItem", &error))?;
        output.attributes().map(from_attributes).transpose()
    }

    /// Deletes the item if it has expired; returns whether it did.
    async fn delete_if_expired(&self, key: &Key, now: i64) -> Result<bool, StoreError> {
        let mut placeholders = Placeholders::default();
        let condition = expression::expired(now, &mut placeholders);
        let (names, values) = placeholders.into_maps(&[&condition]);
        let deleted = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key_attributes(key)))
            .condition_expression(condition)
            .set_expression_attribute_names(names)
            .set_expression_attribute_values(values)
            .send()
            .await;
        match deleted {
            Ok(_) => Ok(true),
            Err(error) => match store_error("DeleteItem", &error) {
                StoreError::ConditionFailed { .. } => Ok(false),
                other => Err(other),
            },
        }
    }

    async fn put_item(&self, item: &Item, condition: Option<&Condition>, now: i64) -> Result<(), StoreError> {
        key_of(item)?;
        let mut placeholders = Placeholders::default();
        let condition_expression = expression::optional_condition(condition, now, &mut placeholders);
        let (names, values) = placeholders.into_maps(&[condition_expression.as_deref().unwrap_or_default()]);
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_attributes(item)))
            .set_condition_expression(condition_expression)
            .set_expression_attribute_names(names)
            .set_expression_attribute_values(values)
            .send()
            .await
            .map_err(|error| store_error("PutItem", &error))?;
        Ok(())
    }

    async fn delete_item(&self, key: &Key, condition: Option<&Condition>, now: i64) -> Result<(), StoreError> {
        let mut placeholders = Placeholders::default();
        let condition_expression = expression::optional_condition(condition, now, &mut placeholders);
        let (names, values) = placeholders.into_maps(&[condition_expression.as_deref().unwrap_or_default()]);
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key_attributes(key)))
            .set_condition_expression(condition_expression)
            .set_expression_attribute_names(names)
            .set_expression_attribute_values(values)
            .send()
            .await
            .map_err(|error| store_error("DeleteItem", &error))?;
        Ok(())
    }

    /// Sends one query page of at most `limit` evaluated items.
    async fn query_page(
        &self,
        pk: &str,
        sk_prefix: &str,
        order: Order,
        limit: usize,
        start: Option<HashMap<String, AttributeValue>>,
        now: i64,
    ) -> Result<(Vec<Item>, Option<HashMap<String, AttributeValue>>), StoreError> {
        let mut placeholders = Placeholders::default();
        let pk_name = placeholders.name(PK);
        let pk_value = placeholders.value(AttributeValue::S(pk.to_owned()));
        let mut key_condition = format!("{pk_name} = {pk_value}");
        if !sk_prefix.is_empty() {
            let sk_name = placeholders.name(SK);
            let prefix = placeholders.value(AttributeValue::S(sk_prefix.to_owned()));
            key_condition.push_str(&format!(" AND begins_with({sk_name}, {prefix})"));
        }
        let filter = expression::unexpired_filter(now, &mut placeholders);
        let (names, values) = placeholders.into_maps(&[&key_condition, &filter]);

        let output = self
            .client
            .query()
            .table_name(&self.table)
            .consistent_read(true)
            .key_condition_expression(key_condition)
            .filter_expression(filter)
            .set_expression_attribute_names(names)
            .set_expression_attribute_values(values)
            .scan_index_forward(order == Order::Ascending)
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|error| store_error("Query", &error))?;

        let items = output
            .items()
            .iter()
            .map(from_attributes)
            .collect::<Result<Vec<_>, _>>()?;
        Ok((items, output.last_evaluated_key().cloned()))
    }

    /// Builds the TransactWriteItems entry of one write.
    fn transact_item(&self, write: &Write, now: i64) -> Result<TransactWriteItem, StoreError> {
        let mut placeholders = Placeholders::default();
        let item = match write {
            Write::Put { item, condition } => {
                key_of(item)?;
                let condition = expression::optional_condition(condition.as_ref(), now, &mut placeholders);
                let (names, values) = placeholders.into_maps(&[condition.as_deref().unwrap_or_default()]);
                let put = Put::builder()
                    .table_name(&self.table)
                    .set_item(Some(to_attributes(item)))
                    .set_condition_expression(condition)
                    .set_expression_attribute_names(names)
                    .set_expression_attribute_values(values)
                    .build()
                    .map_err(build_error)?;
                TransactWriteItem::builder().put(put)
            }
            Write::Update { key, update, condition } => {
                let update_expression = expression::update_expression(update, &mut placeholders)?;
                let condition = expression::update_condition(condition.as_ref(), now, &mut placeholders)
                    .into_optional(&mut placeholders);
                let (names, values) =
                    placeholders.into_maps(&[&update_expression, condition.as_deref().unwrap_or_default()]);
                let update = aws_sdk_dynamodb::types::Update::builder()
                    .table_name(&self.table)
                    .set_key(Some(key_attributes(key)))
                    .update_expression(update_expression)
                    .set_condition_expression(condition)
                    .set_expression_attribute_names(names)
                    .set_expression_attribute_values(values)
                    .build()
                    .map_err(build_error)?;
                TransactWriteItem::builder().update(update)
            }
            Write::Delete { key, condition } => {
                let condition = expression::optional_condition(condition.as_ref(), now, &mut placeholders);
                let (names, values) = placeholders.into_maps(&[condition.as_deref().unwrap_or_default()]);
                let delete = Delete::builder()
                    .table_name(&self.table)
                    .set_key(Some(key_attributes(key)))
                    .set_condition_expression(condition)
                    .set_expression_attribute_names(names)
                    .set_expression_attribute_values(values)
                    .build()
                    .map_err(build_error)?;
                TransactWriteItem::builder().delete(delete)
            }
            Write::Check { key, condition } => {
                let condition = expression::condition(condition, now, &mut placeholders).render(&mut placeholders);
                let (names, values) = placeholders.into_maps(&[&condition]);
                let check = ConditionCheck::builder()
                    .table_name(&self.table)
                    .set_key(Some(key_attributes(key)))
                    .condition_expression(condition)
                    .set_expression_attribute_names(names)
                    .set_expression_attribute_values(values)
                    .build()
                    .map_err(build_error)?;
                TransactWriteItem::builder().condition_check(check)
            }
        };
        Ok(item.build())
    }

    /// Sends one TransactWriteItems request. When expired items made its updates fail, deletes
    /// them and returns [`Attempt::Retry`].
    async fn try_transact(&self, writes: &[Write]) -> Result<Attempt, StoreError> {
        let now = self.clock.now();
        let items = writes
            .iter()
            .map(|write| self.transact_item(write, now))
            .collect::<Result<Vec<_>, _>>()?;
        let Err(error) = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        else {
            return Ok(Attempt::Done);
        };

        let failed = match transaction_failure(&error) {
            TransactionFailure::ConditionFailed(failed) => failed,
            TransactionFailure::Other(error) => return Err(error),
        };
        let mut is_retry = false;
        for &index in &failed {
            let Some(Write::Update { key, condition, .. }) = writes.get(index) else {
                continue;
            };
            if !needs_expired_cleanup(condition.as_ref()) {
                continue;
            }
            let deleted = self.delete_if_expired(key, now).await?;
            is_retry |= deleted || condition.is_none();
        }
        if is_retry {
            return Ok(Attempt::Retry);
        }
        Err(StoreError::ConditionFailed {
            index: failed.first().copied(),
        })
    }
}

#[async_trait]
impl Store for DynamoStore {
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        let now = self.clock.now();
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key_attributes(key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|error| store_error("GetItem", &error))?;
        let item = output.item().map(from_attributes).transpose()?;
        Ok(item.filter(|item| !is_expired(item, now)))
    }

    async fn query(&self, pk: &str, sk_prefix: &str, order: Order, limit: usize) -> Result<QueryPage, StoreError> {
        let now = self.clock.now();
        let mut items = Vec::new();
        let mut start = None;

        // Reading one item beyond `limit` shows whether more match. The filter runs after DynamoDB's
        // Limit, so a page can hold fewer items than asked for and the query follows the next page.
        loop {
            let wanted = limit + 1 - items.len();
            let (page, next) = self.query_page(pk, sk_prefix, order, wanted, start, now).await?;
            items.extend(page);
            start = next;
            if items.len() > limit || start.is_none() {
                break;
            }
        }

        let has_more = items.len() > limit;
        items.truncate(limit);
        Ok(QueryPage { items, has_more })
    }

    async fn write(&self, write: Write) -> Result<(), StoreError> {
        let now = self.clock.now();
        match write {
            Write::Put { item, condition } => self.put_item(&item, condition.as_ref(), now).await,
            Write::Update { key, update, condition } => {
                self.update_item(&key, &update, condition.as_ref(), false).await?;
                Ok(())
            }
            Write::Delete { key, condition } => self.delete_item(&key, condition.as_ref(), now).await,
            // A check alone writes nothing. A transaction of one ConditionCheck evaluates it with
            // the same expression as inside a larger transaction.
            check @ Write::Check { .. } => self.transact(vec![check]).await.map_err(|error| match error {
                StoreError::ConditionFailed { .. } => StoreError::ConditionFailed { index: None },
                other => other,
            }),
        }
    }

    async fn update_returning(
        &self,
        key: &Key,
        update: Update,
        condition: Option<Condition>,
    ) -> Result<Item, StoreError> {
        self.update_item(key, &update, condition.as_ref(), true)
            .await?
            .ok_or_else(|| StoreError::Invalid("UpdateItem returned no attributes".into()))
    }

    async fn transact(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        validate_transaction(&writes)?;
        for _ in 0..MAX_ATTEMPTS {
            if self.try_transact(&writes).await? == Attempt::Done {
                return Ok(());
            }
        }
        Err(StoreError::TransactionConflict)
    }
}
