#!/usr/bin/python3
"""A small authoritative DNS server for tests: A and AAAA records over UDP and TCP.

    dns_server.py --records FILE [--ttl SECONDS] [--port 0] [--lifetime SECONDS]

Listens on 127.0.0.1 (UDP and TCP on the same port) and prints `dns listening on 127.0.0.1:PORT`
once ready. FILE is JSON, re-read on every query, so a test changes the answers by rewriting it
(write a temporary file, then rename it over FILE):

    {
      "greeter.test": {"A": ["10.0.0.1", "10.0.0.2"], "AAAA": ["fd00::1"], "ttl": 1},
      "empty.test":   {},                                  # exists, no records: NODATA
      "broken.test":  {"rcode": "SERVFAIL"},               # or REFUSED, NXDOMAIN, ...
      "half.test":    {"A": ["10.0.0.1"], "rcode": {"AAAA": "SERVFAIL"}},  # per query type
      "silent.test":  {"drop": true}                       # never answered: the client times out
    }

Names match case-insensitively, with or without the trailing dot; an unknown name is NXDOMAIN.
`ttl` defaults to --ttl. A UDP answer larger than 512 bytes (or the EDNS size the query
advertises) is sent truncated (TC), so the client retries over TCP.

Every query is logged on stdout as one line: `query udp|tcp NAME TYPE -> RCODE ANSWERS` (or
`-> drop`, `-> truncated`). The server exits after --lifetime seconds or when its parent dies;
SIGTERM and SIGKILL stop it at once. Python 3 standard library only.
"""

import argparse
import ipaddress
import json
import os
import selectors
import socket
import struct
import sys
import time

TYPE_A, TYPE_AAAA, TYPE_OPT = 1, 28, 41
TYPE_NAMES = {TYPE_A: "A", TYPE_AAAA: "AAAA", 5: "CNAME", 6: "SOA", 15: "MX", 16: "TXT",
              33: "SRV", TYPE_OPT: "OPT", 255: "ANY"}
RCODES = {"NOERROR": 0, "FORMERR": 1, "SERVFAIL": 2, "NXDOMAIN": 3, "NOTIMP": 4, "REFUSED": 5}
RCODE_NAMES = {v: k for k, v in RCODES.items()}
CLASS_IN = 1
UDP_LIMIT = 512


class Malformed(Exception):
    pass


def read_name(msg, pos):
    """Returns (name, position after the name) of the wire-format name at `pos`."""
    labels, jumps, end = [], 0, None
    while True:
        if pos >= len(msg):
            raise Malformed("name runs past the message")
        length = msg[pos]
        if length & 0xC0 == 0xC0:  # compression pointer
            if pos + 1 >= len(msg) or jumps > 16:
                raise Malformed("bad compression pointer")
            if end is None:
                end = pos + 2
            pos = ((length & 0x3F) << 8) | msg[pos + 1]
            jumps += 1
            continue
        if length & 0xC0:
            raise Malformed("bad label type")
        pos += 1
        if length == 0:
            break
        labels.append(msg[pos:pos + length].decode("ascii", "replace"))
        pos += length
    return ".".join(labels), (end if end is not None else pos)


def parse_query(msg):
    """Returns (id, flags, qname, qtype, qclass, question bytes, udp size from EDNS or None)."""
    if len(msg) < 12:
        raise Malformed("short header")
    qid, flags, qd, an, ns, ar = struct.unpack("!HHHHHH", msg[:12])
    if qd != 1:
        raise Malformed("%d questions" % qd)
    name, pos = read_name(msg, 12)
    if pos + 4 > len(msg):
        raise Malformed("short question")
    qtype, qclass = struct.unpack("!HH", msg[pos:pos + 4])
    question = msg[12:pos + 4]
    pos += 4
    edns = None
    for _ in range(an + ns + ar):  # skip to the OPT record, if any
        _, pos = read_name(msg, pos)
        if pos + 10 > len(msg):
            raise Malformed("short record")
        rtype, rclass, _, rdlen = struct.unpack("!HHIH", msg[pos:pos + 10])
        if rtype == TYPE_OPT:
            edns = max(rclass, UDP_LIMIT)
        pos += 10 + rdlen
    return qid, flags, name, qtype, qclass, question, edns


def load_records(path):
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    return {k.lower().rstrip("."): v for k, v in data.items()}


def record(qtype, ttl, address):
    if qtype == TYPE_A:
        rdata = ipaddress.IPv4Address(address).packed
    else:
        rdata = ipaddress.IPv6Address(address).packed
    # Owner name: a pointer to the question's name at offset 12.
    return struct.pack("!HHHIH", 0xC00C, qtype, CLASS_IN, ttl, len(rdata)) + rdata


