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
# shellcheck source-path=SCRIPTDIR source=../lib/pki.sh
source "$here/../lib/pki.sh"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
umask 077

dns="$service.$namespace.svc"
# The CA: valid a little longer than what it signs.
pki_new_ca "$work/ca.key" "$work/ca.crt" "h2mesh sidecar injector CA" "$((days + 1))"
# The serving certificate: the name the API server dials (the Service's DNS name) in the SAN;
# the API server ignores the CN.
cat > "$work/ext.cnf" <<EXT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=DNS:$dns,DNS:$dns.cluster.local,DNS:$service.$namespace
EXT
pki_sign_leaf "$work/ca.key" "$work/ca.crt" "$work/tls.key" "$work/tls.crt" "$dns" "$days" \
  "$work/ext.cnf"
rm -f "$work/ca.key"

b64() { base64 -w0 < "$1"; }
{
  echo "# Written by deploy/injector/make-certs.sh: the webhook's serving certificate ($dns),"
  echo "# valid $days days from $(date -u +%Y-%m-%d)."
  pki_tls_secret "$secret" "$namespace" "$work/tls.crt" "$work/tls.key" "$work/ca.crt"
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
