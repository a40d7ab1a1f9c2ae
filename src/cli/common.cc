#include "cli/common.h"

#include <unistd.h>

#include <cmath>

namespace longctx::cli {

int fail(const Status& s) { return fail(s.message()); }
int fail(const std::string& message) {
  std::fflush(stdout);
  std::fprintf(stderr, "longctx: error: %s\n", message.c_str());
  return 1;
}

bool stdout_is_tty() { return ::isatty(STDOUT_FILENO) == 1; }

std::string format_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  char buf[32];
  const long t = static_cast<long>(s + 0.5);
  if (t >= 3600) std::snprintf(buf, sizeof buf, "%ldh%02ldm", t / 3600, (t / 60) % 60);
  else if (t >= 60) std::snprintf(buf, sizeof buf, "%ldm%02lds", t / 60, t % 60);
  else std::snprintf(buf, sizeof buf, "%lds", t);
  return buf;
}

std::string format_rate(double v) {
  char buf[32];
  if (v >= 1e6) std::snprintf(buf, sizeof buf, "%.2fM", v / 1e6);
  else if (v >= 1e3) std::snprintf(buf, sizeof buf, "%.1fk", v / 1e3);
  else std::snprintf(buf, sizeof buf, "%.0f", v);
  return buf;
}

}  // namespace longctx::cli
