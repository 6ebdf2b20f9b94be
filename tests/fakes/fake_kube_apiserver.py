#!/usr/bin/python3
"""A fake Kubernetes API server for h2mesh's discovery tests (Python standard library only).

Serves LIST and WATCH of core/v1 Services and discovery.k8s.io/v1 EndpointSlices, cluster-wide
and per namespace, and of core/v1 Namespaces (cluster-scoped; the admission webhook's), over HTTPS (or plain HTTP with --http) on 127.0.0.1, in the real wire format:
one resourceVersion sequence for all objects, chunked watch streams whose chunks do not line up
with events, bookmarks, and "410 Gone" (as an ERROR event on an open watch, or as an HTTP 410
reply). Every API request must carry the bearer token (or, over HTTPS, a client certificate
signed by the test CA): 401 otherwise.

Paths served (GET; `?watch=1` watches, `labelSelector=kubernetes.io/service-name=NAME` filters
slices, `limit=N` pages a LIST: the reply's metadata.continue asks for the rest of the same
snapshot with `continue=TOKEN`):
  /api/v1/services                                   /api/v1/namespaces/NS/services
  /apis/discovery.k8s.io/v1/endpointslices           /apis/discovery.k8s.io/v1/namespaces/NS/endpointslices
  /api/v1/namespaces

Certificates are made at start with the openssl command line in --dir (nothing is committed):
  ca.crt / ca.key            the cluster CA
  server.crt / server.key    the API server (SAN IP:127.0.0.1, DNS:localhost), signed by the CA
  client.crt / client.key    a client certificate signed by the CA
  other-ca.crt               an unrelated CA, for "wrong CA" tests

A plain-HTTP control port scripts it (JSON bodies and replies):
  PUT    /slices/NAME   {"addressType":..,"endpoints":[..],"ports":[..],"service":"greeter"?}
  PUT    /slices/NS/NAME   creates (ADDED) or replaces (MODIFIED) slice NAME (in --namespace, or
                        NS), labelled kubernetes.io/service-name = "service" (or --service)
  DELETE /slices/NAME, /slices/NS/NAME   deletes it (DELETED)
  PUT    /services/NS/NAME   {"clusterIP":..,"ports":[..],"type":..}: the Service's spec, with the
                        API server's defaults filled in (type ClusterIP, clusterIPs, protocol TCP,
                        targetPort = port); an optional "metadata" map is merged into the object's
  DELETE /services/NS/NAME
  PUT    /namespaces/NAME   {"labels":{..}}: creates (ADDED) or replaces (MODIFIED) Namespace NAME
  DELETE /namespaces/NAME
  POST   /load          {"services":[{"namespace":..,"name":..,"spec":{..}}],
                         "slices":[{"namespace":..,"name":..,<as PUT /slices>}]}: many at once
                        (one ADDED or MODIFIED each)
  POST   /bookmark      sends a BOOKMARK to every open watch
  POST   /expire        {"mode":"event"|"http"}: compacts history so that every resourceVersion
                        handed out so far is too old; open watches get an ERROR 410 event
                        ("event") or are cut, and the next WATCH gets an HTTP 410 ("http")
  POST   /drop-watches  cuts open watch connections without ending the chunked stream
  POST   /token         {"token":"..."}: the token accepted from now on
  POST   /forbid        {"forbid":true|false, "scope":"all"|"cluster"}: answer 403 to API requests
                        (scope "cluster": only to cluster-wide ones, like an account with
                        namespaced Roles only)
  POST   /delay         {"seconds":S}: every API reply (a LIST, a WATCH's headers) waits S seconds
  POST   /garbage       {"lists":N}: the next N LIST replies are 200 with a body that is not JSON;
                        {"watch":true}: every open watch gets a line that is not JSON
  POST   /continue-gone {"count":N}: the next N LIST requests with a continue token get 410 (the
                        token expired, as after an etcd compaction); /expire expires them all
  POST   /down          {"down":true}: the API port is closed (connections are refused) and every
                        open API connection is cut; {"down":false}: it listens again, same port
  GET    /stats         {"lists":N,"watches":N,"service_lists":N,"slice_lists":N,"continued":N,
                         "service_watches":N,"slice_watches":N,"namespace_lists":N,
                         "namespace_watches":N,"watch_rvs":[..],"tokens":[..],
                         "paths":[..],"rv":"..","open_watches":N,"unauthorized":N,"forbidden":N,
                         "gone":N,"bookmarks_sent":N,"garbage_sent":N,"events_sent":N}
                        (events_sent: ADDED, MODIFIED and DELETED written to watches)

Prints "fake-kube-apiserver control on http://127.0.0.1:CPORT" then
"fake-kube-apiserver listening on https://127.0.0.1:PORT" (http:// with --http) when ready.
"""

