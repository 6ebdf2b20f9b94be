#!/usr/bin/python3
"""Static checks of deploy/: the Kubernetes manifests, the h2mesh configs in their ConfigMaps and
the Dockerfile, against each other and against h2mesh itself. No cluster and no container engine
are needed: every config is validated by `h2mesh check`, everything else is read.

    /usr/bin/python3 tests/deploy/manifests_test.py --h2mesh build/bin/h2mesh \
        [--greeter build/bin/greeter] [--source-dir .]

Needs python3-yaml (Debian). Prints one line per check and ends with "N passed, M failed"; exits
1 when a check failed, 2 on bad usage.
"""

import argparse
import base64
import copy
import http.client
import json
import os
import re
import shlex
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

try:
    import yaml
except ImportError:  # pragma: no cover
    print("manifests_test: needs PyYAML: apt-get install python3-yaml", file=sys.stderr)
    sys.exit(2)

NAMESPACE = "grpcdemo"
IMAGE = "h2mesh:dev"
RUN_AS_USER = 10001
SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
RBAC_GROUP = "rbac.authorization.k8s.io"
CLUSTER_DOMAIN = "cluster.local"

# ----------------------------------------------------------------------------------------------
# A small schema: the fields Kubernetes accepts for the objects used here, so that a typo (which
# `kubectl apply` would reject with strict field validation) fails here too. Each type maps a
# field to the type of its value (None: scalar or free-form; a 1-tuple: a list of that type).

SCHEMA = {
    "ObjectMeta": {"name": None, "namespace": None, "labels": "StringMap",
                   "annotations": "StringMap", "generateName": None},
    "StringMap": "*",
    "LabelSelector": {"matchLabels": "StringMap", "matchExpressions": None},
    "DeploymentSpec": {"replicas": None, "selector": "LabelSelector",
                       "template": "PodTemplateSpec", "strategy": "DeploymentStrategy",
                       "minReadySeconds": None, "revisionHistoryLimit": None, "paused": None,
                       "progressDeadlineSeconds": None},
    "DeploymentStrategy": {"type": None, "rollingUpdate": {"maxUnavailable": None,
                                                          "maxSurge": None}},
    "PodTemplateSpec": {"metadata": "ObjectMeta", "spec": "PodSpec"},
    "PodSpec": {
        "volumes": ("Volume",), "initContainers": ("Container",), "containers": ("Container",),
        "restartPolicy": None, "terminationGracePeriodSeconds": None,
        "activeDeadlineSeconds": None, "dnsPolicy": None, "nodeSelector": "StringMap",
        "serviceAccountName": None, "automountServiceAccountToken": None, "nodeName": None,
        "hostNetwork": None, "hostPID": None, "hostIPC": None, "shareProcessNamespace": None,
        "securityContext": "PodSecurityContext", "imagePullSecrets": None, "hostname": None,
        "subdomain": None, "affinity": None, "schedulerName": None, "tolerations": None,
        "hostAliases": None, "priorityClassName": None, "priority": None, "dnsConfig": None,
        "readinessGates": None, "runtimeClassName": None, "enableServiceLinks": None,
        "preemptionPolicy": None, "overhead": None, "topologySpreadConstraints": None,
        "setHostnameAsFQDN": None, "os": None, "hostUsers": None, "schedulingGates": None,
        "resourceClaims": None},
    "Container": {
        "name": None, "image": None, "command": None, "args": None, "workingDir": None,
        "ports": ("ContainerPort",), "envFrom": None, "env": ("EnvVar",),
        "resources": "Resources", "resizePolicy": None, "restartPolicy": None,
        "volumeMounts": ("VolumeMount",), "volumeDevices": None, "livenessProbe": "Probe",
        "readinessProbe": "Probe", "startupProbe": "Probe", "lifecycle": "Lifecycle",
        "terminationMessagePath": None, "terminationMessagePolicy": None,
        "imagePullPolicy": None, "securityContext": "SecurityContext", "stdin": None,
        "stdinOnce": None, "tty": None},
    "ContainerPort": {"name": None, "containerPort": None, "protocol": None, "hostPort": None,
                      "hostIP": None},
    "EnvVar": {"name": None, "value": None, "valueFrom": {
        "fieldRef": {"apiVersion": None, "fieldPath": None}, "resourceFieldRef": None,
        "configMapKeyRef": None, "secretKeyRef": None}},
    "Resources": {"requests": "StringMap", "limits": "StringMap", "claims": None},
    "Probe": {"exec": {"command": None}, "httpGet": "HTTPGet", "tcpSocket": {"port": None,
              "host": None}, "grpc": {"port": None, "service": None},
              "initialDelaySeconds": None, "timeoutSeconds": None, "periodSeconds": None,
              "successThreshold": None, "failureThreshold": None,
              "terminationGracePeriodSeconds": None},
    "HTTPGet": {"path": None, "port": None, "host": None, "scheme": None, "httpHeaders": None},
    "Lifecycle": {"postStart": "LifecycleHandler", "preStop": "LifecycleHandler"},
    "LifecycleHandler": {"exec": {"command": None}, "httpGet": "HTTPGet",
                         "tcpSocket": None, "sleep": {"seconds": None}},
    "Capabilities": {"add": None, "drop": None},
    "Seccomp": {"type": None, "localhostProfile": None},
    "SecurityContext": {"capabilities": "Capabilities", "privileged": None,
                        "seLinuxOptions": None, "windowsOptions": None, "runAsUser": None,
                        "runAsGroup": None, "runAsNonRoot": None,
                        "readOnlyRootFilesystem": None, "allowPrivilegeEscalation": None,
                        "procMount": None, "seccompProfile": "Seccomp",
                        "appArmorProfile": None},
    "PodSecurityContext": {"seLinuxOptions": None, "windowsOptions": None, "runAsUser": None,
                           "runAsGroup": None, "runAsNonRoot": None,
                           "supplementalGroups": None, "supplementalGroupsPolicy": None,
                           "fsGroup": None, "sysctls": None, "fsGroupChangePolicy": None,
                           "seccompProfile": "Seccomp", "appArmorProfile": None},
    "VolumeMount": {"name": None, "mountPath": None, "readOnly": None, "subPath": None,
                    "subPathExpr": None, "mountPropagation": None, "recursiveReadOnly": None},
    "KeyToPath": {"key": None, "path": None, "mode": None},
    "DownwardAPIFile": {"path": None, "fieldRef": {"apiVersion": None, "fieldPath": None},
                        "resourceFieldRef": None, "mode": None},
    "Volume": {"name": None,
               "configMap": {"name": None, "items": ("KeyToPath",), "defaultMode": None,
                             "optional": None},
               "secret": None, "emptyDir": None, "downwardAPI": None, "hostPath": None,
               "persistentVolumeClaim": None, "csi": None, "ephemeral": None,
               "projected": {"defaultMode": None, "sources": ("VolumeProjection",)}},
    "VolumeProjection": {
        "serviceAccountToken": {"audience": None, "expirationSeconds": None, "path": None},
        "configMap": {"name": None, "items": ("KeyToPath",), "optional": None},
        "downwardAPI": {"items": ("DownwardAPIFile",)}, "secret": None,
        "clusterTrustBundle": None},
    "ServiceSpec": {"ports": ("ServicePort",), "selector": "StringMap", "clusterIP": None,
                    "clusterIPs": None, "type": None, "externalIPs": None,
                    "sessionAffinity": None, "loadBalancerIP": None,
                    "loadBalancerSourceRanges": None, "externalName": None,
                    "externalTrafficPolicy": None, "healthCheckNodePort": None,
                    "publishNotReadyAddresses": None, "sessionAffinityConfig": None,
                    "ipFamilies": None, "ipFamilyPolicy": None,
                    "allocateLoadBalancerNodePorts": None, "loadBalancerClass": None,
                    "internalTrafficPolicy": None, "trafficDistribution": None},
    "ServicePort": {"name": None, "protocol": None, "appProtocol": None, "port": None,
                    "targetPort": None, "nodePort": None},
    "PolicyRule": {"apiGroups": None, "resources": None, "verbs": None, "resourceNames": None,
                   "nonResourceURLs": None},
    "Subject": {"kind": None, "apiGroup": None, "name": None, "namespace": None},
    "RoleRef": {"apiGroup": None, "kind": None, "name": None},
}

# kind -> (apiVersion, top-level fields besides apiVersion/kind/metadata)
KINDS = {
    "Namespace": ("v1", {"spec": None}),
    "ServiceAccount": ("v1", {"automountServiceAccountToken": None, "secrets": None,
                              "imagePullSecrets": None}),
    "ConfigMap": ("v1", {"data": "StringMap", "binaryData": "StringMap", "immutable": None}),
    "Service": ("v1", {"spec": "ServiceSpec"}),
    "Deployment": ("apps/v1", {"spec": "DeploymentSpec"}),
    "Role": ("rbac.authorization.k8s.io/v1", {"rules": ("PolicyRule",)}),
    "RoleBinding": ("rbac.authorization.k8s.io/v1", {"subjects": ("Subject",),
                                                     "roleRef": "RoleRef"}),
}

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


def schema_errors(value, typ, where):
    """Unknown fields (and non-maps/non-lists where one is due) below `where`."""
    if typ is None:
        return []
    if isinstance(typ, tuple):
        if not isinstance(value, list):
            return [f"{where}: expected a list"]
        out = []
        for i, item in enumerate(value):
            out += schema_errors(item, typ[0], f"{where}[{i}]")
        return out
    fields = SCHEMA[typ] if isinstance(typ, str) else typ
    if not isinstance(value, dict):
        return [f"{where}: expected a map"]
    if fields == "*":
        return [f"{where}.{k}: value must be a string, not {type(v).__name__}"
                for k, v in value.items() if not isinstance(v, str)]
    out = []
    for key, sub in value.items():
        if key not in fields:
            out.append(f"{where}: unknown field '{key}' (typo? the API would reject it)")
        else:
            out += schema_errors(sub, fields[key], f"{where}.{key}")
    return out


# ----------------------------------------------------------------------------------------------
# The test runner.

class Failure(Exception):
    pass


class Skip(Exception):
    """A check that cannot run here (says why); counted apart, neither passed nor failed."""


def expect(cond, message):
    if not cond:
        raise Failure(message)


class Runner:
    def __init__(self):
        self.passed = 0
        self.failed = 0
        self.skipped = 0

    def check(self, name, fn, *args):
        try:
            fn(*args)
        except Skip as e:
            self.skipped += 1
            print(f"skip {name}\n     {e}")
            return True
        except Failure as e:
            self.failed += 1
            print(f"FAIL {name}\n     {e}")
            return False
        except Exception as e:  # a crash in a check is a failure of that check, not of all
            self.failed += 1
            print(f"FAIL {name}\n     unexpected {type(e).__name__}: {e}")
            return False
        self.passed += 1
        print(f"ok   {name}")
        return True


# ----------------------------------------------------------------------------------------------
# The model built from the manifests.

class Obj:
    def __init__(self, doc, path):
        self.doc = doc
        self.file = path.name
        self.kind = doc.get("kind")
        self.meta = doc.get("metadata") or {}
        self.name = self.meta.get("name")
        self.namespace = self.meta.get("namespace")

    def __repr__(self):
        return f"{self.kind}/{self.name} ({self.file})"


class Workload:
    """A Deployment's pod template, with the h2mesh containers resolved to their configs."""

    def __init__(self, obj):
        self.obj = obj
        self.name = obj.name
        spec = obj.doc.get("spec") or {}
        self.template = spec.get("template") or {}
        self.labels = (self.template.get("metadata") or {}).get("labels") or {}
        self.pod = self.template.get("spec") or {}
        self.init_containers = self.pod.get("initContainers") or []
        self.containers = self.pod.get("containers") or []

    def all_containers(self):
        return list(self.init_containers) + list(self.containers)

    def container_ports(self):
        return [p for c in self.all_containers() for p in (c.get("ports") or [])]


def is_h2mesh_run(container):
    """The image's ENTRYPOINT is h2mesh: a container without `command` runs h2mesh <args>."""
    command = container.get("command")
    args = container.get("args") or []
    if command:
        return Path(command[0]).name == "h2mesh" and args[:1] == ["run"]
    return args[:1] == ["run"]


def config_path_of(container):
    args = container.get("args") or []
    for i, a in enumerate(args):
        if a == "--config" and i + 1 < len(args):
            return args[i + 1]
    return None


def shell_script(container):
    command = container.get("command") or []
    args = container.get("args") or []
    words = list(command) + list(args)
    if len(words) >= 3 and Path(words[0]).name in ("sh", "bash") and words[1] == "-c":
        return words[2]
    return None


