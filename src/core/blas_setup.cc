#include "core/blas_setup.h"

#include <unistd.h>

#include <cctype>
#include <cstdlib>
#include <string>
#include <vector>

extern "C" char* openblas_get_corename(void);

namespace longctx {

void ensure_blas_kernels(int argc, char** argv) {
  if (std::getenv("OPENBLAS_CORETYPE") != nullptr) return;
  const char* core = nullptr;
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
    core = "SkylakeX";
  else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    core = "Haswell";
  if (core == nullptr) return;
  // Re-exec only when the library chose something weaker than the CPU supports.
  const char* chosen = openblas_get_corename();
  if (chosen == nullptr) return;
  std::string c(chosen);
  for (auto& ch : c) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  const std::string want = core == std::string("SkylakeX") ? "skylakex" : "haswell";
  if (c == want || c == "cooperlake" || c == "sapphirerapids" || (want == "haswell" && c == "zen")) return;
  ::setenv("OPENBLAS_CORETYPE", core, 1);
  std::vector<char*> args(argv, argv + argc);
  args.push_back(nullptr);
  ::execv("/proc/self/exe", args.data());
  // execv only returns on failure: carry on with OpenBLAS's own choice.
}

const char* blas_core_name() { return openblas_get_corename(); }

}  // namespace longctx