import argparse
import json
import os
import random
import select
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LABEL = "kubernetes.io/service-name"
SERVICES = "services"
SLICES = "endpointslices"
NAMESPACES = "namespaces"
KINDS = {
    SERVICES: {"kind": "Service", "apiVersion": "v1", "list": "ServiceList"},
    SLICES: {"kind": "EndpointSlice", "apiVersion": "discovery.k8s.io/v1",
             "list": "EndpointSliceList"},
    NAMESPACES: {"kind": "Namespace", "apiVersion": "v1", "list": "NamespaceList"},
}
# What the stats call each kind's LISTs and WATCHes.
STAT_NAMES = {SERVICES: "service", SLICES: "slice", NAMESPACES: "namespace"}


def dumps(obj):
    return json.dumps(obj, separators=(",", ":"))


def status(code, reason, message):
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}


def with_kind(kind, obj):
    return dict({"kind": KINDS[kind]["kind"], "apiVersion": KINDS[kind]["apiVersion"]}, **obj)


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
        self.forbid = None        # None, "all" or "cluster"
        self.delay = 0.0
        self.garbage_lists = 0
        self.continue_gone = 0
        self.snapshots = {}     # continue token -> (items, resourceVersion, offset)
        self.snapshot_id = 0
        self.down = False
        self.bookmark_interval = args.bookmark_interval
        self.max_watch_seconds = args.max_watch_seconds
        self.rv = 1000
        self.compacted = 0      # a watch from a resourceVersion below this gets 410
        self.gone_as_http = False
        self.objects = {SERVICES: {}, SLICES: {}, NAMESPACES: {}}  # kind -> (namespace, name) -> object
        self.history = []       # (rv, kind, type, object without kind/apiVersion)
        self.bookmarks = 0      # bumped by POST /bookmark
        self.expire_epoch = 0   # bumped by POST /expire (mode event)
        self.drop_epoch = 0     # bumped by POST /drop-watches, /expire (mode http) and /down
        self.garbage_epoch = 0  # bumped by POST /garbage {"watch":true}
        self.connections = set()  # open API connections, cut by /down
        self.stats = {"lists": 0, "watches": 0, "service_lists": 0, "slice_lists": 0, "continued": 0,
                      "service_watches": 0, "slice_watches": 0, "namespace_lists": 0,
                      "namespace_watches": 0, "watch_rvs": [], "tokens": [],
                      "paths": [], "open_watches": 0, "unauthorized": 0, "forbidden": 0,
                      "gone": 0, "bookmarks_sent": 0, "garbage_sent": 0,
                      "events_sent": 0}
        self.uid = 0

    def next_rv(self):
        self.rv += 1
        return self.rv

    def next_uid(self):
        self.uid += 1
        return "00000000-0000-4000-8000-%012d" % self.uid

    def store(self, kind, namespace, name, obj, old):
        """Records obj (metadata filled in by the caller) as ADDED or MODIFIED. Lock held."""
        self.objects[kind][(namespace, name)] = obj
        self.history.append((int(obj["metadata"]["resourceVersion"]),
                             kind, "MODIFIED" if old else "ADDED", obj))
        self.cond.notify_all()

    def metadata(self, namespace, name, old, extra=None):
        rv = self.next_rv()
        meta = {
            "name": name,
            "namespace": namespace,
            "uid": old["metadata"]["uid"] if old else self.next_uid(),
            "resourceVersion": str(rv),
            "generation": (old["metadata"]["generation"] + 1) if old else 1,
            "creationTimestamp": "2026-11-26T14:00:00Z",
        }
        meta.update(extra or {})
        return meta

    def put_slice(self, namespace, name, spec):
        with self.cond:
            namespace = namespace or spec.get("namespace") or self.namespace
            service = spec.get("service", self.service)
            old = self.objects[SLICES].get((namespace, name))
            meta = self.metadata(namespace, name, old)
            meta["generateName"] = service + "-"
            meta["labels"] = {LABEL: service,
                              "endpointslice.kubernetes.io/managed-by":
                                  "endpointslice-controller.k8s.io"}
            meta["ownerReferences"] = [{"apiVersion": "v1", "kind": "Service", "name": service,
                                        "uid": "5b1c0000-0000-4000-8000-000000000001",
                                        "controller": True, "blockOwnerDeletion": True}]
            obj = {
                "metadata": meta,
                "addressType": spec.get("addressType", "IPv4"),
                # No omitempty in the API: empty lists are serialized as null.
                "endpoints": spec.get("endpoints") or None,
                "ports": spec.get("ports") or None,
            }
            self.store(SLICES, namespace, name, obj, old)
            return self.rv

    def put_service(self, namespace, name, spec):
        with self.cond:
            spec = json.loads(dumps(spec))
            extra = spec.pop("metadata", None)
            old = self.objects[SERVICES].get((namespace, name))
            # The defaults the API server writes into every Service.
            spec.setdefault("type", "ClusterIP")
            if spec["type"] != "ExternalName":
                spec.setdefault("sessionAffinity", "None")
                if "clusterIP" in spec and "clusterIPs" not in spec:
                    spec["clusterIPs"] = [spec["clusterIP"]]
                ips = [ip for ip in spec.get("clusterIPs", []) if ip != "None"]
                spec.setdefault("ipFamilies", ["IPv6" if ":" in ip else "IPv4" for ip in ips])
                spec.setdefault("ipFamilyPolicy", "SingleStack" if len(ips) < 2 else "PreferDualStack")
                spec.setdefault("internalTrafficPolicy", "Cluster")
            for p in spec.get("ports", []):
                p.setdefault("protocol", "TCP")
                p.setdefault("targetPort", p.get("port"))
            obj = {"metadata": self.metadata(namespace, name, old, extra), "spec": spec,
                   "status": {"loadBalancer": {}}}
            self.store(SERVICES, namespace, name, obj, old)
            return self.rv

    def put_namespace(self, name, spec):
        """A Namespace (cluster-scoped: stored under namespace None) with `spec["labels"]`."""
        with self.cond:
            old = self.objects[NAMESPACES].get((None, name))
            meta = self.metadata(None, name, old)
            del meta["namespace"]
            meta["labels"] = dict({"kubernetes.io/metadata.name": name}, **spec.get("labels", {}))
            obj = {"metadata": meta, "spec": {"finalizers": ["kubernetes"]},
                   "status": {"phase": "Active"}}
            self.store(NAMESPACES, None, name, obj, old)
            return self.rv

    def delete(self, kind, namespace, name):
        with self.cond:
            obj = self.objects[kind].pop((namespace, name), None)
            if obj is None:
                return None
            rv = self.next_rv()
            gone = json.loads(dumps(obj))
            gone["metadata"]["resourceVersion"] = str(rv)
            self.history.append((rv, kind, "DELETED", gone))
            self.cond.notify_all()
            return rv

    @staticmethod
    def matches(obj, namespace, selector):
        if namespace is not None and obj["metadata"].get("namespace") != namespace:
            return False
        return selector is None or obj["metadata"].get("labels", {}).get(LABEL) == selector


