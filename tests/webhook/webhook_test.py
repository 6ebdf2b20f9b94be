#!/usr/bin/python3
"""`h2mesh webhook` end to end: the real process over real TLS, namespaces from the fake API
server (tests/fakes/fake_kube_apiserver.py), AdmissionReviews sent the way the API server sends
them. Checks what a cluster relies on: the patch, applied with python3-jsonpatch, gives exactly
the pod `h2mesh inject --output json` gives; every case the webhook must not inject is allowed
without a patch; limits; certificate rotation through a symlink swap; /metrics; SIGTERM.

Certificates are made at test time with the openssl command in a temporary directory; the client
verifies the webhook against that CA. Run by ctest (tests/webhook/CMakeLists.txt) with
--h2mesh and --fake-apiserver; standard library plus Debian's python3-jsonpatch.
"""

import argparse
import base64
import copy
import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

import jsonpatch

ARGS = None
POLL = 0.05  # seconds between looks, in loops bounded by a deadline


def wait_for(what, check, seconds=20.0):
    """Polls `check` until it returns a true value (returned) or fails after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(POLL)


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE)


def make_certificates(d):
    """A CA, two serving certificates for 127.0.0.1 with known serials, in d/v1 and d/v2, and
    d/bad with v2's certificate and v1's key (a pair that does not match)."""
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=webhook-test-ca",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    with open(os.path.join(d, "leaf.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:h2mesh-webhook.h2mesh.svc\n"
                "extendedKeyUsage=serverAuth\n")
    for version, serial in (("v1", "0x1001"), ("v2", "0x2002")):
        os.makedirs(os.path.join(d, version))
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-keyout", version + "/tls.key", "-out", version + ".csr",
                "-subj", "/CN=h2mesh-webhook-" + version, cwd=d)
        openssl("x509", "-req", "-in", version + ".csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                "-set_serial", serial, "-out", version + "/tls.crt", "-days", "2",
                "-extfile", "leaf.ext", cwd=d)
    os.makedirs(os.path.join(d, "bad"))
    shutil.copy(os.path.join(d, "v2", "tls.crt"), os.path.join(d, "bad", "tls.crt"))
    shutil.copy(os.path.join(d, "v1", "tls.key"), os.path.join(d, "bad", "tls.key"))


def point_secret_at(d, version):
    """What the kubelet does to a Secret volume: files are symlinks through ..data, and ..data
    is replaced atomically (rename of a new symlink over it)."""
    tmp = os.path.join(d, "..data_tmp")
    os.symlink(version, tmp)
    os.rename(tmp, os.path.join(d, "..data"))
    for name in ("tls.crt", "tls.key"):
        link = os.path.join(d, name)
        if not os.path.islink(link):
            os.symlink(os.path.join("..data", name), link)


def pod(name, annotations=None, containers=None):
    meta = {"generateName": name + "-", "labels": {"app": name}}
    if annotations:
        meta["annotations"] = annotations
    return {
        "apiVersion": "v1", "kind": "Pod", "metadata": meta,
        "spec": {
            "containers": containers or [{"name": "app", "image": "greeter:1",
                                          "ports": [{"containerPort": 50051}]}],
            "restartPolicy": "Always",
            "serviceAccountName": "default",
        },
    }


def review(obj, namespace, uid="7f0b2891-916f-4ed6-b7cd-27bff1815a8c", dry_run=False,
           operation="CREATE", api_version="admission.k8s.io/v1"):
    return {
        "apiVersion": api_version, "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "requestResource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": namespace, "operation": operation,
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
            "object": obj, "oldObject": None, "dryRun": dry_run,
            "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"},
        },
    }


class WebhookTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.fake_log = cls.log = None
        cls.dir = tempfile.mkdtemp(prefix="h2mesh-webhook-test-")
        cls.procs = []
        try:
            cls.start()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def start(cls):
        # The fake API server, with the namespaces in place before the webhook lists them.
        kube = os.path.join(cls.dir, "kube")
        cls.fake_log = open(os.path.join(cls.dir, "fake.log"), "w")
        fake = subprocess.Popen(["/usr/bin/python3", ARGS.fake_apiserver, "--dir", kube],
                                stdout=subprocess.PIPE, stderr=cls.fake_log, text=True)
        cls.procs.append(fake)
        control = fake.stdout.readline().split()[-1]
        api = fake.stdout.readline().split()[-1]
        cls.control_url = control
        cls.control("PUT", "/namespaces/grpcdemo", {"labels": {"h2mesh-injection": "enabled"}})
        cls.control("PUT", "/namespaces/plain", {})
        kubeconfig = os.path.join(cls.dir, "kubeconfig")
        with open(kubeconfig, "w") as f:
            f.write("apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n"
                    "    server: %s\n    certificate-authority: %s\n"
                    "users:\n- name: wh\n  user:\n    token: test-token\n"
                    "contexts:\n- name: fake\n  context: {cluster: fake, user: wh}\n"
                    "current-context: fake\n" % (api, os.path.join(kube, "ca.crt")))

        cls.certs = os.path.join(cls.dir, "certs")
        os.makedirs(cls.certs)
        make_certificates(cls.certs)
        point_secret_at(cls.certs, "v1")
        cls.ca = os.path.join(cls.certs, "ca.crt")

        cls.log_path = os.path.join(cls.dir, "webhook.log")
        cls.log = open(cls.log_path, "w")
        cls.webhook = subprocess.Popen(
            [ARGS.h2mesh, "webhook", "--cert", os.path.join(cls.certs, "tls.crt"),
             "--key", os.path.join(cls.certs, "tls.key"), "--listen", "127.0.0.1:0",
             "--admin", "127.0.0.1:0", "--kubeconfig", kubeconfig, "--image", "h2mesh:test"],
            stdout=cls.log, stderr=subprocess.STDOUT)
        cls.procs.append(cls.webhook)
        found = wait_for("the webhook's listening line", lambda: re.search(
            r"serving POST /mutate on https://127\.0\.0\.1:(\d+) \(admin on 127\.0\.0\.1:(\d+)",
            cls.read_log()))
        cls.port, cls.admin_port = int(found.group(1)), int(found.group(2))
        wait_for("/ready", lambda: cls.admin_get("/ready")[0] == 200)

    @classmethod
    def tearDownClass(cls):
        for p in reversed(cls.procs):
            if p.poll() is None:
                p.kill()
            p.wait()
            if p.stdout:
                p.stdout.close()
        for f in ("fake_log", "log"):
            if getattr(cls, f, None):
                getattr(cls, f).close()
                setattr(cls, f, None)
        if os.environ.get("KEEP_TEST_DIR"):
            print("test directory kept:", cls.dir, file=sys.stderr)
        else:
            shutil.rmtree(cls.dir, ignore_errors=True)

    # ---- helpers ----------------------------------------------------------------------------

    @classmethod
    def read_log(cls):
        with open(cls.log_path) as f:
            return f.read()

    @classmethod
    def control(cls, method, path, body):
        req = urllib.request.Request(cls.control_url + path, method=method,
                                     data=json.dumps(body).encode())
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    @classmethod
    def admin_get(cls, path):
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d%s" % (cls.admin_port, path),
                                        timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def tls_context(self):
        ctx = ssl.create_default_context(cafile=self.ca)
        ctx.set_alpn_protocols(["http/1.1"])
        return ctx

    def connection(self):
        return http.client.HTTPSConnection("127.0.0.1", self.port, context=self.tls_context(),
                                           timeout=10)

    def post(self, body, conn=None, path="/mutate"):
        own = conn is None
        conn = conn or self.connection()
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        conn.request("POST", path, body=data, headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        text = r.read()
        if own:
            conn.close()
        return r.status, text

    def admit(self, body, conn=None):
        status, text = self.post(body, conn)
        self.assertEqual(status, 200, text)
        answer = json.loads(text)
        self.assertEqual(answer["apiVersion"], "admission.k8s.io/v1")
        self.assertEqual(answer["kind"], "AdmissionReview")
        self.assertTrue(answer["response"]["allowed"])
        return answer["response"]

    def inject_cli(self, obj):
        out = subprocess.run([ARGS.h2mesh, "inject", "--output", "json", "--image", "h2mesh:test"],
                             input=json.dumps(obj), capture_output=True, text=True, check=True)
        return json.loads(out.stdout)

    def patched(self, obj, response):
        self.assertEqual(response.get("patchType"), "JSONPatch")
        patch = json.loads(base64.b64decode(response["patch"]))
        return jsonpatch.apply_patch(copy.deepcopy(obj), patch)

    def peer_certificate(self):
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as raw:
            with self.tls_context().wrap_socket(raw, server_hostname="127.0.0.1") as s:
                return s.getpeercert(), s.selected_alpn_protocol()

    def metric(self, name):
        status, text = self.admin_get("/metrics")
        self.assertEqual(status, 200)
        for line in text.splitlines():
            if line.startswith(name + " "):
                return int(float(line.split()[1]))
        self.fail("no metric " + name)

    # ---- cases ------------------------------------------------------------------------------

    def test_labelled_namespace_gets_the_patch_inject_would_make(self):
        before = self.metric('h2mesh_webhook_requests_total{result="injected"}')
        for obj in (pod("greeter"),
                    pod("shop", annotations={"h2mesh.io/skip-outbound-ports": "5432",
                                             "h2mesh.io/log-level": "debug"},
                        containers=[{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}])):
            response = self.admit(review(obj, "grpcdemo"))
            self.assertEqual(response["uid"], "7f0b2891-916f-4ed6-b7cd-27bff1815a8c")
            self.assertEqual(self.patched(obj, response), self.inject_cli(obj))
        self.assertEqual(self.metric('h2mesh_webhook_requests_total{result="injected"}'),
                         before + 2)

    def test_requests_share_a_kept_alive_connection(self):
        conn = self.connection()
        try:
            for _ in range(3):
                self.assertIn("patch", self.admit(review(pod("a"), "grpcdemo"), conn))
                self.assertNotIn("patch", self.admit(review(pod("a"), "plain"), conn))
        finally:
            conn.close()

    def test_unlabelled_namespace_is_not_patched(self):
        response = self.admit(review(pod("greeter"), "plain"))
        self.assertNotIn("patch", response)

    def test_annotated_pod_in_unlabelled_namespace_is_patched(self):
        obj = pod("greeter", annotations={"h2mesh.io/inject": "enabled"})
        response = self.admit(review(obj, "plain"))
        self.assertEqual(self.patched(obj, response), self.inject_cli(obj))

    def test_opt_out_annotation_wins_over_the_label(self):
        before = self.metric('h2mesh_webhook_requests_total{result="skipped"}')
        obj = pod("greeter", annotations={"h2mesh.io/inject": "disabled"})
        self.assertNotIn("patch", self.admit(review(obj, "grpcdemo")))
        self.assertEqual(self.metric('h2mesh_webhook_requests_total{result="skipped"}'),
                         before + 1)

    def test_already_injected_pod_is_not_patched_again(self):
        before = self.metric('h2mesh_webhook_requests_total{result="already_injected"}')
        injected = self.inject_cli(pod("greeter"))
        self.assertNotIn("patch", self.admit(review(injected, "grpcdemo")))
        self.assertEqual(self.metric('h2mesh_webhook_requests_total{result="already_injected"}'),
                         before + 1)

    def test_bad_annotation_is_allowed_unpatched_with_a_warning(self):
        before = self.metric('h2mesh_webhook_requests_total{result="error"}')
        obj = pod("greeter", annotations={"h2mesh.io/skip-outbound-ports": "not-a-port"})
        response = self.admit(review(obj, "grpcdemo"))
        self.assertNotIn("patch", response)
        self.assertIn("h2mesh.io/skip-outbound-ports", " ".join(response.get("warnings", [])))
        self.assertEqual(self.metric('h2mesh_webhook_requests_total{result="error"}'), before + 1)

    def test_malformed_json_is_allowed_without_a_patch(self):
        before = self.metric('h2mesh_webhook_requests_total{result="invalid"}')
        response = self.admit(b'{"apiVersion": "admission.k8s.io/v1", "kind": "Admiss')
        self.assertNotIn("patch", response)
        self.assertEqual(response["uid"], "")
        self.assertEqual(self.metric('h2mesh_webhook_requests_total{result="invalid"}'),
                         before + 1)

    def test_wrong_version_is_allowed_and_echoes_the_uid(self):
        response = self.admit(review(pod("a"), "grpcdemo", uid="u-1",
                                     api_version="admission.k8s.io/v1beta1"))
        self.assertNotIn("patch", response)
        self.assertEqual(response["uid"], "u-1")

    def test_not_a_pod_is_not_patched_and_a_dry_run_is(self):
        other = review({"metadata": {"name": "x"}, "spec": {}}, "grpcdemo", uid="u-2")
        other["request"]["kind"]["kind"] = "Service"
        self.assertNotIn("patch", self.admit(other))
        # kubectl apply --dry-run=server shows the pod the create would make.
        self.assertEqual(self.admit(review(pod("a"), "grpcdemo", dry_run=True))["patch"],
                         self.admit(review(pod("a"), "grpcdemo"))["patch"])

    def test_huge_body_gets_413_and_others_are_still_served(self):
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as raw:
            with self.tls_context().wrap_socket(raw, server_hostname="127.0.0.1") as s:
                s.sendall(b"POST /mutate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                          b"Content-Length: 8388608\r\n\r\n{\"apiVersion\":")
                reply = b""
                while True:
                    chunk = s.recv(4096)
                    if not chunk:
                        break  # the server closed the connection
                    reply += chunk
        self.assertTrue(reply.startswith(b"HTTP/1.1 413 "), reply)
        self.assertIn(b"Connection: close", reply)
        self.assertIn("patch", self.admit(review(pod("a"), "grpcdemo")))

    def test_other_paths_and_methods(self):
        status, _ = self.post(review(pod("a"), "grpcdemo"), path="/validate")
        self.assertEqual(status, 404)
        conn = self.connection()
        try:
            conn.request("GET", "/mutate")
            r = conn.getresponse()
            r.read()
            self.assertEqual(r.status, 405)
        finally:
            conn.close()

    def test_namespace_label_changes_are_followed(self):
        self.assertNotIn("patch", self.admit(review(pod("a"), "later")))  # not known yet
        self.control("PUT", "/namespaces/later", {"labels": {"h2mesh-injection": "enabled"}})
        wait_for("injection in 'later'",
                 lambda: "patch" in self.admit(review(pod("a"), "later")))
        self.control("PUT", "/namespaces/later", {"labels": {"h2mesh-injection": "disabled"}})
        wait_for("no injection in 'later'",
                 lambda: "patch" not in self.admit(review(pod("a"), "later")))

    def test_ztls_alpn_and_certificate_rotation(self):
        # Named to run last among the cases: it changes the served certificate.
        cert, alpn = self.peer_certificate()
        self.assertEqual(alpn, "http/1.1")
        self.assertEqual(cert["serialNumber"], "1001")
        point_secret_at(self.certs, "v2")
        wait_for("the new certificate", lambda: self.peer_certificate()[0]["serialNumber"] == "2002")
        cert, _ = self.peer_certificate()
        self.assertIn((("commonName", "h2mesh-webhook-v2"),), cert["subject"])
        # A pair that does not match keeps the certificate in use, and says why once.
        point_secret_at(self.certs, "bad")
        # The files are looked at when a connection is accepted (at most once a second).
        wait_for("the reload failure in the log",
                 lambda: self.peer_certificate() and "do not load" in self.read_log())
        for _ in range(3):
            self.assertEqual(self.peer_certificate()[0]["serialNumber"], "2002")
        self.assertIn("patch", self.admit(review(pod("a"), "grpcdemo")))
        self.assertEqual(self.read_log().count("do not load"), 1)
        self.assertEqual(self.metric("h2mesh_webhook_tls_reloads_total"), 1)


class ShutdownTest(unittest.TestCase):
    """SIGTERM: the listener closes, the process exits 0."""

    def test_sigterm_exits_zero(self):
        WebhookTest.setUpClass()
        try:
            wh = WebhookTest.webhook
            conn = http.client.HTTPSConnection("127.0.0.1", WebhookTest.port, timeout=10,
                                               context=ssl.create_default_context(cafile=WebhookTest.ca))
            conn.connect()  # an idle kept-alive connection must not hold the exit back
            wh.send_signal(signal.SIGTERM)
            self.assertEqual(wh.wait(timeout=20), 0)
            with self.assertRaises(OSError):
                socket.create_connection(("127.0.0.1", WebhookTest.port), timeout=5).close()
            conn.close()
        finally:
            WebhookTest.tearDownClass()


def main():
    global ARGS
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--h2mesh", required=True)
    p.add_argument("--fake-apiserver", required=True)
    ARGS, rest = p.parse_known_args()
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)


if __name__ == "__main__":
    main()
