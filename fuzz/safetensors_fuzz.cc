// libFuzzer target for the safetensors reader: any input must parse or fail with a one-line
// error, never crash, leak or read out of bounds, and a file that parses must satisfy what
// io/safetensors.h promises. Seeds: fuzz/corpus/safetensors/ (tests/io/make_safetensors_fixture.py).
//   clang++ -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -Isrc src/io/safetensors.cc \
//     src/io/atomic_file.cc fuzz/safetensors_fuzz.cc -o /tmp/st_fuzz && /tmp/st_fuzz fuzz/corpus/safetensors/
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "io/safetensors.h"

using longctx::io::SafetensorsFile;
using longctx::io::SafetensorsTensor;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto f = SafetensorsFile::from_bytes(std::vector<uint8_t>(data, data + size));
  if (!f.ok()) {
    const std::string msg = f.status().message();  // status() returns a copy
    if (msg.rfind("safetensors: ", 0) != 0 || msg.find('\n') != std::string::npos) std::abort();  // one clear line
    return 0;
  }
  volatile uint64_t sink = 0;
  // The tensors tile the byte buffer: in order, contiguous from 0 to the end of the file.
  uint64_t cursor = 0;
  const uint8_t* buffer = nullptr;
  for (const SafetensorsTensor& t : f->tensors()) {
    if (f->find(t.name) != &t) std::abort();
    if (t.offset != cursor) std::abort();
    if (buffer == nullptr) buffer = t.data - t.offset;
    if (t.data != buffer + t.offset) std::abort();
    const uint64_t size_of = longctx::io::safetensors_dtype_size(t.dtype);
    if (size_of == 0 || t.n_bytes != t.n_elements * size_of) std::abort();
    if (t.type != longctx::io::safetensors_ggml_type(t.dtype)) std::abort();
    uint64_t n = 1;
    for (int64_t d : t.shape) {
      if (d < 0) std::abort();
      n *= static_cast<uint64_t>(d);
    }
    if (n != t.n_elements) std::abort();
    // Touch every byte of the tensor's data: ASan checks it all lies inside the buffer.
    for (uint64_t i = 0; i < t.n_bytes; ++i) sink = sink + t.data[i];
    cursor += t.n_bytes;
    sink = sink + t.name.size() + t.shape.size();
  }
  if (f->data_offset() + cursor != f->file_size() || f->file_size() != size) std::abort();
  for (const auto& [k, v] : f->metadata()) sink = sink + k.size() + v.size();
  (void)sink;
  return 0;
}
