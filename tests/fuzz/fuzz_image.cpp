// libFuzzer target: read_image (libjpeg / libpng, as FrameFolderReader uses them) on arbitrary bytes must return an
// RGB image or throw tv::Error; nothing else. Run with tools/fuzz.sh.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "tinyvid/data/frames.hpp"

namespace {

// One file per process, named as the first frame of a folder so the folder reader can be driven. Plain
// arrays: the exit handler that removes them runs after static destructors would.
char g_dir[512], g_path[600];

void remove_input() {
  std::remove(g_path);
  ::rmdir(g_dir);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  std::error_code ec;
  const char* tmp = std::getenv("TMPDIR");
  const std::filesystem::path base = std::filesystem::is_directory("/dev/shm", ec) ? "/dev/shm" : (tmp ? tmp : "/tmp");
  std::snprintf(g_dir, sizeof g_dir, "%s/tinyvid_fuzz_image_%d", base.c_str(), static_cast<int>(::getpid()));
  std::snprintf(g_path, sizeof g_path, "%s/img_00001.jpg", g_dir);
  std::filesystem::create_directories(g_dir, ec);
  std::atexit(remove_input);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  {
    std::FILE* f = std::fopen(g_path, "wb");
    if (!f) std::abort();  // not the input's fault: the fuzzer cannot work
    if (size && std::fwrite(data, 1, size, f) != size) std::abort();
    std::fclose(f);
  }
  try {
    const tv::data::FrameFolderReader reader(g_dir);
    const tv::data::Clip clip = reader.read({0, 0});
    const tv::data::Image& img = clip[0];
    if (img.channels != 3 || img.pixels.size() != static_cast<size_t>(img.height * img.width * 3)) std::abort();
  } catch (const tv::Error&) {
  }
  return 0;
}
