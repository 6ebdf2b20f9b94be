#!/usr/bin/python3
"""Writes the seed corpus of every fuzz target into fuzz/corpus/<target>/ (committed; run again
only to change the seeds). Seeds are real inputs: gRPC calls as a client sends them, a backend's
answers, the configs of the README and deploy/, EndpointSlices, Services and a kubeconfig shaped
like the unit tests', DNS answers as a server sends them. No third-party module: frames and HPACK (literal
fields, no Huffman) are encoded here."""

import os
import re
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CORPUS = os.path.join(HERE, "corpus")


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


# ---- HTTP/2 ----------------------------------------------------------------------------------
DATA, HEADERS, PRIORITY, RST, SETTINGS, PUSH, PING, GOAWAY, WINDOW, CONT = range(10)
END_STREAM, ACK, END_HEADERS, PADDED = 0x1, 0x1, 0x4, 0x8


def frame(ftype, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + \
        struct.pack(">I", stream) + payload


def hpack_int(value, prefix_bits, first=0):
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first | value])
    out = [first | limit]
    value -= limit
    while value >= 128:
        out.append(value % 128 + 128)
        value //= 128
    out.append(value)
    return bytes(out)


def hpack(fields):
    """Literal header fields without indexing, new names, no Huffman: valid for any decoder."""
    out = b""
    for name, value in fields:
        n, v = name.encode(), value.encode()
        out += b"\x00" + hpack_int(len(n), 7) + n + hpack_int(len(v), 7) + v
    return out


def settings(*pairs, ack=False):
    return frame(SETTINGS, ACK if ack else 0, 0,
                 b"".join(struct.pack(">HI", k, v) for k, v in pairs))


def grpc_message(payload):
    return b"\x00" + struct.pack(">I", len(payload)) + payload


def request(path, extra=(), authority="greeter.test"):
    return [(":method", "POST"), (":scheme", "http"), (":path", path),
            (":authority", authority), ("content-type", "application/grpc"),
            ("te", "trailers")] + list(extra)


SAY_HELLO = "/helloworld.Greeter/SayHello"
CLIENT_SETTINGS = settings((2, 0), (4, 65535))  # ENABLE_PUSH 0, INITIAL_WINDOW_SIZE


def downstream_seeds():
    msg = grpc_message(b"\x0a\x05world")
    unary = (CLIENT_SETTINGS + settings(ack=True) +
             frame(HEADERS, END_HEADERS, 1, hpack(request(SAY_HELLO, [("grpc-timeout", "5S")]))) +
             frame(DATA, END_STREAM, 1, msg))
    write("fuzz_downstream", "unary_call", unary)
    two = (CLIENT_SETTINGS +
           frame(HEADERS, END_HEADERS, 1, hpack(request(SAY_HELLO))) +
           frame(HEADERS, END_HEADERS, 3, hpack(request(SAY_HELLO, [("x-fuzz-status", "14")]))) +
           frame(DATA, 0, 1, msg) + frame(DATA, END_STREAM, 3, msg) +
           frame(WINDOW, 0, 0, struct.pack(">I", 1 << 20)) + frame(DATA, END_STREAM, 1, b""))
    write("fuzz_downstream", "two_calls_one_retried", two)
    write("fuzz_downstream", "refused_then_retried",
          CLIENT_SETTINGS + frame(HEADERS, END_HEADERS, 1,
                                  hpack(request(SAY_HELLO, [("x-fuzz-refuse", "1")]))) +
          frame(DATA, END_STREAM, 1, msg))
    write("fuzz_downstream", "dead_cluster",
          CLIENT_SETTINGS + frame(HEADERS, END_HEADERS | END_STREAM, 1,
                                  hpack(request("/fuzz.Dead/Call"))))
    write("fuzz_downstream", "no_route",
          CLIENT_SETTINGS + frame(HEADERS, END_HEADERS | END_STREAM, 1,
                                  hpack(request("/other.Service/Method"))))
    block = hpack(request(SAY_HELLO, [("x-long", "v" * 40)]))
    cancel = (CLIENT_SETTINGS +
              frame(HEADERS, 0, 1, block[:20]) + frame(CONT, END_HEADERS, 1, block[20:]) +
              frame(DATA, PADDED, 1, b"\x03" + msg + b"\x00\x00\x00") +
              frame(PING, 0, 0, b"12345678") +
              frame(RST, 0, 1, struct.pack(">I", 8)))
    write("fuzz_downstream", "continuation_padding_ping_cancel", cancel)
    trailers = (CLIENT_SETTINGS + frame(HEADERS, END_HEADERS, 1, hpack(request(SAY_HELLO))) +
                frame(DATA, 0, 1, msg) +
                frame(HEADERS, END_HEADERS | END_STREAM, 1, hpack([("x-trailer", "t")])))
    write("fuzz_downstream", "request_trailers", trailers)
    small_window = (settings((4, 0)) + frame(HEADERS, END_HEADERS, 1, hpack(request(SAY_HELLO))) +
                    frame(DATA, END_STREAM, 1, msg) +
                    frame(WINDOW, 0, 1, struct.pack(">I", 3)) +
                    frame(WINDOW, 0, 1, struct.pack(">I", 100)) +
                    frame(GOAWAY, 0, 0, struct.pack(">II", 1, 0)))
    write("fuzz_downstream", "zero_window_then_updates", small_window)


