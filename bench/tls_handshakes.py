#!/usr/bin/python3
"""bench/tls_handshakes.py: new TLS connections to an HTTP/2 server in a bounded loop.

    /usr/bin/python3 bench/tls_handshakes.py --port P --ca CA.crt [--server-name NAME]
                                             [--seconds S] [--max N] [--resume]

Each connection: TCP connect, TLS handshake offering ALPN h2 only (the server must select it),
the HTTP/2 client preface and an empty SETTINGS, then read until the server's own SETTINGS frame
arrives (so the server has set up its HTTP/2 session, as it does for a real client), then close.
With --resume every connection after the first offers the session (TLS 1.3 ticket) that the
previous one received; without it every handshake is a full one. Runs until --seconds have
passed or --max connections were made, and prints one JSON line:

    {"handshakes": 5210, "resumed": 0, "failed": 0,
     "versions": {"TLSv1.3 TLS_AES_256_GCM_SHA384": 5210}, "errors": [], "seconds": 10.0}

bench/run --tls starts one of these per core and divides the handshakes by the CPU seconds the
proxy spent meanwhile. The client's own speed only decides how long that takes, not the figure.
"""

import argparse
import json
import socket
import ssl
import sys
import time

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


def server_settings(sock, deadline):
    """Reads frames until the server's SETTINGS (not an ACK); False on EOF or timeout."""
    buf = b""
    while time.time() < deadline:
        while len(buf) >= 9:
            length = int.from_bytes(buf[0:3], "big")
            if len(buf) < 9 + length:
                break
            ftype, flags = buf[3], buf[4]
            buf = buf[9 + length:]
            if ftype == 4 and not flags & 1:
                return True
        sock.settimeout(max(0.01, deadline - time.time()))
        chunk = sock.recv(16384)
        if not chunk:
            return False
        buf += chunk
    return False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--ca", required=True, help="verify the server's certificate against this CA")
    ap.add_argument("--server-name", default="localhost", help="SNI and the name verified")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--max", type=int, default=1000000)
    ap.add_argument("--resume", action="store_true", help="offer the previous connection's session")
    args = ap.parse_args()

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_verify_locations(args.ca)
    ctx.set_alpn_protocols(["h2"])
    done = resumed = failed = 0
    versions = {}  # "TLSv1.3 TLS_AES_256_GCM_SHA384": connections
    errors = []
    session = None
    t0 = time.time()
    end = t0 + args.seconds
    while time.time() < end and done + failed < args.max:
        try:
            with socket.create_connection((args.host, args.port), timeout=5) as raw:
                raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                with ctx.wrap_socket(raw, server_hostname=args.server_name,
                                     session=session if args.resume else None) as s:
                    if s.selected_alpn_protocol() != "h2":
                        raise RuntimeError("ALPN %r, not h2" % s.selected_alpn_protocol())
                    s.sendall(PREFACE)
                    if not server_settings(s, time.time() + 5):
                        raise RuntimeError("no SETTINGS from the server")
                    done += 1
                    v = "%s %s" % (s.version(), s.cipher()[0])
                    versions[v] = versions.get(v, 0) + 1
                    if s.session_reused:
                        resumed += 1
                    if args.resume:
                        # read after the handshake: a TLS 1.3 ticket has arrived by now
                        session = s.session
        except (OSError, ssl.SSLError, RuntimeError) as e:
            failed += 1
            if len(errors) < 5:
                errors.append(str(e))
    print(json.dumps({"handshakes": done, "resumed": resumed, "failed": failed,
                      "versions": versions, "errors": errors, "seconds": round(time.time() - t0, 3)}), flush=True)
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
