#!/usr/bin/env node
// Interop client: @grpc/grpc-js (pure JavaScript HTTP/2) against the greeter, usually through
// h2mesh.
//
//   node tests/interop/node/client.js --target HOST:PORT -n N [--name NAME] [--timeout-s S]
//       [--tls-ca FILE [--tls-cert FILE --tls-key FILE] [--tls-server-name NAME]]
//
// Does N unary SayHello calls over one channel, one server-streaming call (4 replies of 1 MiB,
// every payload byte checked against the pattern) and one bidi call (3 distinct payloads
// echoed), then prints one JSON line:
//
//   {"ok":6,"failed":0,"backends":{"greeter-1":3,...},"stream_ok":true,"bidi_ok":true}
//
// and exits 0 only if everything succeeded. Details of any failure go to stderr.
// Needs `npm ci` in this folder first.
'use strict';

const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const PROTO_PATH =
    path.join(__dirname, '..', '..', '..', 'examples', 'greeter', 'helloworld.proto');
const MAX_MESSAGE_BYTES = 64 << 20;
const STREAM_REPLIES = 4;
const STREAM_REPLY_SIZE = 1 << 20;
const BIDI_PAYLOADS = [
  Buffer.from('\u0000first', 'latin1'),
  Buffer.from(Array.from({length: 4096}, (_, i) => i & 0xff)),
  Buffer.concat([Buffer.from('third:'), Buffer.alloc(1000, 0xff)]),
];

function log(text) {
  process.stderr.write(`node_client: ${text}\n`);
}

function parseArgs(argv) {
  const args = {target: '', n: 1, name: 'node-interop', timeoutS: 10, tlsCa: '', tlsCert: '',
                tlsKey: '', tlsServerName: ''};
  for (let i = 0; i < argv.length; i++) {
    let flag = argv[i];
    let value;
    const eq = flag.indexOf('=');
    if (flag.startsWith('-') && eq > 0) {
      value = flag.slice(eq + 1);
      flag = flag.slice(0, eq);
    } else {
      value = argv[++i];
    }
    if (value === undefined) throw new Error(`missing value for ${flag}`);
    if (flag === '--target') {
      args.target = value;
    } else if (flag === '-n') {
      args.n = Number(value);
    } else if (flag === '--name') {
      args.name = value;
    } else if (flag === '--timeout-s') {
      args.timeoutS = Number(value);
    } else if (flag === '--tls-ca') {
      args.tlsCa = value;
    } else if (flag === '--tls-cert') {
      args.tlsCert = value;
    } else if (flag === '--tls-key') {
      args.tlsKey = value;
    } else if (flag === '--tls-server-name') {
      args.tlsServerName = value;
    } else {
      throw new Error(`unknown flag ${flag}`);
    }
  }
  if (!args.target || !Number.isInteger(args.n) || args.n < 0 || !(args.timeoutS > 0)) {
    throw new Error('--target HOST:PORT and -n N >= 0 are required');
  }
  if (!args.tlsCert !== !args.tlsKey) throw new Error('--tls-cert and --tls-key go together');
  if ((args.tlsCert || args.tlsServerName) && !args.tlsCa) {
    throw new Error('--tls-cert and --tls-server-name need --tls-ca');
  }
  return args;
}

// Reply `index` of a server stream: byte i is (index * 31 + i * 7) & 0xff.
function firstPatternMismatch(index, payload) {
  for (let i = 0; i < payload.length; i++) {
    if (payload[i] !== ((index * 31 + i * 7) & 0xff)) return i;
  }
  return -1;
}

// The <ID> of "Hello from <ID>, ...", or null.
function backendId(message) {
  const prefix = 'Hello from ';
  if (!message.startsWith(prefix)) return null;
  const comma = message.indexOf(', ', prefix.length);
  return comma > prefix.length ? message.slice(prefix.length, comma) : null;
}

function deadline(timeoutS) {
  return new Date(Date.now() + timeoutS * 1000);
}

function sayHello(client, name, timeoutS) {
  return new Promise((resolve, reject) => {
    client.SayHello({name}, {deadline: deadline(timeoutS)}, (err, reply) => {
      if (err) reject(err); else resolve(reply);
    });
  });
}

async function runUnary(client, args) {
  const result = {ok: 0, failed: 0, backends: {}};
  for (let i = 1; i <= args.n; i++) {
    let reply;
    try {
      reply = await sayHello(client, args.name, args.timeoutS);
    } catch (err) {
      result.failed++;
      log(`unary #${i}: ${grpc.status[err.code]} ${err.details}`);
      continue;
    }
    const id = backendId(reply.message);
    if (id === null) {
      result.failed++;
      log(`unary #${i}: unexpected message ${JSON.stringify(reply.message)}`);
      continue;
    }
    result.ok++;
    result.backends[id] = (result.backends[id] || 0) + 1;
  }
  return result;
}

