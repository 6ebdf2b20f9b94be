# shellcheck shell=bash
# Shared by deploy/injector/make-certs.sh and deploy/mesh-certs/make-mesh-certs.sh (sourced, not
# run): the openssl steps both take to make a CA, sign a leaf with it and write the result as a
# Kubernetes TLS Secret. Keys are ECDSA P-256 (what cert-manager's issuers in deploy/ use too:
# small, fast handshakes, and every TLS stack h2mesh meets accepts them). Needs bash and openssl.

# pki_new_ca KEY CRT CN DAYS: a self-signed CA that only signs (keyCertSign, cRLSign).
pki_new_ca() {
  local key="$1" crt="$2" cn="$3" days="$4"
  openssl ecparam -name prime256v1 -genkey -noout -out "$key"
  openssl req -x509 -new -sha256 -key "$key" -days "$days" -subj "/CN=$cn" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$crt" 2>/dev/null
}

# pki_sign_leaf CA_KEY CA_CRT KEY CRT CN DAYS EXTFILE: a new key KEY and a certificate CRT for it,
# signed by the CA with the extensions of EXTFILE (an openssl extension section, no header), then
# checked against the CA: a script that wrote a certificate its own CA refuses would only fail
# later, in a handshake. The serial is random (openssl's default without -CAserial).
pki_sign_leaf() {
  local ca_key="$1" ca_crt="$2" key="$3" crt="$4" cn="$5" days="$6" ext="$7"
  openssl ecparam -name prime256v1 -genkey -noout -out "$key"
  openssl req -new -sha256 -key "$key" -subj "/CN=$cn" -out "$key.csr"
  openssl x509 -req -sha256 -in "$key.csr" -CA "$ca_crt" -CAkey "$ca_key" \
    -days "$days" -extfile "$ext" -out "$crt" 2>/dev/null
  rm -f "$key.csr"
  openssl verify -CAfile "$ca_crt" "$crt" >/dev/null
}

# pki_tls_secret NAME NAMESPACE CRT KEY CA [ANNOTATION=VALUE]...: a Secret of type
# kubernetes.io/tls with tls.crt, tls.key and ca.crt (the file names both the webhook's and the
# sidecar's volumes expect), labelled part of h2mesh, as YAML on stdout. Annotation values are
# written double-quoted and must not hold '"' or '\'.
pki_tls_secret() {
  local name="$1" namespace="$2" crt="$3" key="$4" ca="$5" kv
  shift 5
  echo "apiVersion: v1"
  echo "kind: Secret"
  echo "metadata:"
  echo "  name: $name"
  echo "  namespace: $namespace"
  echo "  labels:"
  echo "    app.kubernetes.io/part-of: h2mesh"
  if (($#)); then
    echo "  annotations:"
    for kv in "$@"; do echo "    ${kv%%=*}: \"${kv#*=}\""; done
  fi
  echo "type: kubernetes.io/tls"
  echo "data:"
  echo "  tls.crt: $(base64 -w0 < "$crt")"
  echo "  tls.key: $(base64 -w0 < "$key")"
  echo "  ca.crt: $(base64 -w0 < "$ca")"
}
