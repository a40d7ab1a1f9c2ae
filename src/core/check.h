// CHECK: a broken invariant in our own code aborts with file:line (never for bad input).
#pragma once
#include <cstdio>
#include <cstdlib>

namespace longctx::detail {
[[noreturn]] inline void check_failed(const char* file, int line, const char* cond, const char* msg) {
  std::fprintf(stderr, "CHECK failed at %s:%d: %s%s%s\n", file, line, cond, msg[0] ? " -- " : "", msg);
  std::fflush(stderr);
  std::abort();
}
}  // namespace longctx::detail

#define CHECK(cond) \
  do { if (!(cond)) ::longctx::detail::check_failed(__FILE__, __LINE__, #cond, ""); } while (0)
#define CHECK_MSG(cond, msg) \
  do { if (!(cond)) ::longctx::detail::check_failed(__FILE__, __LINE__, #cond, (msg)); } while (0)
