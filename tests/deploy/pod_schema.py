#!/usr/bin/python3
"""Checks that Kubernetes objects, and above all their pod specs, are ones the API server would
accept, from a source independent of h2mesh: the models Debian's python3-kubernetes (22.6)
generated from the API's OpenAPI definitions (their `openapi_types`, `attribute_map` and
required-field checks), plus the API server's own validation rules that matter for sidecar
injection (k8s.io/kubernetes pkg/apis/core/validation).

    /usr/bin/python3 tests/deploy/pod_schema.py FILE...

validates every object of every YAML document in the files (a `kind: List` item by item) whose
kind the models know, and the pod spec of every Pod and workload template; prints one line per
problem and exits 1 if there was any, 0 otherwise, 2 on bad usage. Objects of kinds the models
do not know (custom resources such as cert-manager's) are listed on stderr as not checked.

As a module: `object_errors(doc)` and `pod_spec_errors(spec, where)` return lists of messages.
"""

import inspect
import re
import sys
from decimal import Decimal, InvalidOperation

try:
    import yaml
    from kubernetes.client import models
except ImportError as e:  # pragma: no cover
    print(f"pod_schema: {e}: apt-get install python3-yaml python3-kubernetes", file=sys.stderr)
    sys.exit(2)

# ----------------------------------------------------------------------------------------------
# The schema: python3-kubernetes 22.6's models (Kubernetes 1.22), and what is newer.

# Fields newer than the 1.22 schema that h2mesh's manifests or injected pods use, each with the
# Kubernetes version that added it: (model, JSON field) -> type in the models' notation. Only
# these: anything else the 1.22 schema lacks stays an error.
NEWER_FIELDS = {
    # Native sidecars: an init container with restartPolicy Always. Alpha in 1.28, beta and on
    # by default in 1.29 (KEP-753). Only "Always", only on init containers: see _container().
    ("V1Container", "restartPolicy"): "str",
    # gRPC probes (the greeter servers' health checks): alpha 1.23, beta 1.24, GA 1.27.
    ("V1Probe", "grpc"): "V1GRPCActionNewer",
}
# Models for the newer fields' values: {JSON field: type}, and the required ones.
NEWER_MODELS = {
    # GRPCAction (1.23+): port is required, service optional.
    "V1GRPCActionNewer": ({"port": "int", "service": "str"}, {"port"}),
}

# Fields whose generated type is the free-form 'object' but which are IntOrString in the API.
INT_OR_STRING = {("V1HTTPGetAction", "port"), ("V1TCPSocketAction", "port"),
                 ("V1ServicePort", "targetPort"), ("V1RollingUpdateDeployment", "maxSurge"),
                 ("V1RollingUpdateDeployment", "maxUnavailable"),
                 ("V1RollingUpdateDaemonSet", "maxSurge"),
                 ("V1RollingUpdateDaemonSet", "maxUnavailable"),
                 ("V1PodDisruptionBudgetSpec", "minAvailable"),
                 ("V1PodDisruptionBudgetSpec", "maxUnavailable")}
# Resource maps hold Quantities: a string, or a number (the API's Quantity accepts both in JSON).
QUANTITY_MAPS = {("V1ResourceRequirements", "limits"), ("V1ResourceRequirements", "requests"),
                 ("V1PodSpec", "overhead")}

_fields_cache = {}


def model_fields(name):
    """({JSON field: type}, {required JSON fields}) of a model, newer fields included."""
    if name in NEWER_MODELS:
        return NEWER_MODELS[name]
    if name not in _fields_cache:
        cls = getattr(models, name)
        json_of = cls.attribute_map
        fields = {json_of[attr]: typ for attr, typ in cls.openapi_types.items()}
        # The generated setters refuse None for the required fields: read which from the source.
        required_attrs = set(re.findall(
            r"client_side_validation and (\w+) is None", inspect.getsource(cls)))
        required = {json_of[a] for a in required_attrs if a in json_of}
        for (model, field), typ in NEWER_FIELDS.items():
            if model == name:
                fields[field] = typ
        _fields_cache[name] = (fields, required)
    return _fields_cache[name]


