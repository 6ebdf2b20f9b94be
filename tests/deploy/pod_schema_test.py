#!/usr/bin/python3
"""Tests of tests/deploy/pod_schema.py: the pod specs Kubernetes would reject are rejected (one
known-bad change at a time to a pod the injection contract describes, each with the message
that names its field), and what deploy/ ships and the contract's injected pods pass.

    /usr/bin/python3 tests/deploy/pod_schema_test.py [--source-dir .]

Needs python3-yaml and python3-kubernetes (Debian). Ends with "N passed, M failed"; exits 1 when
a check failed.
"""

import argparse
import copy
import subprocess
import sys
import tempfile
from decimal import Decimal
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import pod_schema  # noqa: E402
import yaml  # noqa: E402

CONTRACT = HERE / "testdata" / "contract-injected-pod.yaml"


def contract_pods():
    native, legacy = [d for d in yaml.safe_load_all(CONTRACT.read_text()) if d]
    return native, legacy


def container(pod, name):
    spec = pod["spec"]
    for c in (spec.get("initContainers") or []) + spec["containers"]:
        if c["name"] == name:
            return c
    raise KeyError(name)


def as_deployment(pod):
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "d", "namespace": "grpcdemo"},
            "spec": {"selector": {"matchLabels": {"app": "d"}},
                     "template": {"metadata": {"labels": {"app": "d"},
                                               "annotations": pod["metadata"]["annotations"]},
                                  "spec": pod["spec"]}}}


def as_cronjob(pod):
    return {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "c"},
            "spec": {"schedule": "*/5 * * * *",
                     "jobTemplate": {"spec": {"template": {
                         "spec": dict(pod["spec"], restartPolicy="OnFailure")}}}}}


# (what is wrong, the change to the native contract pod, a text the error must contain)
def _set(path_fn, key, value):
    def change(pod):
        path_fn(pod)[key] = value
        return pod
    return change


def init(pod):
    return container(pod, "h2mesh-init")


def proxy(pod):
    return container(pod, "h2mesh-proxy")


def app(pod):
    return container(pod, "app")


def _with(fn):
    def change(pod):
        fn(pod)
        return pod
    return change


