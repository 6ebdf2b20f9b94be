#!/usr/bin/python3
"""Interop client: Python's grpcio (C-core) against the greeter, usually through h2mesh.

Run with Debian's interpreter, which has python3-grpcio and python3-protobuf:

    /usr/bin/python3 tests/interop/python_client.py --target HOST:PORT -n N
        [--tls-ca FILE [--tls-cert FILE --tls-key FILE] [--tls-server-name NAME]]

With --tls-ca the channel is TLS (grpc.ssl_channel_credentials), verifying the server against
FILE; --tls-cert/--tls-key add a client certificate (mTLS); --tls-server-name overrides the name
verified and sent as SNI (the target's host otherwise).

Does N unary SayHello calls over one channel, one server-streaming call (4 replies of 1 MiB,
every payload byte checked against the pattern) and one bidi call (3 distinct payloads echoed),
then prints one JSON line:

    {"ok": 6, "failed": 0, "backends": {"greeter-1": 3, ...}, "stream_ok": true, "bidi_ok": true}

and exits 0 only if everything succeeded. Details of any failure go to stderr.

grpc_tools is not installed here, so the messages come from a FileDescriptorProto built by hand
below; it must mirror examples/greeter/helloworld.proto. `--check-proto PATH` compares the two
with protoc and exits non-zero on a difference (the tests run it so the copy cannot drift).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

import grpc
from google.protobuf import descriptor_pb2
from google.protobuf import descriptor_pool
from google.protobuf import message_factory

MAX_MESSAGE_BYTES = 64 << 20
STREAM_REPLIES = 4
STREAM_REPLY_SIZE = 1 << 20
BIDI_PAYLOADS = [b"\x00first", bytes(range(256)) * 16, b"third:" + b"\xff" * 1000]

_FDP = descriptor_pb2.FieldDescriptorProto
_SCALARS = {
    "string": _FDP.TYPE_STRING,
    "uint32": _FDP.TYPE_UINT32,
    "uint64": _FDP.TYPE_UINT64,
    "bytes": _FDP.TYPE_BYTES,
}

# (message, [(field, number, type)]) and (service, [(method, input, output, client streams,
# server streams)]): the contents of helloworld.proto.
MESSAGES = [
    ("HelloRequest", [("name", 1, "string"), ("reply_count", 2, "uint32"),
                      ("reply_size", 3, "uint32"), ("payload", 4, "bytes")]),
    ("HelloReply", [("message", 1, "string"), ("payload", 2, "bytes"), ("index", 3, "uint32")]),
    ("StatsRequest", []),
    ("StatsReply", [("calls", 1, "uint64"), ("cancelled", 2, "uint64"),
                    ("completed", 3, "uint64")]),
]
SERVICES = [
    ("Greeter", [
        ("SayHello", "HelloRequest", "HelloReply", False, False),
        ("SayHelloServerStream", "HelloRequest", "HelloReply", False, True),
        ("SayHelloClientStream", "HelloRequest", "HelloReply", True, False),
        ("SayHelloBidi", "HelloRequest", "HelloReply", True, True),
    ]),
    ("GreeterStats", [("GetStats", "StatsRequest", "StatsReply", False, False)]),
]


def build_file_descriptor():
    fdp = descriptor_pb2.FileDescriptorProto(
        name="helloworld.proto", package="helloworld", syntax="proto3")
    for name, fields in MESSAGES:
        message = fdp.message_type.add(name=name)
        for field_name, number, type_name in fields:
            message.field.add(name=field_name, number=number, type=_SCALARS[type_name],
                              label=_FDP.LABEL_OPTIONAL)
    for name, methods in SERVICES:
        service = fdp.service.add(name=name)
        for method, request, reply, client_streaming, server_streaming in methods:
            service.method.add(name=method, input_type=".helloworld." + request,
                               output_type=".helloworld." + reply,
                               client_streaming=client_streaming,
                               server_streaming=server_streaming)
    return fdp


def load_message_classes():
    pool = descriptor_pool.DescriptorPool()
    pool.Add(build_file_descriptor())
    classes = {}
    for name, _ in MESSAGES:
        descriptor = pool.FindMessageTypeByName("helloworld." + name)
        if hasattr(message_factory, "GetMessageClass"):  # protobuf >= 4.22
            classes[name] = message_factory.GetMessageClass(descriptor)
        else:
            classes[name] = message_factory.MessageFactory(pool).GetPrototype(descriptor)
    return classes


def describe(fdp):
    """What must match between two FileDescriptorProtos of helloworld.proto."""
    messages = {m.name: sorted((f.name, f.number, f.type, f.label) for f in m.field)
                for m in fdp.message_type}
    services = {s.name: sorted((m.name, m.input_type, m.output_type, m.client_streaming,
                                m.server_streaming) for m in s.method)
                for s in fdp.service}
    return fdp.package, messages, services


def check_proto(proto_path):
    """0 when the hand-built descriptor matches what protoc makes of proto_path."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "helloworld.pb")
        subprocess.run(["protoc", "--proto_path=" + os.path.dirname(os.path.abspath(proto_path)),
                        "--descriptor_set_out=" + out, os.path.basename(proto_path)], check=True)
        with open(out, "rb") as f:
            descriptor_set = descriptor_pb2.FileDescriptorSet.FromString(f.read())
    expected = describe(descriptor_set.file[0])
    actual = describe(build_file_descriptor())
    if expected != actual:
        print("hand-built descriptor differs from %s:\n  protoc: %r\n  ours:   %r"
              % (proto_path, expected, actual), file=sys.stderr)
        return 1
    print("hand-built descriptor matches %s" % proto_path)
    return 0


