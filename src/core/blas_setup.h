// OpenBLAS picks its kernels from the CPU model when the library loads. Debian's 0.3.21 does
// not know recent Xeon models (family 6, model 207 here) and falls back to its SSE3 "Prescott"
// kernels: about 15 GFLOP/s per core instead of about 100 with its AVX-512 SkylakeX kernels.
// The choice can only be forced through OPENBLAS_CORETYPE before the library loads, so the
// binaries call this first thing in main(): when the variable is unset it sets it from the
// CPU's features and re-executes the program (once; the variable guards against a loop).
#pragma once

namespace longctx {

// Returns normally when no re-exec was needed (or it failed; then OpenBLAS keeps its choice).
void ensure_blas_kernels(int argc, char** argv);

// The kernel set OpenBLAS is using, e.g. "SkylakeX".
const char* blas_core_name();

}  // namespace longctx
