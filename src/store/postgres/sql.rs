//! The statements, and the conversions between orders and rows.

use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::super::rule;
use crate::pb::Order;

pub(super) const GET: &str =
    "SELECT id, items, description, price, destination FROM orders WHERE id = $1";

/// A search step from the first id; `$1` a [`contains_pattern`].
pub(super) const SEARCH_FIRST: &str = "SELECT id, items, description, price, destination \
     FROM orders WHERE items_folded LIKE $1 ESCAPE '\\' ORDER BY id LIMIT $2";

/// A search step after the id `$2`.
pub(super) const SEARCH_AFTER: &str = "SELECT id, items, description, price, destination \
     FROM orders WHERE items_folded LIKE $1 ESCAPE '\\' AND id > $2 ORDER BY id LIMIT $3";

/// Parameters: [`params`].
pub(super) const INSERT: &str = "INSERT INTO orders \
     (id, items, description, price, destination, items_folded) VALUES ($1, $2, $3, $4, $5, $6)";

/// [`INSERT`], only into an empty table, and never failing on the id.
pub(super) const SEED: &str = "INSERT INTO orders \
     (id, items, description, price, destination, items_folded) \
     SELECT $1::text, $2::text[], $3::text, $4::real, $5::text, $6::text \
     WHERE NOT EXISTS (SELECT 1 FROM orders) ON CONFLICT (id) DO NOTHING";

/// Locks the rows of the ids `$1` that exist, in id order (two updates
/// lock their common rows in the same order: no deadlock), and names them.
pub(super) const LOCK: &str = "SELECT id FROM orders WHERE id = ANY($1) ORDER BY id FOR UPDATE";

/// Parameters: [`params`].
pub(super) const UPDATE: &str = "UPDATE orders SET items = $2, description = $3, price = $4, \
     destination = $5, items_folded = $6 WHERE id = $1";

pub(super) const COUNT: &str = "SELECT count(*) FROM orders";

/// What separates items in `items_folded`. A query containing it could
/// match across two items there; the check with [`rule::matches`] drops
/// such a candidate.
pub(super) const ITEM_SEPARATOR: char = '\n';

/// The `items_folded` column of `order`: each item folded by the shared
/// rule, joined with [`ITEM_SEPARATOR`].
pub(super) fn folded_items(order: &Order) -> String {
    let mut out = String::new();
    for (i, item) in order.items.iter().enumerate() {
        if i > 0 {
            out.push(ITEM_SEPARATOR);
        }
        out.push_str(&rule::fold(item));
    }
    out
}

/// `%needle%` for `LIKE .. ESCAPE '\'`, with `\`, `%` and `_` in the
/// needle taken literally.
pub(super) fn contains_pattern(folded_needle: &str) -> String {
    let mut out = String::with_capacity(folded_needle.len() + 2);
    out.push('%');
    for c in folded_needle.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// `$1..$6` of [`INSERT`], [`SEED`] and [`UPDATE`].
pub(super) fn params<'a>(order: &'a Order, folded: &'a String) -> [&'a (dyn ToSql + Sync); 6] {
    [
        &order.id,
        &order.items,
        &order.description,
        &order.price,
        &order.destination,
        folded,
    ]
}

/// A row of `id, items, description, price, destination`.
pub(super) fn order(row: &Row) -> Result<Order, tokio_postgres::Error> {
    Ok(Order {
        id: row.try_get(0)?,
        items: row.try_get(1)?,
        description: row.try_get(2)?,
        price: row.try_get(3)?,
        destination: row.try_get(4)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_take_the_needle_literally() {
        assert_eq!(contains_pattern(""), "%%");
        assert_eq!(contains_pattern("a%b_c\\d"), "%a\\%b\\_c\\\\d%");
        assert_eq!(contains_pattern("i\u{307}s"), "%i\u{307}s%");
    }

    #[test]
    fn items_are_folded_by_the_shared_rule_and_kept_apart() {
        let order = Order {
            items: vec!["İstanbul".into(), "STRASSE".into(), "Straße".into()],
            ..Order::default()
        };
        assert_eq!(folded_items(&order), "i\u{307}stanbul\nstrasse\nstraße");
    }
}
