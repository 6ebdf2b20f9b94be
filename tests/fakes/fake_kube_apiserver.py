#!/usr/bin/python3
"""A fake Kubernetes API server for h2mesh's discovery tests (Python standard library only).

Serves LIST and WATCH of discovery.k8s.io/v1 EndpointSlices over HTTPS on 127.0.0.1 in the real
wire format: resourceVersions, chunked watch streams whose chunks do not line up with events,
bookmarks, and "410 Gone" (as an ERROR event on an open watch, or as an HTTP 410 reply). Every
API request must carry the bearer token (or a client certificate signed by the test CA): 401
otherwise.

Certificates are made at start with the openssl command line in --dir (nothing is committed):
  ca.crt / ca.key            the cluster CA
  server.crt / server.key    the API server (SAN IP:127.0.0.1, DNS:localhost), signed by the CA
  client.crt / client.key    a client certificate signed by the CA
  other-ca.crt               an unrelated CA, for "wrong CA" tests

A plain-HTTP control port scripts it (JSON bodies and replies):
  PUT    /slices/NAME   {"addressType":..,"endpoints":[..],"ports":[..],"service":"greeter"?}
                        creates (ADDED) or replaces (MODIFIED) slice NAME
  DELETE /slices/NAME   deletes it (DELETED)
  POST   /bookmark      sends a BOOKMARK to every open watch
  POST   /expire        {"mode":"event"|"http"}: compacts history so that every resourceVersion
                        handed out so far is too old; open watches get an ERROR 410 event
                        ("event") or are cut, and the next WATCH gets an HTTP 410 ("http")
  POST   /drop-watches  cuts open watch connections without ending the chunked stream
  POST   /token         {"token":"..."}: the token accepted from now on
  POST   /forbid        {"forbid":true|false}: answer 403 to API requests
  GET    /stats         {"lists":N,"watches":N,"watch_rvs":[..],"tokens":[..],"rv":"..",
                         "open_watches":N,"unauthorized":N,"gone":N,
                         "bookmarks_sent":N}

Prints "fake-kube-apiserver control on http://127.0.0.1:CPORT" then
"fake-kube-apiserver listening on https://127.0.0.1:PORT" when ready.
"""

import argparse
import json
import os
import random
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LABEL = "kubernetes.io/service-name"


def dumps(obj):
    return json.dumps(obj, separators=(",", ":"))


def status(code, reason, message):
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}


# ---- certificates -------------------------------------------------------------------------------

def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE)


def make_ca(d, name, cn):
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", name + ".key", "-out", name + ".crt", "-days", "2", "-subj", "/CN=" + cn,
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)


def make_leaf(d, name, cn, ext):
    with open(os.path.join(d, name + ".ext"), "w") as f:
        f.write(ext)
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", name + ".key", "-out", name + ".csr", "-subj", "/CN=" + cn, cwd=d)
    openssl("x509", "-req", "-in", name + ".csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", name + ".crt", "-days", "2", "-extfile", name + ".ext", cwd=d)


def ensure_certificates(d):
    os.makedirs(d, exist_ok=True)
    if os.path.exists(os.path.join(d, "server.crt")):
        return
    make_ca(d, "ca", "fake-kube-ca")
    make_ca(d, "other-ca", "some-other-ca")
    make_leaf(d, "server", "kube-apiserver",
              "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    make_leaf(d, "client", "system:serviceaccount:grpcdemo:h2mesh",
              "extendedKeyUsage=clientAuth\n")


# ---- state --------------------------------------------------------------------------------------

