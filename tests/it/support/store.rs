//! The one test store wrapper: [`Hooked`] passes every [`OrderStore`] call
//! through to an inner store, and a test hooks in what it needs: watch,
//! count, panic, fail, or keep a temporary directory alive.
//!
//! The hooks never call the inner store themselves, so when the trait's
//! shape changes, only the `impl OrderStore for Hooked` block below does.

use std::any::Any;
use std::sync::Arc;

use order_management::Order;
use std::time::Instant;

use order_management::store::{OrderStore, SearchPage, StoreError};

/// A store call about to be passed through, as [`Hooked::before`] sees it.
#[derive(Debug, Clone, Copy)]
#[allow(
    dead_code,
    reason = "the fields are there for hooks to match on; not every one is read yet"
)]
pub enum Call<'a> {
    Get(&'a str),
    Search {
        query: &'a str,
        after: Option<&'a str>,
        budget: usize,
    },
    Insert(&'a Order),
    UpdateAll(&'a [Order]),
    Count,
}

type Before = Box<dyn Fn(Call<'_>) -> Result<(), StoreError> + Send + Sync>;
type Examine = Box<dyn Fn(u64) + Send + Sync>;

/// An [`OrderStore`] that delegates every method to `inner`, after the
/// test's hooks. Without hooks it behaves exactly as `inner`.
pub struct Hooked<S: ?Sized = dyn OrderStore> {
    // Declared before `held`, so dropped first: a store closes its files
    // before the directory holding them is deleted.
    inner: Arc<S>,
    before: Before,
    examine: Examine,
    held: Vec<Box<dyn Any + Send + Sync>>,
}

impl<S: OrderStore + ?Sized> Hooked<S> {
    pub fn new(inner: Arc<S>) -> Self {
        Self {
            inner,
            before: Box::new(|_| Ok(())),
            examine: Box::new(|_| {}),
            held: Vec::new(),
        }
    }

    /// Runs `hook` before every call. `Err` fails the call with that error
    /// without reaching the inner store; the hook may also panic or block.
    pub fn before(
        mut self,
        hook: impl Fn(Call<'_>) -> Result<(), StoreError> + Send + Sync + 'static,
    ) -> Self {
        self.before = Box::new(hook);
        self
    }

    /// Tells `hook` how many orders each search step examined.
    pub fn on_examine(mut self, hook: impl Fn(u64) + Send + Sync + 'static) -> Self {
        self.examine = Box::new(hook);
        self
    }

    /// Keeps `value` alive as long as the store (e.g. the temporary
    /// directory its files are in), and drops it after the inner store.
    pub fn holding(mut self, value: impl Send + Sync + 'static) -> Self {
        self.held.push(Box::new(value));
        self
    }
}

#[async_trait::async_trait]
impl<S: OrderStore + ?Sized> OrderStore for Hooked<S> {
    async fn get(&self, id: &str) -> Result<Option<Order>, StoreError> {
        (self.before)(Call::Get(id))?;
        self.inner.get(id).await
    }

    async fn search(
        &self,
        query: &str,
        after: Option<&str>,
        budget: usize,
    ) -> Result<SearchPage, StoreError> {
        (self.before)(Call::Search {
            query,
            after,
            budget,
        })?;
        let page = self.inner.search(query, after, budget).await?;
        (self.examine)(page.examined as u64);
        Ok(page)
    }

    async fn insert(&self, order: Order, deadline: Option<Instant>) -> Result<(), StoreError> {
        (self.before)(Call::Insert(&order))?;
        self.inner.insert(order, deadline).await
    }

    async fn update_all(
        &self,
        orders: Vec<Order>,
        deadline: Option<Instant>,
    ) -> Result<(), StoreError> {
        (self.before)(Call::UpdateAll(&orders))?;
        self.inner.update_all(orders, deadline).await
    }

    async fn count(&self) -> Result<u64, StoreError> {
        (self.before)(Call::Count)?;
        self.inner.count().await
    }
}
