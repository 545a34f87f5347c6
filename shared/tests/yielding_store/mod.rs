//! A store wrapper and a join helper for tests of concurrent requests on one task.

use std::future::Future;
use std::sync::Arc;
use std::task::Poll;

use async_trait::async_trait;
use twofa_core::store::memory::MemoryStore;
use twofa_core::store::{Condition, Item, Key, Order, QueryPage, Store, StoreError, Update, Write};

/// A store that yields to the scheduler before every call, so concurrent callers interleave
/// between their read and their conditional write.
pub struct YieldingStore(pub Arc<MemoryStore>);

#[async_trait]
impl Store for YieldingStore {
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        tokio::task::yield_now().await;
        self.0.get(key).await
    }

    async fn query(&self, pk: &str, sk_prefix: &str, order: Order, limit: usize) -> Result<QueryPage, StoreError> {
        tokio::task::yield_now().await;
        self.0.query(pk, sk_prefix, order, limit).await
    }

    async fn write(&self, write: Write) -> Result<(), StoreError> {
        tokio::task::yield_now().await;
        self.0.write(write).await
    }

    async fn update_returning(
        &self,
        key: &Key,
        update: Update,
        condition: Option<Condition>,
    ) -> Result<Item, StoreError> {
        tokio::task::yield_now().await;
        self.0.update_returning(key, update, condition).await
    }

    async fn transact(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        tokio::task::yield_now().await;
        self.0.transact(writes).await
    }
}

/// Polls all futures on the current task until every one has finished, keeping their order.
#[allow(dead_code)] // Not every test file that includes this module joins futures with it.
pub async fn join_all<F: Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut pending: Vec<_> = futures.map(Box::pin).map(Some).collect();
    let mut outputs: Vec<Option<F::Output>> = pending.iter().map(|_| None).collect();
    std::future::poll_fn(|context| {
        let mut is_done = true;
        for (slot, output) in pending.iter_mut().zip(outputs.iter_mut()) {
            if let Some(future) = slot {
                match future.as_mut().poll(context) {
                    Poll::Ready(value) => {
                        *output = Some(value);
                        *slot = None;
                    }
                    Poll::Pending => is_done = false,
                }
            }
        }
        if is_done {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    outputs.into_iter().map(Option::unwrap).collect()
}
