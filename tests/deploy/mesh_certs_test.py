#!/usr/bin/python3
"""deploy/mesh-certs/make-mesh-certs.sh, run with the real openssl into temporary directories (no
cluster: YAML on stdout; a fake `kubectl` first on PATH for --from-cluster and --apply). Each
Secret it writes is parsed and its certificate checked the way a sidecar and its peers will use
it: the SPIFFE ID as the only SAN, server and client auth, the validity asked for, a chain that
`openssl verify` accepts against the CA for both purposes, the key of the certificate, the CA's
certificate as ca.crt; `h2mesh check` accepts the files as a mesh.tls block. A second run renews
(new keys, same CA); bad arguments fail before anything is written.

    /usr/bin/python3 tests/deploy/mesh_certs_test.py --h2mesh build/bin/h2mesh [--source-dir .]

Ends with "N passed, M failed"; exits 1 when a check failed. Needs python3-yaml and
python3-cryptography (Debian).
"""

import argparse
import base64
import datetime
import os
import shutil
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import pod_schema  # noqa: E402


class Failure(Exception):
    pass


def expect(condition, message):
    if not condition:
        raise Failure(message)


class Env:
    def __init__(self, source, h2mesh):
        self.script = source / "deploy" / "mesh-certs" / "make-mesh-certs.sh"
        self.h2mesh = h2mesh
        self.tmp = Path(tempfile.mkdtemp(prefix="h2mesh-mesh-certs-test-"))

    def run(self, *args, path_prefix=None, check=True):
        env = dict(os.environ)
        if path_prefix:
            env["PATH"] = f"{path_prefix}:{env['PATH']}"
        proc = subprocess.run([str(self.script), *args], capture_output=True, text=True,
                              timeout=120, env=env)
        if check:
            expect(proc.returncode == 0,
                   f"make-mesh-certs.sh {' '.join(args)}: exit {proc.returncode}: {proc.stderr}")
        return proc


def secrets_of(text):
    docs = [d for d in yaml.safe_load_all(text) if d is not None]
    for d in docs:
        expect(isinstance(d, dict) and d.get("kind") == "Secret", f"not a Secret: {d}")
    return docs


def decoded(secret):
    data = secret.get("data") or {}
    expect(sorted(data) == ["ca.crt", "tls.crt", "tls.key"],
           f"{secret['metadata']['name']}: data keys {sorted(data)}, expected the files the "
           "sidecar reads (tls.crt, tls.key, ca.crt)")
    return {k: base64.b64decode(v) for k, v in data.items()}


def openssl_verify(ca, crt, purpose):
    proc = subprocess.run(["openssl", "verify", "-purpose", purpose, "-CAfile", str(ca), str(crt)],
                          capture_output=True, text=True, timeout=30)
    return proc.returncode == 0, proc.stdout + proc.stderr


