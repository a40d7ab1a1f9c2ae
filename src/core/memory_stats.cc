#include "core/memory_stats.h"

#include <malloc.h>

#include <cstdio>
#include <cstring>

namespace longctx {
namespace {

int64_t status_kb(const char* key) {
  FILE* f = std::fopen("/proc/self/status", "r");
  if (!f) return -1;
  char line[256];
  int64_t kb = -1;
  const size_t n = std::strlen(key);
  while (std::fgets(line, sizeof line, f))
    if (std::strncmp(line, key, n) == 0 && line[n] == ':') {
      long long v = 0;
      if (std::sscanf(line + n + 1, "%lld", &v) == 1) kb = v;
      break;
    }
  std::fclose(f);
  return kb;
}

}  // namespace

int64_t current_rss_bytes() {
  const int64_t kb = status_kb("VmRSS");
  return kb < 0 ? -1 : kb * 1024;
}

int64_t peak_rss_bytes() {
  const int64_t kb = status_kb("VmHWM");
  return kb < 0 ? -1 : kb * 1024;
}

bool reset_peak_rss() {
  malloc_trim(0);
  FILE* f = std::fopen("/proc/self/clear_refs", "w");
  if (!f) return false;
  const bool ok = std::fputs("5", f) >= 0;
  return std::fclose(f) == 0 && ok;
}

}  // namespace longctx
