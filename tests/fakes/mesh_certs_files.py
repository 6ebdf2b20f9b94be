#!/usr/bin/python3
"""The files a sidecar would see in its mounted Secret, made by
deploy/mesh-certs/make-mesh-certs.sh: runs the script (YAML on stdout, no cluster) for the
service accounts given, then writes each Secret's tls.crt and tls.key as NAME.crt / NAME.key in
--dir, and its ca.crt as meshca.crt, the layout of tests/fakes/test_pki.py, so a test can take
its certificates from either. Several names may share a service account (pods of one Deployment
share its Secret). Debian's python3-yaml.

    mesh_certs_files.py --script make-mesh-certs.sh --dir D [--trust-domain TD] NAME=NS/SA...
"""

import argparse
import base64
import os
import subprocess
import sys

import yaml


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--script", required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--trust-domain")
    ap.add_argument("pairs", nargs="+", metavar="NAME=NS/SA")
    a = ap.parse_args()
    wanted = dict(p.split("=", 1) for p in a.pairs)
    argv = [a.script, "--ca-dir", os.path.join(a.dir, "mesh-ca")]
    if a.trust_domain:
        argv += ["--trust-domain", a.trust_domain]
    proc = subprocess.run(argv + sorted(set(wanted.values())), capture_output=True, text=True,
                          timeout=120)
    if proc.returncode != 0:
        print(proc.stderr, file=sys.stderr)
        return 1
    secrets = {}
    for doc in yaml.safe_load_all(proc.stdout):
        if doc:
            account = doc["metadata"]["namespace"] + "/" + doc["metadata"]["name"]
            secrets[account] = {k: base64.b64decode(v) for k, v in doc["data"].items()}
    os.makedirs(a.dir, exist_ok=True)
    for name, account in wanted.items():
        ns, sa = account.split("/", 1)
        files = secrets[f"{ns}/h2mesh-mesh-tls-{sa}"]
        for suffix, key in ((".crt", "tls.crt"), (".key", "tls.key")):
            path = os.path.join(a.dir, name + suffix)
            with open(path, "wb") as f:
                f.write(files[key])
            # The sidecars run as uid 1337 and read them (in a pod: the Secret volume's 0444).
            os.chmod(path, 0o644)
        with open(os.path.join(a.dir, "meshca.crt"), "wb") as f:
            f.write(files["ca.crt"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