def upstream_seeds():
    server_settings = settings((3, 100), (4, 65535))
    ok = (server_settings + settings(ack=True) +
          frame(HEADERS, END_HEADERS, 1, hpack([(":status", "200"),
                                                ("content-type", "application/grpc")])) +
          frame(DATA, 0, 1, grpc_message(b"\x0a\x0bHello world")) +
          frame(HEADERS, END_HEADERS | END_STREAM, 1, hpack([("grpc-status", "0")])) +
          frame(HEADERS, END_HEADERS, 3, hpack([(":status", "200"),
                                                ("content-type", "application/grpc")])) +
          frame(DATA, 0, 3, grpc_message(b"\x0a\x02hi")))
    write("fuzz_upstream", "two_answers", ok)
    write("fuzz_upstream", "trailers_only_unavailable",
          server_settings + frame(HEADERS, END_HEADERS | END_STREAM, 1,
                                  hpack([(":status", "200"), ("content-type", "application/grpc"),
                                         ("grpc-status", "14"), ("grpc-message", "down")])))
    write("fuzz_upstream", "refused_and_goaway",
          server_settings + frame(RST, 0, 1, struct.pack(">I", 7)) +
          frame(GOAWAY, 0, 0, struct.pack(">II", 1, 0)))
    write("fuzz_upstream", "informational_then_answer",
          server_settings + frame(HEADERS, END_HEADERS, 1, hpack([(":status", "100")])) +
          frame(HEADERS, END_HEADERS, 1, hpack([(":status", "200"),
                                                ("content-type", "application/grpc")])) +
          frame(DATA, END_STREAM, 1, b""))
    write("fuzz_upstream", "reset_mid_body",
          settings((3, 1), (4, 10)) +
          frame(HEADERS, END_HEADERS, 1, hpack([(":status", "200"),
                                                ("content-type", "application/grpc")])) +
          frame(DATA, 0, 1, b"partial") + frame(RST, 0, 1, struct.pack(">I", 2)))
    write("fuzz_upstream", "http_error_status",
          server_settings + frame(HEADERS, END_HEADERS | END_STREAM, 1,
                                  hpack([(":status", "503"), ("content-type", "text/plain")])))


# ---- config and Kubernetes -------------------------------------------------------------------
def yaml_blocks(path):
    text = open(path, encoding="utf-8").read()
    return re.findall(r"```yaml\n(.*?)```", text, re.S)


