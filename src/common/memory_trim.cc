#include "common/memory_trim.h"

#include <malloc.h>
#include <sys/mman.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

namespace h2mesh {
namespace {

struct Mapping {
  uintptr_t start = 0;
  uintptr_t end = 0;
  bool eligible = false;  // read-only, file-backed
  size_t rss_kib = 0;
  // Anonymous + Private_Dirty + Swap: pages that exist only in this process (copy-on-write
  // pages count in Swap alone once swapped out).
  size_t private_kib = 0;
};

size_t field_kib(const std::string& line) {
  size_t kib = 0;
  std::sscanf(line.c_str() + line.find(':') + 1, "%zu", &kib);
  return kib;
}

std::vector<Mapping> read_smaps() {
  std::vector<Mapping> maps;
  std::ifstream in("/proc/self/smaps");
  for (std::string line; std::getline(in, line);) {
    unsigned long start, end;
    char perms[8] = {};
    unsigned long offset;
    char dev[16] = {};
    unsigned long inode;
    int path_at = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx %7s %lx %15s %lu %n", &start, &end, perms, &offset, dev,
                    &inode, &path_at) >= 6 &&
        std::strchr(line.c_str(), '-') < std::strchr(line.c_str(), ' ')) {
      Mapping m;
      m.start = start;
      m.end = end;
      const char* path = path_at > 0 ? line.c_str() + path_at : "";
      m.eligible = inode != 0 && path[0] == '/' && perms[0] == 'r' && perms[1] != 'w' &&
                   perms[3] == 'p';
      maps.push_back(m);
      continue;
    }
    if (maps.empty()) continue;
    if (line.starts_with("Rss:")) maps.back().rss_kib = field_kib(line);
    if (line.starts_with("Anonymous:") || line.starts_with("Private_Dirty:") ||
        line.starts_with("Swap:"))
      maps.back().private_kib += field_kib(line);
  }
  return maps;
}

}  // namespace

size_t resident_kib() {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);)
    if (line.starts_with("VmRSS:")) return field_kib(line);
  return 0;
}

TrimResult trim_startup_memory() {
  TrimResult r;
  r.rss_before_kib = resident_kib();
  for (const Mapping& m : read_smaps()) {
    if (!m.eligible || m.private_kib != 0 || m.rss_kib == 0) continue;
    if (madvise(reinterpret_cast<void*>(m.start), m.end - m.start, MADV_DONTNEED) == 0)
      r.file_kib += m.rss_kib;
  }
  malloc_trim(0);
  r.rss_after_kib = resident_kib();
  return r;
}

}  // namespace h2mesh
