#pragma once
// Whole-file reads and writes with errors that name the file: the one place tinyvid touches files byte-wise
// (safetensors, reports, lists, pictures, frames).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "tinyvid/core/error.hpp"

namespace tv::io::detail {

// The whole file; a missing, unreadable or non-regular file is an error naming the path.
inline std::vector<uint8_t> read_file(const std::string& path, const char* op) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) TV_FAIL(op, ": cannot open '", path, "': ", std::strerror(errno));
  struct stat st {};
  if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
    std::fclose(f);
    TV_FAIL(op, ": '", path, "' is not a regular file");
  }
  std::vector<uint8_t> bytes(static_cast<size_t>(st.st_size));
  const size_t got = bytes.empty() ? 0 : std::fread(bytes.data(), 1, bytes.size(), f);
  const bool failed = std::ferror(f) != 0;
  std::fclose(f);
  if (failed || got != bytes.size())
    TV_FAIL(op, ": reading '", path, "' failed after ", got, " of ", bytes.size(), " bytes");
  return bytes;
}

// Writes a file so that `path` holds either its old content or the complete new one, even if the
// process is killed: the bytes go to path + ".tmp" (same directory, same file system), are flushed to
// disk, and the temporary is renamed over `path`. `fill(put)` produces the bytes through put(ptr, n).
template <class Fill>
void write_file_atomically(const std::string& path, const char* op, Fill&& fill) {
  const std::string tmp = path + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) TV_FAIL(op, ": cannot create '", tmp, "' to write '", path, "': ", std::strerror(errno));
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
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd >= 0) {
    (void)fsync(fd);
    ::close(fd);
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