def config_seeds():
    n = 0
    for doc in ["README.md", "docs/configuration.md"]:
        for block in yaml_blocks(os.path.join(ROOT, doc)):
            n += 1
            write("fuzz_config", "%s_%d.yaml" % (os.path.basename(doc).split(".")[0], n), block)
    # Found by this target: yaml-cpp 0.7's LoadAll never returns from them, stopped at a token
    # after the document's top-level value (config/yaml_guard.h refuses them).
    write("fuzz_config", "document_starting_with_comma", ",workers: 1\nlog_level: info\n")
    write("fuzz_config", "indented_map_then_comma",
          b"  !\xd7\x9e\x9ewo  T: GOAWAYre\n,og_le\x9e\x9e$\x9e\x9e\x9e\x9e" + b"\xff" * 8 +
          b"\x9e" * 9 + b"ve\x9e\x9e\x9e\x9e\xd1l: inf\x9e")
    write("fuzz_config", "quoted_value_then_comma", "'listeners: []'\n, clusters: []\n")
    write("fuzz_config", "anchored_scalar_then_key", "&x a\n? b\n")
    # The configs inside the Kubernetes ConfigMaps, dedented.
    for name in ["40-h2mesh-sidecar-config.yaml", "50-h2mesh-balancer-config.yaml"]:
        text = open(os.path.join(ROOT, "deploy/kubernetes", name), encoding="utf-8").read()
        for key, body in re.findall(r"\n  ([\w.-]+\.yaml): \|\n((?:    .*\n|\n)+)", text):
            write("fuzz_config", name[:2] + "_" + key, "\n".join(l[4:] for l in body.split("\n")))


def slice_obj(name, rv, endpoints, ports, addr_type="IPv4"):
    return ('{"kind":"EndpointSlice","apiVersion":"discovery.k8s.io/v1","metadata":{"name":"%s",'
            '"namespace":"grpcdemo","resourceVersion":"%s","labels":{"kubernetes.io/service-name":'
            '"greeter"}},"addressType":"%s","endpoints":%s,"ports":%s}'
            % (name, rv, addr_type, endpoints, ports))


def k8s_seeds():
    ep_ready = ('{"addresses":["10.244.1.10"],"conditions":{"ready":true,"serving":true,'
                '"terminating":false},"targetRef":{"kind":"Pod","name":"greeter-a"},"zone":"zone-a"}')
    ep_term = ('{"addresses":["10.244.1.11"],"conditions":{"ready":false,"serving":true,'
               '"terminating":true},"targetRef":{"kind":"Pod","name":"greeter-b"}}')
    ports = '[{"name":"grpc","protocol":"TCP","port":50051}]'
    lst = ('{"kind":"EndpointSliceList","apiVersion":"discovery.k8s.io/v1","metadata":'
           '{"resourceVersion":"48213"},"items":[%s]}'
           % slice_obj("greeter-abc", "48190", "[%s,%s]" % (ep_ready, ep_term), ports))
    added = '{"type":"ADDED","object":%s}' % slice_obj(
        "greeter-def", "48300", '[{"addresses":["10.244.2.7"],"conditions":{"ready":true}}]',
        '[{"name":"grpc","port":50051},{"name":"metrics","port":9090}]')
    modified = '{"type":"MODIFIED","object":%s}' % slice_obj(
        "greeter-abc", "48301", "[%s]" % ep_ready, ports)
    v6 = '{"type":"ADDED","object":%s}' % slice_obj(
        "greeter-v6", "48302", '[{"addresses":["fd00::7"]}]', '[{"port":null}]', "IPv6")
    deleted = '{"type":"DELETED","object":%s}' % slice_obj("greeter-def", "48303", "[]", ports)
    bookmark = ('{"type":"BOOKMARK","object":{"kind":"EndpointSlice","apiVersion":'
                '"discovery.k8s.io/v1","metadata":{"resourceVersion":"48400"}}}')
    error = ('{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","status":"Failure",'
             '"message":"too old resource version: 1 (48213)","reason":"Expired","code":410}}')
    write("fuzz_k8s_slices", "list_then_watch",
          "\n".join([lst, added, modified, v6, deleted, bookmark, error]))
    write("fuzz_k8s_slices", "list_only", lst)
    write("fuzz_k8s_slices", "status_forbidden",
          '{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":'
          '"endpointslices.discovery.k8s.io is forbidden","reason":"Forbidden","code":403}')

    write("fuzz_kubeconfig", "token_context", """apiVersion: v1
kind: Config
clusters:
- name: kind-dev
  cluster:
    server: https://127.0.0.1:34567
    certificate-authority-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg==
users:
- name: dev-admin
  user:
    token: dev-token
contexts:
- name: dev
  context: {cluster: kind-dev, user: dev-admin, namespace: grpcdemo}
current-context: dev
""")
    write("fuzz_kubeconfig", "client_cert_relative_paths", """apiVersion: v1
kind: Config
clusters:
- name: prod
  cluster:
    server: https://[fd00::1]:6443/
    certificate-authority: ca.crt
    tls-server-name: kubernetes.default
users:
- name: prod-cert
  user:
    client-certificate: certs/client.crt
    client-key: certs/client.key
contexts:
- name: prod
  context: {cluster: prod, user: prod-cert}
current-context: prod
""")
    write("fuzz_kubeconfig", "token_file_insecure", """apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "https://api.example:443", insecure-skip-tls-verify: true}
users:
- name: u
  user: {tokenFile: /var/run/token}
contexts:
- name: x
  context: {cluster: c, user: u}
current-context: x
""")
    # yaml-cpp 0.7 stops at the ',' without an error (config/yaml_guard.h refuses it).
    write("fuzz_kubeconfig", "json_then_comma",
          '{"apiVersion": "v1", "kind": "Config", "current-context": "dev", "contexts": [{"name":'
          ' "dev", "context": {"cluster": "kind"}}], "clusters": [{"name": "kind", "cluster":'
          ' {"server": "https://127.0.0.1:6443"}}]}\n,\n')


