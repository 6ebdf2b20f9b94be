#!/usr/bin/env bash
# Mesh mTLS certificates without cert-manager (docs/tls.md#mesh-certificates-without-cert-manager):
# makes the mesh CA in CADIR (ca.crt, ca.key) or reuses the one there, then for each service
# account a new key and a certificate whose URI SAN is its SPIFFE ID
# spiffe://TRUST_DOMAIN/ns/NS/sa/SA (server and client auth), and writes one Secret per service
# account, PREFIX<SA> in namespace NS (type kubernetes.io/tls: tls.crt, tls.key, ca.crt), as
# YAML to stdout, or applies them with kubectl (--apply). Pods injected with
# `--mtls-source secret` mount their service account's Secret. Run it again to renew (before
# --days run out): the kubelet updates the mounted files and the sidecars reload them.
#
# usage:
#   make-mesh-certs.sh --ca-dir CADIR [OPTIONS] NS/SA... > mesh-certs.yaml
#   make-mesh-certs.sh --ca-dir CADIR [OPTIONS] --from-cluster [--namespace NS]... --apply
#
#   --ca-dir DIR          the mesh CA (required; made there, mode 0700, when DIR has none)
#   --trust-domain TD     default cluster.local (the sidecar's mesh.tls.trust_domain)
#   --days N              the certificates' validity, default 30
#   --ca-days N           a new CA's validity, default 3650
#   --secret-prefix P     default h2mesh-mesh-tls- (the injector's --mtls-secret-prefix)
#   --from-cluster        also every service account of the namespaces labelled
#                         h2mesh-injection=enabled, or of each --namespace NS (kubectl)
#   --apply               kubectl apply (server-side) instead of YAML on stdout
#   --context NAME        kubectl's context
set -euo pipefail

usage() {  # the comment above, from "usage:" on
  sed -n '/^# usage:/,/^[^#]/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2
  exit 2
}
die() {
  echo "make-mesh-certs.sh: $*" >&2
  exit 1
}