def pattern_payload(index, size):
    """Reply `index` of a server stream: byte i is (index * 31 + i * 7) & 0xff."""
    period = bytes(((index * 31 + i * 7) & 0xff) for i in range(256))
    return (period * (size // 256 + 1))[:size]


def backend_id(message):
    """The <ID> of "Hello from <ID>, ...", or None."""
    prefix = "Hello from "
    if not message.startswith(prefix) or ", " not in message[len(prefix):]:
        return None
    return message[len(prefix):].split(", ", 1)[0] or None


def log(text):
    print("python_client: " + text, file=sys.stderr)


class Greeter:
    def __init__(self, channel, classes):
        request = classes["HelloRequest"]
        reply = classes["HelloReply"]
        self.request = request
        kwargs = dict(request_serializer=request.SerializeToString,
                      response_deserializer=reply.FromString)
        self.say_hello = channel.unary_unary("/helloworld.Greeter/SayHello", **kwargs)
        self.server_stream = channel.unary_stream(
            "/helloworld.Greeter/SayHelloServerStream", **kwargs)
        self.bidi = channel.stream_stream("/helloworld.Greeter/SayHelloBidi", **kwargs)


def run_unary(greeter, count, name, timeout):
    ok, failed, backends = 0, 0, {}
    for i in range(1, count + 1):
        try:
            reply = greeter.say_hello(greeter.request(name=name), timeout=timeout)
        except grpc.RpcError as e:
            failed += 1
            log("unary #%d: %s %s" % (i, e.code().name, e.details()))
            continue
        backend = backend_id(reply.message)
        if backend is None:
            failed += 1
            log("unary #%d: unexpected message %r" % (i, reply.message))
            continue
        ok += 1
        backends[backend] = backends.get(backend, 0) + 1
    return ok, failed, backends


def run_server_stream(greeter, name, timeout):
    request = greeter.request(name=name, reply_count=STREAM_REPLIES, reply_size=STREAM_REPLY_SIZE)
    count = 0
    try:
        for reply in greeter.server_stream(request, timeout=timeout):
            if reply.index != count:
                log("stream: reply %d has index %d" % (count, reply.index))
                return False
            if len(reply.payload) != STREAM_REPLY_SIZE:
                log("stream: reply %d has %d bytes" % (count, len(reply.payload)))
                return False
            expected = pattern_payload(count, STREAM_REPLY_SIZE)
            if reply.payload != expected:
                first = next(i for i, (a, b) in enumerate(zip(reply.payload, expected)) if a != b)
                log("stream: reply %d differs at byte %d" % (count, first))
                return False
            if backend_id(reply.message) is None:
                log("stream: unexpected message %r" % reply.message)
                return False
            count += 1
    except grpc.RpcError as e:
        log("stream: %s %s after %d replies" % (e.code().name, e.details(), count))
        return False
    if count != STREAM_REPLIES:
        log("stream: %d replies, wanted %d" % (count, STREAM_REPLIES))
        return False
    return True


def run_bidi(greeter, name, timeout):
    requests = [greeter.request(name="%s-%d" % (name, i), payload=p)
                for i, p in enumerate(BIDI_PAYLOADS)]
    try:
        replies = list(greeter.bidi(iter(requests), timeout=timeout))
    except grpc.RpcError as e:
        log("bidi: %s %s" % (e.code().name, e.details()))
        return False
    if len(replies) != len(requests):
        log("bidi: %d replies, wanted %d" % (len(replies), len(requests)))
        return False
    for i, (request, reply) in enumerate(zip(requests, replies)):
        if reply.payload != request.payload:
            log("bidi: reply %d does not echo its payload" % i)
            return False
        if backend_id(reply.message) is None or not reply.message.endswith(request.name + "!"):
            log("bidi: reply %d has message %r" % (i, reply.message))
            return False
    return True


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", help="HOST:PORT of the proxy or a greeter")
    parser.add_argument("-n", type=int, default=1, help="unary calls (default 1)")
    parser.add_argument("--name", default="python-interop")
    parser.add_argument("--timeout-s", type=float, default=10.0, help="deadline of each call")
    parser.add_argument("--tls-ca", metavar="FILE", help="TLS: CA bundle to verify the server")
    parser.add_argument("--tls-cert", metavar="FILE", help="TLS: client certificate (PEM)")
    parser.add_argument("--tls-key", metavar="FILE", help="TLS: client key (PEM)")
    parser.add_argument("--tls-server-name", metavar="NAME", help="TLS: name to verify and SNI")
    parser.add_argument("--check-proto", metavar="PATH",
                        help="only compare the hand-built descriptor with PATH, using protoc")
    args = parser.parse_args()
    if args.check_proto:
        return check_proto(args.check_proto)
    if not args.target or args.n < 0:
        parser.error("--target HOST:PORT and -n N >= 0 are required")

    options = [("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
               ("grpc.max_send_message_length", MAX_MESSAGE_BYTES)]
    if (args.tls_cert is None) != (args.tls_key is None):
        parser.error("--tls-cert and --tls-key go together")
    if args.tls_cert and not args.tls_ca:
        parser.error("--tls-cert needs --tls-ca")
    if args.tls_ca:
        def read(path):
            with open(path, "rb") as f:
                return f.read()
        creds = grpc.ssl_channel_credentials(
            root_certificates=read(args.tls_ca),
            private_key=read(args.tls_key) if args.tls_key else None,
            certificate_chain=read(args.tls_cert) if args.tls_cert else None)
        if args.tls_server_name:
            options.append(("grpc.ssl_target_name_override", args.tls_server_name))
        channel = grpc.secure_channel(args.target, creds, options=options)
    else:
        channel = grpc.insecure_channel(args.target, options=options)
    with channel:
        greeter = Greeter(channel, load_message_classes())
        ok, failed, backends = run_unary(greeter, args.n, args.name, args.timeout_s)
        stream_ok = run_server_stream(greeter, args.name, args.timeout_s)
        bidi_ok = run_bidi(greeter, args.name, args.timeout_s)
    result = {"ok": ok, "failed": failed, "backends": dict(sorted(backends.items())),
              "stream_ok": stream_ok, "bidi_ok": bidi_ok}
    print(json.dumps(result), flush=True)
    return 0 if failed == 0 and ok == args.n and stream_ok and bidi_ok else 1


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Not sys.exit: grpcio's threads can deadlock with the interpreter's final garbage
    # collection (both waiting on one lock in Py_FinalizeEx), and the client would never exit
    # after printing its result. Everything the client owes is printed and flushed by now.
    os._exit(code)