# ---- DNS and grpc-timeout --------------------------------------------------------------------
def dns_name(name):
    return b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\x00"


def dns_packet(qtype, answers, rcode=0, qname="greeter-headless.grpcdemo.svc.cluster.local"):
    """answers: (type, ttl, rdata). Names in answers point back at the question (0xc00c)."""
    header = struct.pack(">HHHHHH", 0x1234, 0x8180 | rcode, 1, len(answers), 0, 0)
    q = dns_name(qname) + struct.pack(">HH", qtype, 1)
    rr = b""
    for rtype, ttl, rdata in answers:
        rr += b"\xc0\x0c" + struct.pack(">HHIH", rtype, 1, ttl, len(rdata)) + rdata
    return header + q + rr


def service_obj(ns, name, rv, spec):
    return ('{"kind":"Service","apiVersion":"v1","metadata":{"name":"%s","namespace":"%s",'
            '"resourceVersion":"%s"},"spec":%s}' % (name, ns, rv, spec))


def service_map_seeds():
    """Services then EndpointSlices as the mesh's watcher lists them, then watch events."""
    greeter = ('{"clusterIP":"10.96.0.15","clusterIPs":["10.96.0.15","fd00:10:96::f"],'
               '"type":"ClusterIP","ports":[{"name":"grpc","protocol":"TCP","port":50051,'
               '"targetPort":"grpc","appProtocol":"kubernetes.io/h2c"},{"name":"metrics",'
               '"port":9090,"targetPort":9100}]}')
    headless = '{"clusterIP":"None","ports":[{"name":"grpc","port":50051}]}'
    dns = ('{"clusterIP":"10.96.0.10","ports":[{"name":"dns","protocol":"UDP","port":53},'
           '{"name":"dns-tcp","protocol":"TCP","port":53}]}')
    services = ('{"kind":"ServiceList","apiVersion":"v1","metadata":{"resourceVersion":"500"},'
                '"items":[%s,%s,%s]}' % (service_obj("grpcdemo", "greeter", "490", greeter),
                                         service_obj("grpcdemo", "greeter-headless", "491", headless),
                                         service_obj("grpcdemo", "kube-dns", "492", dns)))
    ready = '{"addresses":["10.244.1.10"],"conditions":{"ready":true}}'
    ending = '{"addresses":["10.244.1.11"],"conditions":{"ready":false,"serving":true,"terminating":true}}'
    ports = '[{"name":"grpc","port":8080},{"name":"metrics","port":9100}]'
    slices = ('{"kind":"EndpointSliceList","apiVersion":"discovery.k8s.io/v1","metadata":'
              '{"resourceVersion":"500"},"items":[%s,%s]}'
              % (slice_obj("greeter-a", "495", "[%s,%s]" % (ready, ending), ports),
                 slice_obj("greeter-v6", "496", '[{"addresses":["fd00:10:244::a"]}]', ports, "IPv6")))
    events = [
        '{"type":"MODIFIED","object":%s}' % slice_obj("greeter-a", "501", "[%s]" % ending, ports),
        '{"type":"ADDED","object":%s}' % service_obj("shop", "cart", "502", '{"clusterIP":"10.96.1.20",'
                                                     '"ports":[{"port":80,"targetPort":8080}]}'),
        '{"type":"MODIFIED","object":%s}' % service_obj("grpcdemo", "greeter", "503",
                                                        greeter.replace("50051", "7000")),
        '{"type":"DELETED","object":%s}' % slice_obj("greeter-v6", "504", "null", "null", "IPv6"),
        '{"type":"DELETED","object":%s}' % service_obj("grpcdemo", "greeter", "505", "{}"),
        '{"type":"BOOKMARK","object":{"kind":"Service","apiVersion":"v1","metadata":'
        '{"resourceVersion":"600"}}}',
    ]
    write("fuzz_service_map", "lists_then_watch", "\n".join([services, slices] + events))
    write("fuzz_service_map", "lists_only", services + "\n" + slices)


