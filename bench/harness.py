"""bench/harness.py: what bench/soak and bench/chaos share to run h2mesh and greeters.

Every process started through spawn() leads its own process group (its own session), so that
stop_all() reaches it and whatever it started; stop_all() also wakes stopped groups (SIGCONT) so
that a SIGSTOPped backend still ends. Ports come from /proc when h2mesh listens on port 0.
"""

import os
import re
import signal
import socket
import subprocess
import time

from google.protobuf import descriptor_pb2
from google.protobuf import descriptor_pool
from google.protobuf import message_factory

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH_DIR)

_started = []  # Popen objects, each the leader of its own process group


def spawn(argv, log_path, **kw):
    log = open(log_path, "a")
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=log, start_new_session=True,
                         text=True, **kw)
    _started.append(p)
    return p


def signal_group(p, sig):
    """Sends sig to p's process group; False if the group is gone."""
    try:
        os.killpg(p.pid, sig)
        return True
    except ProcessLookupError:
        return False


def stop_all():
    for p in reversed(_started):
        if p.poll() is None:
            signal_group(p, signal.SIGTERM)
            signal_group(p, signal.SIGCONT)  # a stopped process handles SIGTERM only once woken
    for p in _started:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            signal_group(p, signal.SIGKILL)
            p.wait()


def wait_line(p, pattern, timeout=30):
    """Reads p's stdout until a line matches `pattern`; returns the match."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        line = p.stdout.readline()
        if not line:
            raise RuntimeError("process %s ended before printing %r" % (p.args[0], pattern))
        m = re.search(pattern, line)
        if m:
            return m
    raise RuntimeError("timed out waiting for %r" % pattern)


def build(build_dir):
    subprocess.run(["cmake", "-S", ROOT, "-B", build_dir, "-G", "Ninja",
                    "-DCMAKE_BUILD_TYPE=Release", "-DH2MESH_TESTS=OFF"], check=True,
                   stdout=subprocess.DEVNULL)
    subprocess.run(["ninja", "-C", build_dir, "h2mesh", "greeter"], check=True,
                   stdout=subprocess.DEVNULL)
    return os.path.join(build_dir, "bin")


def bin_dir_from_args(args):
    """--bin-dir/--no-build as bench/soak and bench/chaos take them; builds build-bench/ unless
    told not to."""
    bin_dir = args.bin_dir or os.path.join(ROOT, "build-bench", "bin")
    if not args.no_build:
        bin_dir = build(os.path.dirname(bin_dir) if args.bin_dir
                        else os.path.join(ROOT, "build-bench"))
    return bin_dir


def start_greeter(bin_dir, log_path, port=0, address="127.0.0.1", server_id=None):
    """Starts `greeter serve`; returns (Popen, port)."""
    argv = [os.path.join(bin_dir, "greeter"), "serve", "--address", address, "--port", str(port)]
    if server_id:
        argv += ["--id", server_id]
    p = spawn(argv, log_path)
    return p, int(wait_line(p, r" listening on .*:(\d+)\s*$").group(1))


def listening_ports(pid):
    """TCP ports the process listens on (from its sockets' inodes and /proc/net/tcp)."""
    inodes = set()
    fd_dir = "/proc/%d/fd" % pid
    try:
        for fd in os.listdir(fd_dir):
            try:
                link = os.readlink(os.path.join(fd_dir, fd))
            except OSError:
                continue
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
    except FileNotFoundError:
        return []
    ports = set()
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            parts = line.split()
            if parts[3] == "0A" and parts[9] in inodes:  # LISTEN
                ports.add(int(parts[1].split(":")[1], 16))
    return sorted(ports)


def find_grpc_port(ports):
    """The listener answers HTTP/1.1 with 505; the admin server with 200 or 503 (/ready)."""
    for port in ports:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(b"GET /ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = s.recv(64)
            if data.startswith(b"HTTP/1.1 505"):
                return port  # h2mesh's answer to HTTP/1.1 on a gRPC port
    raise RuntimeError("no gRPC listener among %s" % ports)


def wait_listening(proc, count, log_path, timeout=20):
    """Waits until proc listens on at least `count` ports (h2mesh: listener + admin)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        ports = listening_ports(proc.pid)
        if len(ports) >= count:
            return ports
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    raise RuntimeError("h2mesh did not listen; see %s" % log_path)


def version(bin_dir):
    def first(argv):
        out = subprocess.run(argv, capture_output=True, text=True).stdout.strip()
        return out.splitlines()[0] if out else "?"
    return "%s (%s), binaries from %s" % (
        first([os.path.join(bin_dir, "h2mesh"), "version"]),
        first(["git", "-C", ROOT, "describe", "--always", "--dirty", "--tags"]),
        os.path.relpath(os.path.realpath(bin_dir), ROOT))


def stats_classes():
    """StatsRequest and StatsReply of examples/greeter/helloworld.proto (GreeterStats/GetStats),
    from a descriptor built by hand as grpc_check.py builds the Hello messages."""
    fdp = descriptor_pb2.FileDescriptorProto(name="bench_greeter_stats.proto",
                                             package="helloworld", syntax="proto3")
    fdp.message_type.add(name="StatsRequest")
    reply = fdp.message_type.add(name="StatsReply")
    for name, number in (("calls", 1), ("cancelled", 2), ("completed", 3)):
        reply.field.add(name=name, number=number, type=descriptor_pb2.FieldDescriptorProto.TYPE_UINT64,
                        label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    out = []
    for name in ("StatsRequest", "StatsReply"):
        d = pool.FindMessageTypeByName("helloworld." + name)
        if hasattr(message_factory, "GetMessageClass"):
            out.append(message_factory.GetMessageClass(d))
        else:
            out.append(message_factory.MessageFactory(pool).GetPrototype(d))
    return out[0], out[1]
