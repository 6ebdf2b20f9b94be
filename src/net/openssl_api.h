#pragma once

// OpenSSL, loaded when first needed. Its users (the Kubernetes API client, the webhook's TLS
// server, net/tls_context.h) load it when they make their first context; a proxy with static or
// DNS endpoints never loads libssl/libcrypto, and so never pays for their relocation and start-up
// pages (~0.6 MiB resident). The functions are the library's own, called through a
// table filled by dlsym; the types, constants and macros come from OpenSSL's headers, so
// `api.SSL_CTX_set_mode(ctx, m)` expands to `api.SSL_CTX_ctrl(ctx, SSL_CTRL_MODE, m, NULL)`.

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <string>

namespace h2mesh::net {

#define H2MESH_OPENSSL_FUNCTIONS(X)                                                      \
  X(BIO_free) X(BIO_new_mem_buf) X(ERR_clear_error) X(ERR_error_string_n) X(ERR_get_error) \
  X(ERR_peek_error) X(ERR_reason_error_string) X(EVP_PKEY_free) X(PEM_read_bio_PrivateKey) \
  X(PEM_read_bio_X509) X(SSL_CTX_check_private_key) X(SSL_CTX_ctrl) X(SSL_CTX_free)        \
  X(SSL_CTX_get_cert_store) X(SSL_CTX_new) X(SSL_CTX_set_default_verify_paths)             \
  X(SSL_CTX_set_options) X(SSL_CTX_set_verify) X(SSL_CTX_use_PrivateKey)                    \
  X(SSL_CTX_use_certificate) X(SSL_connect) X(SSL_ctrl) X(SSL_free) X(SSL_get0_param)       \
  X(SSL_get_error) X(SSL_get_verify_result) X(SSL_new) X(SSL_read) X(SSL_set1_host)         \
  X(SSL_write) X(TLS_client_method) X(X509_STORE_add_cert) X(X509_free)       \
  X(X509_VERIFY_PARAM_set1_ip_asc) X(X509_verify_cert_error_string) X(TLS_server_method)     \
  X(SSL_CTX_use_certificate_chain_file) X(SSL_CTX_use_PrivateKey_file)                      \
  X(SSL_CTX_set_cipher_list) X(SSL_CTX_set_alpn_select_cb) X(SSL_select_next_proto)         \
  X(SSL_accept) X(SSL_has_pending) X(SSL_shutdown) X(SSL_get0_alpn_selected)                    \
  X(SSL_CTX_load_verify_locations) X(SSL_CTX_callback_ctrl) X(SSL_get_servername)           \
  X(SSL_set_SSL_CTX) X(SSL_CTX_get0_certificate) X(X509_check_host) X(SSL_CTX_set_ex_data)  \
  X(SSL_CTX_get_ex_data) X(CRYPTO_get_ex_new_index) X(SSL_get1_peer_certificate)            \
  X(X509_get_ext_d2i) X(OPENSSL_sk_num) X(OPENSSL_sk_value) X(GENERAL_NAMES_free)           \
  X(ASN1_STRING_get0_data) X(ASN1_STRING_length) X(X509_get0_notAfter) X(X509_get0_notBefore) \
  X(ASN1_TIME_to_tm) X(SSL_CTX_set_session_id_context) X(X509_get_serialNumber)             \
  X(ASN1_INTEGER_to_BN) X(BN_bn2hex) X(BN_free) X(CRYPTO_free) X(X509_check_private_key) \
  H2MESH_OPENSSL_CLIENT_FUNCTIONS(X)

// Client side (upstream TLS, the Kubernetes API client): ALPN offer, session resumption, the
// peer certificate's names, certificate files for `h2mesh check`; and TlsTransport's own socket
// BIO (both sides). (The listener side's list above already has the functions both use.)
#define H2MESH_OPENSSL_CLIENT_FUNCTIONS(X) \
  X(SSL_CTX_set_alpn_protos) X(SSL_CTX_sess_set_new_cb) X(SSL_set_session) \
  X(SSL_session_reused) X(SSL_SESSION_free) X(SSL_SESSION_is_resumable) X(SSL_set_ex_data) \
  X(SSL_get_ex_data) X(X509_check_ip_asc) X(PEM_read_X509) X(PEM_read_PrivateKey) \
  X(X509_cmp_time) X(SSL_CTX_get_verify_mode) X(BIO_meth_new) X(BIO_meth_set_write) \
  X(BIO_meth_set_read) X(BIO_meth_set_ctrl) X(BIO_get_new_index) X(BIO_new) X(BIO_set_data) \
  X(BIO_get_data) X(BIO_set_init) X(BIO_set_flags) X(BIO_clear_flags) X(SSL_set_bio)

struct OpenSsl {
#define H2MESH_OPENSSL_MEMBER(name) decltype(&::name) name = nullptr;
  H2MESH_OPENSSL_FUNCTIONS(H2MESH_OPENSSL_MEMBER)
#undef H2MESH_OPENSSL_MEMBER
};

// The table, loading libssl.so.3 on the first call (thread-safe). Null, with the reason in
// *error, when the library or one of its functions cannot be found.
const OpenSsl* openssl(std::string* error);

// The table, for code that runs only once openssl() succeeded (a TLS context exists): the TLS
// code calls OpenSSL as S().SSL_read(...).
inline const OpenSsl& S() { return *openssl(nullptr); }

}  // namespace h2mesh::net
