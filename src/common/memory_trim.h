#pragma once

#include <cstddef>

namespace h2mesh {

// What trim_startup_memory() gave back, in KiB of resident memory.
struct TrimResult {
  size_t file_kib = 0;   // read-only file pages (code, constants) dropped from our page tables
  size_t rss_before_kib = 0;
  size_t rss_after_kib = 0;
};

// Start-up (config parsing, TLS and library initialisation) touches code and constants that
// the data path never runs again, and they stay resident for the life of the process. Once
// serving, this drops them from the process: read-only file-backed mappings without private
// (copy-on-write) pages are given MADV_DONTNEED, so their pages stay in the page cache and come
// back on a minor fault when used; heap memory freed since start goes back to the kernel
// (malloc_trim). Mappings with private pages, resident or swapped (relocated data, .data, .bss),
// are never touched. Call it once, early: it reads /proc/self/smaps, then gives the advice, and a
// mapping must not change in between (nothing here unmaps libraries).
TrimResult trim_startup_memory();

// VmRSS of this process, in KiB (0 if unknown).
size_t resident_kib();

}  // namespace h2mesh
