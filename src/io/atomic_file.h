// Whole-file helpers shared by the GGUF, safetensors and checkpoint code: an atomic writer
// (ARCHITECTURE.md, "Files": temp file, fsync, rename), a whole-file reader and a read-only
// mmap. Errors are one line that starts with the path, e.g. "model.gguf: No such file or
// directory".
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>

#include "core/status.h"

namespace longctx::io {

// Writes `path` all or nothing. `writer` fills a temp file created next to `path` (same
// directory, so the final rename(2) stays on one file system and is atomic); then the temp file
// is flushed, fsync'ed and renamed over `path`, and the directory is fsync'ed so the rename
// survives a crash. If `writer` returns an error, or any step fails, the temp file is removed and
// `path` is left exactly as it was (absent, or its previous content). `writer` must not fclose
// the FILE*. The new file gets mode 0666 minus the umask, like fopen would give it.
Status write_file_atomic(const std::string& path, const std::function<Status(std::FILE*)>& writer);

// Convenience: write_file_atomic with the given bytes.
Status write_file_atomic(const std::string& path, const void* data, size_t n_bytes);

// Reads a whole regular file. Errors name the path: missing, unreadable, a directory.
Expected<std::string> read_file(const std::string& path);

// A read-only, private mmap of a whole regular file. The mapping stays valid (and its address
// stable) while the MappedFile lives, including across moves. An empty file maps to
// data() == nullptr, size() == 0.
class MappedFile {
 public:
  static Expected<MappedFile> open(const std::string& path);

  MappedFile() = default;
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  void reset();

  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace longctx::io
