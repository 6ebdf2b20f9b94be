#!/usr/bin/python3
"""`h2mesh inject` produces pod specs Kubernetes would accept: every manifest of
deploy/grpcdemo/, tests/deploy/testdata/workloads.yaml (every workload kind, the user's own init
containers, every annotation the injector reads) and the injector's golden inputs
(tests/unit/inject/golden/*.in.yaml) are injected, native, --legacy-sidecar and with
certificates from Secrets (--mtls-source secret), and each result
is validated by tests/deploy/pod_schema.py (python3-kubernetes' API models plus the API server's
validation rules). Each injected pod is also checked to hold the contract's containers in the
contract's order, so an injection that silently did nothing cannot pass.

    /usr/bin/python3 tests/deploy/inject_schema_test.py --h2mesh build/bin/h2mesh [--source-dir .]

Ends with "N passed, M failed"; exits 1 when a check failed.
"""

import argparse
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import pod_schema  # noqa: E402
import yaml  # noqa: E402

STATUS = "h2mesh.io/inject-status"


def pod_templates(doc):
    """(metadata, spec) of each pod template in an object, as pod_schema walks them."""
    out = []
    if not isinstance(doc, dict):
        return out
    kind = doc.get("kind")
    if kind == "Pod":
        return [(doc.get("metadata") or {}, doc.get("spec") or {})]
    spec = doc.get("spec") or {}
    if kind == "CronJob":
        spec = ((spec.get("jobTemplate") or {}).get("spec")) or {}
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob"):
        t = spec.get("template") or {}
        return [(t.get("metadata") or {}, t.get("spec") or {})]
    if kind == "List":
        for item in doc.get("items") or []:
            out += pod_templates(item)
    return out


def where_of(error):
    """The field an error is about, without list indexes: the same field of the user's, moved
    down a list by the containers injection put first, reads the same. Only the field: YAML
    parsers differ on some plain scalars (0o755 is a string to PyYAML, an integer to go-yaml v2,
    which Kubernetes and h2mesh follow), so what an invalid value turned into is not compared."""
    return re.sub(r"\[\d+\]", "[]", error.split(": ")[0] + ": " + error.split(": ")[1])


def names(containers):
    return [c.get("name") for c in containers or []]


def tls_volume_errors(m0, s0, s1, secret_source, where):
    """Where the pod's mesh certificate comes from: the Secret its annotation names, else with
    --mtls-source secret its service account's Secret, else cert-manager's csi-driver."""
    vol = next((v for v in s1.get("volumes") or [] if v.get("name") == "h2mesh-tls"), None)
    if vol is None:
        return []
    named = (m0.get("annotations") or {}).get("h2mesh.io/mtls-secret")
    account = s0.get("serviceAccountName") or s0.get("serviceAccount") or "default"
    want = named or ("h2mesh-mesh-tls-" + account if secret_source else None)
    if want is None:
        return [] if "csi" in vol else [f"{where}: h2mesh-tls is not the csi-driver's: {vol}"]
    if (vol.get("secret") or {}).get("secretName") != want:
        return [f"{where}: h2mesh-tls {vol}, expected Secret {want}"]
    return []


def shape_errors(original, injected, legacy, where, secret_source=False):
    """The contract's additions, in its order, and nothing of the user's lost."""
    out = []
    before = pod_templates(original)
    after = pod_templates(injected)
    if len(before) != len(after):
        return [f"{where}: {len(before)} pod templates before, {len(after)} after"]
    for (m0, s0), (m1, s1) in zip(before, after):
        skipped = (s0.get("hostNetwork") is True or
                   (m0.get("annotations") or {}).get("h2mesh.io/inject") == "disabled" or
                   (legacy and (original.get("kind") in ("Job", "CronJob"))))
        if skipped:
            if (m0, s0) != (m1, s1):
                out.append(f"{where}: a skipped pod was changed")
            continue
        if STATUS in (m0.get("annotations") or {}):
            continue
        if STATUS not in (m1.get("annotations") or {}):
            out.append(f"{where}: no {STATUS} annotation: not injected")
            continue
        init0, init1 = names(s0.get("initContainers")), names(s1.get("initContainers"))
        app0, app1 = names(s0.get("containers")), names(s1.get("containers"))
        if legacy:
            want_init, want_app = ["h2mesh-init"] + init0, ["h2mesh-proxy"] + app0
        else:
            want_init, want_app = ["h2mesh-init", "h2mesh-proxy"] + init0, app0
        if init1 != want_init or app1 != want_app:
            out.append(f"{where}: initContainers {init1}, containers {app1}; expected "
                       f"{want_init}, {want_app}")
        vols = names(s1.get("volumes"))
        # Mesh mTLS is on unless the pod says h2mesh.io/mtls: disabled: its certificate volume.
        mtls = (m0.get("annotations") or {}).get("h2mesh.io/mtls") != "disabled"
        ours = ["h2mesh-kube-api", "h2mesh-xtables-lock"] + (["h2mesh-tls"] if mtls else [])
        if vols != names(s0.get("volumes")) + ours:
            out.append(f"{where}: volumes {vols}")
        out += tls_volume_errors(m0, s0, s1, secret_source, where)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--h2mesh", required=True)
    ap.add_argument("--source-dir", default=str(HERE.parents[1]))
    args = ap.parse_args()
    source = Path(args.source_dir).resolve()
    inputs = sorted((source / "deploy" / "grpcdemo").glob("*.yaml")) + \
        [HERE / "testdata" / "workloads.yaml"] + \
        sorted((source / "tests" / "unit" / "inject" / "golden").glob("*.in.yaml"))
    passed = failed = 0
    injected_pods = 0
    for path in inputs:
        rel = path.relative_to(source) if path.is_relative_to(source) else path
        originals = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
        for legacy, secret_source in ((False, False), (True, False), (False, True)):
            flags = (["--legacy-sidecar"] if legacy else []) + \
                (["--mtls-source", "secret"] if secret_source else [])
            mode = " ".join(flags) or "native"
            argv = [args.h2mesh, "inject", "-f", str(path)] + flags
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
            problems = []
            if proc.returncode != 0:
                problems.append(f"`h2mesh inject {mode}` exited {proc.returncode}: "
                                f"{proc.stderr.strip()}")
            else:
                docs = [d for d in yaml.safe_load_all(proc.stdout) if d is not None]
                if len(docs) != len(originals):
                    problems.append(f"{len(originals)} documents in, {len(docs)} out")
                for i, (o, d) in enumerate(zip(originals, docs)):
                    # An input that is not valid Kubernetes itself (the injector's golden files
                    # test YAML corner cases) may stay so: injection must add no problem.
                    before = {where_of(m) for m in pod_schema.object_errors(o)[0]}
                    e, _ = pod_schema.object_errors(d)
                    problems += [m for m in e if where_of(m) not in before]
                    problems += shape_errors(o, d, legacy, f"document {i + 1}", secret_source)
                    injected_pods += sum(1 for m, _ in pod_templates(d)
                                         if STATUS in (m.get("annotations") or {}))
            name = f"{rel} ({mode}): injected pods are valid Kubernetes"
            if problems:
                failed += 1
                print(f"FAIL {name}\n     " + "\n     ".join(problems))
            else:
                passed += 1
                print(f"ok   {name}")
    # The checks above ran on real injections, not on inputs passed through unchanged.
    if injected_pods >= 3 * 4:
        passed += 1
        print(f"ok   {injected_pods} injected pod templates validated")
    else:
        failed += 1
        print(f"FAIL only {injected_pods} injected pod templates validated")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