def greeter_calls(container):
    """Every `greeter call ...` in a container, as (target, n)."""
    script = shell_script(container)
    lines = []
    if script is not None:
        lines = [ln.strip() for ln in script.splitlines()]
    else:
        words = list(container.get("command") or []) + list(container.get("args") or [])
        lines = [shlex.join(words)]
    calls = []
    for line in lines:
        if not re.match(r"^(exec\s+)?(\S*/)?greeter\s+call\b", line):
            continue
        words = shlex.split(line.split("||")[0].split(";")[0])
        target = n = None
        for i, w in enumerate(words):
            if w == "--target" and i + 1 < len(words):
                target = words[i + 1]
            elif w.startswith("--target="):
                target = w.split("=", 1)[1]
            elif w == "-n" and i + 1 < len(words):
                n = words[i + 1]
        calls.append((target, n))
    return calls


def split_hostport(text):
    m = re.match(r"^\[([^\]]+)\]:(\d+)$", text) or re.match(r"^([^:]+):(\d+)$", text)
    if not m:
        raise Failure(f"'{text}' is not HOST:PORT")
    return m.group(1), int(m.group(2))


class Deploy:
    """The manifests of one directory of deploy/ (kubernetes/, grpcdemo/, injector/), whose
    containers all run `image`."""

    def __init__(self, source, h2mesh, greeter, subdir="kubernetes", image=IMAGE,
                 namespace=NAMESPACE):
        self.source = source
        self.namespace = namespace
        self.h2mesh = h2mesh
        self.greeter = greeter
        self.image = image
        self.kube_dir = source / "deploy" / subdir
        self.label = f"deploy/{subdir}/"
        self.files = sorted(self.kube_dir.glob("*.yaml")) + sorted(self.kube_dir.glob("*.yml"))
        self.objects = []
        self.parse_errors = []
        for path in self.files:
            try:
                docs = list(yaml.safe_load_all(path.read_text()))
            except yaml.YAMLError as e:
                self.parse_errors.append(f"{path.name}: {e}")
                continue
            docs = [d for d in docs if d is not None]
            if not docs:
                self.parse_errors.append(f"{path.name}: no document")
            for d in docs:
                if not isinstance(d, dict):
                    self.parse_errors.append(f"{path.name}: a document is not a map")
                    continue
                self.objects.append(Obj(d, path))
        self.tmp = Path(tempfile.mkdtemp(prefix="h2mesh-deploy-test-"))
        self._configs = {}

    def of_kind(self, kind):
        return [o for o in self.objects if o.kind == kind]

    def get(self, kind, name):
        for o in self.objects:
            if o.kind == kind and o.name == name:
                return o
        return None

    def need(self, kind, name):
        o = self.get(kind, name)
        expect(o is not None, f"no {kind} named '{name}' in {self.label}")
        return o

    def workloads(self):
        return [Workload(o) for o in self.of_kind("Deployment")]

    def workload(self, name):
        return Workload(self.need("Deployment", name))

    def pods_selected(self, selector):
        return [w for w in self.workloads()
                if selector and all(w.labels.get(k) == v for k, v in selector.items())]

    # -- h2mesh configs ---------------------------------------------------------------------

    def config_file(self, configmap, key):
        """The text of a ConfigMap key, written to a file for `h2mesh check`."""
        cm = self.need("ConfigMap", configmap)
        data = cm.doc.get("data") or {}
        expect(key in data, f"ConfigMap {configmap} has no key '{key}' (keys: {sorted(data)})")
        path = self.tmp / f"{configmap}--{key}"
        path.write_text(data[key])
        return path

    def h2mesh_config_of(self, workload, container):
        """(ConfigMap name, key, parsed config) of an h2mesh container, following its --config
        path through its volume mounts and volumes."""
        cfg = config_path_of(container)
        expect(cfg, f"{workload.name}/{container.get('name')}: h2mesh run without --config")
        mount = None
        for m in container.get("volumeMounts") or []:
            mp = m.get("mountPath", "").rstrip("/")
            if cfg.startswith(mp + "/"):
                mount = m
        expect(mount, f"{workload.name}/{container.get('name')}: no volumeMount contains the "
                      f"--config path {cfg}")
        expect("subPath" not in mount,
               f"{workload.name}: the config volume is mounted with subPath, so ConfigMap edits "
               f"never reach the file and live reload cannot see them")
        volume = next((v for v in workload.pod.get("volumes") or []
                       if v.get("name") == mount.get("name")), None)
        expect(volume and "configMap" in volume,
               f"{workload.name}: volume '{mount.get('name')}' holding {cfg} is not a ConfigMap")
        cm_name = volume["configMap"].get("name")
        key = cfg[len(mount["mountPath"].rstrip("/")) + 1:]
        items = volume["configMap"].get("items")
        if items:
            match = [i for i in items if i.get("path") == key]
            expect(match, f"{workload.name}: ConfigMap volume items do not project {key}")
            key = match[0]["key"]
        return cm_name, key, self.parsed_config(cm_name, key)

    def parsed_config(self, cm_name, key):
        if (cm_name, key) not in self._configs:
            path = self.config_file(cm_name, key)
            self._configs[(cm_name, key)] = yaml.safe_load(path.read_text())
        return self._configs[(cm_name, key)]

    def h2mesh_containers(self):
        """(workload, container, is_native_sidecar) for every container running h2mesh."""
        out = []
        for w in self.workloads():
            for c in w.init_containers:
                if is_h2mesh_run(c):
                    out.append((w, c, True))
            for c in w.containers:
                if is_h2mesh_run(c):
                    out.append((w, c, False))
        return out

    def h2mesh_configmap_keys(self):
        """Every ConfigMap key that is an h2mesh config (has listeners and clusters)."""
        out = []
        for cm in self.of_kind("ConfigMap"):
            for key, text in (cm.doc.get("data") or {}).items():
                try:
                    parsed = yaml.safe_load(text)
                except yaml.YAMLError:
                    parsed = None
                if key.endswith((".yaml", ".yml")) and (
                        parsed is None or isinstance(parsed, dict)
                        and ("listeners" in parsed or "clusters" in parsed)):
                    out.append((cm.name, key))
        return out


# ----------------------------------------------------------------------------------------------
# Checks: manifests on their own.

def check_parse(d):
    expect(d.files, f"no *.yaml in {d.kube_dir}")
    expect(not d.parse_errors, "; ".join(d.parse_errors))
    for o in d.objects:
        expect(o.kind in KINDS, f"{o}: kind {o.kind!r} is not one this test knows "
                                f"({', '.join(sorted(KINDS))}); add it to KINDS with its schema")
        expect(o.doc.get("apiVersion") == KINDS[o.kind][0],
               f"{o}: apiVersion {o.doc.get('apiVersion')!r}, expected {KINDS[o.kind][0]!r}")
        expect(isinstance(o.name, str), f"{o.file}: a {o.kind} without metadata.name")


def check_schema(d):
    errors = []
    for o in d.objects:
        allowed = {"apiVersion": None, "kind": None, "metadata": "ObjectMeta"}
        allowed.update(KINDS[o.kind][1])
        errors += schema_errors(o.doc, allowed, f"{o.file}: {o.kind}/{o.name}")
    expect(not errors, "\n     ".join(errors))


def check_names(d):
    seen = {}
    for o in d.objects:
        key = (o.kind, o.name)
        expect(key not in seen, f"{o.kind}/{o.name} is defined twice ({seen.get(key)} and "
                                f"{o.file})")
        seen[key] = o.file
        pattern = DNS1123_LABEL if o.kind in ("Namespace", "Service", "Deployment") \
            else DNS1123_SUBDOMAIN
        expect(pattern.match(o.name), f"{o}: name '{o.name}' is not a valid DNS-1123 name")


def check_namespace(d):
    ns = d.of_kind("Namespace")
    expect([o.name for o in ns] == [NAMESPACE],
           f"expected exactly one Namespace '{NAMESPACE}', found {[o.name for o in ns]}")
    first = min(o.file for o in d.objects)
    expect(ns[0].file == first,
           f"Namespace is in {ns[0].file} but `kubectl apply -f {d.label}` applies "
           f"{first} first: the namespace must be created before anything in it (file order)")
    for o in d.objects:
        if o.kind != "Namespace":
            expect(o.namespace == NAMESPACE,
                   f"{o}: metadata.namespace is {o.namespace!r}, expected '{NAMESPACE}'")


def check_apply_order(d):
    """ServiceAccount before the pods that use it; ConfigMaps before the pods that mount them."""
    for w in d.workloads():
        sa = w.pod.get("serviceAccountName")
        if sa:
            o = d.need("ServiceAccount", sa)
            expect(o.file <= w.obj.file,
                   f"{w.obj} uses ServiceAccount {sa} from {o.file}, which is applied after it")
        for v in w.pod.get("volumes") or []:
            if "configMap" in v:
                cm = d.need("ConfigMap", v["configMap"]["name"])
                expect(cm.file <= w.obj.file,
                       f"{w.obj} mounts ConfigMap {cm.name} from {cm.file}, applied after it")


