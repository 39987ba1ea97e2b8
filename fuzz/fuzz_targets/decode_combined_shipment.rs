//! Arbitrary bytes as an `ecommerce.CombinedShipment` (processOrders' reply,
//! with nested orders). Same properties as `decode_order`.
#![no_main]

use fuzz_support::{SHIPMENT, check_message, same_shipment};
use libfuzzer_sys::fuzz_target;
use order_management::CombinedShipment;

fuzz_target!(|data: &[u8]| {
    check_message::<CombinedShipment>(SHIPMENT, data, same_shipment);
});
