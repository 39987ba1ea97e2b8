//! Arbitrary bytes as a `google.protobuf.StringValue` (prost's `String`): the
//! request of getOrder, searchOrders and processOrders and the reply of
//! addOrder and updateOrders. Same properties as `decode_order`.
#![no_main]

use fuzz_support::{STRING_VALUE, check_message};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    check_message::<String>(STRING_VALUE, data, |a, b, _| a == b);
});