function runServerStream(client, args) {
  return new Promise((resolve) => {
    let count = 0;
    let failure = null;
    const call = client.SayHelloServerStream(
        {name: args.name, reply_count: STREAM_REPLIES, reply_size: STREAM_REPLY_SIZE},
        {deadline: deadline(args.timeoutS)});
    const fail = (text) => {
      if (failure === null) failure = text;
      call.cancel();
    };
    call.on('data', (reply) => {
      if (failure !== null) return;
      if (reply.index !== count) return fail(`reply ${count} has index ${reply.index}`);
      if (reply.payload.length !== STREAM_REPLY_SIZE) {
        return fail(`reply ${count} has ${reply.payload.length} bytes`);
      }
      const bad = firstPatternMismatch(count, reply.payload);
      if (bad >= 0) return fail(`reply ${count} differs at byte ${bad}`);
      if (backendId(reply.message) === null) {
        return fail(`unexpected message ${JSON.stringify(reply.message)}`);
      }
      count++;
    });
    call.on('error', (err) => {
      if (failure === null) failure = `${grpc.status[err.code]} ${err.details} after ${count}`;
    });
    call.on('status', () => {
      if (failure === null && count !== STREAM_REPLIES) {
        failure = `${count} replies, wanted ${STREAM_REPLIES}`;
      }
      if (failure !== null) log(`stream: ${failure}`);
      resolve(failure === null);
    });
  });
}

function runBidi(client, args) {
  return new Promise((resolve) => {
    const requests = BIDI_PAYLOADS.map((payload, i) => ({name: `${args.name}-${i}`, payload}));
    const replies = [];
    let failure = null;
    const call = client.SayHelloBidi({deadline: deadline(args.timeoutS)});
    call.on('data', (reply) => replies.push(reply));
    call.on('error', (err) => {
      failure = `${grpc.status[err.code]} ${err.details}`;
    });
    call.on('status', () => {
      if (failure === null && replies.length !== requests.length) {
        failure = `${replies.length} replies, wanted ${requests.length}`;
      }
      for (let i = 0; failure === null && i < replies.length; i++) {
        if (!replies[i].payload.equals(requests[i].payload)) {
          failure = `reply ${i} does not echo its payload`;
        } else if (backendId(replies[i].message) === null ||
                   !replies[i].message.endsWith(`${requests[i].name}!`)) {
          failure = `reply ${i} has message ${JSON.stringify(replies[i].message)}`;
        }
      }
      if (failure !== null) log(`bidi: ${failure}`);
      resolve(failure === null);
    });
    for (const request of requests) call.write(request);
    call.end();
  });
}

async function main() {
  let args;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (err) {
    log(err.message);
    log('usage: client.js --target HOST:PORT -n N [--name NAME] [--timeout-s S] ' +
        '[--tls-ca FILE [--tls-cert FILE --tls-key FILE] [--tls-server-name NAME]]');
    return 2;
  }
  const definition = protoLoader.loadSync(PROTO_PATH, {
    keepCase: true,
    longs: Number,
    enums: String,
    bytes: Buffer,
    defaults: true,
  });
  const helloworld = grpc.loadPackageDefinition(definition).helloworld;
  // One client, one channel: every call rides the same HTTP/2 connection.
  // With --tls-ca: TLS, the server verified against that bundle; --tls-cert/--tls-key add a
  // client certificate (mTLS); --tls-server-name is the name verified and sent as SNI.
  const options = {
    'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
    'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
  };
  let credentials = grpc.credentials.createInsecure();
  if (args.tlsCa) {
    const fs = require('fs');
    credentials = grpc.credentials.createSsl(
        fs.readFileSync(args.tlsCa), args.tlsKey ? fs.readFileSync(args.tlsKey) : null,
        args.tlsCert ? fs.readFileSync(args.tlsCert) : null);
    if (args.tlsServerName) options['grpc.ssl_target_name_override'] = args.tlsServerName;
  }
  const client = new helloworld.Greeter(args.target, credentials, options);
  const unary = await runUnary(client, args);
  const streamOk = await runServerStream(client, args);
  const bidiOk = await runBidi(client, args);
  client.close();
  const backends = Object.fromEntries(
      Object.entries(unary.backends).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  const result = {ok: unary.ok, failed: unary.failed, backends, stream_ok: streamOk,
                  bidi_ok: bidiOk};
  process.stdout.write(JSON.stringify(result) + '\n');
  return unary.failed === 0 && unary.ok === args.n && streamOk && bidiOk ? 0 : 1;
}

main().then((code) => {
  process.exitCode = code;
}, (err) => {
  log(err.stack || String(err));
  process.exitCode = 1;
});
