#!/usr/bin/env bash
# Creates the sidecar injector's TLS: a CA and a serving certificate for
# h2mesh-webhook.h2mesh-system.svc signed by it (openssl, ECDSA P-256), then writes
#   h2mesh-webhook-tls.yaml                 Secret h2mesh-webhook-tls (tls.crt, tls.key, ca.crt)
#   mutatingwebhookconfiguration.yaml       templates/mutatingwebhookconfiguration.yaml with the
#                                           CA's base64 in caBundle
# to OUTDIR, or applies both with kubectl (--apply). The CA's private key is used once, to sign,
# and deleted: to renew, run the script again (the webhook reloads the new Secret's files; until
# the kubelet has updated them, about a minute, calls may fail TLS and, with failurePolicy
# Ignore, pods are created without a sidecar - renew when no deployment is rolling).
#
#   deploy/injector/make-certs.sh OUTDIR [--days N]
#   deploy/injector/make-certs.sh --apply [--days N] [--context NAME]
set -euo pipefail

usage() {
  sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

here="$(cd "$(dirname "$0")" && pwd)"
template="$here/templates/mutatingwebhookconfiguration.yaml"
namespace=h2mesh-system
service=h2mesh-webhook
secret=h2mesh-webhook-tls
days=365
outdir=""
apply=false
context=()
while (($#)); do
  case "$1" in
    --apply) apply=true ;;
    --days) [[ $# -ge 2 && "$2" =~ ^[1-9][0-9]*$ ]] || usage; days="$2"; shift ;;
    --context) [[ $# -ge 2 ]] || usage; context=(--context "$2"); shift ;;
    -h|--help) usage ;;
    -*) echo "make-certs.sh: unknown option $1" >&2; usage ;;
    *) [[ -z "$outdir" ]] || usage; outdir="$1" ;;
  esac
  shift
done
if { $apply && [[ -n "$outdir" ]]; } || { ! $apply && [[ -z "$outdir" ]]; }; then
  usage
fi
command -v openssl >/dev/null || { echo "make-certs.sh: needs openssl" >&2; exit 1; }
$apply && { command -v kubectl >/dev/null || { echo "make-certs.sh: needs kubectl" >&2; exit 1; }; }
[[ -f "$template" ]] || { echo "make-certs.sh: missing $template" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
umask 077

dns="$service.$namespace.svc"
# The CA: only signs certificates (keyCertSign), valid a little longer than what it signs.
openssl ecparam -name prime256v1 -genkey -noout -out "$work/ca.key"
openssl req -x509 -new -sha256 -key "$work/ca.key" -days "$((days + 1))" \
  -subj "/CN=h2mesh sidecar injector CA" \
  -addext "basicConstraints=critical,CA:TRUE" \
  -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -out "$work/ca.crt" 2>/dev/null
# The serving certificate: the name the API server dials (the Service's DNS name) in the SAN;
# the API server ignores the CN.
openssl ecparam -name prime256v1 -genkey -noout -out "$work/tls.key"
openssl req -new -sha256 -key "$work/tls.key" -subj "/CN=$dns" -out "$work/tls.csr"
cat > "$work/ext.cnf" <<EXT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=DNS:$dns,DNS:$dns.cluster.local,DNS:$service.$namespace
EXT
openssl x509 -req -sha256 -in "$work/tls.csr" -CA "$work/ca.crt" -CAkey "$work/ca.key" \
  -CAcreateserial -days "$days" -extfile "$work/ext.cnf" -out "$work/tls.crt" 2>/dev/null
openssl verify -CAfile "$work/ca.crt" "$work/tls.crt" >/dev/null
rm -f "$work/ca.key"

b64() { base64 -w0 < "$1"; }
{
  echo "# Written by deploy/injector/make-certs.sh: the webhook's serving certificate ($dns),"
  echo "# valid $days days from $(date -u +%Y-%m-%d)."
  echo "apiVersion: v1"
  echo "kind: Secret"
  echo "metadata:"
  echo "  name: $secret"
  echo "  namespace: $namespace"
  echo "  labels:"
  echo "    app.kubernetes.io/part-of: h2mesh"
  echo "type: kubernetes.io/tls"
  echo "data:"
  echo "  tls.crt: $(b64 "$work/tls.crt")"
  echo "  tls.key: $(b64 "$work/tls.key")"
  echo "  ca.crt: $(b64 "$work/ca.crt")"
} > "$work/h2mesh-webhook-tls.yaml"
ca_bundle="$(b64 "$work/ca.crt")"
grep -q '^      caBundle: ""$' "$template" || {
  echo "make-certs.sh: $template has no 'caBundle: \"\"' line to fill in" >&2; exit 1; }
sed "s|^      caBundle: \"\"\$|      caBundle: $ca_bundle|" "$template" \
  > "$work/mutatingwebhookconfiguration.yaml"

if $apply; then
  # The namespace first (the Secret lives there); the rest of deploy/injector/ may follow.
  kubectl "${context[@]}" apply -f "$here/00-namespace.yaml"
  kubectl "${context[@]}" apply -f "$work/h2mesh-webhook-tls.yaml"
  kubectl "${context[@]}" apply -f "$work/mutatingwebhookconfiguration.yaml"
else
  mkdir -p "$outdir"
  umask 022
  install -m 0600 "$work/h2mesh-webhook-tls.yaml" "$outdir/h2mesh-webhook-tls.yaml"
  install -m 0644 "$work/mutatingwebhookconfiguration.yaml" \
    "$outdir/mutatingwebhookconfiguration.yaml"
  install -m 0644 "$work/ca.crt" "$outdir/ca.crt"
  echo "make-certs.sh: wrote $outdir/h2mesh-webhook-tls.yaml," \
       "$outdir/mutatingwebhookconfiguration.yaml and $outdir/ca.crt"
fi
