#pragma once
// Whole-file reads and writes with errors that name the file: the one place tinyvid touches files byte-wise
// (safetensors, reports, lists, configs, pictures, frames).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <new>
#include <string>
#include <vector>

#include "tinyvid/core/error.hpp"

namespace tv::io::detail {

// Whole-file reads are for small files: lists, label maps, configs, manifests, frame images (the largest:
// tens of MB). Anything larger is refused before a byte is allocated, so a 100 GB sparse file is an error
// naming it rather than std::bad_alloc. Weights are never read whole (safetensors.hpp reads them tensor by tensor).
constexpr uint64_t kMaxWholeFileBytes = uint64_t{1} << 30;  // 1 GiB

// A regular file opened for reading. A missing file, a directory, a FIFO or a device is an error naming the path
// (opened non-blocking, so a FIFO never hangs the open).
class InputFile {
 public:
  InputFile(const std::string& path, const char* op) : path_(path), op_(op) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd_ < 0) TV_FAIL(op, ": cannot open '", path, "': ", std::strerror(errno));
    struct stat st {};
    if (fstat(fd_, &st) != 0 || !S_ISREG(st.st_mode)) {
      ::close(fd_);
      TV_FAIL(op, ": '", path, "' is not a regular file", S_ISDIR(st.st_mode) ? " (a directory)" : "");
    }
    size_ = static_cast<uint64_t>(st.st_size);
  }
  ~InputFile() { ::close(fd_); }
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;

  const std::string& path() const { return path_; }
  uint64_t size() const { return size_; }

  // n bytes from `offset`; a read error or the file ending early (cut while being read) names the path.
  void read_at(uint64_t offset, void* dst, size_t n) const {
    auto* out = static_cast<uint8_t*>(dst);
    for (size_t got = 0; got < n;) {
      const ssize_t r = ::pread(fd_, out + got, n - got, static_cast<off_t>(offset + got));
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) TV_FAIL(op_, ": reading '", path_, "' failed at byte ", offset + got, ": ", std::strerror(errno));
      if (r == 0)
        TV_FAIL(op_, ": '", path_, "' ended at byte ", offset + got, " while reading bytes [", offset, ", ", offset + n,
                ") (the file shrank while being read?)");
      got += static_cast<size_t>(r);
    }
  }

 private:
  std::string path_;
  const char* op_;
  int fd_ = -1;
  uint64_t size_ = 0;
};

// n zeroed bytes for reading `what` of `path`; running out of memory is an error naming both.
inline std::vector<uint8_t> byte_buffer(uint64_t n, const char* op, const std::string& path, const std::string& what) {
  try {
    return std::vector<uint8_t>(static_cast<size_t>(n));
  } catch (const std::bad_alloc&) {
    TV_FAIL(op, ": out of memory allocating ", n, " bytes for ", what, " of '", path, "'");
  }
}

// The whole file, if it has at most max_bytes; a missing, unreadable, non-regular or larger file is an error
// naming the path.
inline std::vector<uint8_t> read_file(const std::string& path, const char* op,
                                      uint64_t max_bytes = kMaxWholeFileBytes) {
  const InputFile f(path, op);
  if (f.size() > max_bytes)
    TV_FAIL(op, ": '", path, "' has ", f.size(), " bytes; expected at most ", max_bytes,
            " for this kind of file (not the file meant?)");
  std::vector<uint8_t> bytes = byte_buffer(f.size(), op, path, "the contents");
  f.read_at(0, bytes.data(), bytes.size());
  return bytes;
}

// A temporary name next to `path` that no other writer uses: the process id and a per-process count, so two
// processes (or two threads) saving the same file never write into one temporary.
inline std::string unique_temp_path(const std::string& path) {
  static std::atomic<uint64_t> counter{0};
  return path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
}

// Writes a file so that `path` holds either its old content or the complete new one, even if the process is
// killed or the machine loses power: the bytes go to a temporary of its own (same directory, same file system),
// are flushed to disk, the temporary is renamed over `path`, and the directory is flushed so the rename lasts.
// `fill(put)` produces the bytes through put(ptr, n).
template <class Fill>
void write_file_atomically(const std::string& path, const char* op, Fill&& fill) {
  const std::string tmp = unique_temp_path(path);
  // O_EXCL: never write through a file or link that is already there.
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  if (fd < 0) TV_FAIL(op, ": cannot create '", tmp, "' to write '", path, "': ", std::strerror(errno));
  FILE* f = fdopen(fd, "wb");
  if (!f) {
    const int err = errno;
    ::close(fd);
    std::remove(tmp.c_str());
    TV_FAIL(op, ": cannot create '", tmp, "' to write '", path, "': ", std::strerror(err));
  }
  // Any failure closes and removes the temporary, so no partial file is left behind.
  auto discard = [&] {
    if (f) std::fclose(f);
    f = nullptr;
    std::remove(tmp.c_str());
  };
  auto fail = [&](const char* step) {
    const int err = errno;
    discard();
    TV_FAIL(op, ": writing '", path, "' failed (", step, "): ", std::strerror(err));
  };
  auto put = [&](const void* p, size_t n) {
    if (n > 0 && std::fwrite(p, 1, n, f) != n) fail("write");
  };
  try {
    fill(put);
  } catch (...) {
    discard();
    throw;
  }
  if (std::fflush(f) != 0) fail("flush");
  if (fsync(fileno(f)) != 0) fail("fsync");
  const int closed = std::fclose(f);
  f = nullptr;
  if (closed != 0) fail("close");
  if (std::rename(tmp.c_str(), path.c_str()) != 0) fail("rename");
  // Make the rename itself durable; best effort, since some file systems refuse fsync on a directory.
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  const int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    (void)fsync(dir_fd);
    ::close(dir_fd);
  }
}

// Writes `n` bytes to `path` (created or truncated), checking every step: a full disk or a delayed write
// error reported by close is an error, not a short file. Not atomic and not flushed to disk; for many small
// files (extracted frames) whose completion the caller marks itself. Results use write_file_atomically.
inline void write_file(const std::string& path, const void* data, size_t n, const char* op) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) TV_FAIL(op, ": cannot create '", path, "': ", std::strerror(errno));
  const bool written = n == 0 || std::fwrite(data, 1, n, f) == n;
  const int err = errno;
  const bool closed = std::fclose(f) == 0;
  if (!written || !closed) {
    std::remove(path.c_str());
    TV_FAIL(op, ": writing '", path, "' failed (", n, " bytes): ", std::strerror(written ? errno : err));
  }
}

}  // namespace tv::io::detail
