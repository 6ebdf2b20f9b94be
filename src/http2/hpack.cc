#include "http2/hpack.h"

#include <nghttp2/nghttp2.h>

namespace h2mesh::http2 {

HpackDecoder::HpackDecoder() { nghttp2_hd_inflate_new(&inflater_); }

HpackDecoder::~HpackDecoder() { nghttp2_hd_inflate_del(inflater_); }

std::optional<std::vector<std::pair<std::string, std::string>>> HpackDecoder::decode(
    const std::string& block) {
  std::vector<std::pair<std::string, std::string>> fields;
  auto* in = reinterpret_cast<const uint8_t*>(block.data());
  size_t left = block.size();
  for (;;) {
    nghttp2_nv nv;
    int flags = 0;
    ssize_t n = nghttp2_hd_inflate_hd2(inflater_, &nv, &flags, in, left, /*in_final=*/1);
    if (n < 0) return std::nullopt;
    in += n;
    left -= static_cast<size_t>(n);
    if (flags & NGHTTP2_HD_INFLATE_EMIT) {
      fields.emplace_back(std::string(reinterpret_cast<const char*>(nv.name), nv.namelen),
                          std::string(reinterpret_cast<const char*>(nv.value), nv.valuelen));
    }
    if (flags & NGHTTP2_HD_INFLATE_FINAL) {
      nghttp2_hd_inflate_end_headers(inflater_);
      break;
    }
    if (n == 0 && left == 0) return std::nullopt;  // truncated block
  }
  return fields;
}

}  // namespace h2mesh::http2
