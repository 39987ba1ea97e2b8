'use strict';
// Benchmark peer: ecommerce.OrderManagement served by @grpc/grpc-js.
//
// Serves getOrder for the seed's order 101 (src/seed.rs) and NOT_FOUND
// (`Order : <id> Not Found.`) for any other id; the other four RPCs answer
// UNIMPLEMENTED (grpc-js's default for a method without a handler).
// The service definition is loaded at start from proto/order.proto with
// @grpc/proto-loader; its import google/protobuf/wrappers.proto resolves to
// the copy built into protobufjs (no protoc, no include path needed).
//
// Usage: node server.js [--listen HOST:PORT]   (default 127.0.0.1:50063;
// port 0 picks a free port). Prints `listening on HOST:PORT` on stderr once
// bound, with the actual port; nothing per call. SIGTERM/SIGINT stop it
// (exit status 0).

const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const PROTO = path.join(__dirname, '..', '..', '..', 'proto', 'order.proto');

// keepCase: getOrder and ordersList keep their proto names.
// defaults: an absent field decodes as its default ('' for an empty id).
const definition = protoLoader.loadSync(PROTO, {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
  // order.proto imports the vendored google/api protos next to it.
  includeDirs: [path.dirname(PROTO)],
});
const ecommerce = grpc.loadPackageDefinition(definition).ecommerce;

// Exactly as the seed (src/seed.rs, tests/interop/peer_server.py) builds it.
const ORDER_101 = Object.freeze({
  id: '101',
  items: ['Item - A', 'Item - B'],
  description: 'Sample order description.',
  price: 1000,
  destination: 'Seoul',
});

function getOrder(call, callback) {
  const id = call.request.value;
  if (id === ORDER_101.id) {
    callback(null, ORDER_101);
  } else {
    callback({ code: grpc.status.NOT_FOUND, details: `Order : ${id} Not Found.` });
  }
}

function parseListen(argv) {
  let listen = '127.0.0.1:50063';
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--listen' && i + 1 < argv.length) {
      listen = argv[++i];
    } else if (arg.startsWith('--listen=')) {
      listen = arg.slice('--listen='.length);
    } else {
      console.error(`usage: node server.js [--listen HOST:PORT] (unexpected ${JSON.stringify(arg)})`);
      process.exit(2);
    }
  }
  const colon = listen.lastIndexOf(':');
  if (colon <= 0) {
    console.error(`--listen wants HOST:PORT, got ${JSON.stringify(listen)}`);
    process.exit(2);
  }
  return { listen, host: listen.slice(0, colon) };
}

function main() {
  const { listen, host } = parseListen(process.argv.slice(2));
  const server = new grpc.Server();
  server.addService(ecommerce.OrderManagement.service, { getOrder });
  server.bindAsync(listen, grpc.ServerCredentials.createInsecure(), (err, port) => {
    if (err) {
      console.error(`cannot listen on ${listen}: ${err.message}`);
      process.exit(1);
    }
    console.error(`listening on ${host}:${port}`);
  });

  const stop = () => {
    server.tryShutdown(() => process.exit(0));
    setTimeout(() => {
      server.forceShutdown();
      process.exit(0);
    }, 1000).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main();