here="$(cd "$(dirname "$0")" && pwd)"
ca_dir=""
trust_domain=cluster.local
days=30
ca_days=3650
prefix=h2mesh-mesh-tls-
from_cluster=false
apply=false
context=()
namespaces=()
accounts=()
while (($#)); do
  case "$1" in
    --ca-dir) [[ $# -ge 2 ]] || usage; ca_dir="$2"; shift ;;
    --trust-domain) [[ $# -ge 2 ]] || usage; trust_domain="$2"; shift ;;
    --days) [[ $# -ge 2 && "$2" =~ ^[1-9][0-9]{0,4}$ ]] || usage; days="$2"; shift ;;
    --ca-days) [[ $# -ge 2 && "$2" =~ ^[1-9][0-9]{0,5}$ ]] || usage; ca_days="$2"; shift ;;
    --secret-prefix) [[ $# -ge 2 ]] || usage; prefix="$2"; shift ;;
    --from-cluster) from_cluster=true ;;
    --namespace|-n) [[ $# -ge 2 ]] || usage; namespaces+=("$2"); shift ;;
    --apply) apply=true ;;
    --context) [[ $# -ge 2 ]] || usage; context=(--context "$2"); shift ;;
    -h|--help) usage ;;
    -*) echo "make-mesh-certs.sh: unknown option $1" >&2; usage ;;
    *) accounts+=("$1") ;;
  esac
  shift
done
[[ -n "$ca_dir" ]] || { echo "make-mesh-certs.sh: --ca-dir is required" >&2; usage; }
if ((${#namespaces[@]})) && ! $from_cluster; then
  echo "make-mesh-certs.sh: --namespace goes with --from-cluster" >&2
  usage
fi
if ! $from_cluster && ((${#accounts[@]} == 0)); then
  echo "make-mesh-certs.sh: no service account (NS/SA arguments or --from-cluster)" >&2
  usage
fi
command -v openssl >/dev/null || die "needs openssl"
if $from_cluster || $apply; then
  command -v kubectl >/dev/null || die "needs kubectl"
fi
# shellcheck source-path=SCRIPTDIR source=../lib/pki.sh
source "$here/../lib/pki.sh"

# The names Kubernetes accepts (a namespace is a DNS label, a service account and a Secret a DNS
# subdomain), checked here: a bad one would otherwise be found by the API server, after the CA
# had signed a certificate for it. The trust domain as SPIFFE allows it.
dns_label() { [[ ${#1} -le 63 && "$1" =~ ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$ ]]; }
dns_subdomain() {
  [[ ${#1} -le 253 && "$1" =~ ^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$ ]]
}
[[ ${#trust_domain} -le 255 && "$trust_domain" =~ ^[a-z0-9._-]+$ ]] ||
  die "--trust-domain '$trust_domain': lowercase letters, digits, '.', '-' and '_' only"
[[ "$prefix" =~ ^[a-z0-9][-a-z0-9.]*$ ]] ||
  die "--secret-prefix '$prefix': must start a Secret name (lowercase letters, digits, '-', '.')"

kube() { kubectl "${context[@]}" "$@"; }
if $from_cluster; then
  if ((${#namespaces[@]} == 0)); then
    # Captured first: a failing kubectl stops the script here (set -e), not in a pipe.
    listed="$(kube get namespaces -l h2mesh-injection=enabled \
      -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}')"
    mapfile -t namespaces <<< "$listed"
    [[ -n "$listed" ]] || namespaces=()
    ((${#namespaces[@]})) || die "--from-cluster: no namespace is labelled h2mesh-injection=enabled"
  fi
  for ns in "${namespaces[@]}"; do
    dns_label "$ns" || die "--namespace '$ns': not a namespace name"
    listed="$(kube get serviceaccounts -n "$ns" \
      -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}')"
    mapfile -t names <<< "$listed"
    for sa in "${names[@]}"; do [[ -z "$sa" ]] || accounts+=("$ns/$sa"); done
  done
fi
((${#accounts[@]})) || die "no service account found"
# Each once, in the order given (one named and also listed from the cluster is one Secret).
declare -A seen=()
unique=()
for account in "${accounts[@]}"; do
  [[ -n "${seen[$account]:-}" ]] || unique+=("$account")
  seen[$account]=1
done
accounts=("${unique[@]}")
for account in "${accounts[@]}"; do
  [[ "$account" == */* ]] || die "'$account': expected NAMESPACE/SERVICEACCOUNT"
  ns="${account%%/*}" sa="${account#*/}"
  dns_label "$ns" || die "'$account': '$ns' is not a namespace name (a DNS label)"
  dns_subdomain "$sa" || die "'$account': '$sa' is not a service account name (a DNS subdomain)"
  dns_subdomain "$prefix$sa" || die "'$account': the Secret name '$prefix$sa' is too long"
done

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
umask 077

# The CA: made once, then reused, so every pod's certificate, old or new, verifies against the
# same ca.crt and a renewal can happen one Secret at a time. Its key never leaves CADIR.
ca_key="$ca_dir/ca.key" ca_crt="$ca_dir/ca.crt"
if [[ ! -e "$ca_key" && ! -e "$ca_crt" ]]; then
  mkdir -p "$ca_dir"
  chmod 0700 "$ca_dir"
  pki_new_ca "$work/ca.key" "$work/ca.crt" "h2mesh mesh CA" "$ca_days"
  mv "$work/ca.key" "$ca_key"
  install -m 0644 "$work/ca.crt" "$ca_crt"
  echo "make-mesh-certs.sh: made a new mesh CA in $ca_dir (keep ca.key secret and safe:" \
       "it signs every pod's identity)" >&2
elif [[ -f "$ca_key" && -f "$ca_crt" ]]; then
  [[ "$(openssl pkey -in "$ca_key" -pubout 2>/dev/null)" == \
     "$(openssl x509 -in "$ca_crt" -noout -pubkey 2>/dev/null)" ]] ||
    die "$ca_key is not the key of $ca_crt"
  # A certificate that outlives its CA stops verifying when the CA expires.
  openssl x509 -in "$ca_crt" -noout -checkend "$((days * 86400))" >/dev/null ||
    die "the CA $ca_crt expires within $days days: move $ca_dir away to make a new one" \
        "(and renew every Secret)"
else
  die "$ca_dir has only one of ca.crt and ca.key"
fi

{
  echo "# Written by deploy/mesh-certs/make-mesh-certs.sh: mesh certificates (trust domain"
  echo "# $trust_domain), valid $days days from $(date -u +%Y-%m-%dT%H:%M:%SZ). Private keys: keep"
  echo "# this file as secret as the Secrets themselves."
  for account in "${accounts[@]}"; do
    ns="${account%%/*}" sa="${account#*/}"
    id="spiffe://$trust_domain/ns/$ns/sa/$sa"
    # Both usages: a sidecar serves its pod's inbound calls and calls other pods with the same
    # certificate. digitalSignature is the one key usage an ECDSA key has in TLS (RFC 5480).
    # The identity is the URI SAN alone; the CN (as cert-manager's csi-driver writes it) is for
    # people reading the certificate.
    cat > "$work/ext.cnf" <<EXT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth,clientAuth
subjectAltName=URI:$id
EXT
    pki_sign_leaf "$ca_key" "$ca_crt" "$work/tls.key" "$work/tls.crt" "$sa.$ns" "$days" \
      "$work/ext.cnf"
    not_after="$(date -u -d "$(openssl x509 -in "$work/tls.crt" -noout -enddate | cut -d= -f2)" \
      +%Y-%m-%dT%H:%M:%SZ)"
    echo "---"
    pki_tls_secret "$prefix$sa" "$ns" "$work/tls.crt" "$work/tls.key" "$ca_crt" \
      "h2mesh.io/spiffe-id=$id" "h2mesh.io/not-after=$not_after"
  done
} > "$work/secrets.yaml"

if $apply; then
  # Server-side apply: no last-applied-configuration annotation, which would hold a second copy
  # of each private key; --force-conflicts takes the fields over from an earlier run by hand.
  kube apply --server-side --field-manager=h2mesh-make-mesh-certs --force-conflicts -f - \
    < "$work/secrets.yaml"
else
  cat "$work/secrets.yaml"
fi
echo "make-mesh-certs.sh: ${#accounts[@]} certificate(s), valid until about" \
     "$(date -u -d "+$days days" +%Y-%m-%d)" >&2
