// GoogleTest main shared by every test binary: selects OpenBLAS's kernels for this CPU first
// (see core/blas_setup.h), then runs the tests.
#include <gtest/gtest.h>

#include "core/blas_setup.h"

int main(int argc, char** argv) {
  longctx::ensure_blas_kernels(argc, argv);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
