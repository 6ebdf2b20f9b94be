#!/usr/bin/python3
"""A test OTLP/HTTP trace receiver: POST /v1/traces with an ExportTraceServiceRequest in
protobuf, decoded with the OpenTelemetry protobuf definitions (opentelemetry-proto, shipped by
the npm package in tests/fakes/otlp, compiled here with protoc). Every span received is written
as one JSON line to --out. Prints "otlp receiver listening on 127.0.0.1:PORT".

--status N answers N (e.g. 503) instead of 200; --delay-ms M waits before answering (a slow
receiver). Standard library + python3-protobuf + protoc only."""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
PROTOS = os.path.join(HERE, "otlp", "node_modules", "@opentelemetry", "otlp-grpc-exporter-base",
                      "build", "protos")
FILES = ["opentelemetry/proto/collector/trace/v1/trace_service.proto",
         "opentelemetry/proto/trace/v1/trace.proto",
         "opentelemetry/proto/common/v1/common.proto",
         "opentelemetry/proto/resource/v1/resource.proto"]


def load_messages():
    if not os.path.isdir(PROTOS):
        sys.exit("opentelemetry-proto files missing: run scripts/setup.sh (npm ci --prefix tests/fakes/otlp)")
    out = tempfile.mkdtemp(prefix="otlp-py-")
    subprocess.run(["protoc", "-I", PROTOS, "--python_out", out] + FILES, check=True)
    sys.path.insert(0, out)
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2  # noqa: E402
    from opentelemetry.proto.trace.v1 import trace_pb2  # noqa: E402
    return trace_service_pb2, trace_pb2


def value_of(any_value):
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None


def span_json(resource, scope, span, trace_pb2):
    return {
        "resource": {kv.key: value_of(kv.value) for kv in resource.attributes},
        "scope": scope.name,
        "trace_id": span.trace_id.hex(),
        "span_id": span.span_id.hex(),
        "parent_span_id": span.parent_span_id.hex(),
        "trace_state": span.trace_state,
        "name": span.name,
        "kind": trace_pb2.Span.SpanKind.Name(span.kind),
        "start_time_unix_nano": span.start_time_unix_nano,
        "end_time_unix_nano": span.end_time_unix_nano,
        "attributes": {kv.key: value_of(kv.value) for kv in span.attributes},
        "status": {"code": trace_pb2.Status.StatusCode.Name(span.status.code),
                   "message": span.status.message},
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--status", type=int, default=200)
    parser.add_argument("--delay-ms", type=int, default=0)
    args = parser.parse_args()
    service_pb2, trace_pb2 = load_messages()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if args.delay_ms:
                time.sleep(args.delay_ms / 1000.0)
            ok = (self.path == "/v1/traces" and
                  self.headers.get("Content-Type") == "application/x-protobuf")
            status = args.status if ok else 400
            if ok and status == 200:
                request = service_pb2.ExportTraceServiceRequest()
                request.ParseFromString(body)
                with lock, open(args.out, "a") as f:
                    for rs in request.resource_spans:
                        for ss in rs.scope_spans:
                            for span in ss.spans:
                                f.write(json.dumps(span_json(rs.resource, ss.scope, span, trace_pb2)) + "\n")
            self.send_response(status)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *a):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print("otlp receiver listening on 127.0.0.1:%d" % server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