def answer(msg, records_path, default_ttl, transport):
    """Returns the response bytes for one query, or None to stay silent."""
    try:
        qid, flags, name, qtype, qclass, question, edns = parse_query(msg)
    except Malformed as e:
        print("query %s malformed (%s) -> FORMERR" % (transport, e), flush=True)
        if len(msg) < 2:
            return None
        return msg[:2] + struct.pack("!HHHHH", 0x8000 | RCODES["FORMERR"], 0, 0, 0, 0)
    if flags & 0x8000:  # a response, not a query
        return None
    opcode = (flags >> 11) & 0xF
    tname = TYPE_NAMES.get(qtype, str(qtype))
    answers, rcode = [], RCODES["NOERROR"]
    try:
        records = load_records(records_path)
    except (OSError, ValueError) as e:
        print("records file unreadable: %s" % e, file=sys.stderr, flush=True)
        records, rcode = {}, RCODES["SERVFAIL"]
    entry = records.get(name.lower().rstrip("."))
    if opcode != 0:
        rcode = RCODES["NOTIMP"]
    elif rcode != RCODES["NOERROR"]:
        pass
    elif entry is None:
        rcode = RCODES["NXDOMAIN"]
    elif entry.get("drop"):
        print("query %s %s %s -> drop" % (transport, name, tname), flush=True)
        return None
    else:
        forced = entry.get("rcode")
        if isinstance(forced, dict):
            forced = forced.get(tname)
        if forced:
            rcode = RCODES[forced]
        elif qclass == CLASS_IN and qtype in (TYPE_A, TYPE_AAAA):
            ttl = int(entry.get("ttl", default_ttl))
            answers = [record(qtype, ttl, a) for a in entry.get(tname, [])]
    # QR, AA and RA set; opcode and RD copied from the query.
    rflags = 0x8000 | (flags & 0x7900) | 0x0400 | 0x0080 | rcode
    opt = b""
    if edns is not None:  # answer EDNS with EDNS: root name, OPT, our UDP size, no options
        opt = b"\x00" + struct.pack("!HHIH", TYPE_OPT, 4096, 0, 0)
    resp = (struct.pack("!HHHHHH", qid, rflags, 1, len(answers), 0, 1 if opt else 0) + question
            + b"".join(answers) + opt)
    limit = edns or UDP_LIMIT
    if transport == "udp" and len(resp) > limit:
        print("query %s %s %s -> truncated %d" % (transport, name, tname, len(answers)),
              flush=True)
        return (struct.pack("!HHHHHH", qid, rflags | 0x0200, 1, 0, 0, 1 if opt else 0) + question
                + opt)
    print("query %s %s %s -> %s %d" % (transport, name, tname, RCODE_NAMES.get(rcode, rcode),
                                        len(answers)), flush=True)
    return resp


def bind_pair():
    """A UDP and a TCP socket on the same free port of 127.0.0.1."""
    for _ in range(50):
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind(("127.0.0.1", 0))
        port = udp.getsockname()[1]
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            tcp.bind(("127.0.0.1", port))
        except OSError:
            udp.close()
            tcp.close()
            continue
        tcp.listen(16)
        return udp, tcp, port
    raise SystemExit("dns_server: no port free for both UDP and TCP")


def bind_port(port):
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", port))
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind(("127.0.0.1", port))
    tcp.listen(16)
    return udp, tcp, port


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", required=True, help="JSON file of names and their records")
    ap.add_argument("--ttl", type=int, default=30, help="TTL of records without their own")
    ap.add_argument("--port", type=int, default=0, help="port on 127.0.0.1; 0: a free one")
    ap.add_argument("--lifetime", type=float, default=300, help="exit after this many seconds")
    args = ap.parse_args()

    udp, tcp, port = bind_pair() if args.port == 0 else bind_port(args.port)
    udp.setblocking(False)
    tcp.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(udp, selectors.EVENT_READ, "udp")
    sel.register(tcp, selectors.EVENT_READ, "listen")
    conns = {}  # TCP connection -> bytes received and not yet answered
    parent = os.getppid()
    deadline = time.monotonic() + args.lifetime
    print("dns listening on 127.0.0.1:%d" % port, flush=True)

    while time.monotonic() < deadline and os.getppid() == parent:
        for key, _ in sel.select(timeout=0.2):
            kind = key.data
            if kind == "udp":
                try:
                    msg, peer = udp.recvfrom(65535)
                except OSError:
                    continue
                resp = answer(msg, args.records, args.ttl, "udp")
                if resp is not None:
                    try:
                        udp.sendto(resp, peer)
                    except OSError:
                        pass
            elif kind == "listen":
                try:
                    conn, _ = tcp.accept()
                except OSError:
                    continue
                conn.setblocking(False)
                conns[conn] = b""
                sel.register(conn, selectors.EVENT_READ, "tcp")
            else:
                conn = key.fileobj
                try:
                    data = conn.recv(65535)
                except OSError:
                    data = b""
                if not data:
                    sel.unregister(conn)
                    conn.close()
                    del conns[conn]
                    continue
                buf = conns[conn] + data
                while len(buf) >= 2 and len(buf) >= 2 + struct.unpack("!H", buf[:2])[0]:
                    n = struct.unpack("!H", buf[:2])[0]
                    resp = answer(buf[2:2 + n], args.records, args.ttl, "tcp")
                    buf = buf[2 + n:]
                    if resp is not None:
                        try:
                            conn.setblocking(True)  # small answers on loopback: no real wait
                            conn.settimeout(2)
                            conn.sendall(struct.pack("!H", len(resp)) + resp)
                            conn.setblocking(False)
                        except OSError:
                            pass
                conns[conn] = buf
    return 0


if __name__ == "__main__":
    sys.exit(main())