def dns_seeds():
    a = dns_packet(1, [(1, 30, bytes([10, 244, 1, 10])), (1, 5, bytes([10, 244, 1, 11]))])
    aaaa = dns_packet(28, [(28, 60, bytes.fromhex("fd000000000000000000000000000007"))])
    empty = dns_packet(28, [])
    cname = dns_packet(1, [(5, 30, dns_name("greeter.other.svc.cluster.local"))])

    def pair(x, y):
        return struct.pack(">H", len(x)) + x + y
    write("fuzz_dns_answer", "a_and_aaaa", pair(a, aaaa))
    write("fuzz_dns_answer", "a_and_nodata", pair(a, empty))
    write("fuzz_dns_answer", "cname_only_and_aaaa", pair(cname, aaaa))
    write("fuzz_dns_answer", "duplicates", pair(dns_packet(1, [(1, 1, b"\x0a\x00\x00\x01")] * 3), empty))

    for i, t in enumerate(["1S", "100m", "99999999H", "250u", "7n", "30M", "1H", "12345678m"]):
        write("fuzz_grpc_timeout", "timeout_%d" % i, t)


def inject_seeds():
    # The golden inputs of the injector's tests: every workload kind, anchors and merge keys,
    # comments, annotations, a List.
    golden = os.path.join(ROOT, "tests", "unit", "inject", "golden")
    for name in sorted(os.listdir(golden)):
        if name.endswith(".in.yaml"):
            with open(os.path.join(golden, name)) as f:
                write("fuzz_inject", name[:-len(".in.yaml")], f.read())
    write("fuzz_inject", "scalars", "kind: Pod\nspec:\n  containers:\n    - name: a\n"
          "      args: [yes, 0x1F, .inf, '.nan', 1_000, \"a: b\", ~]\n"
          "      command: |\n        two\n        lines\n")


if __name__ == "__main__":
    inject_seeds()
    downstream_seeds()
    upstream_seeds()
    config_seeds()
    k8s_seeds()
    service_map_seeds()
    dns_seeds()