def check_secret(secret, ns, sa, ca_dir, work, trust_domain="cluster.local", days=30,
                 prefix="h2mesh-mesh-tls-"):
    """The Secret of ns/sa as a sidecar and its peers need it; returns its certificate."""
    meta = secret["metadata"]
    expect(secret.get("apiVersion") == "v1" and secret.get("type") == "kubernetes.io/tls",
           f"{meta}: expected a v1 Secret of type kubernetes.io/tls")
    expect(meta.get("name") == prefix + sa and meta.get("namespace") == ns,
           f"Secret {meta.get('namespace')}/{meta.get('name')}, expected {ns}/{prefix}{sa}")
    files = decoded(secret)
    spiffe = f"spiffe://{trust_domain}/ns/{ns}/sa/{sa}"
    expect(meta.get("annotations", {}).get("h2mesh.io/spiffe-id") == spiffe,
           f"{meta['name']}: annotation h2mesh.io/spiffe-id {meta.get('annotations')}")
    cert = x509.load_pem_x509_certificate(files["tls.crt"])
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    expect(san.get_values_for_type(x509.UniformResourceIdentifier) == [spiffe],
           f"{meta['name']}: URI SANs {san.get_values_for_type(x509.UniformResourceIdentifier)}, "
           f"expected [{spiffe}]")
    expect(len(list(san)) == 1, f"{meta['name']}: SANs besides the SPIFFE ID: {list(san)}")
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    expect(ExtendedKeyUsageOID.SERVER_AUTH in eku and ExtendedKeyUsageOID.CLIENT_AUTH in eku,
           f"{meta['name']}: extended key usages {list(eku)}: a sidecar serves and calls with it")
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage)
    expect(ku.critical and ku.value.digital_signature and not ku.value.key_cert_sign,
           f"{meta['name']}: key usage {ku}")
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    expect(not bc.value.ca, f"{meta['name']}: a leaf must not be a CA")
    # Debian 12's python3-cryptography (38) has only the naive UTC datetimes.
    start = cert.not_valid_before.replace(tzinfo=datetime.timezone.utc)
    end = cert.not_valid_after.replace(tzinfo=datetime.timezone.utc)
    now = datetime.datetime.now(datetime.timezone.utc)
    expect(start <= now + datetime.timedelta(seconds=5) and now - start <
           datetime.timedelta(minutes=10), f"{meta['name']}: notBefore {start}, now {now}")
    expect(abs((end - start) - datetime.timedelta(days=days)) < datetime.timedelta(minutes=1),
           f"{meta['name']}: valid {end - start}, expected {days} days")
    expect(meta.get("annotations", {}).get("h2mesh.io/not-after") ==
           end.strftime("%Y-%m-%dT%H:%M:%SZ"),
           f"{meta['name']}: annotation h2mesh.io/not-after {meta.get('annotations')} vs {end}")
    # The key is the certificate's.
    key = serialization.load_pem_private_key(files["tls.key"], password=None)
    pub = serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    expect(key.public_key().public_bytes(*pub) == cert.public_key().public_bytes(*pub),
           f"{meta['name']}: tls.key is not the key of tls.crt")
    # ca.crt is the CA's certificate, and the chain verifies for both ends of a connection.
    expect(files["ca.crt"] == (ca_dir / "ca.crt").read_bytes(),
           f"{meta['name']}: ca.crt is not {ca_dir}/ca.crt")
    d = work / f"{ns}.{sa}"
    d.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (d / name).write_bytes(data)
    for purpose in ("sslserver", "sslclient"):
        ok, out = openssl_verify(d / "ca.crt", d / "tls.crt", purpose)
        expect(ok, f"{meta['name']}: openssl verify -purpose {purpose}: {out}")
    return cert


def check_secrets_verify_and_renew(env):
    ca = env.tmp / "renew" / "ca"
    accounts = ["grpcdemo/greeter-client", "grpcdemo/greeter", "billing/default"]
    first = env.run("--ca-dir", str(ca), *accounts)
    expect("made a new mesh CA" in first.stderr, f"no word of a new CA: {first.stderr}")
    expect(oct((ca).stat().st_mode & 0o777) == "0o700" and
           oct((ca / "ca.key").stat().st_mode & 0o777) == "0o600",
           "the CA directory must be 0700 and its key 0600")
    secrets = secrets_of(first.stdout)
    expect(len(secrets) == 3, f"{len(secrets)} Secrets for 3 service accounts")
    certs = {}
    for secret, account in zip(secrets, accounts):
        ns, sa = account.split("/")
        certs[account] = check_secret(secret, ns, sa, ca, env.tmp / "renew" / "1")
        errors, unchecked = pod_schema.object_errors(secret)
        expect(not errors and not unchecked, f"{account}: not a valid Secret: {errors} {unchecked}")
    ca_before = (ca / "ca.crt").read_bytes()
    # Renewal: the same command again. The CA stays; every key and certificate is new.
    second = env.run("--ca-dir", str(ca), *accounts)
    expect("made a new mesh CA" not in second.stderr, "the second run made a new CA")
    expect((ca / "ca.crt").read_bytes() == ca_before, "the second run changed ca.crt")
    for secret, account in zip(secrets_of(second.stdout), accounts):
        ns, sa = account.split("/")
        renewed = check_secret(secret, ns, sa, ca, env.tmp / "renew" / "2")
        expect(renewed.serial_number != certs[account].serial_number,
               f"{account}: the renewed certificate has the old serial")
        expect(renewed.public_key().public_numbers() != certs[account].public_key().public_numbers(),
               f"{account}: the renewed certificate has the old key")


def check_options(env):
    ca = env.tmp / "options" / "ca"
    proc = env.run("--ca-dir", str(ca), "--trust-domain", "prod.example.org", "--days", "7",
                   "--secret-prefix", "mesh.", "shop/cart", "shop/cart")
    secrets = secrets_of(proc.stdout)
    expect(len(secrets) == 1, f"a service account given twice must make one Secret, not "
                              f"{len(secrets)}")
    check_secret(secrets[0], "shop", "cart", ca, env.tmp / "options" / "out",
                 trust_domain="prod.example.org", days=7, prefix="mesh.")


