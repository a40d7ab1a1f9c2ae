// libFuzzer target for the GGUF reader: any input must parse or fail with a one-line error,
// never crash, leak or read out of bounds. Seeds: fuzz/corpus/gguf/ (files from GgufWriter).
//   clang++ -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -Isrc src/io/*.cc \
//     fuzz/gguf_reader_fuzz.cc -o /tmp/gguf_fuzz && /tmp/gguf_fuzz fuzz/corpus/gguf/
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "io/gguf.h"

namespace {

using longctx::io::GgufFile;
using longctx::io::GgufType;
using longctx::io::GgufValue;

// Reads every element so the sanitizers see every byte the accessors can reach.
uint64_t touch(const GgufValue& v) {
  uint64_t h = static_cast<uint64_t>(v.type());
  h += longctx::io::format_gguf_value(v, 4).size();
  if (v.type() != GgufType::kArray) return h;
  const GgufType e = v.elem_type();
  for (uint64_t i = 0; i < v.size(); ++i) {
    if (e == GgufType::kString)
      h += v.strings()[i].size();
    else if (longctx::io::gguf_type_is_unsigned(e))
      h += v.uint_at(i);
    else if (longctx::io::gguf_type_is_signed(e))
      h += static_cast<uint64_t>(v.int_at(i));
    else if (longctx::io::gguf_type_is_float(e))
      h += v.float_at(i) > 0;
    else
      h += v.bool_at(i);
  }
  return h;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto f = GgufFile::from_bytes(std::vector<uint8_t>(data, data + size));
  if (!f.ok()) {
    const std::string msg = f.status().message();  // status() returns a copy
    if (msg.empty() || msg.find('\n') != std::string::npos) std::abort();  // one clear line
    return 0;
  }
  volatile uint64_t sink = 0;
  for (const auto& kv : f->metadata()) {
    sink = sink + kv.key.size() + touch(kv.value);
    if (f->find(kv.key) != &kv.value) std::abort();
    // The typed getters must answer (value or error) for any key.
    sink = sink + f->get_uint(kv.key).ok() + f->get_int(kv.key).ok() + f->get_float(kv.key).ok() +
           f->get_bool(kv.key).ok() + f->get_string(kv.key).ok() +
           f->get_string_array(kv.key).ok() + f->get_int_array(kv.key).ok() +
           f->get_float_array(kv.key).ok();
  }
  for (const auto& t : f->tensors()) {
    if (f->find_tensor(t.name) != &t) std::abort();
    if (t.offset % f->alignment() != 0) std::abort();
    if (f->data_offset() + t.offset + t.n_bytes > f->file_size()) std::abort();
    // Touch every byte of the tensor's data: ASan checks it all lies inside the buffer.
    for (uint64_t i = 0; i < t.n_bytes; ++i) sink = sink + t.data[i];
    sink = sink + t.dims.size() + t.n_elements + t.type;
  }
  (void)sink;
  return 0;
}
