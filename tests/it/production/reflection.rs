//! Reflection (grpc.reflection.v1 and v1alpha), with tonic-reflection's own
//! generated clients.

use prost::Message as _;
use tonic::transport::Channel;

use super::harness::{Prod, SERVICE, drain};

/// Checks the FileDescriptorProtos of `ecommerce.OrderManagement`'s file.
fn assert_describes_get_order(files: &[Vec<u8>]) {
    let files: Vec<prost_types::FileDescriptorProto> = files
        .iter()
        .map(|bytes| prost_types::FileDescriptorProto::decode(bytes.as_slice()).unwrap())
        .collect();
    let file = files
        .iter()
        .find(|f| f.package() == "ecommerce")
        .unwrap_or_else(|| panic!("no ecommerce file among {:?}", names(&files)));
    let service = file
        .service
        .iter()
        .find(|s| s.name() == "OrderManagement")
        .expect("service OrderManagement");
    let get = service
        .method
        .iter()
        .find(|m| m.name() == "getOrder")
        .expect("method getOrder");
    assert_eq!(get.input_type(), ".google.protobuf.StringValue");
    assert_eq!(get.output_type(), ".ecommerce.Order");
    let process = service
        .method
        .iter()
        .find(|m| m.name() == "processOrders")
        .expect("method processOrders");
    assert!(process.client_streaming() && process.server_streaming());
    assert!(
        file.dependency
            .iter()
            .any(|d| d == "google/protobuf/wrappers.proto"),
        "{:?}",
        file.dependency
    );
}

fn names(files: &[prost_types::FileDescriptorProto]) -> Vec<&str> {
    files.iter().map(|f| f.name()).collect()
}

/// What one reflection stream answered to ListServices and to
/// FileContainingSymbol(SERVICE), in either protocol version.
struct Reflected {
    services: Vec<String>,
    files: Vec<Vec<u8>>,
}

/// `mod $version { async fn ask(Channel) -> Reflected }` for one reflection
/// version, with tonic-reflection's own generated client for it: v1 and
/// v1alpha have the same messages, as distinct Rust types.
macro_rules! reflection_client {
    ($version:ident) => {
        mod $version {
            use tonic_reflection::pb::$version::server_reflection_client::ServerReflectionClient;
            use tonic_reflection::pb::$version::server_reflection_request::MessageRequest;
            use tonic_reflection::pb::$version::server_reflection_response::MessageResponse;
            use tonic_reflection::pb::$version::{
                ServerReflectionRequest, ServerReflectionResponse,
            };

            pub(super) async fn ask(channel: tonic::transport::Channel) -> super::Reflected {
                let mut client = ServerReflectionClient::new(channel);
                let request = |message| ServerReflectionRequest {
                    host: String::new(),
                    message_request: Some(message),
                };
                let requests = vec![
                    request(MessageRequest::ListServices(String::new())),
                    request(MessageRequest::FileContainingSymbol(super::SERVICE.into())),
                ];
                let mut replies = client
                    .server_reflection_info(tokio_stream::iter(requests))
                    .await
                    .unwrap()
                    .into_inner();
                let (replies, end) = super::drain(&mut replies).await;
                end.unwrap();
                let [list, file]: [ServerReflectionResponse; 2] = replies.try_into().unwrap();

                let Some(MessageResponse::ListServicesResponse(list)) = list.message_response
                else {
                    panic!("not a service list: {list:?}");
                };
                let Some(MessageResponse::FileDescriptorResponse(file)) = file.message_response
                else {
                    panic!("not a file descriptor: {file:?}");
                };
                super::Reflected {
                    services: list.service.into_iter().map(|s| s.name).collect(),
                    files: file.file_descriptor_proto,
                }
            }
        }
    };
}

reflection_client!(v1);
reflection_client!(v1alpha);

/// The one reflection test, run over each version's client by `ask`.
async fn reflection_lists_the_service_and_describes_get_order<F: Future<Output = Reflected>>(
    ask: impl FnOnce(Channel) -> F,
) {
    let server = Prod::start(&[]);
    let reflected = ask(server.channel().await).await;
    let services = &reflected.services;
    assert!(services.iter().any(|s| s == SERVICE), "{services:?}");
    assert_describes_get_order(&reflected.files);
}

#[tokio::test]
async fn reflection_v1_lists_the_service_and_describes_get_order() {
    reflection_lists_the_service_and_describes_get_order(v1::ask).await;
}

#[tokio::test]
async fn reflection_v1alpha_lists_the_service_and_describes_get_order() {
    reflection_lists_the_service_and_describes_get_order(v1alpha::ask).await;
}
