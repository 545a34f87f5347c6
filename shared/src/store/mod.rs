//! The store port: a small item store with the conditional semantics of DynamoDB.
//!
//! Items live in one table under a partition key `pk` and a sort key `sk`, both strings. An item is
//! a JSON object of attributes; numbers are integers. The domain keeps every invariant (one username,
//! one Security contact, one pending device, counters) through conditions on single writes or through
//! [`Store::transact`], never by reading and then writing.
//!
//! Expiry: an item whose `expires_at` attribute (Unix seconds) is at or before the store's clock is
//! treated as absent by every read and by [`Condition::Exists`] and [`Condition::NotExists`],
//! because DynamoDB deletes expired items only some time after their TTL passes.

pub mod dynamo;
pub mod memory;

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};

/// Attribute name of the partition key.
pub const PK: &str = "pk";
/// Attribute name of the sort key.
pub const SK: &str = "sk";
/// Attribute name of the TTL, in Unix seconds.
pub const EXPIRES_AT: &str = "expires_at";

/// The attributes of one item, `pk` and `sk` included.
pub type Item = Map<String, Value>;

/// The primary key of an item.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    pub pk: String,
    pub sk: String,
}

impl Key {
    pub fn new(pk: impl Into<String>, sk: impl Into<String>) -> Self {
        Self {
            pk: pk.into(),
            sk: sk.into(),
        }
    }
}

/// A condition on the current state of the item a write targets.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// The item exists and has not expired.
    Exists,
    /// The item is absent or has expired.
    NotExists,
    /// The attribute exists and equals the value.
    Equals(String, Value),
    /// The attribute is absent or differs from the value.
    NotEquals(String, Value),
    /// The attribute exists and is a number less than the value.
    LessThan(String, i64),
    /// The attribute exists and is a number greater than the value.
    GreaterThan(String, i64),
    AttributeExists(String),
    AttributeNotExists(String),
    And(Vec<Condition>),
    Or(Vec<Condition>),
}

impl Condition {
    pub fn equals(name: &str, value: impl Into<Value>) -> Self {
        Condition::Equals(name.to_owned(), value.into())
    }

    pub fn not_equals(name: &str, value: impl Into<Value>) -> Self {
        Condition::NotEquals(name.to_owned(), value.into())
    }

    pub fn less_than(name: &str, value: i64) -> Self {
        Condition::LessThan(name.to_owned(), value)
    }

    pub fn greater_than(name: &str, value: i64) -> Self {
        Condition::GreaterThan(name.to_owned(), value)
    }

    pub fn attribute_exists(name: &str) -> Self {
        Condition::AttributeExists(name.to_owned())
    }

    pub fn attribute_not_exists(name: &str) -> Self {
        Condition::AttributeNotExists(name.to_owned())
    }

    /// Builds a condition that the attribute is absent or a number less than the value.
    pub fn absent_or_less_than(name: &str, value: i64) -> Self {
        Condition::Or(vec![Self::attribute_not_exists(name), Self::less_than(name, value)])
    }
}

/// Changes to the attributes of one item, applied together.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Update {
    /// Attributes set to a value.
    pub set: Vec<(String, Value)>,
    /// Numeric attributes incremented by a delta; an absent attribute counts as 0.
    pub add: Vec<(String, i64)>,
    /// List attributes extended at the end; an absent attribute counts as an empty list.
    pub append: Vec<(String, Vec<Value>)>,
    /// Attributes removed.
    pub remove: Vec<String>,
}

impl Update {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn set(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.set.push((name.to_owned(), value.into()));
        self
    }

    pub fn add(mut self, name: &str, delta: i64) -> Self {
        self.add.push((name.to_owned(), delta));
        self
    }

    pub fn append(mut self, name: &str, values: Vec<Value>) -> Self {
        self.append.push((name.to_owned(), values));
        self
    }

    pub fn remove(mut self, name: &str) -> Self {
        self.remove.push(name.to_owned());
        self
    }

    /// Returns true when the update changes nothing.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.add.is_empty() && self.append.is_empty() && self.remove.is_empty()
    }
}

