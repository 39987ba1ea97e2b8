//! The data the Python seed's server starts with.

use crate::pb::Order;

/// The seed's order `101`, exactly as its Python server builds it.
pub fn order_101() -> Order {
    Order {
        id: "101".into(),
        items: vec!["Item - A".into(), "Item - B".into()],
        description: "Sample order description.".into(),
        price: 1000.0,
        destination: "Seoul".into(),
    }
}
