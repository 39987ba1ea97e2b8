//! Arbitrary bytes as an `ecommerce.Order`: prost must not panic, and an
//! order that decodes must survive encode/decode, the text formatter and the
//! proto3 JSON mapping unchanged.
#![no_main]

use fuzz_support::{ORDER, check_message, same_order};
use libfuzzer_sys::fuzz_target;
use order_management::Order;

fuzz_target!(|data: &[u8]| {
    check_message::<Order>(ORDER, data, same_order);
});
