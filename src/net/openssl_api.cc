#include "net/openssl_api.h"

#include <dlfcn.h>

namespace h2mesh::net {
namespace {

struct Loaded {
  OpenSsl api;
  bool ok = false;
  std::string error;
};

Loaded load() {
  Loaded l;
  // RTLD_LOCAL: nothing else in the process resolves symbols against it. libcrypto comes in as
  // libssl's dependency, and dlsym on libssl's handle searches it too.
  void* handle = dlopen("libssl.so.3", RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    const char* why = dlerror();
    l.error = std::string("cannot load OpenSSL 3 (libssl.so.3, Debian package libssl3): ") +
              (why ? why : "unknown error");
    return l;
  }
#define H2MESH_OPENSSL_RESOLVE(name)                                                         \
  l.api.name = reinterpret_cast<decltype(l.api.name)>(dlsym(handle, #name));               \
  if (!l.api.name) {                                                                         \
    l.error = "OpenSSL has no " #name " (not OpenSSL 3?)";                                  \
    return l;                                                                                \
  }
  H2MESH_OPENSSL_FUNCTIONS(H2MESH_OPENSSL_RESOLVE)
#undef H2MESH_OPENSSL_RESOLVE
  l.ok = true;  // the handle stays open for the life of the process
  return l;
}

}  // namespace

const OpenSsl* openssl(std::string* error) {
  static const Loaded loaded = load();
  if (!loaded.ok) {
    if (error) *error = loaded.error;
    return nullptr;
  }
  return &loaded.api;
}

}  // namespace h2mesh::net
