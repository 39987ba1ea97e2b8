//! What a well-formed order is. Violations name the field, so the caller
//! can fix exactly what is wrong.

use crate::pb::Order;

pub const MAX_ID_BYTES: usize = 128;
pub const MAX_ITEMS: usize = 1_000;
pub const MAX_ITEM_BYTES: usize = 1_024;
pub const MAX_DESCRIPTION_BYTES: usize = 4_096;
pub const MAX_DESTINATION_BYTES: usize = 256;

/// One problem with one field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The field path, e.g. `items[2]`.
    pub field: String,
    pub description: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.description)
    }
}

/// PostgreSQL's `text` cannot hold U+0000, so no backend accepts it: an
/// order means the same on every store.
const NUL: &str = "must not contain a NUL character (U+0000)";

/// Whether the id may be left empty for the server to choose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Id {
    Optional,
    Required,
}

/// Every problem with `order`, in field order; empty when it is valid.
pub fn order(order: &Order, id: Id) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut violation =
        |field: String, description: String| out.push(Violation { field, description });

    if order.id.is_empty() {
        if id == Id::Required {
            violation("id".into(), "must not be empty".into());
        }
    } else if let Some(why) = text_problem(&order.id, MAX_ID_BYTES) {
        violation("id".into(), why);
    }

    if order.items.is_empty() {
        violation("items".into(), "at least one item is required".into());
    } else if order.items.len() > MAX_ITEMS {
        violation(
            "items".into(),
            format!("at most {MAX_ITEMS} items, got {}", order.items.len()),
        );
    } else {
        for (i, item) in order.items.iter().enumerate() {
            if item.trim().is_empty() {
                violation(format!("items[{i}]"), "must not be blank".into());
            } else if item.len() > MAX_ITEM_BYTES {
                violation(format!("items[{i}]"), too_long(item, MAX_ITEM_BYTES));
            } else if item.contains('\0') {
                violation(format!("items[{i}]"), NUL.into());
            }
        }
    }

    if order.description.len() > MAX_DESCRIPTION_BYTES {
        violation(
            "description".into(),
            too_long(&order.description, MAX_DESCRIPTION_BYTES),
        );
    } else if order.description.contains('\0') {
        violation("description".into(), NUL.into());
    }

    if !order.price.is_finite() || order.price < 0.0 {
        violation(
            "price".into(),
            format!("must be a finite number >= 0, got {}", order.price),
        );
    }

    if order.destination.len() > MAX_DESTINATION_BYTES {
        violation(
            "destination".into(),
            too_long(&order.destination, MAX_DESTINATION_BYTES),
        );
    } else if order.destination.contains('\0') {
        violation("destination".into(), NUL.into());
    }
    out
}

/// Ids end up in logs, CLI output and call paths of tools: keep them printable.
fn text_problem(id: &str, max: usize) -> Option<String> {
    if id.len() > max {
        Some(too_long(id, max))
    } else if id.chars().any(char::is_control) {
        Some("must not contain control characters".into())
    } else {
        None
    }
}

fn too_long(value: &str, max: usize) -> String {
    format!("at most {max} bytes, got {}", value.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> Order {
        crate::seed::order_101()
    }

    fn fields(order: &Order, id: Id) -> Vec<String> {
        super::order(order, id)
            .into_iter()
            .map(|v| v.field)
            .collect()
    }

    #[test]
    fn the_seed_order_is_valid() {
        assert_eq!(super::order(&valid(), Id::Required), []);
    }

    #[test]
    fn each_rule_names_its_field() {
        let cases: Vec<(Order, &str)> = vec![
            (
                Order {
                    items: vec![],
                    ..valid()
                },
                "items",
            ),
            (
                Order {
                    items: vec!["a".into(), " ".into()],
                    ..valid()
                },
                "items[1]",
            ),
            (
                Order {
                    items: vec!["x".repeat(MAX_ITEM_BYTES + 1)],
                    ..valid()
                },
                "items[0]",
            ),
            (
                Order {
                    items: vec!["a".into(); MAX_ITEMS + 1],
                    ..valid()
                },
                "items",
            ),
            (
                Order {
                    items: vec!["a".into(), "b\0c".into()],
                    ..valid()
                },
                "items[1]",
            ),
            (
                Order {
                    description: "nul \0".into(),
                    ..valid()
                },
                "description",
            ),
            (
                Order {
                    destination: "\0".into(),
                    ..valid()
                },
                "destination",
            ),
            (
                Order {
                    price: -1.0,
                    ..valid()
                },
                "price",
            ),
            (
                Order {
                    price: f32::NAN,
                    ..valid()
                },
                "price",
            ),
            (
                Order {
                    price: f32::INFINITY,
                    ..valid()
                },
                "price",
            ),
            (
                Order {
                    id: "x".repeat(MAX_ID_BYTES + 1),
                    ..valid()
                },
                "id",
            ),
            (
                Order {
                    id: "a\nb".into(),
                    ..valid()
                },
                "id",
            ),
            (
                Order {
                    description: "x".repeat(MAX_DESCRIPTION_BYTES + 1),
                    ..valid()
                },
                "description",
            ),
            (
                Order {
                    destination: "x".repeat(MAX_DESTINATION_BYTES + 1),
                    ..valid()
                },
                "destination",
            ),
        ];
        for (order, field) in cases {
            assert_eq!(fields(&order, Id::Required), [field], "{order:?}");
        }
    }

    #[test]
    fn empty_id_is_allowed_only_when_optional() {
        let order = Order {
            id: String::new(),
            ..valid()
        };
        assert_eq!(fields(&order, Id::Optional), Vec::<String>::new());
        assert_eq!(fields(&order, Id::Required), ["id"]);
    }

    #[test]
    fn zero_and_negative_zero_prices_are_valid() {
        for price in [0.0, -0.0, f32::MAX] {
            assert_eq!(
                fields(&Order { price, ..valid() }, Id::Required),
                Vec::<String>::new()
            );
        }
    }
}
