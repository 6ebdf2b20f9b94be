#pragma once

// HPACK header blocks outside a session: for tools and tests that look at raw frames (attack
// tests, fuzz targets checking what the proxy wrote). Not used on the data path.

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

struct nghttp2_hd_inflater;

namespace h2mesh::http2 {

// Decodes the header blocks of one direction of one connection, in order (HPACK's dynamic table
// is shared by all blocks of a direction).
class HpackDecoder {
 public:
  HpackDecoder();
  ~HpackDecoder();
  HpackDecoder(const HpackDecoder&) = delete;
  HpackDecoder& operator=(const HpackDecoder&) = delete;

  // One complete block (HEADERS payload without padding/priority + CONTINUATION payloads).
  // nullopt when the block is not valid HPACK.
  std::optional<std::vector<std::pair<std::string, std::string>>> decode(const std::string& block);

 private:
  nghttp2_hd_inflater* inflater_ = nullptr;
};

}  // namespace h2mesh::http2
