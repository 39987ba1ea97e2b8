//! The one test store wrapper: [`Hooked`] passes every [`OrderStore`] call
//! through to an inner store, and a test hooks in what it needs: watch,
//! count, panic, fail, or keep a temporary directory alive.
//!
//! The hooks never call the inner store themselves, so when the trait's
//! shape changes, only the `impl OrderStore for Hooked` block below does.

use std::any::Any;
use std::sync::Arc;

use order_management::Order;
use order_management::store::{OrderStore, ScanPage, StoreError};

/// A store call about to be passed through, as [`Hooked::before`] sees it.
#[derive(Debug, Clone, Copy)]
#[allow(
    dead_code,
    reason = "the fields are there for hooks to match on; not every one is read yet"
)]
pub enum Call<'a> {
    Get(&'a str),
    Scan {
        after: Option<&'a str>,
        max_examined: usize,
    },
    Insert(&'a Order),
    UpdateAll(&'a [Order]),
}

type Before = Box<dyn Fn(Call<'_>) -> Result<(), StoreError> + Send + Sync>;
type Examine = Box<dyn Fn(&Order) + Send + Sync>;

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

    /// Shows `hook` every order a `scan` examines (before its `keep` filter).
    pub fn on_examine(mut self, hook: impl Fn(&Order) + Send + Sync + 'static) -> Self {
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

impl<S: OrderStore + ?Sized> OrderStore for Hooked<S> {
    fn get(&self, id: &str) -> Result<Option<Order>, StoreError> {
        (self.before)(Call::Get(id))?;
        self.inner.get(id)
    }

    fn scan(
        &self,
        after: Option<&str>,
        max_examined: usize,
        keep: &dyn Fn(&Order) -> bool,
    ) -> Result<ScanPage, StoreError> {
        (self.before)(Call::Scan {
            after,
            max_examined,
        })?;
        let examined = |order: &Order| {
            (self.examine)(order);
            keep(order)
        };
        self.inner.scan(after, max_examined, &examined)
    }

    fn insert(&self, order: Order) -> Result<(), StoreError> {
        (self.before)(Call::Insert(&order))?;
        self.inner.insert(order)
    }

    fn update_all(&self, orders: &[Order]) -> Result<(), StoreError> {
        (self.before)(Call::UpdateAll(orders))?;
        self.inner.update_all(orders)
    }
}
