// libFuzzer target for retrieval index files (rag::read_index): any bytes must load as a
// consistent index (every chunk inside its file's range, vectors of the right shape, finite) or
// fail with one clear line; never crash, leak or read out of bounds. Seeds: fuzz/corpus/index/.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "io/gguf.h"
#include "rag/index.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto f = longctx::io::GgufFile::from_bytes(std::vector<uint8_t>(data, data + size));
  if (!f.ok()) return 0;  // the GGUF reader has its own target
  auto ix = longctx::rag::read_index(*f, "fuzz");
  if (!ix.ok()) {
    if (ix.status().message().find('\n') != std::string::npos) std::abort();
    return 0;
  }
  // What search and the commands rely on.
  if (static_cast<int64_t>(ix->vectors.size()) != static_cast<int64_t>(ix->chunks.size()) * ix->dim) std::abort();
  for (const auto& c : ix->chunks)
    if (c.file < 0 || c.file >= static_cast<int64_t>(ix->files.size())) std::abort();
  std::vector<float> q(ix->dim, 1.0f / std::sqrt(static_cast<float>(ix->dim)));
  (void)longctx::rag::search_exact(*ix, q.data(), 3);
  return 0;
}
