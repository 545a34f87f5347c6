//! An embedded in-memory [`Store`] with the same conditional semantics as the DynamoDB adapter.
//!
//! One mutex guards the whole table, so every write and every transaction is atomic and
//! serialisable. Newly created items are published on a channel, in the way a DynamoDB stream
//! reports INSERT records, so that the local run can feed its notifier.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use serde_json::Value;
use tokio::sync::broadcast;

use super::{
    is_expired, Condition, Item, Key, Order, QueryPage, Store, StoreError, Update, Write, MAX_TRANSACTION_WRITES, PK,
    SK,
};
use crate::ports::Clock;

/// The in-memory store.
pub struct MemoryStore {
    items: Mutex<BTreeMap<Key, Item>>,
    clock: Arc<dyn Clock>,
    inserts: broadcast::Sender<Item>,
}

impl MemoryStore {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        let (inserts, _) = broadcast::channel(1024);
        Self {
            items: Mutex::new(BTreeMap::new()),
            clock,
            inserts,
        }
    }

    /// Returns a receiver of every item created from now on, like INSERT records of a stream.
    pub fn subscribe_inserts(&self) -> broadcast::Receiver<Item> {
        self.inserts.subscribe()
    }

    /// Returns every stored item, expired ones included, for tests that inspect what was written.
    pub fn dump(&self) -> Result<Vec<Item>, StoreError> {
        Ok(self.lock()?.values().cloned().collect())
    }

    fn lock(&self) -> Result<MutexGuard<'_, BTreeMap<Key, Item>>, StoreError> {
        self.items
            .lock()
            .map_err(|_| StoreError::Unavailable("memory store lock poisoned".into()))
    }

    fn publish_if_created(&self, created: Option<Item>) {
        if let Some(item) = created {
            // A send without receivers is fine: the channel only feeds the local notifier.
            let _ = self.inserts.send(item);
        }
    }
}

/// Returns the live item under `key`: present and not expired.
fn live<'a>(items: &'a BTreeMap<Key, Item>, key: &Key, now: i64) -> Option<&'a Item> {
    items.get(key).filter(|item| !is_expired(item, now))
}

/// Evaluates a condition against the current item, `None` when absent or expired.
pub(crate) fn evaluate(condition: &Condition, item: Option<&Item>) -> bool {
    let attribute = |name: &str| item.and_then(|item| item.get(name));
    match condition {
        Condition::Exists => item.is_some(),
        Condition::NotExists => item.is_none(),
        Condition::Equals(name, value) => attribute(name) == Some(value),
        Condition::NotEquals(name, value) => attribute(name) != Some(value),
        Condition::LessThan(name, value) => attribute(name)
            .and_then(Value::as_i64)
            .is_some_and(|current| current < *value),
        Condition::GreaterThan(name, value) => attribute(name)
            .and_then(Value::as_i64)
            .is_some_and(|current| current > *value),
        Condition::AttributeExists(name) => attribute(name).is_some(),
        Condition::AttributeNotExists(name) => attribute(name).is_none(),
        Condition::And(conditions) => conditions.iter().all(|condition| evaluate(condition, item)),
        Condition::Or(conditions) => conditions.iter().any(|condition| evaluate(condition, item)),
    }
}

/// Applies an update to the current item, or to a new item under `key` when there is none.
fn apply_update(key: &Key, current: Option<&Item>, update: &Update) -> Result<Item, StoreError> {
    validate_update(update)?;
    let mut item = current.cloned().unwrap_or_else(|| {
        let mut item = Item::new();
        item.insert(PK.into(), Value::String(key.pk.clone()));
        item.insert(SK.into(), Value::String(key.sk.clone()));
        item
    });
    for (name, value) in &update.set {
        reject_key_attribute(name)?;
        item.insert(name.clone(), value.clone());
    }
    for (name, delta) in &update.add {
        reject_key_attribute(name)?;
        let current = match item.get(name) {
            None => 0,
            Some(value) => value
                .as_i64()
                .ok_or_else(|| StoreError::Invalid(format!("attribute {name} is not a number")))?,
        };
        let sum = current
            .checked_add(*delta)
            .ok_or_else(|| StoreError::Invalid(format!("attribute {name} overflows")))?;
        item.insert(name.clone(), Value::from(sum));
    }
    for (name, values) in &update.append {
        reject_key_attribute(name)?;
        let mut list = match item.remove(name) {
            None => Vec::new(),
            Some(Value::Array(list)) => list,
            Some(_) => return Err(StoreError::Invalid(format!("attribute {name} is not a list"))),
        };
        list.extend(values.iter().cloned());
        item.insert(name.clone(), Value::Array(list));
    }
    for name in &update.remove {
        reject_key_attribute(name)?;
        item.remove(name);
    }
    Ok(item)
}

/// Rejects updates that DynamoDB rejects: a change of a key attribute, or two changes of one
/// attribute.
pub(crate) fn validate_update(update: &Update) -> Result<(), StoreError> {
    let names = update
        .set
        .iter()
        .map(|(name, _)| name)
        .chain(update.add.iter().map(|(name, _)| name))
        .chain(update.append.iter().map(|(name, _)| name))
        .chain(update.remove.iter());
    let mut seen = std::collections::BTreeSet::new();
    for name in names {
        reject_key_attribute(name)?;
        if !seen.insert(name) {
            return Err(StoreError::Invalid(format!(
                "attribute {name} is changed twice in one update"
            )));
        }
    }
    Ok(())
}