BAD = [
    ("unknown container field (typo)", _set(proxy, "imagePullPolcy", "IfNotPresent"),
     "initContainers[1]: unknown field 'imagePullPolcy'"),
    ("unknown pod field", _set(lambda p: p["spec"], "sidecars", []),
     "spec: unknown field 'sidecars'"),
    ("a field newer than the schema that was not added (resizePolicy, 1.27)",
     _set(app, "resizePolicy", [{"resourceName": "cpu", "restartPolicy": "NotRequired"}]),
     "unknown field 'resizePolicy'"),
    ("containerPort as a string",
     _with(lambda p: proxy(p)["ports"][0].update(containerPort="9901")),
     "ports[0].containerPort: must be an integer, not a string"),
    ("hostNetwork as a string", _set(lambda p: p["spec"], "hostNetwork", "true"),
     "spec.hostNetwork: must be true or false"),
    ("args not a list", _set(proxy, "args", "run --mesh"), "args: must be a list"),
    ("args holding a number", _with(lambda p: init(p)["args"].__setitem__(3, 1337)),
     "args[3]: must be a string, not an integer"),
    ("container without a name", _with(lambda p: app(p).pop("name")),
     "containers[0]: missing required field 'name'"),
    ("env entry without a name", _with(lambda p: proxy(p)["env"][2].pop("name")),
     "env[2]: missing required field 'name'"),
    ("pod without containers", _with(lambda p: p["spec"].pop("containers")),
     "spec: missing required field 'containers'"),
    ("grpc probe without a port",
     _set(app, "readinessProbe", {"grpc": {"service": "x"}}),
     "readinessProbe.grpc: missing required field 'port'"),
    ("restartPolicy on an app container", _set(app, "restartPolicy", "Always"),
     "containers[0].restartPolicy: may only be set on init containers"),
    ("restartPolicy other than Always on an init container",
     _set(proxy, "restartPolicy", "OnFailure"), "'OnFailure' is not supported (only Always)"),
    ("readiness probe on a regular init container",
     _set(init, "readinessProbe", {"httpGet": {"path": "/ready", "port": 9901}}),
     "initContainers[0].readinessProbe: may not be set for init containers without "
     "restartPolicy Always"),
    ("startup probe on a sidecar that lost restartPolicy",
     _with(lambda p: proxy(p).pop("restartPolicy")),
     "initContainers[1].startupProbe: may not be set for init containers"),
    ("lifecycle on a regular init container",
     _set(init, "lifecycle", {"preStop": {"exec": {"command": ["true"]}}}),
     "initContainers[0].lifecycle: may not be set for init containers"),
    ("container name used by an init and an app container", _set(app, "name", "h2mesh-proxy"),
     "containers[0].name: duplicate container name 'h2mesh-proxy'"),
    ("container name not a DNS-1123 label", _set(app, "name", "App_1"),
     "'App_1' is not a DNS-1123 label"),
    ("port name longer than 15 characters",
     _with(lambda p: proxy(p)["ports"][0].update(name="h2mesh-admin-port")),
     "'h2mesh-admin-port' is not an IANA_SVC_NAME"),
    ("port name without a letter", _with(lambda p: proxy(p)["ports"][0].update(name="9901")),
     "'9901' is not an IANA_SVC_NAME"),
    ("duplicate port name in a container",
     _with(lambda p: proxy(p)["ports"].append({"name": "h2mesh-admin", "containerPort": 9902})),
     "ports[1].name: duplicate port name 'h2mesh-admin'"),
    ("port number out of range",
     _with(lambda p: proxy(p)["ports"][0].update(containerPort=70000)),
     "70000 is not a port number"),
    ("duplicate volume name",
     _with(lambda p: p["spec"]["volumes"].append({"name": "h2mesh-kube-api",
                                                  "emptyDir": {}})),
     "volumes[1].name: duplicate volume name 'h2mesh-kube-api'"),
    ("volume with two sources",
     _with(lambda p: p["spec"]["volumes"][0].update(emptyDir={})),
     "volumes[0]: must specify exactly one volume source"),
    ("Secret volume without secretName",
     _with(lambda p: p["spec"]["volumes"].append({"name": "h2mesh-tls", "secret": {
         "defaultMode": 0o444}})),
     "volumes[1].secret.secretName: required"),
    ("Secret volume with a mode beyond 0777 (644 in decimal, meant as octal)",
     _with(lambda p: p["spec"]["volumes"].append({"name": "h2mesh-tls", "secret": {
         "secretName": "h2mesh-mesh-tls-default", "defaultMode": 644}})),
     "volumes[1].secret.defaultMode: 644 must be a number between 0 and 0777"),
    ("volumeMount naming no volume",
     _with(lambda p: proxy(p)["volumeMounts"][0].update(name="kube-api")),
     "volumeMounts[0].name: volume 'kube-api' is not in spec.volumes"),
    ("quantity that does not parse",
     _with(lambda p: proxy(p)["resources"]["limits"].update(memory="64MB")),
     "resources.limits.memory: '64MB' is not a quantity"),
    ("request above limit",
     _with(lambda p: proxy(p)["resources"]["requests"].update(memory="128Mi")),
     "resources.requests.memory: 128Mi must be less than or equal to the limit 64Mi"),
    ("cpu request above limit, in other units",
     _with(lambda p: init(p)["resources"]["requests"].update(cpu="0.2")),
     "resources.requests.cpu: 0.2 must be less than or equal to the limit 100m"),
    ("resource name that is not a container resource",
     _with(lambda p: proxy(p)["resources"]["limits"].update(cpus="1")),
     "resources.limits.cpus: not a standard container resource"),
    ("env var name with a space",
     _with(lambda p: proxy(p)["env"][2].update(name="H2MESH ADMIN")),
     "'H2MESH ADMIN' is not a valid environment variable name"),
    ("env var with value and valueFrom",
     _with(lambda p: proxy(p)["env"][0].update(value="x")),
     "env[0]: may not have both value and valueFrom"),
    ("env fieldRef the downward API does not offer to env",
     _with(lambda p: proxy(p)["env"][1]["valueFrom"]["fieldRef"].update(
         fieldPath="metadata.labels")),
     "fieldPath: 'metadata.labels' is not supported by the downward API"),
    ("volume downwardAPI fieldRef only env may use",
     _with(lambda p: p["spec"]["volumes"][0]["projected"]["sources"][2]["downwardAPI"]["items"][0]
           ["fieldRef"].update(fieldPath="status.podIP")),
     "fieldPath: 'status.podIP' is not supported by the downward API"),
    ("fieldRef apiVersion other than v1",
     _with(lambda p: proxy(p)["env"][0]["valueFrom"]["fieldRef"].update(apiVersion="v2")),
     "fieldRef.apiVersion: 'v2' is not supported"),
    ("unknown capability",
     _with(lambda p: init(p)["securityContext"]["capabilities"]["add"].append("NET_ADMINS")),
     "capabilities.add: unknown capability 'NET_ADMINS'"),
    ("privileged without privilege escalation",
     _with(lambda p: init(p)["securityContext"].update(privileged=True)),
     "cannot set allowPrivilegeEscalation to false and privileged to true"),
    ("SYS_ADMIN without privilege escalation",
     _with(lambda p: init(p)["securityContext"]["capabilities"]["add"].append("SYS_ADMIN")),
     "cannot set allowPrivilegeEscalation to false and capabilities.add CAP_SYS_ADMIN"),
    ("runAsNonRoot with uid 0",
     _with(lambda p: proxy(p)["securityContext"].update(runAsUser=0)),
     "runAsNonRoot is true but runAsUser is 0"),
    ("negative uid", _with(lambda p: proxy(p)["securityContext"].update(runAsUser=-1)),
     "runAsUser: -1 must be between 0 and 2147483647"),
    ("token expiring in less than 10 minutes",
     _with(lambda p: p["spec"]["volumes"][0]["projected"]["sources"][0]["serviceAccountToken"]
           .update(expirationSeconds=300)),
     "expirationSeconds: 300 must be at least 600"),
    ("two projections writing the same path",
     _with(lambda p: p["spec"]["volumes"][0]["projected"]["sources"][1]["configMap"]["items"][0]
           .update(path="token")),
     "conflicting duplicate path 'token'"),
    ("probe with two handlers",
     _with(lambda p: proxy(p)["startupProbe"].update(tcpSocket={"port": 9901})),
     "startupProbe: must specify exactly one handler"),
    ("startup probe with successThreshold 2",
     _with(lambda p: proxy(p)["startupProbe"].update(successThreshold=2)),
     "startupProbe.successThreshold: must be 1"),
    ("probe port name too long",
     _with(lambda p: proxy(p)["readinessProbe"]["httpGet"].update(port="h2mesh-admin-port")),
     "is neither a port number nor a port name"),
    ("imagePullPolicy misspelt", _set(init, "imagePullPolicy", "IfNotPresents"),
     "imagePullPolicy: 'IfNotPresents' is not Always"),
    ("container without image", _with(lambda p: app(p).pop("image")), "containers[0].image: required"),
]


