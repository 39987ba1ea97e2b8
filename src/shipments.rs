//! processOrders' batching: orders grouped by destination, one
//! `CombinedShipment` per destination per batch of `batch_size` ids.

use crate::pb::{CombinedShipment, Order};

pub const STATUS_PROCESSED: &str = "Processed!";

/// Collects orders into shipments and hands out a batch every `batch_size` orders.
#[derive(Debug)]
pub struct Batcher {
    batch_size: usize,
    in_batch: usize,
    /// Shipments of the current batch, in order of first appearance.
    shipments: Vec<CombinedShipment>,
}

impl Batcher {
    /// `batch_size` is at least 1 (a zero is treated as 1).
    pub fn new(batch_size: usize) -> Self {
        Self {
            batch_size: batch_size.max(1),
            in_batch: 0,
            shipments: Vec::new(),
        }
    }

    /// Adds one order; returns the batch's shipments when this order completes it.
    pub fn add(&mut self, order: Order) -> Option<Vec<CombinedShipment>> {
        let id = shipment_id(&order.destination);
        match self.shipments.iter_mut().find(|s| s.id == id) {
            Some(shipment) => shipment.orders_list.push(order),
            None => self.shipments.push(CombinedShipment {
                id,
                status: STATUS_PROCESSED.into(),
                orders_list: vec![order],
            }),
        }
        self.in_batch += 1;
        if self.in_batch == self.batch_size {
            self.in_batch = 0;
            Some(std::mem::take(&mut self.shipments))
        } else {
            None
        }
    }

    /// The shipments of the last, incomplete batch (empty if there is none).
    pub fn finish(self) -> Vec<CombinedShipment> {
        self.shipments
    }
}

/// `cmb - <destination>`, as in the book.
pub fn shipment_id(destination: &str) -> String {
    format!("cmb - {destination}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(id: &str, destination: &str) -> Order {
        Order {
            id: id.into(),
            destination: destination.into(),
            ..Order::default()
        }
    }

    fn summary(shipments: &[CombinedShipment]) -> Vec<(String, Vec<String>)> {
        shipments
            .iter()
            .map(|s| {
                (
                    s.id.clone(),
                    s.orders_list.iter().map(|o| o.id.clone()).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn groups_by_destination_and_flushes_every_batch() {
        let mut batcher = Batcher::new(3);
        assert!(batcher.add(order("1", "Seoul")).is_none());
        assert!(batcher.add(order("2", "Busan")).is_none());
        let batch = batcher.add(order("3", "Seoul")).unwrap();
        assert_eq!(
            summary(&batch),
            [
                (
                    "cmb - Seoul".to_owned(),
                    vec!["1".to_owned(), "3".to_owned()]
                ),
                ("cmb - Busan".to_owned(), vec!["2".to_owned()]),
            ]
        );
        assert!(batch.iter().all(|s| s.status == "Processed!"));
        assert!(batcher.add(order("4", "Seoul")).is_none());
        assert_eq!(
            summary(&batcher.finish()),
            [("cmb - Seoul".to_owned(), vec!["4".to_owned()])]
        );
    }

    #[test]
    fn an_exact_multiple_leaves_nothing_to_finish() {
        let mut batcher = Batcher::new(1);
        assert_eq!(batcher.add(order("1", "A")).unwrap().len(), 1);
        assert!(batcher.finish().is_empty());
    }
}
