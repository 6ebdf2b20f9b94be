#!/usr/bin/python3
"""TLS backends for tests/integration/tls_upstream_test.cc, with Debian's python3-grpcio.

    tls_backend.py grpc    --cert C --key K [--client-ca CA] --id ID   a gRPC server (grpcio's TLS)
    tls_backend.py no-alpn --cert C --key K                            TLS without ALPN (Python ssl)

Both listen on 127.0.0.1 on a port the kernel picks and print "<id> listening on 127.0.0.1:PORT".
The gRPC server answers helloworld.Greeter/SayHello like the greeter ("Hello from ID, NAME!"),
with the messages encoded by hand (grpc_tools is not installed). The no-ALPN server completes
handshakes and then closes each connection: a gRPC client must refuse it before sending anything.
"""

import argparse
import signal
import socket
import ssl
import sys
import threading
from concurrent import futures


def read_varint(data, i):
    value = shift = 0
    while True:
        b = data[i]
        i += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, i


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def hello_name(request):
    """Field 1 (name) of a HelloRequest; other fields are skipped."""
    i = 0
    while i < len(request):
        key, i = read_varint(request, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            _, i = read_varint(request, i)
        elif wire == 2:
            n, i = read_varint(request, i)
            if field == 1:
                return request[i:i + n].decode()
            i += n
        else:
            return ""
    return ""


def serve_grpc(a):
    import grpc

    def say_hello(request, context):
        text = ("Hello from %s, %s!" % (a.id, hello_name(request) or "stranger")).encode()
        return b"\x0a" + varint(len(text)) + text

    handler = grpc.method_handlers_generic_handler(
        "helloworld.Greeter", {"SayHello": grpc.unary_unary_rpc_method_handler(say_hello)})
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), handlers=[handler])
    with open(a.cert, "rb") as f:
        cert = f.read()
    with open(a.key, "rb") as f:
        key = f.read()
    ca = None
    if a.client_ca:
        with open(a.client_ca, "rb") as f:
            ca = f.read()
    creds = grpc.ssl_server_credentials([(key, cert)], root_certificates=ca,
                                        require_client_auth=ca is not None)
    port = server.add_secure_port("127.0.0.1:0", creds)
    server.start()
    print("%s listening on 127.0.0.1:%d" % (a.id, port), flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait(3600)  # bounded: the test stops it long before
    server.stop(0)


def serve_no_alpn(a):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(a.cert, a.key)  # and no set_alpn_protocols: the client's offer is ignored
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(1.0)
    print("%s listening on 127.0.0.1:%d" % (a.id, listener.getsockname()[1]), flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    for _ in range(3600):  # bounded: one-second accept timeouts for up to an hour
        if stop.is_set():
            break
        try:
            conn, _ = listener.accept()
        except socket.timeout:
            continue
        conn.settimeout(5.0)
        try:
            with ctx.wrap_socket(conn, server_side=True) as tls:
                tls.recv(65536)  # the client's bytes, if it sends any, then close
        except (OSError, ssl.SSLError):
            pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["grpc", "no-alpn"])
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--client-ca")
    ap.add_argument("--id", default="python-greeter")
    a = ap.parse_args()
    if a.mode == "grpc":
        serve_grpc(a)
    else:
        serve_no_alpn(a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