/// One write, alone or as part of a transaction.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// Replaces the whole item.
    Put {
        item: Item,
        condition: Option<Condition>,
    },
    /// Creates or changes attributes of the item. With no condition, an absent item is created.
    Update {
        key: Key,
        update: Update,
        condition: Option<Condition>,
    },
    Delete {
        key: Key,
        condition: Option<Condition>,
    },
    /// Writes nothing; only checks the condition, inside a transaction.
    Check {
        key: Key,
        condition: Condition,
    },
}

impl Write {
    /// Returns the key of the item this write targets.
    pub fn key(&self) -> Result<Key, StoreError> {
        match self {
            Write::Put { item, .. } => key_of(item),
            Write::Update { key, .. } | Write::Delete { key, .. } | Write::Check { key, .. } => Ok(key.clone()),
        }
    }
}

/// The failure of a store call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// A condition did not hold; nothing was written. For a transaction, `index` is the first write
    /// whose condition failed, when the store reports it.
    #[error("condition failed")]
    ConditionFailed { index: Option<usize> },
    /// Two transactions touched the same item at once; nothing was written, and a retry may succeed.
    #[error("transaction conflict")]
    TransactionConflict,
    /// Throttled or unreachable; nothing is known to be written, and a retry later may succeed.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// An item or request that the store cannot hold; a bug, not a user error.
    #[error("invalid store request: {0}")]
    Invalid(String),
}

impl StoreError {
    pub fn is_condition_failed(&self) -> bool {
        matches!(self, StoreError::ConditionFailed { .. })
    }
}

/// A page of a query: items in sort key order, and whether more matched than `limit`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueryPage {
    pub items: Vec<Item>,
    pub has_more: bool,
}

/// Query direction by sort key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Ascending,
    Descending,
}

/// The maximum number of writes in one transaction, as in DynamoDB.
pub const MAX_TRANSACTION_WRITES: usize = 100;

/// An item store with DynamoDB's conditional semantics. Every read is strongly consistent.
#[async_trait]
pub trait Store: Send + Sync {
    /// Returns the item, or `None` when it is absent or expired.
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError>;

    /// Returns the unexpired items of partition `pk` whose sort key starts with `sk_prefix`.
    async fn query(&self, pk: &str, sk_prefix: &str, order: Order, limit: usize) -> Result<QueryPage, StoreError>;

    /// Applies one write if its condition holds.
    async fn write(&self, write: Write) -> Result<(), StoreError>;

    /// Applies an update if its condition is met and returns the item as it is afterwards.
    async fn update_returning(
        &self,
        key: &Key,
        update: Update,
        condition: Option<Condition>,
    ) -> Result<Item, StoreError>;

    /// Applies all writes or none. At most [`MAX_TRANSACTION_WRITES`], each on a different item.
    async fn transact(&self, writes: Vec<Write>) -> Result<(), StoreError>;
}

/// Returns the key attributes of an item.
pub fn key_of(item: &Item) -> Result<Key, StoreError> {
    let pk = item.get(PK).and_then(Value::as_str);
    let sk = item.get(SK).and_then(Value::as_str);
    match (pk, sk) {
        (Some(pk), Some(sk)) => Ok(Key::new(pk, sk)),
        _ => Err(StoreError::Invalid("item without string pk and sk".into())),
    }
}

/// Serialises a record into an item under `key`.
pub fn to_item<T: Serialize>(key: &Key, record: &T) -> Result<Item, StoreError> {
    let value = serde_json::to_value(record).map_err(|error| StoreError::Invalid(error.to_string()))?;
    let Value::Object(mut item) = value else {
        return Err(StoreError::Invalid("record is not a JSON object".into()));
    };
    item.insert(PK.into(), Value::String(key.pk.clone()));
    item.insert(SK.into(), Value::String(key.sk.clone()));
    Ok(item)
}

/// Deserialises an item into a record; unknown attributes such as `pk` and `sk` are ignored.
pub fn from_item<T: DeserializeOwned>(item: Item) -> Result<T, StoreError> {
    serde_json::from_value(Value::Object(item)).map_err(|error| StoreError::Invalid(error.to_string()))
}

/// Returns true when the item has an `expires_at` at or before `now`.
pub fn is_expired(item: &Item, now: i64) -> bool {
    item.get(EXPIRES_AT)
        .and_then(Value::as_i64)
        .is_some_and(|expires_at| expires_at <= now)
}