def check_h2mesh_accepts(env):
    """The files, as the sidecar's mesh.tls, pass `h2mesh check` (exist, parse, key matches,
    valid now): what h2mesh itself checks before it serves them."""
    ca = env.tmp / "check" / "ca"
    proc = env.run("--ca-dir", str(ca), "grpcdemo/greeter")
    out = env.tmp / "check" / "out"
    check_secret(secrets_of(proc.stdout)[0], "grpcdemo", "greeter", ca, out)
    d = out / "grpcdemo.greeter"
    config = env.tmp / "check" / "h2mesh.yaml"
    config.write_text(f"mesh:\n  tls:\n    cert: {d}/tls.crt\n    key: {d}/tls.key\n"
                      f"    ca: {d}/ca.crt\n")
    checked = subprocess.run([env.h2mesh, "check", "--config", str(config)], capture_output=True,
                             text=True, timeout=30)
    expect(checked.returncode == 0 and "warning" not in checked.stderr,
           f"h2mesh check: exit {checked.returncode}: {checked.stdout}{checked.stderr}")


FAKE_KUBECTL = r"""#!/bin/bash
# Records its arguments (one call a line) and stdin of apply; answers the two listings.
echo "$*" >> "$FAKE_KUBECTL_LOG"
case "$*" in
  *"get namespaces -l h2mesh-injection=enabled"*) printf 'grpcdemo\nbilling\n' ;;
  *"get serviceaccounts -n grpcdemo "*) printf 'default\ngreeter\ngreeter-client\n' ;;
  *"get serviceaccounts -n billing "*) printf 'default\n' ;;
  *"get serviceaccounts -n empty "*) ;;
  "apply "*|*" apply "*) cat > "$FAKE_KUBECTL_APPLIED"; echo "secret/applied serverside-applied" ;;
  *) echo "fake kubectl: unexpected: $*" >&2; exit 1 ;;
esac
"""


def fake_kubectl(env, name):
    bin_dir = env.tmp / name / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "kubectl").write_text(FAKE_KUBECTL)
    (bin_dir / "kubectl").chmod(0o755)
    os.environ["FAKE_KUBECTL_LOG"] = str(env.tmp / name / "calls")
    os.environ["FAKE_KUBECTL_APPLIED"] = str(env.tmp / name / "applied.yaml")
    return bin_dir


def check_from_cluster(env):
    bin_dir = fake_kubectl(env, "cluster")
    ca = env.tmp / "cluster" / "ca"
    # The labelled namespaces' service accounts, plus one named on the command line.
    proc = env.run("--ca-dir", str(ca), "--from-cluster", "--context", "kind-h2mesh",
                   "other/batch", path_prefix=bin_dir)
    got = [(s["metadata"]["namespace"], s["metadata"]["name"]) for s in secrets_of(proc.stdout)]
    want = [("other", "h2mesh-mesh-tls-batch"), ("grpcdemo", "h2mesh-mesh-tls-default"),
            ("grpcdemo", "h2mesh-mesh-tls-greeter"),
            ("grpcdemo", "h2mesh-mesh-tls-greeter-client"), ("billing", "h2mesh-mesh-tls-default")]
    expect(got == want, f"Secrets {got}, expected {want}")
    calls = (env.tmp / "cluster" / "calls").read_text().splitlines()
    expect(all(c.startswith("--context kind-h2mesh ") for c in calls),
           f"kubectl calls without --context: {calls}")
    # --namespace instead of the label.
    proc = env.run("--ca-dir", str(ca), "--from-cluster", "-n", "billing", path_prefix=bin_dir)
    got = [(s["metadata"]["namespace"], s["metadata"]["name"]) for s in secrets_of(proc.stdout)]
    expect(got == [("billing", "h2mesh-mesh-tls-default")], f"with -n billing: {got}")
    # A namespace without service accounts and nothing else: an error, no YAML.
    proc = env.run("--ca-dir", str(ca), "--from-cluster", "-n", "empty", path_prefix=bin_dir,
                   check=False)
    expect(proc.returncode == 1 and proc.stdout == "" and "no service account" in proc.stderr,
           f"no service account found: exit {proc.returncode}, {proc.stderr}")


def check_apply(env):
    bin_dir = fake_kubectl(env, "apply")
    ca = env.tmp / "apply" / "ca"
    proc = env.run("--ca-dir", str(ca), "--apply", "grpcdemo/greeter", path_prefix=bin_dir)
    calls = (env.tmp / "apply" / "calls").read_text().splitlines()
    expect(len(calls) == 1 and calls[0].startswith("apply --server-side "),
           f"kubectl calls {calls}: expected one server-side apply (no last-applied annotation "
           "holding a copy of the key)")
    expect("BEGIN" not in proc.stdout and "tls.key" not in proc.stdout,
           f"--apply printed the Secrets: {proc.stdout[:200]}")
    applied = secrets_of((env.tmp / "apply" / "applied.yaml").read_text())
    expect(len(applied) == 1, f"{len(applied)} Secrets applied")
    check_secret(applied[0], "grpcdemo", "greeter", ca, env.tmp / "apply" / "out")