class Runner:
    def __init__(self):
        self.passed = self.failed = 0

    def check(self, name, ok, detail=""):
        if ok:
            self.passed += 1
            print(f"ok   {name}")
        else:
            self.failed += 1
            print(f"FAIL {name}\n     {detail}")


def errors_of(doc):
    errors, unchecked = pod_schema.object_errors(doc)
    assert not unchecked, unchecked
    return errors


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--source-dir", default=str(HERE.parents[1]))
    source = Path(ap.parse_args().source_dir).resolve()
    r = Runner()
    native, legacy = contract_pods()

    for name, doc in (("native", native), ("legacy", legacy)):
        e = errors_of(doc)
        r.check(f"the contract's injected pod ({name}) is valid", not e, "\n     ".join(e))

    for what, change, expected in BAD:
        for shape, wrap in (("Pod", lambda p: p), ("Deployment", as_deployment)):
            doc = wrap(change(copy.deepcopy(native)))
            e = errors_of(doc)
            hit = [m for m in e if expected in m]
            r.check(f"rejected ({shape}): {what}", hit,
                    f"expected an error containing {expected!r}, got {e or 'none'}")
            if shape == "Deployment" and hit:
                r.check(f"  ... and the message names the template's path",
                        all(m.startswith("Deployment/d: spec.template.spec") for m in hit),
                        f"{hit}")

    e = errors_of(as_cronjob(_set(app, "restartPolicy", "Always")(copy.deepcopy(native))))
    r.check("rejected (CronJob): the job template's pod is validated",
            any(m.startswith("CronJob/c: spec.jobTemplate.spec.template.spec.containers[0]"
                             ".restartPolicy") for m in e), f"{e}")
    e = errors_of({"apiVersion": "v1", "kind": "List",
                   "items": [native, as_deployment(_set(app, "name", "h2mesh-init")(
                       copy.deepcopy(native)))]})
    r.check("rejected (List): each item is validated, by its index",
            len(e) == 1 and e[0].startswith("List/None.items[1]") and "duplicate container "
            "name 'h2mesh-init'" in e[0], f"{e}")

    sts = {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "s"},
           "spec": {"serviceName": "s", "selector": {"matchLabels": {"app": "s"}},
                    "template": {"metadata": {"labels": {"app": "s"}}, "spec": {"containers": [
                        {"name": "db", "image": "db:1",
                         "volumeMounts": [{"name": "data", "mountPath": "/data"}]}]}},
                    "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": "1Gi"}}}}]}}
    e = errors_of(sts)
    r.check("StatefulSet: a mount of a volumeClaimTemplate is valid", not e, f"{e}")
    sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] = "logs"
    e = errors_of(sts)
    r.check("StatefulSet: a mount of neither a volume nor a claim template is not",
            any("volume 'data' is not in spec.volumes" in m for m in e), f"{e}")

    for text, value in (("1", Decimal(1)), ("100m", Decimal("0.1")), ("64Mi", Decimal(64 << 20)),
                        ("1e3", Decimal(1000)), ("1E", Decimal(10) ** 18), (".5", Decimal("0.5")),
                        (2, Decimal(2)), ("1.5Gi", Decimal(3 << 29))):
        got = pod_schema.parse_quantity(text)
        r.check(f"quantity {text!r} = {value}", got == value, f"got {got}")
    for text in ("1.2.3", "Mi", "10 Mi", "64MB", "", "1e", True):
        got = pod_schema.parse_quantity(text)
        r.check(f"quantity {text!r} does not parse", got is None, f"got {got}")

    # What deploy/ ships passes, and every file holds something the schema checks.
    files = sorted((source / "deploy").glob("**/*.yaml"))
    r.check("deploy/ has manifests", len(files) >= 10, f"{files}")
    for path in files:
        e, unchecked = pod_schema.file_errors(path)
        r.check(f"valid: {path.relative_to(source)}", not e, "\n     ".join(e))
        if "cert-manager" not in path.parts:
            r.check(f"  ... and every object in it has a schema here", not unchecked,
                    f"{unchecked}")

    # The CLI: one line per problem, exit 1; exit 0 on good files.
    with tempfile.TemporaryDirectory() as tmp:
        bad = Path(tmp) / "bad.yaml"
        change = dict((what, fn) for what, fn, _ in BAD)
        docs = [change["unknown container field (typo)"](copy.deepcopy(native)),
                as_deployment(change["port number out of range"](copy.deepcopy(native)))]
        bad.write_text(yaml.safe_dump_all(docs))
        proc = subprocess.run([sys.executable, str(HERE / "pod_schema.py"), str(CONTRACT),
                               str(bad)], capture_output=True, text=True, timeout=60)
        lines = proc.stdout.splitlines()
        r.check("CLI: exit 1 and one line per problem, naming file and object",
                proc.returncode == 1 and len(lines) == 2
                and lines[0].startswith(f"{bad}: Pod/greeter-client-native: ")
                and lines[1].startswith(f"{bad}: Deployment/d: "),
                f"exit {proc.returncode}, stdout {proc.stdout!r}, stderr {proc.stderr!r}")
        proc = subprocess.run([sys.executable, str(HERE / "pod_schema.py"), str(CONTRACT)]
                              + [str(p) for p in files], capture_output=True, text=True,
                              timeout=60)
        r.check("CLI: exit 0 and no output on deploy/ and the contract's pods",
                proc.returncode == 0 and not proc.stdout,
                f"exit {proc.returncode}, stdout {proc.stdout!r}")

    print(f"{r.passed} passed, {r.failed} failed")
    return 1 if r.failed else 0


if __name__ == "__main__":
    sys.exit(main())