fn reject_key_attribute(name: &str) -> Result<(), StoreError> {
    if name == PK || name == SK {
        return Err(StoreError::Invalid(format!("key attribute {name} cannot be updated")));
    }
    Ok(())
}

/// The result of applying one write to the table: the item afterwards (`None` when deleted or
/// only checked) and whether the write created it.
struct Applied {
    key: Key,
    item: Option<Item>,
    is_created: bool,
    is_write: bool,
}

/// Checks the condition of a write and computes its effect without changing the table.
fn prepare(items: &BTreeMap<Key, Item>, write: &Write, now: i64, index: Option<usize>) -> Result<Applied, StoreError> {
    let key = write.key()?;
    let current = live(items, &key, now);
    let failed = || StoreError::ConditionFailed { index };
    let holds = |condition: &Option<Condition>| condition.as_ref().is_none_or(|condition| evaluate(condition, current));
    match write {
        Write::Put { item, condition } => {
            if !holds(condition) {
                return Err(failed());
            }
            Ok(Applied {
                key,
                item: Some(item.clone()),
                is_created: current.is_none(),
                is_write: true,
            })
        }
        Write::Update { update, condition, .. } => {
            if !holds(condition) {
                return Err(failed());
            }
            let updated = apply_update(&key, current, update)?;
            Ok(Applied {
                key,
                item: Some(updated),
                is_created: current.is_none(),
                is_write: true,
            })
        }
        Write::Delete { condition, .. } => {
            if !holds(condition) {
                return Err(failed());
            }
            Ok(Applied {
                key,
                item: None,
                is_created: false,
                is_write: true,
            })
        }
        Write::Check { condition, .. } => {
            if !evaluate(condition, current) {
                return Err(failed());
            }
            Ok(Applied {
                key,
                item: None,
                is_created: false,
                is_write: false,
            })
        }
    }
}

/// Stores the effect of a prepared write and returns the item if it was created.
fn commit(items: &mut BTreeMap<Key, Item>, applied: Applied) -> Option<Item> {
    if !applied.is_write {
        return None;
    }
    match applied.item {
        Some(item) => {
            items.insert(applied.key, item.clone());
            applied.is_created.then_some(item)
        }
        None => {
            items.remove(&applied.key);
            None
        }
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        let now = self.clock.now();
        let items = self.lock()?;
        Ok(live(&items, key, now).cloned())
    }

    async fn query(&self, pk: &str, sk_prefix: &str, order: Order, limit: usize) -> Result<QueryPage, StoreError> {
        let now = self.clock.now();
        let items = self.lock()?;
        let start = Key::new(pk, sk_prefix);
        let matching = items
            .range(start..)
            .take_while(|(key, _)| key.pk == pk && key.sk.starts_with(sk_prefix))
            .filter(|(_, item)| !is_expired(item, now))
            .map(|(_, item)| item.clone());
        let mut all: Vec<Item> = matching.collect();
        if order == Order::Descending {
            all.reverse();
        }
        let has_more = all.len() > limit;
        all.truncate(limit);
        Ok(QueryPage { items: all, has_more })
    }

    async fn write(&self, write: Write) -> Result<(), StoreError> {
        let now = self.clock.now();
        let created = {
            let mut items = self.lock()?;
            let applied = prepare(&items, &write, now, None)?;
            commit(&mut items, applied)
        };
        self.publish_if_created(created);
        Ok(())
    }

    async fn update_returning(
        &self,
        key: &Key,
        update: Update,
        condition: Option<Condition>,
    ) -> Result<Item, StoreError> {
        let now = self.clock.now();
        let write = Write::Update {
            key: key.clone(),
            update,
            condition,
        };
        let (created, item) = {
            let mut items = self.lock()?;
            let applied = prepare(&items, &write, now, None)?;
            let item = applied
                .item
                .clone()
                .ok_or_else(|| StoreError::Invalid("update produced no item".into()))?;
            (commit(&mut items, applied), item)
        };
        self.publish_if_created(created);
        Ok(item)
    }

    async fn transact(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        validate_transaction(&writes)?;
        let now = self.clock.now();
        let created: Vec<Item> = {
            let mut items = self.lock()?;
            let mut prepared = Vec::with_capacity(writes.len());
            for (index, write) in writes.iter().enumerate() {
                prepared.push(prepare(&items, write, now, Some(index))?);
            }
            prepared
                .into_iter()
                .filter_map(|applied| commit(&mut items, applied))
                .collect()
        };
        for item in created {
            self.publish_if_created(Some(item));
        }
        Ok(())
    }
}

/// Rejects transactions that DynamoDB rejects: empty, too large, or touching one item twice.
pub(crate) fn validate_transaction(writes: &[Write]) -> Result<(), StoreError> {
    if writes.is_empty() || writes.len() > MAX_TRANSACTION_WRITES {
        return Err(StoreError::Invalid(format!(
            "a transaction takes 1 to {MAX_TRANSACTION_WRITES} writes, not {}",
            writes.len()
        )));
    }
    let mut keys = std::collections::BTreeSet::new();
    for write in writes {
        if !keys.insert(write.key()?) {
            return Err(StoreError::Invalid("a transaction touches one item twice".into()));
        }
    }
    Ok(())
}