def _type_name(value):
    return {dict: "a map", list: "a list", str: "a string", bool: "a boolean", int: "an integer",
            float: "a number", type(None): "null"}.get(type(value), type(value).__name__)


def schema_errors(value, typ, where, owner=None):
    """Problems of `value` against the models' type `typ` (unknown fields, wrong types, missing
    required fields), one message each, below the path `where`."""
    if typ == "object":
        if owner in INT_OR_STRING and (isinstance(value, bool)
                                       or not isinstance(value, (int, str))):
            return [f"{where}: must be an integer or a string, not {_type_name(value)}"]
        return []
    if typ == "str":
        return [] if isinstance(value, str) else [f"{where}: must be a string, not "
                                                  f"{_type_name(value)}"]
    if typ == "int":
        return [] if isinstance(value, int) and not isinstance(value, bool) else [
            f"{where}: must be an integer, not {_type_name(value)}"]
    if typ == "float":
        return [] if isinstance(value, (int, float)) and not isinstance(value, bool) else [
            f"{where}: must be a number, not {_type_name(value)}"]
    if typ == "bool":
        return [] if isinstance(value, bool) else [f"{where}: must be true or false, not "
                                                   f"{_type_name(value)}"]
    if typ in ("datetime", "date"):
        return [] if isinstance(value, str) else [f"{where}: must be a timestamp string"]
    m = re.fullmatch(r"list\[(.+)\]", typ)
    if m:
        if not isinstance(value, list):
            return [f"{where}: must be a list, not {_type_name(value)}"]
        out = []
        for i, item in enumerate(value):
            out += schema_errors(item, m.group(1), f"{where}[{i}]")
        return out
    m = re.fullmatch(r"dict\(str, (.+)\)", typ)
    if m:
        if not isinstance(value, dict):
            return [f"{where}: must be a map, not {_type_name(value)}"]
        out = []
        for k, v in value.items():
            if not isinstance(k, str):
                out.append(f"{where}: key {k!r} must be a string")
            elif owner in QUANTITY_MAPS:
                if isinstance(v, bool) or not isinstance(v, (str, int, float)):
                    out.append(f"{where}.{k}: must be a quantity, not {_type_name(v)}")
            else:
                out += schema_errors(v, m.group(1), f"{where}.{k}")
        return out
    # A model.
    fields, required = model_fields(typ)
    if not isinstance(value, dict):
        return [f"{where}: must be a map ({typ[2:] if typ.startswith('V1') else typ}), not "
                f"{_type_name(value)}"]
    out = []
    for key, sub in value.items():
        if key not in fields:
            out.append(f"{where}: unknown field '{key}'")
        elif sub is None:
            # An explicit null is the field left out (how the API server decodes it).
            continue
        else:
            out += schema_errors(sub, fields[key], f"{where}.{key}", (typ, key))
    for key in sorted(required):
        if value.get(key) is None:
            out.append(f"{where}: missing required field '{key}'")
    return out


def model_of(api_version, kind):
    """The model class name for apiVersion/kind (apps/v1 Deployment -> V1Deployment), or None."""
    if not isinstance(api_version, str) or not isinstance(kind, str):
        return None
    version = api_version.rsplit("/", 1)[-1]
    name = version[0].upper() + version[1:] + kind if version else None
    if name and hasattr(models, name) and "api_version" in getattr(models, name).openapi_types:
        return name
    return None


# ----------------------------------------------------------------------------------------------
# The API server's validation rules (pkg/apis/core/validation) that matter for injection.

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# IANA_SVC_NAME: at most 15 characters, lower-case letters, digits and '-', at least one letter,
# no '-' at either end and no '--'.
IANA_SVC_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
ENV_VAR_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
QUALIFIED_NAME = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")

# Downward API field paths: env vars (validEnvDownwardAPIFieldPathExpressions) and volume files
# (validVolumeDownwardAPIFieldPathExpressions); labels/annotations subscripts are allowed in env.
ENV_FIELD_PATHS = {"metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName",
                   "spec.serviceAccountName", "status.hostIP", "status.hostIPs",
                   "status.podIP", "status.podIPs"}
