#include "io/atomic_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <utility>

namespace longctx::io {
namespace {

Status errno_error(const std::string& path, const std::string& what, int err) {
  std::string msg = path + ": ";
  if (!what.empty()) msg += what + ": ";
  return Status::Error(msg + std::strerror(err));
}

// Opens `path` for reading and rejects directories, so every reader reports them the same way.
Expected<int> open_for_reading(const std::string& path, struct stat* st) {
  int fd;
  do {
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) return errno_error(path, "", errno);
  if (::fstat(fd, st) != 0) {
    int err = errno;
    ::close(fd);
    return errno_error(path, "", err);
  }
  if (S_ISDIR(st->st_mode)) {
    ::close(fd);
    return Status::Error(path + ": is a directory");
  }
  return fd;
}

// Temp names are unique within the process (counter) and across processes (pid); O_EXCL makes a
// collision with a stale file from a crashed run a retry instead of a clobber.
std::atomic<uint64_t> temp_counter{0};

}  // namespace

Status write_file_atomic(const std::string& path, const std::function<Status(std::FILE*)>& writer) {
  if (path.empty()) return Status::Error("write: empty file path");
  const size_t slash = path.rfind('/');
  const std::string dir =
      slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  const std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  if (base.empty() || base == "." || base == "..") {
    return Status::Error(path + ": not a file path");
  }

  std::string temp_path;
  int fd = -1;
  for (int attempt = 0; attempt < 100 && fd < 0; ++attempt) {
    temp_path = (dir == "/" ? "" : dir) + "/." + base + ".tmp." + std::to_string(::getpid()) + "." +
                std::to_string(temp_counter.fetch_add(1));
    // 0666 and the umask give the same mode a plain fopen("w") would.
    fd = ::open(temp_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0 && errno != EEXIST && errno != EINTR) break;
  }
  if (fd < 0) {
    return errno_error(path, "cannot create a temp file in '" + dir + "'", errno);
  }
  std::FILE* f = ::fdopen(fd, "wb");
  if (f == nullptr) {
    int err = errno;
    ::close(fd);
    ::unlink(temp_path.c_str());
    return errno_error(path, "fdopen", err);
  }

  // From here on every failure closes and removes the temp file, so nothing half-written stays.
  auto fail = [&](Status st) {
    if (f != nullptr) std::fclose(f);
    ::unlink(temp_path.c_str());
    return st;
  };

  Status st = writer(f);
  if (!st.ok()) return fail(st.Wrap(path));
  if (std::ferror(f)) return fail(Status::Error(path + ": write error"));
  if (std::fflush(f) != 0) return fail(errno_error(path, "write", errno));
  // fsync before rename: otherwise a crash can leave the new name pointing at an empty file.
  if (::fsync(::fileno(f)) != 0) return fail(errno_error(path, "fsync", errno));
  std::FILE* to_close = f;
  f = nullptr;
  if (std::fclose(to_close) != 0) return fail(errno_error(path, "close", errno));
  if (std::rename(temp_path.c_str(), path.c_str()) != 0) {
    return fail(errno_error(path, "rename", errno));
  }
  // Persist the directory entry too. Some file systems refuse fsync on directories; the file is
  // already complete and in place then, so that is not reported as a failure.
  int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    (void)::fsync(dir_fd);
    ::close(dir_fd);
  }
  return Status::Ok();
}

Status write_file_atomic(const std::string& path, const void* data, size_t n_bytes) {
  return write_file_atomic(path, [&](std::FILE* f) -> Status {
    if (n_bytes > 0 && std::fwrite(data, 1, n_bytes, f) != n_bytes) {
      return Status::Error(std::string("write: ") + std::strerror(errno));
    }
    return Status::Ok();
  });
}

Expected<std::string> read_file(const std::string& path) {
  struct stat st {};
  Expected<int> fd = open_for_reading(path, &st);
  if (!fd.ok()) return fd.status();
  std::string out;
  if (S_ISREG(st.st_mode) && st.st_size > 0) out.reserve(static_cast<size_t>(st.st_size));
  char buf[1 << 16];
  while (true) {
    ssize_t n = ::read(*fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(*fd);
      return errno_error(path, "read", err);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(*fd);
  return out;
}

Expected<MappedFile> MappedFile::open(const std::string& path) {
  struct stat st {};
  Expected<int> fd = open_for_reading(path, &st);
  if (!fd.ok()) return fd.status();
  if (!S_ISREG(st.st_mode)) {
    ::close(*fd);
    return Status::Error(path + ": not a regular file");
  }
  MappedFile m;
  if (st.st_size > 0) {
    void* p = ::mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_PRIVATE, *fd, 0);
    if (p == MAP_FAILED) {
      int err = errno;
      ::close(*fd);
      return errno_error(path, "mmap", err);
    }
    m.data_ = static_cast<const uint8_t*>(p);
    m.size_ = static_cast<size_t>(st.st_size);
  }
  // The mapping keeps its own reference to the file; the descriptor is no longer needed.
  ::close(*fd);
  return m;
}

MappedFile::MappedFile(MappedFile&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}

MappedFile& MappedFile::operator=(MappedFile&& other) noexcept {
  if (this != &other) {
    reset();
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

MappedFile::~MappedFile() { reset(); }

void MappedFile::reset() {
  if (data_ != nullptr) ::munmap(const_cast<uint8_t*>(data_), size_);
  data_ = nullptr;
  size_ = 0;
}

}  // namespace longctx::io