class State:
    def __init__(self, args):
        self.cond = threading.Condition()
        self.namespace = args.namespace
        self.service = args.service
        self.token = args.token
        self.forbid = False
        self.bookmark_interval = args.bookmark_interval
        self.max_watch_seconds = args.max_watch_seconds
        self.rv = 1000
        self.compacted = 0      # a watch from a resourceVersion below this gets 410
        self.slices = {}        # name -> object (without kind/apiVersion)
        self.history = []       # (rv, type, object with kind/apiVersion)
        self.bookmarks = 0      # bumped by POST /bookmark
        self.expire_epoch = 0   # bumped by POST /expire (mode event)
        self.drop_epoch = 0     # bumped by POST /drop-watches and /expire (mode http)
        self.stats = {"lists": 0, "watches": 0, "watch_rvs": [], "tokens": [],
                      "open_watches": 0, "unauthorized": 0, "gone": 0, "bookmarks_sent": 0}
        self.uid = 0

    def next_rv(self):
        self.rv += 1
        return self.rv

    def put_slice(self, name, spec):
        with self.cond:
            service = spec.get("service", self.service)
            old = self.slices.get(name)
            rv = self.next_rv()
            self.uid += 1
            obj = {
                "metadata": {
                    "name": name,
                    "generateName": service + "-",
                    "namespace": self.namespace,
                    "uid": old["metadata"]["uid"] if old else "00000000-0000-4000-8000-%012d" % self.uid,
                    "resourceVersion": str(rv),
                    "generation": (old["metadata"]["generation"] + 1) if old else 1,
                    "creationTimestamp": "2026-11-26T14:00:00Z",
                    "labels": {LABEL: service,
                               "endpointslice.kubernetes.io/managed-by":
                                   "endpointslice-controller.k8s.io"},
                    "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": service,
                                         "uid": "5b1c0000-0000-4000-8000-000000000001",
                                         "controller": True, "blockOwnerDeletion": True}],
                },
                "addressType": spec.get("addressType", "IPv4"),
                # No omitempty in the API: empty lists are serialized as null.
                "endpoints": spec.get("endpoints") or None,
                "ports": spec.get("ports") or None,
            }
            self.slices[name] = obj
            self.history.append((rv, "MODIFIED" if old else "ADDED", obj))
            self.cond.notify_all()
            return rv

    def delete_slice(self, name):
        with self.cond:
            obj = self.slices.pop(name, None)
            if obj is None:
                return None
            rv = self.next_rv()
            gone = json.loads(dumps(obj))
            gone["metadata"]["resourceVersion"] = str(rv)
            self.history.append((rv, "DELETED", gone))
            self.cond.notify_all()
            return rv

    def matches(self, obj, selector):
        return obj["metadata"]["labels"].get(LABEL) == selector


# ---- API server ---------------------------------------------------------------------------------

class ApiHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-kube-apiserver"

    def setup(self):
        # The listening socket does not handshake on accept (one slow client would stall every
        # other): do it here, in the connection's own thread.
        self.request.settimeout(10)
        self.request.do_handshake()
        self.request.settimeout(None)
        super().setup()

    def log_message(self, fmt, *args):
        sys.stderr.write("fake-kube-apiserver: %s\n" % (fmt % args))

    def reply_json(self, code, obj):
        body = dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def authorized(self, st):
        auth = self.headers.get("Authorization", "")
        token = auth[len("Bearer "):] if auth.startswith("Bearer ") else None
        with st.cond:
            if token is not None:
                st.stats["tokens"] = (st.stats["tokens"] + [token])[-20:]
            if token is not None and token == st.token:
                return True
            try:
                if self.connection.getpeercert():
                    return True  # verified against the CA by the TLS layer
            except (AttributeError, ValueError):
                pass
            st.stats["unauthorized"] += 1
        return False

    def do_GET(self):
        st = self.server.state
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        if not self.authorized(st):
            self.reply_json(401, status(401, "Unauthorized", "Unauthorized"))
            return
        prefix = "/apis/discovery.k8s.io/v1/namespaces/"
        parts = url.path[len(prefix):].split("/") if url.path.startswith(prefix) else []
        if len(parts) != 2 or parts[1] != "endpointslices":
            self.reply_json(404, status(404, "NotFound", "the server could not find the requested resource"))
            return
        namespace = parts[0]
        if st.forbid:
            self.reply_json(403, status(403, "Forbidden",
                'endpointslices.discovery.k8s.io is forbidden: User "system:serviceaccount:'
                'grpcdemo:h2mesh" cannot list resource "endpointslices" in API group '
                '"discovery.k8s.io" in the namespace "%s"' % namespace))
            return
        selector = query.get("labelSelector", "")
        if not selector.startswith(LABEL + "="):
            self.reply_json(400, status(400, "BadRequest", "expected a %s selector" % LABEL))
            return
        service = selector[len(LABEL) + 1:]
        if namespace != st.namespace:
            service = None  # nothing lives in other namespaces
        if query.get("watch") in ("1", "true"):
            self.watch(st, service, query)
        else:
            self.list(st, service)

    def list(self, st, service):
        with st.cond:
            st.stats["lists"] += 1
            items = [o for o in st.slices.values() if service and st.matches(o, service)]
            body = {"kind": "EndpointSliceList", "apiVersion": "discovery.k8s.io/v1",
                    "metadata": {"resourceVersion": str(st.rv)}, "items": items}
        self.reply_json(200, body)

    def send_chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def send_lines(self, rng, lines):
        """Sends event lines in chunks that split and join them at random places."""
        data = b"".join(dumps(line).encode() + b"\n" for line in lines)
        while data:
            n = rng.randint(1, max(1, len(data)))
            if rng.random() < 0.5:
                n = len(data)
            self.send_chunk(data[:n])
            data = data[n:]
        self.wfile.flush()

    def watch(self, st, service, query):
        rv_text = query.get("resourceVersion", "")
        timeout = float(query.get("timeoutSeconds", "1800"))
        if st.max_watch_seconds > 0:
            timeout = min(timeout, st.max_watch_seconds)
        bookmarks = query.get("allowWatchBookmarks") in ("1", "true")
        with st.cond:
            st.stats["watches"] += 1
            st.stats["watch_rvs"].append(rv_text)
            since = int(rv_text) if rv_text.isdigit() else st.rv
            too_old = since < st.compacted
            http_gone = too_old and st.gone_as_http
            if too_old:
                st.stats["gone"] += 1
        if http_gone:
            self.reply_json(410, status(410, "Expired", "too old resource version: %d (%d)"
                                        % (since, st.rv)))
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        rng = random.Random(since)
        if too_old:
            self.send_lines(rng, [{"type": "ERROR", "object": status(
                410, "Expired", "too old resource version: %d (%d)" % (since, st.rv))}])
            self.end_stream()
            return
        with st.cond:
            st.stats["open_watches"] += 1
            expire_epoch, drop_epoch, bookmark_seen = st.expire_epoch, st.drop_epoch, st.bookmarks
        deadline = time.monotonic() + timeout
        next_bookmark = time.monotonic() + st.bookmark_interval if st.bookmark_interval > 0 else None
        sent = since
        try:
            while True:
                with st.cond:
                    now = time.monotonic()
                    wake = deadline if next_bookmark is None else min(deadline, next_bookmark)
                    events = [(rv, t, o) for rv, t, o in st.history
                              if rv > sent and service and st.matches(o, service)]
                    if not events and st.expire_epoch == expire_epoch and \
                            st.drop_epoch == drop_epoch and st.bookmarks == bookmark_seen and now < wake:
                        st.cond.wait(wake - now)
                        continue
                    expired = st.expire_epoch != expire_epoch
                    dropped = st.drop_epoch != drop_epoch
                    want_bookmark = bookmarks and (st.bookmarks != bookmark_seen or (
                        next_bookmark is not None and now >= next_bookmark))
                    bookmark_seen = st.bookmarks
                    current = st.rv
                if dropped:
                    # Cut the TCP connection without the chunked stream's end.
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                lines = []
                for rv, t, o in events:
                    lines.append({"type": t, "object": dict(
                        {"kind": "EndpointSlice", "apiVersion": "discovery.k8s.io/v1"}, **o)})
                    sent = rv
                if expired:
                    lines.append({"type": "ERROR", "object": status(
                        410, "Expired", "too old resource version: %d (%d)" % (sent, current))})
                    with st.cond:
                        st.stats["gone"] += 1
                elif want_bookmark:
                    sent = max(sent, current)
                    lines.append({"type": "BOOKMARK", "object": {
                        "kind": "EndpointSlice", "apiVersion": "discovery.k8s.io/v1",
                        "metadata": {"resourceVersion": str(sent)}}})
                    if next_bookmark is not None:
                        next_bookmark = time.monotonic() + st.bookmark_interval
                if lines:
                    self.send_lines(rng, lines)
                    if want_bookmark and not expired:
                        with st.cond:
                            st.stats["bookmarks_sent"] += 1
                if expired or time.monotonic() >= deadline:
                    self.end_stream()
                    return
        finally:
            with st.cond:
                st.stats["open_watches"] -= 1

    def end_stream(self):
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


class ApiServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # Clients that reject our certificate or hang up mid-stream are expected in these tests.
        exc = sys.exc_info()[1]
        sys.stderr.write("fake-kube-apiserver: connection from %s ended: %r\n" % (client_address, exc))


# ---- control server -----------------------------------------------------------------------------

class ControlHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        sys.stderr.write("fake-kube-apiserver control: %s\n" % (fmt % args))

    def body(self):
        n = int(self.headers.get("Content-Length", "0"))
        data = self.rfile.read(n) if n else b""
        return json.loads(data) if data else {}

    def reply(self, obj, code=200):
        data = dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        st = self.server.state
        if self.path == "/stats":
            with st.cond:
                self.reply(dict(st.stats, rv=str(st.rv)))
        else:
            self.reply({"error": "unknown path"}, 404)

    def do_PUT(self):
        st = self.server.state
        if self.path.startswith("/slices/"):
            rv = st.put_slice(self.path[len("/slices/"):], self.body())
            self.reply({"resourceVersion": str(rv)})
        else:
            self.reply({"error": "unknown path"}, 404)

    def do_DELETE(self):
        st = self.server.state
        if self.path.startswith("/slices/"):
            rv = st.delete_slice(self.path[len("/slices/"):])
            self.reply({"resourceVersion": str(rv)} if rv else {"error": "no such slice"},
                       200 if rv else 404)
        else:
            self.reply({"error": "unknown path"}, 404)

    def do_POST(self):
        st = self.server.state
        body = self.body()
        with st.cond:
            if self.path == "/bookmark":
                st.bookmarks += 1
            elif self.path == "/expire":
                st.next_rv()
                st.compacted = st.rv
                st.gone_as_http = body.get("mode", "event") == "http"
                if st.gone_as_http:
                    st.drop_epoch += 1
                else:
                    st.expire_epoch += 1
            elif self.path == "/drop-watches":
                st.drop_epoch += 1
            elif self.path == "/token":
                st.token = body["token"]
            elif self.path == "/forbid":
                st.forbid = bool(body.get("forbid", True))
            else:
                self.reply({"error": "unknown path"}, 404)
                return
            st.cond.notify_all()
            rv = st.rv
        self.reply({"resourceVersion": str(rv)})


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dir", required=True, help="where the certificates are made (or found)")
    p.add_argument("--token", default="test-token")
    p.add_argument("--namespace", default="grpcdemo")
    p.add_argument("--service", default="greeter")
    p.add_argument("--bookmark-interval", type=float, default=0,
                   help="seconds between bookmarks on watches that allow them; 0: only on request")
    p.add_argument("--max-watch-seconds", type=float, default=0,
                   help="end every watch after this long (0: the client's timeoutSeconds)")
    args = p.parse_args()

    ensure_certificates(args.dir)
    state = State(args)
    state.gone_as_http = False

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(os.path.join(args.dir, "server.crt"), os.path.join(args.dir, "server.key"))
    ctx.verify_mode = ssl.CERT_OPTIONAL  # a client certificate replaces the token
    ctx.load_verify_locations(os.path.join(args.dir, "ca.crt"))

    api = ApiServer(("127.0.0.1", 0), ApiHandler)
    # The handshake runs in the connection's thread, not in the accept loop.
    api.socket = ctx.wrap_socket(api.socket, server_side=True, do_handshake_on_connect=False)
    api.state = state
    control = ThreadingHTTPServer(("127.0.0.1", 0), ControlHandler)
    control.daemon_threads = True
    control.state = state

    threading.Thread(target=control.serve_forever, daemon=True).start()
    print("fake-kube-apiserver control on http://127.0.0.1:%d" % control.server_address[1], flush=True)
    print("fake-kube-apiserver listening on https://127.0.0.1:%d" % api.server_address[1], flush=True)
    try:
        api.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
