#!/usr/bin/python3
"""Drives the h2mesh dashboard in headless Chromium over the DevTools protocol (standard
library only: the WebSocket is framed by hand) and reports what the page shows, as JSON on
stdout, for tests/integration/dashboard_test.cc to check.

1. Opens the page and waits (bounded) until it lists --endpoints rows, each with a share of
   calls; reads the rows and, right after, /clusters.
2. Saves a screenshot (--screenshot).
3. Kills --kill-pid, then reads the page until the row of --kill-endpoint leaves "available"
   or --unhealthy-within seconds passed; reports its state and when it changed.
"""
import argparse
import base64
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request

ROWS_JS = ("JSON.stringify([...document.querySelectorAll('tr[data-endpoint]')].map(r => "
           "({address: r.dataset.endpoint, state: r.dataset.state, share: Number(r.dataset.share)})))")


class DevTools:
    """One WebSocket to a page target: requests by id, events skipped."""

    def __init__(self, ws_url):
        assert ws_url.startswith("ws://")
        host_port, path = ws_url[5:].split("/", 1)
        host, port = host_port.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=30)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET /{path} HTTP/1.1\r\nHost: {host_port}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise RuntimeError("DevTools closed the WebSocket handshake")
            head += chunk
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise RuntimeError("DevTools refused the WebSocket: " + head.decode(errors="replace"))
        self.buffer = head.split(b"\r\n\r\n", 1)[1]
        self.next_id = 0

    def _read(self, n):
        while len(self.buffer) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise RuntimeError("DevTools closed the WebSocket")
            self.buffer += chunk
        out, self.buffer = self.buffer[:n], self.buffer[n:]
        return out

    def _send(self, text):
        payload = text.encode()
        mask = os.urandom(4)
        header = bytes([0x81])  # FIN, text
        if len(payload) < 126:
            header += bytes([0x80 | len(payload)])
        elif len(payload) < 65536:
            header += bytes([0x80 | 126]) + struct.pack(">H", len(payload))
        else:
            header += bytes([0x80 | 127]) + struct.pack(">Q", len(payload))
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def _message(self):
        data = b""
        while True:
            b0, b1 = self._read(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._read(8))[0]
            data += self._read(n)  # the server does not mask
            if b0 & 0x80:
                return data.decode()

    def call(self, method, **params):
        self.next_id += 1
        self._send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self._message())
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg["result"]

    def evaluate(self, expression):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")


def start_chromium(binary, profile):
    proc = subprocess.Popen(
        [binary, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         "--no-first-run", "--window-size=1200,760", "--remote-debugging-port=0",
         "--user-data-dir=" + profile, "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    port_file = os.path.join(profile, "DevToolsActivePort")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if os.path.exists(port_file):
            lines = open(port_file).read().split()
            if lines:
                return proc, int(lines[0])
        if proc.poll() is not None:
            raise RuntimeError(f"chromium exited with {proc.returncode}")
        time.sleep(0.1)
    raise RuntimeError("chromium did not open its DevTools port within 60 s")


def page_target(port):
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
            for t in json.load(r):
                if t.get("type") == "page" and t.get("webSocketDebuggerUrl"):
                    return t["webSocketDebuggerUrl"]
        time.sleep(0.1)
    raise RuntimeError("no page target")


def screenshot(tools, path):
    data = tools.call("Page.captureScreenshot", format="png")["data"]
    with open(path, "wb") as f:
        f.write(base64.b64decode(data))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--chromium", required=True)
    ap.add_argument("--admin-port", type=int, required=True)
    ap.add_argument("--endpoints", type=int, required=True)
    ap.add_argument("--screenshot", required=True)
    ap.add_argument("--kill-pid", type=int, required=True)
    ap.add_argument("--kill-endpoint", required=True)
    ap.add_argument("--unhealthy-within", type=float, default=2.0)
    args = ap.parse_args()
    base = f"http://127.0.0.1:{args.admin_port}"
    report = {}
    profile = tempfile.mkdtemp(prefix="h2mesh-chromium-")
    proc = None
    try:
        proc, port = start_chromium(args.chromium, profile)
        tools = DevTools(page_target(port))
        tools.call("Page.enable")
        tools.call("Page.navigate", url=base + "/")

        # 1. Every endpoint listed, each with calls in the window (bounded: 30 s).
        # The page's first poll has no window yet (counts since the start): wait for one that has.
        rows = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            rows = json.loads(tools.evaluate(ROWS_JS) or "[]")
            windowed = "s window" in (tools.evaluate("document.getElementById('status').textContent") or "")
            if windowed and len(rows) == args.endpoints and all(r["share"] > 0 for r in rows):
                break
            time.sleep(0.2)
        with urllib.request.urlopen(base + "/clusters", timeout=10) as r:
            report["clusters"] = json.load(r)
        report["rows"] = rows
        report["status_line"] = tools.evaluate("document.getElementById('status').textContent")

        # 2. The picture (once the bars' transition has settled).
        time.sleep(0.5)
        screenshot(tools, args.screenshot)

        # 3. A backend dies: its row must leave "available".
        os.kill(args.kill_pid, signal.SIGKILL)
        killed_at = time.monotonic()
        state, seen_after = None, None
        while time.monotonic() - killed_at < args.unhealthy_within:
            for r in json.loads(tools.evaluate(ROWS_JS) or "[]"):
                if r["address"] == args.kill_endpoint:
                    state = r["state"]
            if state not in (None, "available"):
                seen_after = time.monotonic() - killed_at
                break
            time.sleep(0.05)
        report["killed_state"] = state
        report["killed_seen_after_seconds"] = seen_after
        base_name, ext = os.path.splitext(args.screenshot)
        screenshot(tools, base_name + "-killed" + ext)
    except Exception as e:  # reported to the test, which fails with it
        report["error"] = f"{type(e).__name__}: {e}"
    finally:
        if proc is not None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
        shutil.rmtree(profile, ignore_errors=True)
    print(json.dumps(report))


if __name__ == "__main__":
    sys.exit(main())