# ---- API server ---------------------------------------------------------------------------------

def parse_collection(path):
    """(kind, namespace or None) for a collection path, or None."""
    for prefix, kind in (("/api/v1", SERVICES), ("/apis/discovery.k8s.io/v1", SLICES)):
        if not path.startswith(prefix + "/"):
            continue
        parts = path[len(prefix) + 1:].split("/")
        if parts == [kind]:
            return kind, None
        if prefix == "/api/v1" and parts == [NAMESPACES]:
            return NAMESPACES, None
        if len(parts) == 3 and parts[0] == "namespaces" and parts[2] == kind and parts[1]:
            return kind, parts[1]
    return None


class ApiHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-kube-apiserver"

    def setup(self):
        if self.server.tls:
            # The listening socket does not handshake on accept (one slow client would stall
            # every other): do it here, in the connection's own thread.
            self.request.settimeout(10)
            self.request.do_handshake()
            self.request.settimeout(None)
        with self.server.state.cond:
            self.server.state.connections.add(self.request)
        super().setup()

    def finish(self):
        with self.server.state.cond:
            self.server.state.connections.discard(self.request)
        try:
            super().finish()
        except OSError:
            pass  # cut by /down

    def log_message(self, fmt, *args):
        sys.stderr.write("fake-kube-apiserver: %s\n" % (fmt % args))

    def reply_json(self, code, obj):
        self.reply_bytes(code, dumps(obj).encode())

    def reply_bytes(self, code, body):
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
                if self.server.tls and self.connection.getpeercert():
                    return True  # verified against the CA by the TLS layer
            except (AttributeError, ValueError):
                pass
            st.stats["unauthorized"] += 1
        return False

    def do_GET(self):
        st = self.server.state
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        with st.cond:
            st.stats["paths"] = (st.stats["paths"] + [url.path])[-50:]
            delay = st.delay
        if delay > 0:
            time.sleep(delay)
        if not self.authorized(st):
            self.reply_json(401, status(401, "Unauthorized", "Unauthorized"))
            return
        collection = parse_collection(url.path)
        if collection is None:
            self.reply_json(404, status(404, "NotFound", "the server could not find the requested resource"))
            return
        kind, namespace = collection
        if st.forbid == "all" or (st.forbid == "cluster" and namespace is None):
            with st.cond:
                st.stats["forbidden"] += 1
            group = "discovery.k8s.io" if kind == SLICES else ""
            where = "at the cluster scope" if namespace is None else 'in the namespace "%s"' % namespace
            self.reply_json(403, status(403, "Forbidden",
                '%s%s is forbidden: User "system:serviceaccount:grpcdemo:h2mesh" cannot list '
                'resource "%s" in API group "%s" %s' % (kind, "." + group if group else "", kind,
                                                         group, where)))
            return
        selector = query.get("labelSelector")
        if selector is not None:
            if not selector.startswith(LABEL + "="):
                self.reply_json(400, status(400, "BadRequest", "expected a %s selector" % LABEL))
                return
            selector = selector[len(LABEL) + 1:]
        if query.get("watch") in ("1", "true"):
            self.watch(st, kind, namespace, selector, query)
        else:
            self.list(st, kind, namespace, selector, query)

    def list(self, st, kind, namespace, selector, query):
        limit = int(query.get("limit") or 0)
        token = query.get("continue")
        garbage = gone = False
        with st.cond:
            st.stats["lists"] += 1
            st.stats[STAT_NAMES[kind] + "_lists"] += 1
            if token:
                st.stats["continued"] += 1
            if st.garbage_lists > 0:
                st.garbage_lists -= 1
                st.stats["garbage_sent"] += 1
                garbage = True
            elif token and (st.continue_gone > 0 or token not in st.snapshots):
                st.continue_gone = max(0, st.continue_gone - 1)
                st.stats["gone"] += 1
                gone = True
            else:
                if token:
                    # The rest of the snapshot the first page was cut from.
                    items, rv, start = st.snapshots.pop(token)
                else:
                    items = sorted((o for o in st.objects[kind].values()
                                    if st.matches(o, namespace, selector)),
                                   key=lambda o: (o["metadata"].get("namespace", ""),
                                                  o["metadata"]["name"]))
                    rv, start = st.rv, 0
                end = start + limit if limit > 0 else len(items)
                meta = {"resourceVersion": str(rv)}
                if end < len(items):
                    st.snapshot_id += 1
                    meta["continue"] = "page-%d-%d" % (st.snapshot_id, end)
                    st.snapshots[meta["continue"]] = (items, rv, end)
                body = dumps({"kind": KINDS[kind]["list"], "apiVersion": KINDS[kind]["apiVersion"],
                              "metadata": meta, "items": items[start:end]}).encode()
        if gone:
            self.reply_json(410, status(410, "Expired",
                "The provided continue parameter is too old to display a consistent list result. "
                "You can start a new list without the continue parameter."))
            return
        if garbage:
            self.reply_bytes(200, b'{"kind":"' + KINDS[kind]["list"].encode() + b'","items":[{"meta')
            return
        self.reply_bytes(200, body)

    def send_chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def send_lines(self, rng, lines):
        """Sends event lines in chunks that split and join them at random places."""
        data = b"".join((line if isinstance(line, bytes) else dumps(line).encode()) + b"\n"
                        for line in lines)
        while data:
            n = rng.randint(1, max(1, len(data)))
            if rng.random() < 0.5:
                n = len(data)
            self.send_chunk(data[:n])
            data = data[n:]
        self.wfile.flush()

    def watch(self, st, kind, namespace, selector, query):
        rv_text = query.get("resourceVersion", "")
        timeout = float(query.get("timeoutSeconds", "1800"))
        if st.max_watch_seconds > 0:
            timeout = min(timeout, st.max_watch_seconds)
        bookmarks = query.get("allowWatchBookmarks") in ("1", "true")
        with st.cond:
            st.stats["watches"] += 1
            st.stats[STAT_NAMES[kind] + "_watches"] += 1
            st.stats["watch_rvs"] = (st.stats["watch_rvs"] + [rv_text])[-50:]
            since = int(rv_text) if rv_text.isdigit() else st.rv
            too_old = since < st.compacted
            http_gone = too_old and st.gone_as_http
            if too_old:
                st.stats["gone"] += 1
            # Taken with the check above: an /expire or /drop-watches that comes while the reply
            # headers are on their way still ends this watch (taken later, it would be missed,
            # and a watch from before the compaction would live on).
            expire_epoch, drop_epoch = st.expire_epoch, st.drop_epoch
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
            bookmark_seen = st.bookmarks
            garbage_seen = st.garbage_epoch
        deadline = time.monotonic() + timeout
        next_bookmark = time.monotonic() + st.bookmark_interval if st.bookmark_interval > 0 else None
        sent = since
        try:
            while True:
                with st.cond:
                    now = time.monotonic()
                    wake = deadline if next_bookmark is None else min(deadline, next_bookmark)
                    events = [(rv, t, o) for rv, k, t, o in st.history
                              if rv > sent and k == kind and st.matches(o, namespace, selector)]
                    if not events and st.expire_epoch == expire_epoch and \
                            st.drop_epoch == drop_epoch and st.bookmarks == bookmark_seen and \
                            st.garbage_epoch == garbage_seen and now < wake:
                        # Wake now and then to notice a client that hung up (it never sends
                        # anything on a watch: readable means closed), so open_watches is true.
                        st.cond.wait(min(wake - now, 0.05))
                        if select.select([self.connection], [], [], 0)[0]:
                            return
                        continue
                    expired = st.expire_epoch != expire_epoch
                    dropped = st.drop_epoch != drop_epoch
                    garbage = st.garbage_epoch != garbage_seen
                    garbage_seen = st.garbage_epoch
                    want_bookmark = bookmarks and (st.bookmarks != bookmark_seen or (
                        next_bookmark is not None and now >= next_bookmark))
                    bookmark_seen = st.bookmarks
                    current = st.rv
                    if garbage:
                        st.stats["garbage_sent"] += 1
                if dropped:
                    # Cut the TCP connection without the chunked stream's end.
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                lines = []
                for rv, t, o in events:
                    lines.append({"type": t, "object": with_kind(kind, o)})
                    sent = rv
                if garbage:
                    lines.append(b'{"type":"MODIFIED","object":{"kind":"' +
                                 KINDS[kind]["kind"].encode() + b'","metadata":{"name":')
                if expired:
                    lines.append({"type": "ERROR", "object": status(
                        410, "Expired", "too old resource version: %d (%d)" % (sent, current))})
                    with st.cond:
                        st.stats["gone"] += 1
                elif want_bookmark:
                    sent = max(sent, current)
                    lines.append({"type": "BOOKMARK", "object": with_kind(kind, {
                        "metadata": {"resourceVersion": str(sent)}})})
                    if next_bookmark is not None:
                        next_bookmark = time.monotonic() + st.bookmark_interval
                if lines:
                    self.send_lines(rng, lines)
                    with st.cond:
                        st.stats["events_sent"] += len(events)
                        if want_bookmark and not expired:
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
    allow_reuse_address = True  # /down then /down false: the same port again

    def handle_error(self, request, client_address):
        # Clients that reject our certificate or hang up mid-stream are expected in these tests.
        exc = sys.exc_info()[1]
        sys.stderr.write("fake-kube-apiserver: connection from %s ended: %r\n" % (client_address, exc))