def check_errors(env):
    ca = env.tmp / "errors" / "ca"
    cases = [
        ([], 2, "--ca-dir is required"),
        (["--ca-dir", str(ca)], 2, "no service account"),
        (["--ca-dir", str(ca), "--days", "0", "a/b"], 2, "usage"),
        (["--ca-dir", str(ca), "--bogus", "a/b"], 2, "unknown option --bogus"),
        (["--ca-dir", str(ca), "-n", "a", "a/b"], 2, "--namespace goes with --from-cluster"),
        (["--ca-dir", str(ca), "grpcdemo"], 1, "'grpcdemo': expected NAMESPACE/SERVICEACCOUNT"),
        (["--ca-dir", str(ca), "GrpcDemo/x"], 1, "'GrpcDemo' is not a namespace name"),
        (["--ca-dir", str(ca), "ns/sa_1"], 1, "'sa_1' is not a service account name"),
        (["--ca-dir", str(ca), "ns/" + "a" * 240], 1, "is too long"),
        (["--ca-dir", str(ca), "--trust-domain", "Cluster.Local", "a/b"], 1, "--trust-domain"),
        (["--ca-dir", str(ca), "--secret-prefix", "Mesh_", "a/b"], 1, "--secret-prefix"),
    ]
    for args, code, words in cases:
        proc = env.run(*args, check=False)
        expect(proc.returncode == code and words in proc.stderr and proc.stdout == "",
               f"make-mesh-certs.sh {' '.join(args)[:80]}: exit {proc.returncode} (expected "
               f"{code}), stdout {len(proc.stdout)} bytes, stderr: {proc.stderr[-300:]}")
    expect(not ca.exists(), "a refused run made the CA anyway")
    # A CA directory that is half there, or whose key is another's, is refused.
    env.run("--ca-dir", str(ca), "a/b")
    other = env.tmp / "errors" / "other"
    env.run("--ca-dir", str(other), "a/b")
    shutil.copy(other / "ca.key", ca / "ca.key")
    proc = env.run("--ca-dir", str(ca), "a/b", check=False)
    expect(proc.returncode == 1 and "is not the key of" in proc.stderr and proc.stdout == "",
           f"a CA key that is not the certificate's: {proc.returncode} {proc.stderr}")
    (ca / "ca.key").unlink()
    proc = env.run("--ca-dir", str(ca), "a/b", check=False)
    expect(proc.returncode == 1 and "only one of" in proc.stderr, f"half a CA: {proc.stderr}")
    # A CA that would expire before the certificate: refused (the leaf would stop verifying).
    short = env.tmp / "errors" / "short"
    env.run("--ca-dir", str(short), "--ca-days", "10", "--days", "5", "a/b")
    proc = env.run("--ca-dir", str(short), "--days", "30", "a/b", check=False)
    expect(proc.returncode == 1 and "expires within 30 days" in proc.stderr and proc.stdout == "",
           f"a CA shorter than the certificate: {proc.returncode} {proc.stderr}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--h2mesh", required=True)
    ap.add_argument("--source-dir", default=str(HERE.parents[1]))
    args = ap.parse_args()
    env = Env(Path(args.source_dir).resolve(), args.h2mesh)
    passed = failed = 0
    try:
        for name, check in [
                ("Secrets verify against the CA, SPIFFE ID, usages, validity, key; rerun renews",
                 check_secrets_verify_and_renew),
                ("--trust-domain, --days, --secret-prefix; duplicates once", check_options),
                ("h2mesh check accepts the files as mesh.tls", check_h2mesh_accepts),
                ("--from-cluster lists labelled namespaces' (or -n's) service accounts",
                 check_from_cluster),
                ("--apply: one server-side kubectl apply, nothing on stdout", check_apply),
                ("bad arguments and CA directories: refused, nothing written", check_errors)]:
            try:
                check(env)
                passed += 1
                print(f"ok   {name}")
            except Failure as e:
                failed += 1
                print(f"FAIL {name}\n     {e}")
            except Exception:  # noqa: BLE001 - a crash of one check is that check's failure
                failed += 1
                print(f"FAIL {name}\n{traceback.format_exc()}")
    finally:
        shutil.rmtree(env.tmp, ignore_errors=True)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