VOLUME_FIELD_PATHS = {"metadata.name", "metadata.namespace", "metadata.labels",
                      "metadata.annotations", "metadata.uid"}
SUBSCRIPT_PATH = re.compile(r"^metadata\.(labels|annotations)\['[^']+'\]$")

# Linux capabilities (capability.h, up to 6.x). The API server takes any string here, but the
# container runtime refuses to create a container with an unknown one: the pod then never runs.
CAPABILITIES = {
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
    "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW",
    "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT",
    "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD",
    "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG",
    "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE"}

STANDARD_CONTAINER_RESOURCES = {"cpu", "memory", "ephemeral-storage"}

_QUANTITY = re.compile(r"^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))"
                       r"(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?[0-9]+)?$")
_SUFFIX = {None: Decimal(1), "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"),
           "k": Decimal("1e3"), "M": Decimal("1e6"), "G": Decimal("1e9"), "T": Decimal("1e12"),
           "P": Decimal("1e15"), "E": Decimal("1e18"), "Ki": Decimal(2) ** 10,
           "Mi": Decimal(2) ** 20, "Gi": Decimal(2) ** 30, "Ti": Decimal(2) ** 40,
           "Pi": Decimal(2) ** 50, "Ei": Decimal(2) ** 60}


def parse_quantity(value):
    """A Kubernetes resource.Quantity as a Decimal, or None when it does not parse."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return Decimal(str(value))
    if not isinstance(value, str):
        return None
    m = _QUANTITY.match(value)
    if not m:
        return None
    try:
        number = Decimal(m.group(1))
    except InvalidOperation:
        return None
    suffix = m.group(2)
    if suffix and suffix[0] in "eE" and len(suffix) > 1:
        return number * (Decimal(10) ** int(suffix[1:]))
    return number * _SUFFIX[suffix]


def _mapping(value):
    return value if isinstance(value, dict) else {}


def _listing(value):
    return value if isinstance(value, list) else []


def _probe_errors(probe, kind, where):
    out = []
    handlers = [h for h in ("exec", "httpGet", "tcpSocket", "grpc") if h in probe]
    if len(handlers) != 1:
        out.append(f"{where}: must specify exactly one handler (exec, httpGet, tcpSocket, grpc), "
                   f"has {handlers or 'none'}")
    for field in ("initialDelaySeconds", "timeoutSeconds", "periodSeconds", "successThreshold",
                  "failureThreshold"):
        v = probe.get(field)
        if isinstance(v, int) and v < 0:
            out.append(f"{where}.{field}: must be greater than or equal to 0")
    if kind in ("livenessProbe", "startupProbe") and probe.get("successThreshold") not in (None,
                                                                                           1):
        out.append(f"{where}.successThreshold: must be 1 for a {kind}")
    for h in ("httpGet", "tcpSocket", "grpc"):
        port = _mapping(probe.get(h)).get("port")
        if isinstance(port, int) and not isinstance(port, bool) and not 1 <= port <= 65535:
            out.append(f"{where}.{h}.port: {port} is not a port number (1-65535)")
        elif isinstance(port, str) and not (len(port) <= 15 and IANA_SVC_NAME.match(port)):
            out.append(f"{where}.{h}.port: '{port}' is neither a port number nor a port name")
    return out


def _resource_errors(resources, where):
    out = []
    parsed = {}
    for part in ("requests", "limits"):
        for name, value in _mapping(resources.get(part)).items():
            if not isinstance(name, str):
                continue
            if "/" not in name and name not in STANDARD_CONTAINER_RESOURCES and \
                    not name.startswith("hugepages-"):
                out.append(f"{where}.{part}.{name}: not a standard container resource "
                           f"({', '.join(sorted(STANDARD_CONTAINER_RESOURCES))}, hugepages-*)")
            q = parse_quantity(value)
            if q is None:
                out.append(f"{where}.{part}.{name}: '{value}' is not a quantity")
            elif q < 0:
                out.append(f"{where}.{part}.{name}: must be greater than or equal to 0")
            else:
                parsed[(part, name)] = q
    for (part, name), request in parsed.items():
        limit = parsed.get(("limits", name))
        if part == "requests" and limit is not None and request > limit:
            out.append(f"{where}.requests.{name}: {resources['requests'][name]} must be less "
                       f"than or equal to the limit {resources['limits'][name]}")
    return out


def _field_ref_errors(ref, allowed, where, subscripts):
    out = []
    path = ref.get("fieldPath")
    if not isinstance(path, str):
        return out
    if ref.get("apiVersion") not in (None, "v1"):
        out.append(f"{where}.apiVersion: '{ref['apiVersion']}' is not supported (v1)")
    if path not in allowed and not (subscripts and SUBSCRIPT_PATH.match(path)):
        out.append(f"{where}.fieldPath: '{path}' is not supported by the downward API here "
                   f"(supported: {', '.join(sorted(allowed))})")
    return out


def _security_errors(sc, where):
    out = []
    caps = _mapping(sc.get("capabilities"))
    for part in ("add", "drop"):
        for cap in _listing(caps.get(part)):
            if not isinstance(cap, str):
                continue
            bare = cap[4:] if cap.startswith("CAP_") else cap
            if bare not in CAPABILITIES and cap != "ALL":
                out.append(f"{where}.capabilities.{part}: unknown capability '{cap}'")
    if sc.get("allowPrivilegeEscalation") is False:
        if sc.get("privileged") is True:
            out.append(f"{where}: cannot set allowPrivilegeEscalation to false and privileged "
                       f"to true")
        if any(c in ("SYS_ADMIN", "CAP_SYS_ADMIN") for c in _listing(caps.get("add"))):
            out.append(f"{where}: cannot set allowPrivilegeEscalation to false and "
                       f"capabilities.add CAP_SYS_ADMIN")
    for field in ("runAsUser", "runAsGroup"):
        v = sc.get(field)
        if isinstance(v, int) and not isinstance(v, bool) and not 0 <= v <= 2147483647:
            out.append(f"{where}.{field}: {v} must be between 0 and 2147483647")
    return out


def _container_errors(c, where, kind, volumes, pod_sc):
    """`kind`: 'init' (regular init container), 'sidecar' (init with restartPolicy Always) or
    'app'."""
    out = []
    name = c.get("name")
    if isinstance(name, str) and not DNS1123_LABEL.match(name) or \
            isinstance(name, str) and len(name) > 63:
        out.append(f"{where}.name: '{name}' is not a DNS-1123 label")
    if not c.get("image"):
        out.append(f"{where}.image: required")
    if c.get("imagePullPolicy") not in (None, "Always", "IfNotPresent", "Never"):
        out.append(f"{where}.imagePullPolicy: '{c['imagePullPolicy']}' is not Always, "
                   f"IfNotPresent or Never")
    if "restartPolicy" in c:
        if kind == "app":
            out.append(f"{where}.restartPolicy: may only be set on init containers")
        elif c["restartPolicy"] != "Always":
            out.append(f"{where}.restartPolicy: '{c['restartPolicy']}' is not supported "
                       f"(only Always)")
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        if probe in c:
            if kind == "init":
                out.append(f"{where}.{probe}: may not be set for init containers without "
                           f"restartPolicy Always")
            elif isinstance(c[probe], dict):
                out += _probe_errors(c[probe], probe, f"{where}.{probe}")
    if "lifecycle" in c and kind == "init":
        out.append(f"{where}.lifecycle: may not be set for init containers without restartPolicy "
                   f"Always")
    for handler in ("postStart", "preStop"):
        h = _mapping(_mapping(c.get("lifecycle")).get(handler))
        if "lifecycle" in c and handler in _mapping(c.get("lifecycle")):
            found = [k for k in ("exec", "httpGet", "tcpSocket", "sleep") if k in h]
            if len(found) != 1:
                out.append(f"{where}.lifecycle.{handler}: must specify exactly one handler, has "
                           f"{found or 'none'}")
    port_names = set()
    for i, p in enumerate(_listing(c.get("ports"))):
        if not isinstance(p, dict):
            continue
        pw = f"{where}.ports[{i}]"
        n = p.get("containerPort")
        if isinstance(n, int) and not 1 <= n <= 65535:
            out.append(f"{pw}.containerPort: {n} is not a port number (1-65535)")
        pname = p.get("name")
        if isinstance(pname, str):
            if len(pname) > 15 or not IANA_SVC_NAME.match(pname) or "--" in pname or \
                    not re.search("[a-z]", pname):
                out.append(f"{pw}.name: '{pname}' is not an IANA_SVC_NAME (at most 15 "
                           f"characters: a-z, 0-9 and '-', at least one letter)")
            if pname in port_names:
                out.append(f"{pw}.name: duplicate port name '{pname}'")
            port_names.add(pname)
        if p.get("protocol") not in (None, "TCP", "UDP", "SCTP"):
            out.append(f"{pw}.protocol: '{p['protocol']}' is not TCP, UDP or SCTP")
    env_names = set()
    for i, e in enumerate(_listing(c.get("env"))):
        if not isinstance(e, dict):
            continue
        ew = f"{where}.env[{i}]"
        ename = e.get("name")
        if isinstance(ename, str) and not ENV_VAR_NAME.match(ename):
            out.append(f"{ew}.name: '{ename}' is not a valid environment variable name")
        env_names.add(ename)
        vf = e.get("valueFrom")
        if isinstance(vf, dict):
            if e.get("value"):
                out.append(f"{ew}: may not have both value and valueFrom")
            sources = [k for k in vf if vf[k] is not None]
            if len(sources) != 1:
                out.append(f"{ew}.valueFrom: must specify exactly one source, has "
                           f"{sources or 'none'}")
            if isinstance(vf.get("fieldRef"), dict):
                out += _field_ref_errors(vf["fieldRef"], ENV_FIELD_PATHS,
                                         f"{ew}.valueFrom.fieldRef", True)
    if isinstance(c.get("resources"), dict):
        out += _resource_errors(c["resources"], f"{where}.resources")
    mount_paths = set()
    for i, m in enumerate(_listing(c.get("volumeMounts"))):
        if not isinstance(m, dict):
            continue
        mw = f"{where}.volumeMounts[{i}]"
        if m.get("name") not in volumes:
            out.append(f"{mw}.name: volume '{m.get('name')}' is not in spec.volumes")
        path = m.get("mountPath")
        if isinstance(path, str):
            if path in mount_paths:
                out.append(f"{mw}.mountPath: '{path}' is mounted twice")
            mount_paths.add(path)
    sc = _mapping(c.get("securityContext"))
    out += _security_errors(sc, f"{where}.securityContext")
    # The kubelet refuses to start a container whose effective runAsNonRoot and runAsUser
    # disagree ("container's runAsUser breaks non-root policy"): the pod never runs.
    non_root = sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot"))
    uid = sc.get("runAsUser", pod_sc.get("runAsUser"))
    if non_root is True and uid == 0:
        out.append(f"{where}.securityContext: runAsNonRoot is true but runAsUser is 0")
    return out


def _volume_errors(volumes, where):
    out = []
    names = set()
    sources = ("hostPath", "emptyDir", "gcePersistentDisk", "awsElasticBlockStore", "gitRepo",
               "secret", "nfs", "iscsi", "glusterfs", "persistentVolumeClaim", "rbd", "flexVolume",
               "cinder", "cephfs", "flocker", "downwardAPI", "fc", "azureFile", "configMap",
               "vsphereVolume", "quobyte", "azureDisk", "photonPersistentDisk", "projected",
               "portworxVolume", "scaleIO", "storageos", "csi", "ephemeral", "image")
    for i, v in enumerate(volumes):
        if not isinstance(v, dict):
            continue
        vw = f"{where}[{i}]"
        name = v.get("name")
        if isinstance(name, str):
            if not DNS1123_LABEL.match(name) or len(name) > 63:
                out.append(f"{vw}.name: '{name}' is not a DNS-1123 label")
            if name in names:
                out.append(f"{vw}.name: duplicate volume name '{name}'")
            names.add(name)
        found = [s for s in sources if v.get(s) is not None]
        if len(found) != 1:
            out.append(f"{vw}: must specify exactly one volume source, has {found or 'none'}")
        # Secret and ConfigMap volumes: the object's name is required, and file modes are
        # permission bits (0 to 0777; YAML's 0444 is octal, JSON's 292 decimal, both fine).
        for k, name_key in (("secret", "secretName"), ("configMap", "name")):
            src = v.get(k)
            if not isinstance(src, dict):
                continue
            if not src.get(name_key):
                out.append(f"{vw}.{k}.{name_key}: required")
            mode = src.get("defaultMode")
            if isinstance(mode, int) and not 0 <= mode <= 0o777:
                out.append(f"{vw}.{k}.defaultMode: {mode} must be a number between 0 and 0777 "
                           f"(octal), both inclusive")
        for j, item in enumerate(_listing(_mapping(v.get("downwardAPI")).get("items"))):
            if isinstance(item, dict) and isinstance(item.get("fieldRef"), dict):
                out += _field_ref_errors(item["fieldRef"], VOLUME_FIELD_PATHS,
                                         f"{vw}.downwardAPI.items[{j}].fieldRef", False)
        projected = v.get("projected")
        if isinstance(projected, dict):
            paths = set()
            for j, src in enumerate(_listing(projected.get("sources"))):
                if not isinstance(src, dict):
                    continue
                sw = f"{vw}.projected.sources[{j}]"
                kinds = [k for k in src if src[k] is not None]
                if len(kinds) != 1:
                    out.append(f"{sw}: must specify exactly one source, has {kinds or 'none'}")
                sat = src.get("serviceAccountToken")
                if isinstance(sat, dict):
                    exp = sat.get("expirationSeconds")
                    if isinstance(exp, int) and not 600 <= exp <= 2 ** 32:
                        out.append(f"{sw}.serviceAccountToken.expirationSeconds: {exp} must be "
                                   f"at least 600 (10 minutes) and at most 2^32")
                    file_paths = [sat.get("path")]
                else:
                    file_paths = []
                for k in ("configMap", "secret", "downwardAPI"):
                    for n, item in enumerate(_listing(_mapping(src.get(k)).get("items"))):
                        if isinstance(item, dict):
                            file_paths.append(item.get("path"))
                            if k == "downwardAPI" and isinstance(item.get("fieldRef"), dict):
                                out += _field_ref_errors(
                                    item["fieldRef"], VOLUME_FIELD_PATHS,
                                    f"{sw}.downwardAPI.items[{n}].fieldRef", False)
                for p in file_paths:
                    if not isinstance(p, str):
                        continue
                    if p.startswith("/") or ".." in p.split("/"):
                        out.append(f"{sw}: path '{p}' must be relative and contain no '..'")
                    if p in paths:
                        out.append(f"{sw}: conflicting duplicate path '{p}'")
                    paths.add(p)
    return out, names


def pod_spec_errors(spec, where="spec", claim_volumes=()):
    """The API server's validation rules for one PodSpec (its schema is checked elsewhere).
    `claim_volumes`: the names of a StatefulSet's volumeClaimTemplates, which its controller
    adds to each pod as volumes, so the template's containers may mount them."""
    if not isinstance(spec, dict):
        return [f"{where}: must be a map"]
    out, volumes = _volume_errors(_listing(spec.get("volumes")), f"{where}.volumes")
    volumes = volumes | set(claim_volumes)
    pod_sc = _mapping(spec.get("securityContext"))
    out += _security_errors({k: pod_sc[k] for k in ("runAsUser", "runAsGroup") if k in pod_sc},
                            f"{where}.securityContext")
    if not _listing(spec.get("containers")):
        out.append(f"{where}.containers: at least one container is required")
    seen = {}
    groups = [("initContainers", spec.get("initContainers")),
              ("containers", spec.get("containers")),
              ("ephemeralContainers", spec.get("ephemeralContainers"))]
    for field, containers in groups:
        for i, c in enumerate(_listing(containers)):
            if not isinstance(c, dict):
                continue
            cw = f"{where}.{field}[{i}]"
            name = c.get("name")
            if name in seen:
                out.append(f"{cw}.name: duplicate container name '{name}' (also {seen[name]})")
            else:
                seen[name] = cw
            if field == "initContainers":
                kind = "sidecar" if c.get("restartPolicy") == "Always" else "init"
            else:
                kind = "app"
            out += _container_errors(c, cw, kind, volumes, pod_sc)
    if spec.get("restartPolicy") not in (None, "Always", "OnFailure", "Never"):
        out.append(f"{where}.restartPolicy: '{spec['restartPolicy']}' is not Always, OnFailure "
                   f"or Never")
    return out


