#!/usr/bin/python3
"""bench/grpc_check.py: a strict gRPC check of one target, with a real gRPC client (grpcio).

    /usr/bin/python3 bench/grpc_check.py --target HOST:PORT [-n 200] [--stream-replies 8]
                                         [--tls-ca CA.crt [--server-name NAME]]

Makes N unary SayHello calls over ONE channel (one HTTP/2 connection), then one server-streaming
call (reply_count replies of 1 MiB, every reply's index, size and first/last bytes checked), and
prints one JSON line:

    {"ok": 200, "failed": 0, "codes": {"OK": 200}, "backends": {"greeter-1": 50, ...},
     "stream_ok": true, "stream_bytes": 8388608}

h2load only counts HTTP statuses; this is what proves that the calls through a proxy end with
grpc-status 0 and carry the backend's reply. Since the unary calls share one connection, the
"backends" count also shows whether the target balances per call. Exit 0 only if every call
succeeded. grpc_tools is not installed, so the messages come from a descriptor built by hand
(the subset of examples/greeter/helloworld.proto used here).
"""

import argparse
import json
import sys

import grpc
from google.protobuf import descriptor_pb2
from google.protobuf import descriptor_pool
from google.protobuf import message_factory

_FDP = descriptor_pb2.FieldDescriptorProto


def message_classes():
    fdp = descriptor_pb2.FileDescriptorProto(
        name="bench_helloworld.proto", package="helloworld", syntax="proto3")
    fields = {
        "HelloRequest": [("name", 1, _FDP.TYPE_STRING), ("reply_count", 2, _FDP.TYPE_UINT32),
                         ("reply_size", 3, _FDP.TYPE_UINT32), ("payload", 4, _FDP.TYPE_BYTES)],
        "HelloReply": [("message", 1, _FDP.TYPE_STRING), ("payload", 2, _FDP.TYPE_BYTES),
                       ("index", 3, _FDP.TYPE_UINT32)],
    }
    for name, fs in fields.items():
        m = fdp.message_type.add(name=name)
        for fname, number, ftype in fs:
            m.field.add(name=fname, number=number, type=ftype, label=_FDP.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    out = {}
    for name in fields:
        d = pool.FindMessageTypeByName("helloworld." + name)
        if hasattr(message_factory, "GetMessageClass"):
            out[name] = message_factory.GetMessageClass(d)
        else:
            out[name] = message_factory.MessageFactory(pool).GetPrototype(d)
    return out["HelloRequest"], out["HelloReply"]


def pattern_byte(index, i):
    return (index * 31 + i * 7) & 0xff


def backend_of(message):
    prefix = "Hello from "
    if not message.startswith(prefix) or ", " not in message:
        return None
    return message[len(prefix):].split(", ", 1)[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", required=True)
    ap.add_argument("-n", type=int, default=200)
    ap.add_argument("--stream-replies", type=int, default=8)
    ap.add_argument("--stream-size", type=int, default=1 << 20)
    ap.add_argument("--timeout-s", type=float, default=10.0)
    ap.add_argument("--tls-ca", help="connect over TLS, verifying the target against this CA file")
    ap.add_argument("--server-name", help="with --tls-ca: the name the certificate must carry")
    args = ap.parse_args()

    request_cls, reply_cls = message_classes()
    opts = [("grpc.max_receive_message_length", 64 << 20),
            ("grpc.max_send_message_length", 64 << 20)]
    ok, failed, codes, backends, errors = 0, 0, {}, {}, []
    stream_ok, stream_bytes = False, 0
    if args.tls_ca:
        with open(args.tls_ca, "rb") as f:
            creds = grpc.ssl_channel_credentials(root_certificates=f.read())
        if args.server_name:
            opts.append(("grpc.ssl_target_name_override", args.server_name))
        channel_cm = grpc.secure_channel(args.target, creds, options=opts)
    else:
        channel_cm = grpc.insecure_channel(args.target, options=opts)
    with channel_cm as channel:
        kw = dict(request_serializer=request_cls.SerializeToString,
                  response_deserializer=reply_cls.FromString)
        say_hello = channel.unary_unary("/helloworld.Greeter/SayHello", **kw)
        server_stream = channel.unary_stream("/helloworld.Greeter/SayHelloServerStream", **kw)
        for i in range(args.n):
            try:
                reply = say_hello(request_cls(name="bench"), timeout=args.timeout_s)
                code = "OK"
                backend = backend_of(reply.message)
                if backend is None or not reply.message.endswith(", bench!"):
                    code = "BAD_REPLY"
                    errors.append("unary #%d: reply %r" % (i, reply.message))
            except grpc.RpcError as e:
                code = e.code().name
                backend = None
                if len(errors) < 5:
                    errors.append("unary #%d: %s %s" % (i, code, e.details()))
            codes[code] = codes.get(code, 0) + 1
            if code == "OK":
                ok += 1
                backends[backend] = backends.get(backend, 0) + 1
            else:
                failed += 1
        try:
            req = request_cls(name="bench", reply_count=args.stream_replies,
                              reply_size=args.stream_size)
            count = 0
            for reply in server_stream(req, timeout=max(args.timeout_s, 30.0)):
                p = reply.payload
                good = (reply.index == count and len(p) == args.stream_size and
                        p[0] == pattern_byte(count, 0) and
                        p[-1] == pattern_byte(count, args.stream_size - 1))
                if not good:
                    errors.append("stream: reply %d malformed (index %d, %d bytes)"
                                  % (count, reply.index, len(p)))
                    break
                stream_bytes += len(p)
                count += 1
            stream_ok = count == args.stream_replies and not any(
                e.startswith("stream") for e in errors)
            if count != args.stream_replies:
                errors.append("stream: %d replies, wanted %d" % (count, args.stream_replies))
        except grpc.RpcError as e:
            errors.append("stream: %s %s" % (e.code().name, e.details()))
    print(json.dumps({"ok": ok, "failed": failed, "codes": codes,
                      "backends": dict(sorted(backends.items())),
                      "stream_ok": stream_ok, "stream_bytes": stream_bytes,
                      "errors": errors[:5]}), flush=True)
    return 0 if failed == 0 and ok == args.n and stream_ok else 1


if __name__ == "__main__":
    sys.exit(main())
