// libFuzzer target: VideoReader on arbitrary bytes must open, count and read frames, or throw tv::Error;
// nothing else (no crash, no ASan/UBSan report, no hang, no other exception). FFmpeg is not instrumented,
// so only our code's memory errors are caught; its hangs and blow-ups still show. Run with tools/fuzz.sh.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "tinyvid/data/video.hpp"

namespace {

// FFmpeg opens files by name, so every input goes through one file, private to this process (-fork/-jobs
// run several). A plain array: the exit handler that removes the file runs after static destructors would.
char g_path[512];

void remove_input() { std::remove(g_path); }

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  av_log_set_level(AV_LOG_QUIET);
  std::error_code ec;
  const char* tmp = std::getenv("TMPDIR");
  const std::filesystem::path dir = std::filesystem::is_directory("/dev/shm", ec) ? "/dev/shm" : (tmp ? tmp : "/tmp");
  std::snprintf(g_path, sizeof g_path, "%s/tinyvid_fuzz_video_%d", dir.c_str(), static_cast<int>(::getpid()));
  std::atexit(remove_input);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = g_path;
  {
    std::FILE* f = std::fopen(g_path, "wb");
    if (!f) std::abort();  // not the input's fault: the fuzzer cannot work
    if (size && std::fwrite(data, 1, size, f) != size) std::abort();
    std::fclose(f);
  }
  try {
    // Odd sizes decode on two threads (FFmpeg's frame threading delays frames, which the reader's order
    // checks must survive), even ones on the calling thread.
    tv::data::VideoReader r(path, 1 + static_cast<int>(size & 1));
    const int64_t n = r.frame_count();
    if (n < 1) std::abort();  // a reader that opened must have a frame
    // First, middle, last one by one, then out of order with a repeat (seeks backwards, re-decodes).
    for (int64_t i : {int64_t{0}, n / 2, n - 1}) r.frame(i);
    const auto clip = r.read({n - 1, 0, n / 2, n - 1});
    for (const auto& img : clip)  // what read() promises: RGB frames, whole
      if (img.channels != 3 || img.empty() || img.pixels.size() != static_cast<size_t>(img.height * img.width * 3))
        std::abort();
  } catch (const tv::Error&) {
  }
  return 0;
}