class Api:
    """The API listener, which /down closes and opens again on the same port."""

    def __init__(self, state, tls_ctx, port=0):
        self.state = state
        self.tls_ctx = tls_ctx
        self.lock = threading.Lock()
        self.server = None
        self.port = port
        self.open()

    def open(self):
        server = ApiServer(("127.0.0.1", self.port), ApiHandler)
        if self.tls_ctx:
            # The handshake runs in the connection's thread, not in the accept loop.
            server.socket = self.tls_ctx.wrap_socket(server.socket, server_side=True,
                                                     do_handshake_on_connect=False)
        server.state = self.state
        server.tls = self.tls_ctx is not None
        self.port = server.server_address[1]
        self.server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()

    def set_down(self, down):
        with self.lock:
            st = self.state
            if down and self.server is not None:
                self.server.shutdown()
                self.server.server_close()
                self.server = None
                with st.cond:
                    st.down = True
                    st.drop_epoch += 1
                    for conn in list(st.connections):
                        try:
                            conn.shutdown(socket.SHUT_RDWR)
                        except OSError:
                            pass
                    st.cond.notify_all()
            elif not down and self.server is None:
                self.open()
                with st.cond:
                    st.down = False


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

    def object_path(self, prefix):
        """(namespace or None, name) of /PREFIX/NAME or /PREFIX/NS/NAME, else None."""
        if not self.path.startswith(prefix):
            return None
        parts = self.path[len(prefix):].split("/")
        if len(parts) == 1 and parts[0]:
            return None, parts[0]
        if len(parts) == 2 and all(parts):
            return parts[0], parts[1]
        return None

    def do_GET(self):
        st = self.server.state
        if self.path == "/stats":
            with st.cond:
                self.reply(dict(st.stats, rv=str(st.rv)))
        else:
            self.reply({"error": "unknown path"}, 404)

    def do_PUT(self):
        st = self.server.state
        slice_path = self.object_path("/slices/")
        service_path = self.object_path("/services/")
        namespace_path = self.object_path("/namespaces/")
        if slice_path:
            rv = st.put_slice(slice_path[0], slice_path[1], self.body())
        elif namespace_path and namespace_path[0] is None:
            rv = st.put_namespace(namespace_path[1], self.body())
        elif service_path and service_path[0]:
            rv = st.put_service(service_path[0], service_path[1], self.body())
        else:
            self.reply({"error": "unknown path"}, 404)
            return
        self.reply({"resourceVersion": str(rv)})

    def do_DELETE(self):
        st = self.server.state
        slice_path = self.object_path("/slices/")
        service_path = self.object_path("/services/")
        namespace_path = self.object_path("/namespaces/")
        if slice_path:
            rv = st.delete(SLICES, slice_path[0] or st.namespace, slice_path[1])
        elif namespace_path and namespace_path[0] is None:
            rv = st.delete(NAMESPACES, None, namespace_path[1])
        elif service_path and service_path[0]:
            rv = st.delete(SERVICES, service_path[0], service_path[1])
        else:
            self.reply({"error": "unknown path"}, 404)
            return
        self.reply({"resourceVersion": str(rv)} if rv else {"error": "no such object"},
                   200 if rv else 404)

    def do_POST(self):
        st = self.server.state
        body = self.body()
        if self.path == "/load":
            for s in body.get("services", []):
                st.put_service(s["namespace"], s["name"], s.get("spec", {}))
            for s in body.get("slices", []):
                st.put_slice(s.get("namespace"), s["name"], s)
        elif self.path == "/down":
            self.server.api.set_down(bool(body.get("down", True)))
        with st.cond:
            if self.path in ("/load", "/down"):
                pass
            elif self.path == "/bookmark":
                st.bookmarks += 1
            elif self.path == "/expire":
                st.next_rv()
                st.compacted = st.rv
                st.snapshots.clear()
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
                st.forbid = body.get("scope", "all") if body.get("forbid", True) else None
            elif self.path == "/continue-gone":
                st.continue_gone += int(body.get("count", 1))
            elif self.path == "/delay":
                st.delay = float(body.get("seconds", 0))
            elif self.path == "/garbage":
                st.garbage_lists += int(body.get("lists", 0))
                if body.get("watch"):
                    st.garbage_epoch += 1
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
    p.add_argument("--namespace", default="grpcdemo", help="of slices PUT without one")
    p.add_argument("--service", default="greeter", help="label of slices PUT without one")
    p.add_argument("--http", action="store_true", help="plain HTTP instead of HTTPS (kubectl proxy)")
    p.add_argument("--bookmark-interval", type=float, default=0,
                   help="seconds between bookmarks on watches that allow them; 0: only on request")
    p.add_argument("--max-watch-seconds", type=float, default=0,
                   help="end every watch after this long (0: the client's timeoutSeconds)")
    args = p.parse_args()

    state = State(args)
    ctx = None
    if not args.http:
        ensure_certificates(args.dir)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(os.path.join(args.dir, "server.crt"),
                            os.path.join(args.dir, "server.key"))
        ctx.verify_mode = ssl.CERT_OPTIONAL  # a client certificate replaces the token
        ctx.load_verify_locations(os.path.join(args.dir, "ca.crt"))
    else:
        os.makedirs(args.dir, exist_ok=True)

    api = Api(state, ctx)
    control = ThreadingHTTPServer(("127.0.0.1", 0), ControlHandler)
    control.daemon_threads = True
    control.state = state
    control.api = api

    print("fake-kube-apiserver control on http://127.0.0.1:%d" % control.server_address[1], flush=True)
    print("fake-kube-apiserver listening on %s://127.0.0.1:%d" % ("http" if args.http else "https",
                                                                  api.port), flush=True)
    try:
        control.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