def check_deployment_selectors(d):
    ws = d.workloads()
    expect(ws, "no Deployment")
    for w in ws:
        sel = ((w.obj.doc.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        expect(sel, f"{w.obj}: spec.selector.matchLabels is empty")
        missing = {k: v for k, v in sel.items() if w.labels.get(k) != v}
        expect(not missing, f"{w.obj}: selector {sel} does not match the pod template labels "
                            f"{w.labels} (missing or different: {missing})")
        for other in ws:
            if other is not w:
                expect(not all(other.labels.get(k) == v for k, v in sel.items()),
                       f"{w.obj}: selector {sel} also matches the pods of {other.obj}")


def check_containers(d):
    for w in d.workloads():
        names = [c.get("name") for c in w.all_containers()]
        expect(len(names) == len(set(names)), f"{w.obj}: duplicate container names {names}")
        for c in w.all_containers():
            where = f"{w.obj} container {c.get('name')}"
            expect(c.get("image") == d.image, f"{where}: image {c.get('image')!r}, expected "
                                              f"'{d.image}' (the image deploy/Dockerfile builds)")
            expect(c.get("imagePullPolicy") in ("IfNotPresent", "Never"),
                   f"{where}: imagePullPolicy {c.get('imagePullPolicy')!r}: a locally built "
                   f"image loaded into kind/minikube needs IfNotPresent or Never")
            res = c.get("resources") or {}
            for part in ("requests", "limits"):
                r = res.get(part) or {}
                expect("cpu" in r and "memory" in r,
                       f"{where}: resources.{part} needs cpu and memory, has {sorted(r)}")
            sc = c.get("securityContext") or {}
            expect(sc.get("allowPrivilegeEscalation") is False,
                   f"{where}: securityContext.allowPrivilegeEscalation must be false")
            expect(sc.get("readOnlyRootFilesystem") is True,
                   f"{where}: securityContext.readOnlyRootFilesystem must be true")
            expect("ALL" in ((sc.get("capabilities") or {}).get("drop") or []),
                   f"{where}: securityContext.capabilities.drop must contain ALL")
            port_names = [p.get("name") for p in c.get("ports") or []]
            for p in c.get("ports") or []:
                n = p.get("containerPort")
                expect(isinstance(n, int) and 1 <= n <= 65535,
                       f"{where}: containerPort {n!r} is not a port number")
                expect(p.get("name") is None or (len(p["name"]) <= 15 and
                                                 DNS1123_LABEL.match(p["name"])),
                       f"{where}: port name {p.get('name')!r} is not an IANA_SVC_NAME")
            for probe_name in ("readinessProbe", "livenessProbe", "startupProbe"):
                probe = c.get(probe_name)
                if not probe:
                    continue
                for action in ("httpGet", "tcpSocket", "grpc"):
                    if action in probe:
                        port = probe[action].get("port")
                        numbers = [p.get("containerPort") for p in c.get("ports") or []]
                        if action == "grpc":
                            expect(isinstance(port, int),
                                   f"{where}: {probe_name}.grpc.port must be a number")
                        expect(port in numbers or port in port_names,
                               f"{where}: {probe_name}.{action}.port {port!r} is not one of "
                               f"the container's ports {port_names or numbers}")
        for c in w.init_containers:
            if c.get("restartPolicy") is not None:
                expect(c["restartPolicy"] == "Always",
                       f"{w.obj} init container {c.get('name')}: restartPolicy may only be "
                       f"Always (a native sidecar)")
        for c in w.containers:
            expect("restartPolicy" not in c,
                   f"{w.obj} container {c.get('name')}: restartPolicy belongs to init "
                   f"containers (native sidecars) only")


RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
                      "persistentVolumeClaim", "projected", "secret"}


def check_pod_security(d):
    """Non-root uid 10001 everywhere, and, when the namespace enforces the "restricted" Pod
    Security Standard, what it would reject at admission (checked here since no API server
    is at hand)."""
    ns = d.get("Namespace", d.namespace)
    labels = ((ns.doc.get("metadata") or {}).get("labels") or {}) if ns else {}
    restricted = labels.get("pod-security.kubernetes.io/enforce") == "restricted"
    for w in d.workloads():
        if restricted:
            for key in ("hostNetwork", "hostPID", "hostIPC"):
                expect(not w.pod.get(key), f"{w.obj}: {key} is forbidden by the namespace's "
                                           f"restricted Pod Security Standard")
            for v in w.pod.get("volumes") or []:
                kinds = set(v) - {"name"}
                expect(kinds <= RESTRICTED_VOLUMES,
                       f"{w.obj}: volume {v.get('name')} of type {sorted(kinds)} is forbidden "
                       f"by the restricted Pod Security Standard")
            for c in w.all_containers():
                sc = c.get("securityContext") or {}
                expect(not sc.get("privileged"), f"{w.obj}: {c.get('name')} is privileged")
                expect(set((sc.get("capabilities") or {}).get("add") or [])
                       <= {"NET_BIND_SERVICE"},
                       f"{w.obj}: {c.get('name')} adds capabilities beyond NET_BIND_SERVICE")
                expect(sc.get("runAsNonRoot", True) is not False and
                       sc.get("runAsUser", 1) != 0,
                       f"{w.obj}: {c.get('name')} overrides the pod's non-root user")
                expect(not [p for p in c.get("ports") or [] if p.get("hostPort")],
                       f"{w.obj}: {c.get('name')} uses a hostPort")
        sc = w.pod.get("securityContext") or {}
        expect(sc.get("runAsNonRoot") is True, f"{w.obj}: pod securityContext.runAsNonRoot "
                                               f"must be true")
        expect(sc.get("runAsUser") == RUN_AS_USER,
               f"{w.obj}: pod securityContext.runAsUser {sc.get('runAsUser')!r}, expected "
               f"{RUN_AS_USER} (the Dockerfile's USER)")
        expect((sc.get("seccompProfile") or {}).get("type") == "RuntimeDefault",
               f"{w.obj}: pod securityContext.seccompProfile.type should be RuntimeDefault")


# ----------------------------------------------------------------------------------------------
# Checks: the server and its Services.

def check_greeter_server(d):
    w = d.workload("greeter-server")
    replicas = (w.obj.doc.get("spec") or {}).get("replicas")
    expect(replicas == 4, f"{w.obj}: replicas {replicas!r}, expected 4")
    expect(w.labels.get("app") == "greeter-server",
           f"{w.obj}: pod label app={w.labels.get('app')!r}, expected greeter-server")
    expect(len(w.containers) == 1, f"{w.obj}: expected one container")
    c = w.containers[0]
    words = list(c.get("command") or []) + list(c.get("args") or [])
    expect(words[:2] == ["greeter", "serve"],
           f"{w.obj}: the container runs {words}, expected `greeter serve ...` (set command: "
           f"[greeter]: the image's ENTRYPOINT is h2mesh)")
    flags = dict(zip(words[2::2], words[3::2]))
    expect(len(words[2:]) % 2 == 0 and all(f.startswith("--") for f in flags),
           f"{w.obj}: greeter serve flags must come in --flag value pairs: {words[2:]}")
    unknown = set(flags) - {"--port", "--address", "--id", "--max-concurrent-streams",
                            "--fail-code"}
    expect(not unknown, f"{w.obj}: greeter serve has no flag(s) {sorted(unknown)}")
    expect(flags.get("--address") == "0.0.0.0",
           f"{w.obj}: --address {flags.get('--address')!r}, expected 0.0.0.0 (reachable on "
           f"the pod IP)")
    port = flags.get("--port")
    expect(port == "50051", f"{w.obj}: --port {port!r}, expected 50051")
    ports = {p.get("name"): p.get("containerPort") for p in c.get("ports") or []}
    expect(ports.get("grpc") == 50051,
           f"{w.obj}: needs a container port named grpc = 50051 (the --port), has {ports}")
    if "--id" in flags:
        m = re.fullmatch(r"\$\((\w+)\)", flags["--id"])
        expect(m, f"{w.obj}: --id {flags['--id']!r} should be the pod name, $(VAR) from the "
                  f"downward API, or left out (it defaults to the hostname = the pod name)")
        env = {e.get("name"): e for e in c.get("env") or []}
        var = env.get(m.group(1)) or {}
        path = (((var.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath"))
        expect(path == "metadata.name",
               f"{w.obj}: env {m.group(1)} must come from fieldRef metadata.name, not {path!r}")
    for probe_name in ("readinessProbe", "livenessProbe"):
        probe = c.get(probe_name) or {}
        grpc = probe.get("grpc")
        expect(grpc is not None, f"{w.obj}: {probe_name} should use the gRPC health service "
                                 f"(grpc: {{port: 50051}})")
        expect(grpc.get("port") == 50051,
               f"{w.obj}: {probe_name}.grpc.port {grpc.get('port')!r} is not the gRPC port 50051")
        expect(grpc.get("service", "") == "",
               f"{w.obj}: {probe_name}.grpc.service must be \"\" (greeter serves health for the "
               f"whole server only)")
    expect(w.pod.get("automountServiceAccountToken") is False,
           f"{w.obj}: the servers need no API access: automountServiceAccountToken: false")


def service_port_targets(d, svc):
    """For each Service port: the (workload, container port) it reaches in every selected pod."""
    spec = svc.doc.get("spec") or {}
    selector = spec.get("selector") or {}
    expect(selector, f"{svc}: spec.selector is empty")
    pods = d.pods_selected(selector)
    expect(len(pods) == 1, f"{svc}: selector {selector} should select the pods of exactly one "
                           f"Deployment, selects {[p.name for p in pods]}")
    w = pods[0]
    out = []
    expect(spec.get("ports"), f"{svc}: no ports")
    for sp in spec["ports"]:
        target = sp.get("targetPort", sp.get("port"))
        match = [p for p in w.container_ports()
                 if p.get("name") == target or p.get("containerPort") == target]
        expect(match, f"{svc}: port {sp.get('name')!r} targetPort {target!r} matches no "
                      f"container port of {w.obj} ({w.container_ports()})")
        expect(sp.get("protocol", "TCP") == match[0].get("protocol", "TCP"),
               f"{svc}: port {sp.get('name')} protocol differs from the container port's")
        expect(sp.get("name") == match[0].get("name"),
               f"{svc}: port name {sp.get('name')!r} differs from the container port name "
               f"{match[0].get('name')!r}")
        out.append((sp, w, match[0]))
    return out


def check_services(d):
    svcs = d.of_kind("Service")
    expect(svcs, "no Service")
    for svc in svcs:
        service_port_targets(d, svc)


def check_greeter_services(d):
    l4 = d.need("Service", "greeter")
    spec = l4.doc["spec"]
    expect(spec.get("type", "ClusterIP") == "ClusterIP" and spec.get("clusterIP") != "None",
           f"{l4}: must be a plain ClusterIP Service (the L4 balancer that shows the problem)")
    expect(spec.get("selector") == {"app": "greeter-server"},
           f"{l4}: selector {spec.get('selector')}, expected app=greeter-server")
    [(sp, w, cp)] = service_port_targets(d, l4)
    expect(sp.get("name") == "grpc" and sp.get("port") == 50051,
           f"{l4}: expected one port named grpc = 50051, has {sp}")
    expect(w.name == "greeter-server", f"{l4}: selects {w.obj}, expected greeter-server")
    headless = d.need("Service", "greeter-headless")
    hspec = headless.doc["spec"]
    expect(hspec.get("clusterIP") == "None", f"{headless}: needs clusterIP: None (headless) so "
                                             f"its DNS name returns the pod IPs")
    expect(hspec.get("selector") == spec.get("selector"),
           f"{headless}: selector {hspec.get('selector')} differs from Service greeter's")
    expect(not hspec.get("publishNotReadyAddresses"),
           f"{headless}: publishNotReadyAddresses would put unready pods into DNS")
    [(hp, _, hcp)] = service_port_targets(d, headless)
    expect(hcp.get("containerPort") == cp.get("containerPort"),
           f"{headless}: reaches container port {hcp.get('containerPort')}, Service greeter "
           f"{cp.get('containerPort')}")


# ----------------------------------------------------------------------------------------------
# Checks: h2mesh, its configs, its RBAC.

def run_check(h2mesh, path):
    proc = subprocess.run([str(h2mesh), "check", "--config", str(path)], capture_output=True,
                          text=True, timeout=30)
    return proc.returncode, (proc.stdout + proc.stderr).strip()


def check_configs_valid(d):
    keys = d.h2mesh_configmap_keys()
    expect(keys, "no ConfigMap holds an h2mesh config")
    for w, c, _ in d.h2mesh_containers():
        cm, key, _ = d.h2mesh_config_of(w, c)
        expect((cm, key) in keys, f"{w.obj}: --config is ConfigMap {cm} key {key}, which is not "
                                  f"an h2mesh config")
    for cm, key in keys:
        path = d.config_file(cm, key)
        rc, out = run_check(d.h2mesh, path)
        expect(rc == 0, f"ConfigMap {cm} key {key}: `h2mesh check` exited {rc}:\n     "
                        + out.replace("\n", "\n     "))
        expect(": OK (" in out, f"ConfigMap {cm} key {key}: unexpected `h2mesh check` output "
                                f"{out!r}")


def check_h2mesh_check_rejects(d):
    """The validation above means something: a config with a typo must be refused."""
    bad = d.tmp / "typo.yaml"
    bad.write_text("listeners:\n  - name: grpc\n    address: \"127.0.0.1:1\"\n    routes:\n"
                   "      - cluster: greeter\nclusters:\n  - name: greeter\n    discovery:\n"
                   "      kubernetes:\n        servce: greeter\n")
    rc, out = run_check(d.h2mesh, bad)
    expect(rc != 0 and "servce" in out,
           f"`h2mesh check` accepted a config with an unknown key (rc {rc}): {out!r}")


def discovery_clusters(config):
    for cl in (config or {}).get("clusters") or []:
        disc = cl.get("discovery") or {}
        yield cl.get("name"), disc


def check_discovery_targets(d):
    """Every discovery in every h2mesh config names the greeter Service, its namespace and port."""
    seen = 0
    for cm, key in d.h2mesh_configmap_keys():
        cfg = d.parsed_config(cm, key)
        where = f"ConfigMap {cm} key {key}"
        for cname, disc in discovery_clusters(cfg):
            if "kubernetes" in disc:
                seen += 1
                k = disc["kubernetes"]
                ns = k.get("namespace") or NAMESPACE
                expect(ns == NAMESPACE, f"{where}: cluster {cname} watches namespace {ns!r}, the "
                                        f"manifests use '{NAMESPACE}'")
                expect("kubeconfig" not in k or not k["kubeconfig"],
                       f"{where}: cluster {cname}: in a pod, use in-cluster credentials (no "
                       f"kubeconfig)")
                svc = d.get("Service", k.get("service"))
                expect(svc is not None, f"{where}: cluster {cname} watches Service "
                                        f"{k.get('service')!r}, which no manifest defines")
                port = k.get("port", "")
                targets = service_port_targets(d, svc)
                if port in ("", None):
                    expect(len(targets) == 1, f"{where}: cluster {cname} names no port but "
                                              f"Service {svc.name} has {len(targets)}")
                    sp, w, cp = targets[0]
                elif isinstance(port, int) or str(port).isdigit():
                    match = [t for t in targets if t[2].get("containerPort") == int(port)]
                    expect(match, f"{where}: cluster {cname} port {port} is no target port of "
                                  f"Service {svc.name}")
                    sp, w, cp = match[0]
                else:
                    match = [t for t in targets if t[0].get("name") == port]
                    expect(match, f"{where}: cluster {cname} port name {port!r} is not a port "
                                  f"name of Service {svc.name} "
                                  f"({[t[0].get('name') for t in targets]})")
                    sp, w, cp = match[0]
                expect(w.name == "greeter-server",
                       f"{where}: cluster {cname} reaches {w.obj}, expected the greeter servers")
            elif "dns" in disc:
                seen += 1
                dns = disc["dns"]
                name = str(dns.get("name", "")).rstrip(".")
                m = re.fullmatch(r"([a-z0-9-]+)\.([a-z0-9-]+)\.svc(\.(.+))?", name)
                expect(m, f"{where}: cluster {cname} resolves {name!r}, expected "
                          f"<service>.<namespace>.svc.{CLUSTER_DOMAIN}")
                expect(m.group(2) == NAMESPACE, f"{where}: {name} is not in namespace "
                                                f"{NAMESPACE}")
                expect(m.group(4) in (None, CLUSTER_DOMAIN),
                       f"{where}: {name}: the manifests assume the cluster domain "
                       f"{CLUSTER_DOMAIN}")
                svc = d.get("Service", m.group(1))
                expect(svc is not None, f"{where}: cluster {cname} resolves {name}, but there "
                                        f"is no Service {m.group(1)}")
                expect(svc.doc["spec"].get("clusterIP") == "None",
                       f"{where}: Service {svc.name} is not headless: its name resolves to one "
                       f"ClusterIP, not to the pods")
                targets = service_port_targets(d, svc)
                numbers = [t[2].get("containerPort") for t in targets]
                expect(dns.get("port") in numbers,
                       f"{where}: cluster {cname} port {dns.get('port')!r} is not the pods' port "
                       f"{numbers} (DNS gives pod IPs, so the container port is needed)")
                expect(targets[0][1].name == "greeter-server",
                       f"{where}: {svc.name} selects {targets[0][1].obj}, not greeter-server")
    expect(seen, "no h2mesh config uses dns or kubernetes discovery")


def uses_kubernetes_discovery(config):
    return any("kubernetes" in disc for _, disc in discovery_clusters(config))


def check_rbac(d):
    roles = d.of_kind("Role")
    bindings = d.of_kind("RoleBinding")
    expect(len(roles) == 1 and len(bindings) == 1,
           f"expected one Role and one RoleBinding, found {roles} and {bindings}")
    expect(not [o for o in d.objects if o.kind in ("ClusterRole", "ClusterRoleBinding")],
           "h2mesh needs no cluster-wide permissions")
    role, rb = roles[0], bindings[0]
    rules = role.doc.get("rules") or []
    expect(len(rules) == 1, f"{role}: expected exactly one rule, has {len(rules)}: {rules}")
    rule = rules[0]
    expect(rule.get("apiGroups") == ["discovery.k8s.io"],
           f"{role}: apiGroups {rule.get('apiGroups')}, expected exactly [discovery.k8s.io]")
    expect(rule.get("resources") == ["endpointslices"],
           f"{role}: resources {rule.get('resources')}, expected exactly [endpointslices]")
    verbs = rule.get("verbs") or []
    expect(sorted(verbs) == ["get", "list", "watch"] and len(verbs) == 3,
           f"{role}: verbs {verbs}, expected exactly get, list, watch (nothing more)")
    expect(not rule.get("resourceNames") and not rule.get("nonResourceURLs"),
           f"{role}: resourceNames/nonResourceURLs would break list/watch or grant more")
    ref = rb.doc.get("roleRef") or {}
    expect(ref == {"apiGroup": RBAC_GROUP, "kind": "Role", "name": role.name},
           f"{rb}: roleRef {ref}, expected {{apiGroup: {RBAC_GROUP}, kind: Role, "
           f"name: {role.name}}}")
    expect(rb.namespace == role.namespace, f"{rb} and {role} are in different namespaces")
    subjects = rb.doc.get("subjects") or []
    expect(len(subjects) == 1, f"{rb}: expected one subject, has {subjects}")
    s = subjects[0]
    expect(s.get("kind") == "ServiceAccount" and s.get("namespace") == NAMESPACE,
           f"{rb}: subject {s} is not a ServiceAccount in {NAMESPACE}")
    d.need("ServiceAccount", s.get("name"))


def check_service_accounts(d):
    """Pods running h2mesh with Kubernetes discovery run as the bound ServiceAccount and have
    its token; every other pod has neither."""
    rb = d.of_kind("RoleBinding")
    expect(rb, "no RoleBinding")
    bound = {s.get("name") for s in rb[0].doc.get("subjects") or []}
    users = set()
    for w, c, _ in d.h2mesh_containers():
        _, _, cfg = d.h2mesh_config_of(w, c)
        if not uses_kubernetes_discovery(cfg):
            continue
        users.add(w.name)
        sa = w.pod.get("serviceAccountName")
        expect(sa in bound, f"{w.obj}: h2mesh uses Kubernetes discovery but the pod's "
                            f"serviceAccountName is {sa!r}, not the one the RoleBinding binds "
                            f"({sorted(bound)})")
        if w.pod.get("automountServiceAccountToken") is not False:
            others = [o.get("name") for o in w.all_containers() if not is_h2mesh_run(o)]
            expect(not others, f"{w.obj}: with the token mounted automatically, container(s) "
                               f"{others} get h2mesh's API credentials too: set "
                               f"automountServiceAccountToken: false and mount a projected "
                               f"token into h2mesh alone")
        else:
            mounts = {m.get("mountPath", "").rstrip("/"): m.get("name")
                      for m in c.get("volumeMounts") or []}
            vol_name = mounts.get(SA_DIR)
            expect(vol_name, f"{w.obj}: automountServiceAccountToken is false and container "
                             f"{c.get('name')} mounts nothing at {SA_DIR}: h2mesh has no token")
            vol = next((v for v in w.pod.get("volumes") or [] if v.get("name") == vol_name), {})
            sources = (vol.get("projected") or {}).get("sources") or []
            files = set()
            for src in sources:
                if "serviceAccountToken" in src:
                    tok = src["serviceAccountToken"]
                    files.add(tok.get("path"))
                    expect(not tok.get("audience"),
                           f"{w.obj}: the token's audience must be the API server's (unset)")
                if "configMap" in src:
                    expect(src["configMap"].get("name") == "kube-root-ca.crt",
                           f"{w.obj}: the CA comes from ConfigMap kube-root-ca.crt")
                    files |= {i.get("path") for i in src["configMap"].get("items") or []}
                if "downwardAPI" in src:
                    files |= {i.get("path") for i in src["downwardAPI"].get("items") or []}
            expect({"token", "ca.crt", "namespace"} <= files,
                   f"{w.obj}: the projected volume at {SA_DIR} must provide token, ca.crt and "
                   f"namespace, provides {sorted(f for f in files if f)}")
            for other in w.all_containers():
                if other is not c:
                    expect(SA_DIR not in [m.get("mountPath", "").rstrip("/")
                                          for m in other.get("volumeMounts") or []],
                           f"{w.obj}: container {other.get('name')} gets the API token too")
    expect(users, "no h2mesh uses Kubernetes discovery")
    for w in d.workloads():
        if w.name in users:
            continue
        expect(w.pod.get("automountServiceAccountToken") is False,
               f"{w.obj}: needs no Kubernetes API access: set automountServiceAccountToken: "
               f"false")
        expect(w.pod.get("serviceAccountName") not in bound,
               f"{w.obj}: runs as {w.pod.get('serviceAccountName')} without needing it")


def admin_and_probes(d, w, c, cfg):
    """h2mesh's probes reach its admin endpoint, and the admin endpoint is not on loopback."""
    admin = (cfg or {}).get("admin") or {}
    expect(admin.get("enabled", True), f"{w.obj}: admin disabled, yet /ready is the probe")
    host, port = split_hostport(admin.get("address", "127.0.0.1:9901"))
    named = {p.get("name"): p.get("containerPort") for p in c.get("ports") or []}
    for probe_name in ("readinessProbe", "livenessProbe", "startupProbe"):
        probe = c.get(probe_name)
        if not probe:
            continue
        get = probe.get("httpGet")
        expect(get, f"{w.obj}: h2mesh's {probe_name} should be an httpGet on the admin port")
        pport = named.get(get.get("port"), get.get("port"))
        expect(pport == port, f"{w.obj}: {probe_name} probes port {pport}, the admin endpoint "
                              f"is on {port}")
        expect(host in ("0.0.0.0", "::"),
               f"{w.obj}: {probe_name} needs the admin endpoint on the pod IP, but it listens "
               f"on {host}: the kubelet probes the pod IP, not the pod's loopback")
        expect(get.get("path") in ("/ready", "/metrics", "/clusters"),
               f"{w.obj}: {probe_name} path {get.get('path')!r} is not an admin path")
    ready = c.get("readinessProbe")
    expect(ready and ready["httpGet"].get("path") == "/ready",
           f"{w.obj}: h2mesh needs a readinessProbe on /ready")
    live = c.get("livenessProbe")
    if live:
        expect(live["httpGet"].get("path") != "/ready",
               f"{w.obj}: a liveness probe on /ready would restart h2mesh while it drains or "
               f"waits for the API server; use /metrics")


def workers_within_cpu(w, c, cfg):
    workers = (cfg or {}).get("workers", 0)
    limit = ((c.get("resources") or {}).get("limits") or {}).get("cpu")
    expect(isinstance(workers, int) and workers > 0,
           f"{w.obj}: set workers explicitly: 0 starts one thread per core of the node, "
           f"whatever the CPU limit ({limit})")
    text = str(limit)
    cores = int(text[:-1]) / 1000 if text.endswith("m") else float(text)
    expect(workers <= max(1, -(-cores // 1)),
           f"{w.obj}: workers {workers} exceed the CPU limit {limit}")


def drain_fits(w, cfg):
    grace = w.pod.get("terminationGracePeriodSeconds", 30)
    drain = parse_seconds((cfg or {}).get("drain_timeout", "30s"))
    pre = 0
    for c in w.all_containers():
        cmd = (((c.get("lifecycle") or {}).get("preStop") or {}).get("exec") or {}) \
            .get("command") or []
        if len(cmd) == 2 and Path(cmd[0]).name == "sleep":
            pre = max(pre, int(cmd[1]))
    expect(grace > drain + pre,
           f"{w.obj}: terminationGracePeriodSeconds {grace} must exceed preStop {pre}s + "
           f"drain_timeout {drain:g}s, or calls in flight are killed")


def parse_seconds(text):
    m = re.fullmatch(r"(\d+)(ms|s|m|h)", str(text))
    expect(m, f"duration {text!r}")
    return int(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[m.group(2)]


def check_sidecar(d):
    w = d.workload("greeter-client-sidecar")
    sidecars = [c for c in w.init_containers if is_h2mesh_run(c)]
    expect(len(sidecars) == 1,
           f"{w.obj}: expected h2mesh as a native sidecar (an initContainer running `h2mesh "
           f"run`), found {len(sidecars)}")
    side = sidecars[0]
    expect(side.get("restartPolicy") == "Always",
           f"{w.obj}: the h2mesh init container needs restartPolicy: Always (native sidecar); "
           f"without it the pod never gets past Init")
    expect(side.get("startupProbe", {}).get("httpGet", {}).get("path") == "/ready",
           f"{w.obj}: a startupProbe on /ready makes the app wait until h2mesh listens and has "
           f"listed the endpoints")
    _, _, cfg = d.h2mesh_config_of(w, side)
    listeners = cfg.get("listeners") or []
    expect(len(listeners) == 1, f"{w.obj}: expected one h2mesh listener, has {len(listeners)}")
    lhost, lport = split_hostport(listeners[0]["address"])
    expect(lhost == "127.0.0.1",
           f"{w.obj}: the sidecar listener is on {lhost}; keep it on 127.0.0.1 so only the pod's "
           f"own app uses it")
    apps = [c for c in w.containers if greeter_calls(c)]
    expect(apps, f"{w.obj}: no container runs `greeter call`")
    for app in apps:
        for target, n in greeter_calls(app):
            expect(target, f"{w.obj} container {app.get('name')}: greeter call without --target")
            host, port = split_hostport(target)
            expect(host == "127.0.0.1",
                   f"{w.obj}: the app calls {target}; it must call the sidecar on 127.0.0.1 "
                   f"(h2mesh listens on IPv4 loopback; 'localhost' may resolve to ::1)")
            expect(port == lport, f"{w.obj}: the app calls port {port}, the sidecar listens on "
                                  f"{lport}")
            expect(n == "24", f"{w.obj}: greeter call -n {n!r}, expected 24")
    admin_and_probes(d, w, side, cfg)
    workers_within_cpu(w, side, cfg)
    drain_fits(w, cfg)


def check_balancer(d):
    w = d.workload("h2mesh-balancer")
    replicas = (w.obj.doc.get("spec") or {}).get("replicas")
    expect(replicas == 2, f"{w.obj}: replicas {replicas!r}, expected 2")
    runs = [c for c in w.containers if is_h2mesh_run(c)]
    expect(len(runs) == 1, f"{w.obj}: expected one container running `h2mesh run`")
    c = runs[0]
    _, _, cfg = d.h2mesh_config_of(w, c)
    expect(uses_kubernetes_discovery(cfg), f"{w.obj}: the balancer's config should use "
                                           f"Kubernetes discovery")
    listeners = cfg.get("listeners") or []
    expect(len(listeners) == 1, f"{w.obj}: expected one listener")
    lhost, lport = split_hostport(listeners[0]["address"])
    expect(lhost in ("0.0.0.0", "::"), f"{w.obj}: the listener is on {lhost}; a Service can "
                                       f"reach it only on the pod IP (0.0.0.0)")
    svc = d.need("Service", "h2mesh")
    targets = service_port_targets(d, svc)
    expect(targets[0][1].name == w.name, f"{svc}: selects {targets[0][1].obj}, expected {w.obj}")
    grpc = [t for t in targets if t[0].get("name") == "grpc"]
    expect(grpc and grpc[0][0].get("port") == 50051,
           f"{svc}: expected a port named grpc = 50051")
    expect(grpc[0][2].get("containerPort") == lport,
           f"{svc}: port grpc reaches container port {grpc[0][2].get('containerPort')}, h2mesh "
           f"listens on {lport}")
    admin_and_probes(d, w, c, cfg)
    workers_within_cpu(w, c, cfg)
    drain_fits(w, cfg)


def service_of_target(d, target):
    host, port = split_hostport(target)
    m = re.fullmatch(r"([a-z0-9-]+)\.([a-z0-9-]+)\.svc(\.cluster\.local)?\.?", host)
    expect(m, f"target {target}: expected <service>.<namespace>.svc[.{CLUSTER_DOMAIN}]:<port>")
    expect(m.group(2) == NAMESPACE, f"target {target} is not in namespace {NAMESPACE}")
    svc = d.need("Service", m.group(1))
    ports = [p.get("port") for p in svc.doc["spec"].get("ports") or []]
    expect(port in ports, f"target {target}: Service {svc.name} has ports {ports}, not {port}")
    return svc


def check_clients(d):
    """Before: a client of the plain Service; after: one of Service h2mesh."""
    l4 = d.workload("greeter-client-l4")
    calls = [t for c in l4.containers for t in greeter_calls(c)]
    expect(calls, f"{l4.obj}: no `greeter call`")
    for target, n in calls:
        svc = service_of_target(d, target)
        expect(svc.name == "greeter", f"{l4.obj}: calls {target}; the 'before' client must "
                                      f"call the plain Service greeter")
        expect(n == "24", f"{l4.obj}: -n {n!r}, expected 24")
    bal = d.workload("greeter-client-balancer")
    calls = [t for c in bal.containers for t in greeter_calls(c)]
    expect(calls, f"{bal.obj}: no `greeter call`")
    for target, n in calls:
        svc = service_of_target(d, target)
        expect(svc.name == "h2mesh", f"{bal.obj}: calls {target}, expected Service h2mesh")
        expect(n == "24", f"{bal.obj}: -n {n!r}, expected 24")
    for w in (l4, bal, d.workload("greeter-client-sidecar")):
        for c in w.containers:
            script = shell_script(c)
            if script and "while" in script:
                expect("trap" in script and "TERM" in script,
                       f"{w.obj} container {c.get('name')}: a shell loop as PID 1 ignores "
                       f"SIGTERM; trap it so the pod stops at once")


def check_greeter_cli(d):
    """greeter itself accepts the commands the manifests run: each `greeter call` with its
    target and count swapped for a harmless -n 0, and `greeter serve` with its flags on
    127.0.0.1, port 0 (started, seen listening, stopped with SIGTERM)."""
    if d.greeter is None:
        raise Skip("no greeter binary (--greeter, or next to h2mesh)")
    calls = 0
    for w in d.workloads():
        for c in w.containers:
            script = shell_script(c)
            lines = script.splitlines() if script else []
            for line in lines:
                line = line.strip().split("||")[0]
                if not re.match(r"^(\S*/)?greeter\s+call\b", line):
                    continue
                words = shlex.split(line)
                for i, word in enumerate(words[:-1]):
                    if word == "--target":
                        words[i + 1] = "127.0.0.1:1"
                    elif word == "-n":
                        words[i + 1] = "0"
                proc = subprocess.run([str(d.greeter)] + words[1:], capture_output=True,
                                      text=True, timeout=30)
                expect(proc.returncode == 0, f"{w.obj}: `{line}` (with -n 0) exited "
                                             f"{proc.returncode}: {proc.stderr.strip()}")
                calls += 1
    expect(calls, "no `greeter call` found to try")
    server = d.workload("greeter-server").containers[0]
    words = list(server.get("command") or []) + list(server.get("args") or [])
    flags = dict(zip(words[2::2], words[3::2]))
    flags.update({"--port": "0", "--address": "127.0.0.1"})
    if "--id" in flags:
        flags["--id"] = "greeter-server-test"
    argv = [str(d.greeter), "serve"] + [x for kv in flags.items() for x in kv]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        expect(re.match(r"greeter greeter-server-test listening on 127\.0\.0\.1:\d+", line),
               f"`{' '.join(argv[1:])}` did not start: {line!r} "
               f"{'' if line else proc.stderr.read()}")
        proc.terminate()
        expect(proc.wait(timeout=20) == 0, "greeter serve did not exit 0 on SIGTERM")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# ----------------------------------------------------------------------------------------------
# Checks: the Dockerfile.

def dockerfile_instructions(text):
    """(INSTRUCTION, argument text) with continuation lines joined and comments dropped."""
    out, current = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if current and line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        word, _, rest = current.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
        current = ""
    return out


def setup_base_packages(source):
    text = (source / "scripts" / "setup.sh").read_text()
    m = re.search(r"^packages=\(([^)]*)\)", text, re.M)
    expect(m, "scripts/setup.sh: no packages=(...) list")
    return m.group(1).split()


def apt_installed(run_args):
    m = re.search(r"apt-get install\s+(.*?)(&&|$)", run_args)
    if not m:
        return []
    return [w for w in m.group(1).split() if not w.startswith("-")]


def stages(d):
    text = (d.source / "deploy" / "Dockerfile").read_text()
    result, current = [], None
    for ins, arg in dockerfile_instructions(text):
        if ins == "FROM":
            words = arg.split()
            current = {"from": words[0],
                       "name": words[2] if len(words) >= 3 and words[1].upper() == "AS" else None,
                       "ins": []}
            result.append(current)
        elif current is not None:
            current["ins"].append((ins, arg))
        else:
            expect(ins == "ARG", f"deploy/Dockerfile: {ins} before the first FROM")
    return result


RUNTIME_PACKAGES = ["libgrpc++1.51", "libprotobuf32", "libnghttp2-14", "libyaml-cpp0.7",
                    "libc-ares2", "libssl3", "ca-certificates", "iptables"]


def check_dockerfile_stages(d):
    st = stages(d)
    expect(len(st) == 2, f"deploy/Dockerfile: expected 2 FROM stages (build, runtime), has "
                         f"{len(st)}")
    for s in st:
        expect(re.fullmatch(r"debian:(12|bookworm)([-.][\w.-]*)?(@sha256:[0-9a-f]+)?", s["from"]),
               f"deploy/Dockerfile: FROM {s['from']} is not Debian 12 (debian:12-slim, "
               f"debian:bookworm...)")
    build, runtime = st
    expect(build["name"], "deploy/Dockerfile: the build stage needs a name (FROM ... AS build)")
    runs = " && ".join(a for i, a in build["ins"] if i == "RUN")
    installed = [p for i, a in build["ins"] if i == "RUN" for p in apt_installed(a)]
    missing = [p for p in setup_base_packages(d.source) if p not in installed]
    expect(not missing, f"deploy/Dockerfile: the build stage does not install {missing} from "
                        f"scripts/setup.sh")
    for flag in ("-G Ninja", "-DCMAKE_BUILD_TYPE=Release", "-DH2MESH_TESTS=OFF"):
        expect(flag in runs, f"deploy/Dockerfile: the build stage's cmake lacks {flag}")
    copied = [a.split()[:-1] for i, a in build["ins"] if i == "COPY"]
    copied = {Path(p).parts[0] for words in copied for p in words if not p.startswith("--")}
    top = (d.source / "CMakeLists.txt").read_text()
    # Tests and fuzzers (a separate clang build) are not part of the image.
    top = re.sub(r"if\((H2MESH_TESTS|H2MESH_FUZZ)\).*?endif\(\)", "", top, flags=re.S)
    needed = {"CMakeLists.txt"} | {Path(x).parts[0]
                                   for x in re.findall(r"add_subdirectory\(([^)\s]+)", top)}
    expect(needed <= copied, f"deploy/Dockerfile: the build stage copies {sorted(copied)} but "
                             f"CMake needs {sorted(needed)}")
    rinstalled = [p for i, a in runtime["ins"] if i == "RUN" for p in apt_installed(a)]
    expect(sorted(rinstalled) == sorted(RUNTIME_PACKAGES),
           f"deploy/Dockerfile: the runtime stage installs {rinstalled}, expected exactly "
           f"{RUNTIME_PACKAGES}")
    expect(not [p for p in rinstalled if p.endswith("-dev") or p in ("g++", "cmake")],
           "deploy/Dockerfile: build tools in the runtime stage")
    copies = [a.split() for i, a in runtime["ins"] if i == "COPY"]
    bins = set()
    for words in copies:
        expect(f"--from={build['name']}" in words,
               f"deploy/Dockerfile: runtime COPY {' '.join(words)} is not from the build stage")
        dest = words[-1]
        for src in words[:-1]:
            if not src.startswith("--"):
                bins.add(str(Path(dest) / Path(src).name) if dest.endswith("/") else dest)
    for b in ("/usr/local/bin/h2mesh", "/usr/local/bin/greeter"):
        expect(b in bins, f"deploy/Dockerfile: the runtime stage does not copy {b} "
                          f"(copies {sorted(bins)})")
    users = [a for i, a in runtime["ins"] if i == "USER"]
    expect(users, "deploy/Dockerfile: the runtime stage has no USER (runs as root)")
    uid = users[-1].split(":")[0]
    expect(uid.isdigit() and int(uid) == RUN_AS_USER,
           f"deploy/Dockerfile: USER {users[-1]}: expected the numeric uid {RUN_AS_USER} (the "
           f"manifests' runAsUser; runAsNonRoot cannot verify a user name)")
    entry = [a for i, a in runtime["ins"] if i == "ENTRYPOINT"]
    expect(entry and yaml.safe_load(entry[-1]) == ["h2mesh"],
           f"deploy/Dockerfile: ENTRYPOINT should be [\"h2mesh\"] (exec form), is {entry}")
    expect(re.search(rf"useradd\b[^&]*--uid {RUN_AS_USER}\b", " ".join(
        a for i, a in runtime["ins"] if i == "RUN")),
        f"deploy/Dockerfile: no user with uid {RUN_AS_USER} is created")


def dpkg_packages_of(paths):
    """{path: Debian package} for the files dpkg knows, in one dpkg-query call (a path may be
    recorded under /lib or /usr/lib: usrmerge)."""
    aliases = {}
    for path in paths:
        for cand in {path, os.path.realpath(path)}:
            for alias in {cand, re.sub(r"^/usr/lib/", "/lib/", cand),
                          re.sub(r"^/lib/", "/usr/lib/", cand)}:
                aliases.setdefault(alias, set()).add(path)
    proc = subprocess.run(["dpkg-query", "-S"] + sorted(aliases), capture_output=True,
                          text=True)
    out = {}
    for line in proc.stdout.splitlines():
        pkgs, _, file = line.partition(": ")
        for path in aliases.get(file.strip(), ()):
            out.setdefault(path, pkgs.split(",")[0].split(":")[0].strip())
    return out


def dpkg_closure(packages):
    """The packages and everything they depend on (first installed alternative)."""
    seen, level = set(), set(packages)
    while level:
        seen |= level
        proc = subprocess.run(["dpkg-query", "-W", "-f=${Package}\t${Depends},${Pre-Depends}\n"]
                              + sorted(level), capture_output=True, text=True)
        nxt = set()
        for line in proc.stdout.splitlines():
            _, _, deps = line.partition("\t")
            for alt in deps.split(","):
                for choice in alt.split("|"):
                    name = choice.strip().split(" ")[0].split(":")[0]
                    if name:
                        nxt.add(name)
                        break
        level = nxt - seen
    return seen


def check_runtime_libraries(d):
    """The binaries' shared libraries come from the runtime stage's packages (or theirs)."""
    if not shutil.which("ldd") or not shutil.which("dpkg-query"):
        raise Skip("no ldd or dpkg-query here")
    needed = []
    for binary in [d.h2mesh] + ([d.greeter] if d.greeter else []):
        out = subprocess.run(["ldd", str(binary)], capture_output=True, text=True).stdout
        libs = re.findall(r"^\s*(\S+) => (/\S+)", out, re.M)
        if any(re.match(r"lib(a|ub|l|t)san\.", soname) for soname, _ in libs):
            # A sanitizer build also loads libasan, libatomic, ...: not what the image holds.
            raise Skip(f"{binary.name} is a sanitizer build")
        needed += [(binary.name, soname, path) for soname, path in libs]
    expect(needed, "ldd found no shared library")
    owners = dpkg_packages_of({path for _, _, path in needed})
    closure = dpkg_closure(RUNTIME_PACKAGES)
    for binary, soname, path in needed:
        pkg = owners.get(path)
        expect(pkg, f"{binary}: {soname} ({path}) belongs to no Debian package")
        expect(pkg in closure, f"{binary} needs {soname} from {pkg}, which the runtime stage's "
                               f"packages do not bring in")


# ----------------------------------------------------------------------------------------------
# Checks: deploy/grpcdemo/, the seed's demo as a user has it before injection.

INJECTOR_NAMESPACE = "h2mesh-system"
WEBHOOK_DNS = f"h2mesh-webhook.{INJECTOR_NAMESPACE}.svc"
WEBHOOK_SECRET = "h2mesh-webhook-tls"
SYSTEM_NAMESPACES = ["kube-system", "kube-public", "kube-node-lease", INJECTOR_NAMESPACE]


def project_version(source):
    m = re.search(r"project\(h2mesh\b[^)]*\bVERSION\s+([0-9.]+)",
                  (source / "CMakeLists.txt").read_text())
    expect(m, "CMakeLists.txt: no project(h2mesh ... VERSION x.y.z)")
    return m.group(1)


def check_version_image(d):
    """The image the new manifests run is h2mesh:<project VERSION>, and the binary says that
    version (the tag `h2mesh inject` puts into pods by default)."""
    version = project_version(d.source)
    expect(d.image == f"h2mesh:{version}", f"{d.label}: image {d.image}, expected "
                                           f"h2mesh:{version}")
    out = subprocess.run([str(d.h2mesh), "--version"], capture_output=True, text=True,
                         timeout=30).stdout
    expect(version in out, f"`h2mesh --version` prints {out.strip()!r}, not {version}")


def check_grpcdemo_story(d):
    """The seed's story: namespace grpcdemo, Deployment greeter-server (4 replicas), Service
    greeter-server:50051 (ClusterIP), Deployment greeter-client calling
    greeter-server.grpcdemo.svc.cluster.local:50051, 24 calls a run."""
    kinds = sorted((o.kind, o.name) for o in d.objects)
    expect(kinds == [("Deployment", "greeter-client"), ("Deployment", "greeter-server"),
                     ("Namespace", NAMESPACE), ("Service", "greeter-server")],
           f"{d.label}: expected exactly Namespace grpcdemo, Deployments greeter-server and "
           f"greeter-client, Service greeter-server; has {kinds}")
    svc = d.need("Service", "greeter-server")
    spec = svc.doc["spec"]
    expect(spec.get("type", "ClusterIP") == "ClusterIP" and "clusterIP" not in spec,
           f"{svc}: must be a plain ClusterIP Service")
    [(sp, w, cp)] = service_port_targets(d, svc)
    expect(sp.get("port") == 50051 and w.name == "greeter-server",
           f"{svc}: expected port 50051 to greeter-server, has {sp.get('port')} to {w.name}")
    client = d.workload("greeter-client")
    calls = [call for c in client.containers for call in greeter_calls(c)]
    expect(calls == [(f"greeter-server.{NAMESPACE}.svc.{CLUSTER_DOMAIN}:50051", "24")],
           f"{client.obj}: expected one `greeter call --target greeter-server.grpcdemo.svc."
           f"cluster.local:50051 -n 24` in its loop, has {calls}")
    loop = shell_script(client.containers[0]) or ""
    expect("while" in loop and "sleep" in loop, f"{client.obj}: the calls must run in a loop")


def check_grpcdemo_has_no_mesh(d):
    """Before injection nothing is of h2mesh: no h2mesh container, annotation or injection
    label; and no Pod Security level that would reject the injected h2mesh-init (NET_ADMIN,
    NET_RAW, root) once the namespace is labelled."""
    ns = d.need("Namespace", NAMESPACE)
    labels = ns.meta.get("labels") or {}
    expect("h2mesh-injection" not in labels,
           f"{ns}: the injection label is the walk-through's step, not the starting point")
    level = labels.get("pod-security.kubernetes.io/enforce")
    expect(level in (None, "privileged"),
           f"{ns}: Pod Security level {level!r} would reject the injected h2mesh-init")
    for w in d.workloads():
        annotations = (w.template.get("metadata") or {}).get("annotations") or {}
        expect(not [k for k in annotations if k.startswith("h2mesh.io/")],
               f"{w.obj}: h2mesh.io annotations {sorted(annotations)}")
        for c in w.all_containers():
            expect(c.get("command") and Path(c["command"][0]).name != "h2mesh",
                   f"{w.obj} container {c.get('name')}: runs h2mesh (the image's ENTRYPOINT "
                   f"unless command is set)")
            expect(not c.get("name", "").startswith("h2mesh"),
                   f"{w.obj}: container {c.get('name')} before injection")


# ----------------------------------------------------------------------------------------------
# Checks: deploy/injector/.

def injector_files(d):
    return sorted(d.kube_dir.glob("*.yaml")) + sorted((d.kube_dir / "templates").glob("*.yaml")) \
        + sorted((d.kube_dir / "cert-manager").glob("*.yaml"))


def load_pod_schema():
    try:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import pod_schema
    except SystemExit:
        raise Skip("pod_schema.py needs python3-kubernetes: apt-get install python3-kubernetes")
    return pod_schema


def check_injector_schema(d):
    """Every object of deploy/injector/ (and its templates/ and cert-manager/) is one the API's
    own models accept, with the API server's pod validation rules on the webhook's pods."""
    pod_schema = load_pod_schema()
    errors, unchecked = [], []
    for path in injector_files(d):
        e, u = pod_schema.file_errors(path)
        errors += e
        unchecked += [m for m in u if "cert-manager.io/v1" not in m]
    expect(not errors, "\n     ".join(errors))
    expect(not unchecked, f"objects with no schema: {unchecked}")


def check_injector_namespace(d):
    ns = d.of_kind("Namespace")
    expect([o.name for o in ns] == [INJECTOR_NAMESPACE],
           f"{d.label}: expected exactly Namespace {INJECTOR_NAMESPACE}, has "
           f"{[o.name for o in ns]}")
    first = min(o.file for o in d.objects)
    expect(ns[0].file == first, f"{d.label}: the Namespace must be in the first file applied "
                                f"({first})")
    cluster_scoped = {"Namespace", "ClusterRole", "ClusterRoleBinding",
                      "MutatingWebhookConfiguration"}
    for o in d.objects:
        if o.kind in cluster_scoped:
            expect(o.namespace is None, f"{o}: cluster-scoped, but has a namespace")
        else:
            expect(o.namespace == INJECTOR_NAMESPACE,
                   f"{o}: namespace {o.namespace!r}, expected {INJECTOR_NAMESPACE}")
    expect(not d.of_kind("MutatingWebhookConfiguration"),
           f"{d.label}: the MutatingWebhookConfiguration must not be applied before its CA "
           f"exists (it lives in templates/, filled in by make-certs.sh)")


def flag_map(words):
    expect(len(words) % 2 == 0 and all(w.startswith("--") for w in words[::2]),
           f"flags must come in --flag value pairs: {words}")
    return dict(zip(words[::2], words[1::2]))


def webhook_container(d):
    w = d.workload("h2mesh-webhook")
    expect(len(w.containers) == 1 and not w.init_containers,
           f"{w.obj}: expected one container")
    return w, w.containers[0]


def check_webhook_deployment(d):
    w, c = webhook_container(d)
    replicas = w.obj.doc["spec"].get("replicas")
    expect(replicas == 2, f"{w.obj}: replicas {replicas!r}, expected 2")
    expect("command" not in c, f"{w.obj}: runs through the image's ENTRYPOINT (h2mesh)")
    args = c.get("args") or []
    expect(args[:1] == ["webhook"], f"{w.obj}: args {args}, expected `webhook ...`")
    flags = flag_map(args[1:])
    expect(flags == {"--cert": "/etc/h2mesh-webhook/tls.crt",
                     "--key": "/etc/h2mesh-webhook/tls.key", "--listen": ":9443",
                     "--admin": "0.0.0.0:9902"}, f"{w.obj}: flags {flags}")
    mounts = {m["mountPath"].rstrip("/"): m for m in c.get("volumeMounts") or []}
    cert_dir = str(Path(flags["--cert"]).parent)
    expect(cert_dir == str(Path(flags["--key"]).parent) and cert_dir in mounts,
           f"{w.obj}: --cert and --key must be in one mounted directory ({sorted(mounts)})")
    expect(mounts[cert_dir].get("readOnly") is True, f"{w.obj}: mount {cert_dir} read-only")
    volume = next(v for v in w.pod.get("volumes") or []
                  if v.get("name") == mounts[cert_dir]["name"])
    expect((volume.get("secret") or {}).get("secretName") == WEBHOOK_SECRET,
           f"{w.obj}: {cert_dir} must be Secret {WEBHOOK_SECRET}, is {volume}")
    expect(not (volume["secret"].get("items")),
           f"{w.obj}: no items: the Secret's tls.crt and tls.key keep their names")
    ports = {p.get("name"): p.get("containerPort") for p in c.get("ports") or []}
    expect(ports.get("https") == split_hostport("0.0.0.0" + flags["--listen"])[1],
           f"{w.obj}: container port https {ports.get('https')} is not --listen")
    admin_port = split_hostport(flags["--admin"])[1]
    expect(ports.get("admin") == admin_port, f"{w.obj}: container port admin is not --admin")
    ready = (c.get("readinessProbe") or {}).get("httpGet") or {}
    expect(ready.get("path") == "/ready" and ready.get("port") in (admin_port, "admin"),
           f"{w.obj}: readinessProbe must GET /ready on the admin port, is {ready}")
    live = (c.get("livenessProbe") or {}).get("httpGet") or {}
    expect(live.get("port") in (admin_port, "admin") and live.get("path") != "/ready",
           f"{w.obj}: livenessProbe on the admin port, not /ready, is {live}")
    expect(w.pod.get("serviceAccountName") == "h2mesh-webhook" and
           w.pod.get("automountServiceAccountToken") is not False,
           f"{w.obj}: runs as ServiceAccount h2mesh-webhook with its token (namespace watch)")
    sc = w.pod.get("securityContext") or {}
    expect(sc.get("runAsNonRoot") is True and sc.get("runAsUser") == RUN_AS_USER,
           f"{w.obj}: must run as non-root uid {RUN_AS_USER}")


def check_webhook_flags_known(d):
    """`h2mesh webhook --help` names every flag the Deployment passes."""
    _, c = webhook_container(d)
    proc = subprocess.run([str(d.h2mesh), "webhook", "--help"], capture_output=True, text=True,
                          timeout=30)
    text = proc.stdout + proc.stderr
    if proc.returncode != 0 and "unknown command 'webhook'" in text:
        raise Skip("this h2mesh has no `webhook` command (branch h-webhook not merged)")
    expect(proc.returncode == 0, f"`h2mesh webhook --help` exited {proc.returncode}: {text}")
    for flag in flag_map((c.get("args") or [])[1:]):
        expect(re.search(rf"(^|\W){re.escape(flag)}\b", text),
               f"`h2mesh webhook --help` does not list {flag}")


def check_webhook_service_pdb(d):
    svc = d.need("Service", "h2mesh-webhook")
    [(sp, w, cp)] = service_port_targets(d, svc)
    expect(sp.get("port") == 443 and w.name == "h2mesh-webhook" and
           cp.get("containerPort") == 9443,
           f"{svc}: expected port 443 to h2mesh-webhook's 9443, has {sp.get('port')} to "
           f"{w.name}:{cp.get('containerPort')}")
    pdb = d.need("PodDisruptionBudget", "h2mesh-webhook")
    spec = pdb.doc["spec"]
    sel = (spec.get("selector") or {}).get("matchLabels") or {}
    expect(sel and d.pods_selected(sel) == [w] or
           [x.name for x in d.pods_selected(sel)] == ["h2mesh-webhook"],
           f"{pdb}: selector {sel} must select the webhook's pods only")
    replicas = w.obj.doc["spec"]["replicas"]
    expect(isinstance(spec.get("minAvailable"), int) and
           1 <= spec["minAvailable"] < replicas,
           f"{pdb}: minAvailable {spec.get('minAvailable')!r}: at least 1 and fewer than the "
           f"{replicas} replicas (or no node could ever be drained)")


def rules_of(d, name):
    role = d.need("ClusterRole", name)
    out = set()
    for r in role.doc.get("rules") or []:
        for g in r.get("apiGroups") or []:
            for res in r.get("resources") or []:
                for v in r.get("verbs") or []:
                    out.add((g, res, v))
        expect(not r.get("resourceNames") and not r.get("nonResourceURLs"),
               f"{role}: unexpected resourceNames/nonResourceURLs")
    return out


def binding_of(d, name, role):
    b = d.need("ClusterRoleBinding", name)
    expect(b.doc.get("roleRef") == {"apiGroup": RBAC_GROUP, "kind": "ClusterRole",
                                    "name": role}, f"{b}: roleRef {b.doc.get('roleRef')}")
    return b.doc.get("subjects") or []


def check_injector_rbac(d):
    got = rules_of(d, "h2mesh-webhook")
    expect(got == {("", "namespaces", v) for v in ("get", "list", "watch")},
           f"ClusterRole h2mesh-webhook grants {sorted(got)}, expected get/list/watch on "
           f"namespaces only")
    subjects = binding_of(d, "h2mesh-webhook", "h2mesh-webhook")
    expect(subjects == [{"kind": "ServiceAccount", "name": "h2mesh-webhook",
                         "namespace": INJECTOR_NAMESPACE}],
           f"ClusterRoleBinding h2mesh-webhook binds {subjects}")
    d.need("ServiceAccount", "h2mesh-webhook")
    got = rules_of(d, "h2mesh-sidecar")
    expect(got == {("", "services", "list"), ("", "services", "watch"),
                   ("discovery.k8s.io", "endpointslices", "list"),
                   ("discovery.k8s.io", "endpointslices", "watch")},
           f"ClusterRole h2mesh-sidecar grants {sorted(got)}, expected list/watch on services "
           f"and endpointslices only")
    subjects = binding_of(d, "h2mesh-sidecar", "h2mesh-sidecar")
    expect(subjects == [{"apiGroup": RBAC_GROUP, "kind": "Group",
                         "name": "system:serviceaccounts"}],
           f"ClusterRoleBinding h2mesh-sidecar binds {subjects}: the sidecars run as their "
           f"pods' own ServiceAccounts, so it is the group of all of them")


def selector_matches(selector, labels):
    """A LabelSelector (matchLabels, matchExpressions) against a set of labels."""
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in selector.get("matchExpressions") or []:
        key, op, values = e["key"], e["operator"], e.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def mutating_configs(d):
    """(file, MutatingWebhookConfiguration) from templates/ and cert-manager/."""
    out = []
    for sub in ("templates", "cert-manager"):
        for path in sorted((d.kube_dir / sub).glob("*.yaml")):
            for doc in yaml.safe_load_all(path.read_text()):
                if doc and doc.get("kind") == "MutatingWebhookConfiguration":
                    out.append((f"{sub}/{path.name}", doc))
    return out


def check_mutating_webhook(d):
    configs = mutating_configs(d)
    expect([f.split("/")[0] for f, _ in configs] == ["templates", "cert-manager"],
           f"expected one MutatingWebhookConfiguration in templates/ and one in cert-manager/, "
           f"found {[f for f, _ in configs]}")
    svc = d.need("Service", "h2mesh-webhook")
    port = svc.doc["spec"]["ports"][0]["port"]
    for f, mwc in configs:
        expect(mwc["metadata"]["name"] == "h2mesh-sidecar-injector", f"{f}: name")
        [hook] = mwc["webhooks"]
        where = f"{f}: webhook {hook.get('name')}"
        expect(hook.get("name") == "sidecar-injector.h2mesh.io", f"{where}: name")
        expect(hook.get("admissionReviewVersions") == ["v1"], f"{where}: admissionReviewVersions")
        service = (hook.get("clientConfig") or {}).get("service") or {}
        expect(service == {"name": svc.name, "namespace": svc.namespace, "path": "/mutate",
                           "port": port},
               f"{where}: clientConfig.service {service}, expected Service {svc.name}."
               f"{svc.namespace}:{port} path /mutate")
        expect(hook.get("sideEffects") == "None" and hook.get("failurePolicy") == "Ignore"
               and hook.get("reinvocationPolicy") == "IfNeeded"
               and hook.get("timeoutSeconds") == 5,
               f"{where}: sideEffects None, failurePolicy Ignore, reinvocationPolicy IfNeeded, "
               f"timeoutSeconds 5 expected")
        expect(hook.get("rules") == [{"operations": ["CREATE"], "apiGroups": [""],
                                      "apiVersions": ["v1"], "resources": ["pods"],
                                      "scope": "Namespaced"}], f"{where}: rules {hook['rules']}")
        sel = hook.get("namespaceSelector") or {}
        for name, labels, called in (
                ("grpcdemo", {"h2mesh-injection": "enabled"}, True),
                ("default", {}, True),  # the webhook decides (annotated pods)
                ("opted-out", {"h2mesh-injection": "disabled"}, False)) + tuple(
                (n, {}, False) for n in SYSTEM_NAMESPACES):
            labels = dict(labels, **{"kubernetes.io/metadata.name": name})
            expect(selector_matches(sel, labels) == called,
                   f"{where}: namespaceSelector {'skips' if called else 'calls the webhook for'}"
                   f" namespace {name} {labels}")
    (_, template), (_, cm) = configs
    expect(template["webhooks"][0]["clientConfig"].get("caBundle") == "",
           "templates/: caBundle must be \"\" (make-certs.sh fills it in)")
    expect(cm["metadata"].get("annotations", {}).get("cert-manager.io/inject-ca-from")
           == f"{INJECTOR_NAMESPACE}/h2mesh-webhook",
           "cert-manager/: needs cert-manager.io/inject-ca-from: h2mesh-system/h2mesh-webhook")
    a = copy.deepcopy(template)
    b = copy.deepcopy(cm)
    a["webhooks"][0]["clientConfig"].pop("caBundle")
    b["metadata"].pop("annotations")
    expect(a == b, "the cert-manager/ MutatingWebhookConfiguration differs from templates/' "
                   "in more than caBundle and the inject-ca-from annotation")


def check_cert_manager(d):
    docs = [x for x in yaml.safe_load_all(
        (d.kube_dir / "cert-manager" / "webhook-cert-manager.yaml").read_text()) if x]
    certs = [x for x in docs if x["kind"] == "Certificate"]
    issuers = {x["metadata"]["name"] for x in docs if x["kind"] == "Issuer"}
    expect(len(certs) == 1, "cert-manager/: expected one Certificate")
    cert = certs[0]
    spec = cert["spec"]
    expect(f"{cert['metadata']['namespace']}/{cert['metadata']['name']}"
           == f"{INJECTOR_NAMESPACE}/h2mesh-webhook", "cert-manager/: the Certificate must be "
                                                      "h2mesh-system/h2mesh-webhook")
    expect(spec.get("secretName") == WEBHOOK_SECRET, f"cert-manager/: secretName must be "
                                                     f"{WEBHOOK_SECRET} (the webhook mounts it)")
    expect(WEBHOOK_DNS in (spec.get("dnsNames") or []),
           f"cert-manager/: dnsNames must hold {WEBHOOK_DNS}")
    expect(spec.get("issuerRef", {}).get("kind") == "Issuer" and
           spec["issuerRef"].get("name") in issuers,
           f"cert-manager/: issuerRef {spec.get('issuerRef')} names no Issuer of the file")
    for x in docs:
        expect(x["kind"] == "MutatingWebhookConfiguration" or
               x["metadata"].get("namespace") == INJECTOR_NAMESPACE,
               f"cert-manager/: {x['kind']} must be in {INJECTOR_NAMESPACE}")


def openssl(*args, stdin=None):
    proc = subprocess.run(["openssl"] + list(args), input=stdin, capture_output=True,
                          timeout=30)
    return proc.returncode, proc.stdout.decode(errors="replace") + \
        proc.stderr.decode(errors="replace")


def check_make_certs(d):
    """make-certs.sh writes a Secret whose certificate verifies against the caBundle it puts
    into the MutatingWebhookConfiguration, for the Service's DNS name; the rest of that
    configuration is the template's."""
    if not shutil.which("openssl"):
        raise Skip("no openssl command (Debian: openssl)")
    script = d.kube_dir / "make-certs.sh"
    expect(os.access(script, os.X_OK), f"{script} is not executable")
    out = d.tmp / "certs"
    proc = subprocess.run([str(script), str(out), "--days", "30"], capture_output=True,
                          text=True, timeout=60)
    expect(proc.returncode == 0, f"make-certs.sh exited {proc.returncode}: {proc.stderr}")
    secret = yaml.safe_load((out / "h2mesh-webhook-tls.yaml").read_text())
    mwc = yaml.safe_load((out / "mutatingwebhookconfiguration.yaml").read_text())
    expect(secret["metadata"] == {"name": WEBHOOK_SECRET, "namespace": INJECTOR_NAMESPACE,
                                  "labels": {"app.kubernetes.io/part-of": "h2mesh"}}
           and secret.get("type") == "kubernetes.io/tls"
           and sorted(secret["data"]) == ["ca.crt", "tls.crt", "tls.key"],
           f"make-certs.sh: Secret {secret.get('metadata')} {sorted(secret.get('data', {}))}")
    expect(oct((out / "h2mesh-webhook-tls.yaml").stat().st_mode & 0o777) == "0o600",
           "make-certs.sh: the Secret file (a private key) must be mode 0600")
    files = {}
    for key, b64 in secret["data"].items():
        files[key] = d.tmp / f"secret-{key}"
        files[key].write_bytes(base64.b64decode(b64, validate=True))
    ca = d.tmp / "cabundle.crt"
    ca.write_bytes(base64.b64decode(mwc["webhooks"][0]["clientConfig"]["caBundle"],
                                    validate=True))
    rc, text = openssl("verify", "-purpose", "sslserver", "-CAfile", str(ca),
                       str(files["tls.crt"]))
    expect(rc == 0, f"make-certs.sh: tls.crt does not verify against caBundle: {text}")
    rc, text = openssl("x509", "-in", str(files["tls.crt"]), "-noout", "-ext",
                       "subjectAltName")
    expect(rc == 0 and f"DNS:{WEBHOOK_DNS}," in text + ",",
           f"make-certs.sh: the certificate's SAN lacks {WEBHOOK_DNS}: {text}")
    _, cert_pub = openssl("x509", "-in", str(files["tls.crt"]), "-noout", "-pubkey")
    _, key_pub = openssl("pkey", "-in", str(files["tls.key"]), "-pubout")
    expect(cert_pub.strip() == key_pub.strip() and "PUBLIC KEY" in cert_pub,
           "make-certs.sh: tls.key is not the certificate's key")
    expect(files["ca.crt"].read_bytes() == ca.read_bytes(),
           "make-certs.sh: the Secret's ca.crt differs from caBundle")
    template = yaml.safe_load((d.kube_dir / "templates" /
                               "mutatingwebhookconfiguration.yaml").read_text())
    template["webhooks"][0]["clientConfig"]["caBundle"] = \
        mwc["webhooks"][0]["clientConfig"]["caBundle"]
    expect(mwc == template, "make-certs.sh: the configuration differs from the template in more "
                            "than caBundle")
    pod_schema = load_pod_schema()
    for path in (out / "h2mesh-webhook-tls.yaml", out / "mutatingwebhookconfiguration.yaml"):
        e, u = pod_schema.file_errors(path)
        expect(not e and not u, f"make-certs.sh output {path.name}: {e or u}")
    bad = subprocess.run([str(script)], capture_output=True, text=True, timeout=30)
    expect(bad.returncode == 2 and "OUTDIR" in bad.stderr,
           f"make-certs.sh without arguments: exit {bad.returncode}, expected usage and 2")


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bounded_wait(what, fn, tries=200, pause=0.05):
    """fn() until it returns something true, at most `tries` times."""
    for _ in range(tries):
        value = fn()
        if value:
            return value
        time.sleep(pause)
    raise Failure(f"gave up waiting for {what}")


def check_webhook_serves_make_certs(d, demo):
    """The Deployment's `h2mesh webhook` command, run here on loopback with the Secret
    make-certs.sh writes (namespaces from tests/fakes/fake_kube_apiserver.py): the API server's
    view of it, i.e. TLS verified against the caBundle for the Service's DNS name, answers an
    AdmissionReview for deploy/grpcdemo's client pod with a patch whose result is a valid pod."""
    proc = subprocess.run([str(d.h2mesh), "webhook", "--help"], capture_output=True, text=True,
                          timeout=30)
    if "unknown command 'webhook'" in proc.stdout + proc.stderr:
        raise Skip("this h2mesh has no `webhook` command (branch h-webhook not merged)")
    if not shutil.which("openssl"):
        raise Skip("no openssl command (Debian: openssl)")
    try:
        import jsonpatch
    except ImportError:
        raise Skip("needs python3-jsonpatch (Debian) to apply the webhook's patch")
    pod_schema = load_pod_schema()
    fake_py = d.source / "tests" / "fakes" / "fake_kube_apiserver.py"
    work = d.tmp / "webhook"
    certs = work / "certs"
    work.mkdir()
    made = subprocess.run([str(d.kube_dir / "make-certs.sh"), str(certs)], capture_output=True,
                          text=True, timeout=60)
    expect(made.returncode == 0, f"make-certs.sh: {made.stderr}")
    secret = yaml.safe_load((certs / "h2mesh-webhook-tls.yaml").read_text())
    mwc = yaml.safe_load((certs / "mutatingwebhookconfiguration.yaml").read_text())
    mounted = work / "etc-h2mesh-webhook"  # what the kubelet makes of the Secret volume
    mounted.mkdir()
    for key, b64 in secret["data"].items():
        (mounted / key).write_bytes(base64.b64decode(b64))
    ca_bundle = work / "cabundle.crt"
    ca_bundle.write_bytes(base64.b64decode(mwc["webhooks"][0]["clientConfig"]["caBundle"]))

    _, c = webhook_container(d)
    flags = flag_map((c.get("args") or [])[1:])
    port, admin = free_port(), free_port()
    local = {"--cert": str(mounted / Path(flags["--cert"]).name),
             "--key": str(mounted / Path(flags["--key"]).name),
             "--listen": f"127.0.0.1:{port}", "--admin": f"127.0.0.1:{admin}"}
    expect(set(local) == set(flags), f"the Deployment's flags changed: {sorted(flags)}")

    procs, logs = [], []
    try:
        fake_log = open(work / "fake.log", "w")
        logs.append(fake_log)
        fake = subprocess.Popen(["/usr/bin/python3", str(fake_py), "--dir", str(work / "kube")],
                                stdout=subprocess.PIPE, stderr=fake_log, text=True)
        procs.append(fake)
        control = fake.stdout.readline().split()[-1]
        api = fake.stdout.readline().split()[-1]
        expect(control.startswith("http://") and api.startswith("https://"),
               f"fake API server did not start: {control!r} {api!r}")
        req = urllib.request.Request(control + "/namespaces/grpcdemo", method="PUT",
                                     data=json.dumps({"labels": {"h2mesh-injection":
                                                                 "enabled"}}).encode())
        try:
            urllib.request.urlopen(req, timeout=10).read()
        except urllib.error.HTTPError as e:
            if e.code == 404:
                raise Skip("tests/fakes/fake_kube_apiserver.py serves no Namespaces (branch "
                           "h-webhook not merged)")
            raise
        kubeconfig = work / "kubeconfig"
        kubeconfig.write_text(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n"
            f"    server: {api}\n    certificate-authority: {work / 'kube' / 'ca.crt'}\n"
            "users:\n- name: wh\n  user:\n    token: test-token\n"
            "contexts:\n- name: fake\n  context: {cluster: fake, user: wh}\n"
            "current-context: fake\n")
        log = open(work / "webhook.log", "w")
        logs.append(log)
        argv = [str(d.h2mesh), "webhook"] + [x for f in flags for x in (f, local[f])] + \
            ["--kubeconfig", str(kubeconfig)]
        webhook = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        procs.append(webhook)

        def ready():
            expect(webhook.poll() is None, f"h2mesh webhook exited {webhook.returncode}: "
                                           f"{(work / 'webhook.log').read_text()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{admin}/ready", timeout=2) as r:
                    return r.status == 200
            except OSError:
                return False
        bounded_wait("the webhook's /ready", ready)

        # As the API server: verify the certificate against caBundle, for the Service's name.
        ctx = ssl.create_default_context(cafile=str(ca_bundle))
        client = demo.workload("greeter-client")
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": copy.deepcopy(client.template.get("metadata") or {}),
               "spec": copy.deepcopy(client.pod)}
        review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                  "request": {"uid": "0b5c2a8e-6b0e-4a43-9d5e-3f3c7d1a2b10",
                              "kind": {"group": "", "version": "v1", "kind": "Pod"},
                              "resource": {"group": "", "version": "v1", "resource": "pods"},
                              "namespace": NAMESPACE, "operation": "CREATE", "object": pod,
                              "dryRun": False}}
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
        conn.sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10),
                                    server_hostname=WEBHOOK_DNS)
        path = mwc["webhooks"][0]["clientConfig"]["service"]["path"]
        conn.request("POST", path, body=json.dumps(review),
                     headers={"Content-Type": "application/json"})
        reply = conn.getresponse()
        body = reply.read()
        conn.close()
        expect(reply.status == 200, f"POST {path}: HTTP {reply.status} {body[:200]!r}")
        answer = json.loads(body)["response"]
        expect(answer.get("uid") == review["request"]["uid"] and answer.get("allowed") is True
               and answer.get("patchType") == "JSONPatch",
               f"expected an allowed answer with a JSONPatch, got {answer}")
        patched = jsonpatch.apply_patch(pod, json.loads(base64.b64decode(answer["patch"])))
        errors, _ = pod_schema.object_errors(patched)
        expect(not errors, "the patched pod is not valid: " + "; ".join(errors))
        init = [x.get("name") for x in patched["spec"].get("initContainers") or []]
        expect(init[:2] == ["h2mesh-init", "h2mesh-proxy"],
               f"the patched pod's init containers are {init}")
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
            if p.stdout:
                p.stdout.close()
        for f in logs:
            f.close()


def check_image_iptables(d):
    """h2mesh-init runs `h2mesh iptables install` in the image: the runtime stage's iptables
    package has every tool h2mesh may run (both backends, both families)."""
    if not shutil.which("dpkg-query"):
        raise Skip("no dpkg-query here")
    proc = subprocess.run(["dpkg-query", "-L", "iptables"], capture_output=True, text=True)
    if proc.returncode != 0:
        raise Skip("the iptables package is not installed here (scripts/setup.sh installs it)")
    names = {Path(p).name for p in proc.stdout.split()}
    for family in ("iptables", "ip6tables"):
        for backend in ("", "-nft", "-legacy"):
            for op in ("-save", "-restore"):
                tool = family + backend + op
                expect(tool in names or tool in ("iptables-save", "iptables-restore",
                                                 "ip6tables-save", "ip6tables-restore"),
                       f"Debian's iptables package has no {tool}")
    expect({"iptables-nft-restore", "iptables-legacy-restore", "ip6tables-nft-restore",
            "ip6tables-legacy-restore"} <= names,
           "Debian's iptables package lacks a backend's restore tool")


# ----------------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--h2mesh", required=True, help="the h2mesh binary")
    ap.add_argument("--greeter", help="the greeter binary (default: next to h2mesh)")
    ap.add_argument("--source-dir", default=str(Path(__file__).resolve().parents[2]))
    args = ap.parse_args()
    h2mesh = Path(args.h2mesh).resolve()
    if not os.access(h2mesh, os.X_OK):
        print(f"manifests_test: {h2mesh} is not an executable", file=sys.stderr)
        return 2
    greeter = Path(args.greeter).resolve() if args.greeter else h2mesh.parent / "greeter"
    if not os.access(greeter, os.X_OK):
        greeter = None
    source = Path(args.source_dir).resolve()
    d = Deploy(source, h2mesh, greeter)
    image = f"h2mesh:{project_version(source)}"
    demo = Deploy(source, h2mesh, greeter, "grpcdemo", image)
    inj = Deploy(source, h2mesh, greeter, "injector", image, INJECTOR_NAMESPACE)
    r = Runner()
    try:
        if not r.check("manifests parse, known kinds and apiVersions", check_parse, d):
            print(f"0 passed, {r.failed} failed")
            return 1
        r.check("no unknown fields", check_schema, d)
        r.check("names unique and DNS-1123", check_names, d)
        r.check("everything in namespace grpcdemo, namespace applied first", check_namespace, d)
        r.check("ServiceAccounts and ConfigMaps applied before their pods", check_apply_order, d)
        r.check("Deployment selectors match their pod labels, and only them",
                check_deployment_selectors, d)
        r.check("containers: image h2mesh:dev, resources, security, probe ports",
                check_containers, d)
        r.check("pods run as non-root uid 10001 and meet the namespace's Pod Security level",
                check_pod_security, d)
        r.check("greeter-server: 4 replicas, serve on 0.0.0.0:50051, id = pod name, gRPC probes",
                check_greeter_server, d)
        r.check("Services select one Deployment; targetPorts and names match container ports",
                check_services, d)
        r.check("Service greeter is ClusterIP; greeter-headless is headless, same pods and port",
                check_greeter_services, d)
        r.check("every h2mesh config in a ConfigMap passes `h2mesh check`",
                check_configs_valid, d)
        r.check("`h2mesh check` rejects a typo (the check above is not a no-op)",
                check_h2mesh_check_rejects, d)
        r.check("discovery names the greeter Service, its namespace and port (kubernetes, dns)",
                check_discovery_targets, d)
        r.check("Role: exactly get/list/watch on endpointslices; RoleBinding binds it to the SA",
                check_rbac, d)
        r.check("h2mesh pods run as the bound ServiceAccount with a token; other pods have none",
                check_service_accounts, d)
        r.check("sidecar: native, loopback listener = the app's --target, probes on admin",
                check_sidecar, d)
        r.check("balancer: 2 replicas, Service h2mesh reaches its listener, probes on admin",
                check_balancer, d)
        r.check("clients: before calls Service greeter, standalone calls Service h2mesh",
                check_clients, d)
        r.check("greeter accepts the flags the manifests use", check_greeter_cli, d)
        r.check("Dockerfile: 2 Debian 12 stages, setup.sh packages, Release, USER 10001, "
                "both binaries", check_dockerfile_stages, d)
        r.check("Dockerfile: runtime packages provide every library the binaries load",
                check_runtime_libraries, d)
        r.check("Dockerfile: the runtime's iptables package has both backends' tools",
                check_image_iptables, d)

        print("-- deploy/grpcdemo/")
        if r.check("grpcdemo: manifests parse, known kinds and apiVersions", check_parse, demo):
            r.check("grpcdemo: no unknown fields", check_schema, demo)
            r.check("grpcdemo: names unique and DNS-1123", check_names, demo)
            r.check("grpcdemo: everything in namespace grpcdemo, namespace applied first",
                    check_namespace, demo)
            r.check("grpcdemo: Deployment selectors match their pod labels, and only them",
                    check_deployment_selectors, demo)
            r.check("grpcdemo: image h2mesh:<project VERSION>, which `h2mesh --version` says",
                    check_version_image, demo)
            r.check("grpcdemo: containers: that image, resources, security, probe ports",
                    check_containers, demo)
            r.check("grpcdemo: pods run as non-root uid 10001", check_pod_security, demo)
            r.check("grpcdemo: greeter-server: 4 replicas, serve on 0.0.0.0:50051, id = pod "
                    "name, gRPC probes", check_greeter_server, demo)
            r.check("grpcdemo: Services select one Deployment; ports match container ports",
                    check_services, demo)
            r.check("grpcdemo: the seed's story (Service greeter-server:50051, client calling "
                    "its cluster DNS name 24 times a run)", check_grpcdemo_story, demo)
            r.check("grpcdemo: nothing of h2mesh before injection, no Pod Security level that "
                    "rejects h2mesh-init", check_grpcdemo_has_no_mesh, demo)
            r.check("grpcdemo: greeter accepts the flags the manifests use", check_greeter_cli,
                    demo)

        print("-- deploy/injector/")
        r.check("injector: every object passes the API's schema (python3-kubernetes) and pod "
                "rules", check_injector_schema, inj)
        r.check("injector: namespace h2mesh-system first; no webhook configuration without "
                "its CA", check_injector_namespace, inj)
        r.check("injector: names unique and DNS-1123", check_names, inj)
        r.check("injector: Deployment selectors match their pod labels, and only them",
                check_deployment_selectors, inj)
        r.check("injector: containers: image h2mesh:<VERSION>, resources, security, probe ports",
                check_containers, inj)
        r.check("injector: pods non-root uid 10001, meet the namespace's restricted level",
                check_pod_security, inj)
        r.check("injector: webhook: 2 replicas, flags, Secret mount, probes on --admin",
                check_webhook_deployment, inj)
        r.check("injector: `h2mesh webhook --help` lists every flag the Deployment passes",
                check_webhook_flags_known, inj)
        r.check("injector: Service 443 -> 9443, PodDisruptionBudget keeps one webhook",
                check_webhook_service_pdb, inj)
        r.check("injector: RBAC: webhook get/list/watch namespaces; sidecars list/watch "
                "services and endpointslices, bound to system:serviceaccounts",
                check_injector_rbac, inj)
        r.check("injector: MutatingWebhookConfiguration (template and cert-manager): service, "
                "policies, rules, namespaceSelector", check_mutating_webhook, inj)
        r.check("injector: cert-manager Certificate -> Secret h2mesh-webhook-tls, SAN, issuer",
                check_cert_manager, inj)
        r.check("injector: make-certs.sh: certificate verifies against the caBundle it writes",
                check_make_certs, inj)
        r.check("injector: the Deployment's `h2mesh webhook`, serving make-certs.sh's Secret, "
                "verified by its caBundle, patches the grpcdemo client into a valid pod",
                check_webhook_serves_make_certs, inj, demo)
    finally:
        for x in (d, demo, inj):
            shutil.rmtree(x.tmp, ignore_errors=True)
    print(f"{r.passed} passed, {r.failed} failed" + (f", {r.skipped} skipped" if r.skipped
                                                      else ""))
    return 1 if r.failed else 0


if __name__ == "__main__":
    sys.exit(main())