# ----------------------------------------------------------------------------------------------
# Objects and their pod templates.

def pod_specs(doc, where):
    """(spec, path) of the pod specs in one object: a Pod's spec, a workload's template spec,
    a CronJob's job template's, and those of a List's items."""
    if not isinstance(doc, dict):
        return []
    kind = doc.get("kind")
    spec = _mapping(doc.get("spec"))
    if kind == "Pod":
        return [(doc.get("spec"), f"{where}.spec")]
    if kind == "PodTemplate":
        return [(_mapping(doc.get("template")).get("spec"), f"{where}.template.spec")]
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job",
                "ReplicationController"):
        return [(_mapping(spec.get("template")).get("spec"), f"{where}.spec.template.spec")]
    if kind == "CronJob":
        job = _mapping(_mapping(spec.get("jobTemplate")).get("spec"))
        return [(_mapping(job.get("template")).get("spec"),
                 f"{where}.spec.jobTemplate.spec.template.spec")]
    if kind == "List" or (isinstance(kind, str) and kind.endswith("List")):
        out = []
        for i, item in enumerate(_listing(doc.get("items"))):
            out += pod_specs(item, f"{where}.items[{i}]")
        return out
    return []


def object_errors(doc, where=None):
    """Schema problems of one object (if the models know its kind) and the validation rules of
    every pod spec in it. Returns (errors, unchecked) where unchecked names objects of kinds
    without a schema here."""
    if not isinstance(doc, dict):
        return [f"{where or 'document'}: not a map"], []
    kind = doc.get("kind")
    name = _mapping(doc.get("metadata")).get("name")
    where = where or f"{kind}/{name}"
    errors, unchecked = [], []
    if doc.get("apiVersion") is None or kind is None:
        return [f"{where}: apiVersion and kind are required"], []
    if kind == "List" or (kind.endswith("List") and "items" in doc and
                          model_of(doc.get("apiVersion"), kind) is None):
        for i, item in enumerate(_listing(doc.get("items"))):
            e, u = object_errors(item, f"{where}.items[{i}]")
            errors += e
            unchecked += u
        return errors, unchecked
    model = model_of(doc.get("apiVersion"), kind)
    if model is None:
        return [], [f"{where} ({doc.get('apiVersion')})"]
    # Messages read "Kind/name: path.in.object: problem".
    for m in schema_errors(doc, model, ""):
        errors.append(f"{where}: {m[1:]}" if m.startswith(".") else f"{where}{m}")
    claims = [_mapping(t.get("metadata")).get("name") for t in
              _listing(_mapping(doc.get("spec")).get("volumeClaimTemplates"))
              if isinstance(t, dict)] if kind == "StatefulSet" else []
    for spec, path in pod_specs(doc, ""):
        if spec is not None:
            errors += [f"{where}: {m}" for m in pod_spec_errors(spec, path[1:], claims)]
    return errors, unchecked


def file_errors(path):
    """(errors, unchecked) of every document in a YAML file."""
    try:
        with open(path) as f:
            docs = list(yaml.safe_load_all(f))
    except (OSError, yaml.YAMLError) as e:
        return [f"{path}: {e}"], []
    errors, unchecked = [], []
    for i, doc in enumerate(docs):
        if doc is None:
            continue
        e, u = object_errors(doc)
        errors += [f"{path}: {m}" for m in e]
        unchecked += [f"{path}: {m}" for m in u]
    return errors, unchecked


def main(argv):
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip().split("\n\n")[1], file=sys.stderr)
        return 2
    errors = []
    for path in argv:
        e, u = file_errors(path)
        errors += e
        for m in u:
            print(f"not checked (no schema for its kind): {m}", file=sys.stderr)
    for m in errors:
        print(m)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
