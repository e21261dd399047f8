#pragma once
// The work directory of a training run, and what keeps it safe:
// - WorkDirLock: one run per directory (flock on WORK_DIR/.lock; the kernel drops it when the process dies,
//   so a kill -9 never leaves a stale lock);
// - a fresh run never writes into a directory that holds files (fresh_work_dir_check), --force picks a new
//   timestamped sibling (timestamped_work_dir);
// - AppendLog: log files whose every write is checked (a full disk stops the run, never loses lines silently);
// - stop requests by SIGINT / SIGTERM (StopOnSignals): the loop stops at the next safe point and saves;
// - the training state file: what `--resume` reads, checked whole before anything on disk is touched.
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

extern "C" {
#include <libavutil/avutil.h>
}

#include "tinyvid/backend/cpu/packed_gemm.hpp"
#include "tinyvid/core/cpu_isa.hpp"
#include "tinyvid/core/error.hpp"
#include "tinyvid/core/parse.hpp"
#include "tinyvid/core/parallel.hpp"
#include "tinyvid/core/version.hpp"
#include "tinyvid/io/safetensors.hpp"
#include "tinyvid/nn/module.hpp"

namespace tv::train {

// ---- one run per directory ----

class WorkDirLock {
 public:
  explicit WorkDirLock(const std::string& dir) : path_(dir + "/.lock") {
    fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    TV_CHECK(fd_ >= 0, "train: cannot create the lock file '", path_, "': ", std::strerror(errno));
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      char pid[32] = {0};
      const ssize_t n = ::pread(fd_, pid, sizeof(pid) - 1, 0);
      ::close(fd_);
      TV_FAIL("train: the work directory '", dir, "' is in use by another tinyvid run (pid ",
              n > 0 ? std::string(pid, static_cast<size_t>(n)) : std::string("unknown"),
              "); two runs must not write one directory: wait for it, or give this run another --work-dir");
    }
    const std::string me = std::to_string(::getpid());
    if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, me.data(), me.size(), 0) != static_cast<ssize_t>(me.size())) {
      // The pid is only a courtesy for the message above; the flock is the lock.
    }
  }
  ~WorkDirLock() { ::close(fd_); }
  WorkDirLock(const WorkDirLock&) = delete;
  WorkDirLock& operator=(const WorkDirLock&) = delete;

 private:
  std::string path_;
  int fd_ = -1;
};

// Whether a file name is one a training run writes (or its temporary).
inline bool is_run_file(const std::string& name) {
  for (const char* f : {".lock", "log.json", "train.log", "config.txt", "curves.png", "bad_samples.txt",
                        "latest.safetensors", "latest.state.safetensors", "best.safetensors"})
    if (name == f || name.rfind(std::string(f) + ".tmp", 0) == 0) return true;
  return name.rfind("epoch_", 0) == 0 && name.find(".safetensors") != std::string::npos;
}

// The temporaries (NAME.tmp.<pid>.<n>) of run files whose writer was killed mid-save. Only called with the
// directory's lock held, so no writer is alive.
inline void remove_stale_temporaries(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  std::vector<fs::path> stale;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.find(".tmp.") != std::string::npos && is_run_file(name)) stale.push_back(e.path());
  }
  for (const auto& p : stale) fs::remove(p, ec);
}

// A fresh run refuses a directory with files in it (a finished run, another run's weights): nothing a user
// made is ever overwritten without being asked. The lock file alone does not count; with `resuming` (--resume
// found no state: the run died before its first checkpoint), the files such a run leaves do not count either.
inline void fresh_work_dir_check(const std::string& dir, bool resuming) {
  namespace fs = std::filesystem;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name == ".lock" || (resuming && is_run_file(name))) continue;
    TV_FAIL("train: the work directory '", dir, "' already holds files (", name, resuming ? ", and no training state" : " ...",
            "). Continue that run with --resume, start a new run in a new timestamped folder with --force, or give "
            "another --work-dir");
  }
  TV_CHECK(!ec, "train: cannot list the work directory '", dir, "': ", ec.message());
}

// DIR_YYYYmmdd_HHMMSS (UTC), with a counter if that exists too: where --force starts its fresh run.
inline std::string timestamped_work_dir(const std::string& dir) {
  std::string base = dir;
  while (base.size() > 1 && base.back() == '/') base.pop_back();
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char stamp[32];
  std::strftime(stamp, sizeof(stamp), "_%Y%m%d_%H%M%S", &tm);
  std::string out = base + stamp;
  for (int k = 2; std::filesystem::exists(out); ++k) out = base + stamp + "_" + std::to_string(k);
  return out;
}

// ---- logs ----

// A file opened for appending whose writes are all checked; sync() makes what was written durable.
class AppendLog {
 public:
  AppendLog() = default;
  explicit AppendLog(std::string path) : path_(std::move(path)) {
    fd_ = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    TV_CHECK(fd_ >= 0, "train: cannot open the log '", path_, "' for writing: ", std::strerror(errno));
  }
  ~AppendLog() {
    if (fd_ >= 0) ::close(fd_);
  }
  AppendLog(AppendLog&& o) noexcept : path_(std::move(o.path_)), fd_(o.fd_) { o.fd_ = -1; }
  AppendLog& operator=(AppendLog&& o) noexcept {
    std::swap(path_, o.path_);
    std::swap(fd_, o.fd_);
    return *this;
  }

  void write(const std::string& text) {
    size_t done = 0;
    while (done < text.size()) {
      const ssize_t n = ::write(fd_, text.data() + done, text.size() - done);
      if (n < 0 && errno == EINTR) continue;
      TV_CHECK(n > 0, "train: writing the log '", path_, "' failed: ", std::strerror(errno),
               " (is the disk full?); the run stopped so that no result goes unrecorded");
      done += static_cast<size_t>(n);
    }
  }
  void sync() {
    TV_CHECK(::fsync(fd_) == 0, "train: flushing the log '", path_, "' to disk failed: ", std::strerror(errno));
  }

 private:
  std::string path_;
  int fd_ = -1;
};

// ---- stop requests ----

// Set by SIGINT / SIGTERM while a StopOnSignals lives (and by tests): the loop saves and returns.
inline std::atomic<bool>& stop_requested() {
  static std::atomic<bool> flag{false};
  return flag;
}

// The first SIGINT (Ctrl-C) or SIGTERM (what a cluster's scheduler sends before it kills) asks the run to
// stop at the next safe point; a second one ends the process at once.
class StopOnSignals {
 public:
  StopOnSignals() {
    stop_requested().store(false);
    struct sigaction sa {};
    sa.sa_handler = &StopOnSignals::handle;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int_);
    sigaction(SIGTERM, &sa, &old_term_);
  }
  ~StopOnSignals() {
    sigaction(SIGINT, &old_int_, nullptr);
    sigaction(SIGTERM, &old_term_, nullptr);
  }
  StopOnSignals(const StopOnSignals&) = delete;
  StopOnSignals& operator=(const StopOnSignals&) = delete;

 private:
  static void handle(int sig) {
    if (stop_requested().exchange(true)) {
      ::signal(sig, SIG_DFL);
      ::raise(sig);
      return;
    }
    static const char msg[] = "\nstopping at the next safe point to save the run (signal again to quit at once)\n";
    [[maybe_unused]] const ssize_t n = ::write(2, msg, sizeof(msg) - 1);
  }
  struct sigaction old_int_ {}, old_term_ {};
};

// ---- the environment, for train.log ----

inline std::string environment_info(const std::string& build_info) {
  std::string s = "tinyvid " TINYVID_VERSION;
  if (!build_info.empty()) s += " (" + build_info + ")";
#if defined(__clang__)
  s += "\ncompiler: clang " __clang_version__;
#elif defined(__GNUC__)
  s += "\ncompiler: GCC " __VERSION__;
#endif
  s += ", C++ " + std::to_string(__cplusplus);
#if defined(TINYVID_WITH_OPENBLAS)
  const std::string blas = "OpenBLAS (OpenMP build)";
#else
  const std::string blas = "Eigen's GEMM";
#endif
  const cpu::Isa isa = cpu::active_isa();
  s += "\nCPU kernels: " + std::string(cpu::isa_name(isa)) +
       (cpu::has_micro_kernels(isa) ? " micro-kernels for the convs" : " (none: every product on " + blas + ")");
  if (cpu::has_micro_kernels(isa))
    s += cpu::use_own_gemm(isa) ? ", tinyvid's packed GEMM for the other float products" : ", " + blas + " for the other products";
  s += "\nthreads: " + std::to_string(get_num_threads());
  s += "\nFFmpeg: " + std::string(av_version_info()) + " (libavcodec " + AV_STRINGIFY(LIBAVCODEC_VERSION) + ")";
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char stamp[40];
  std::strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S UTC", &tm);
  s += "\nstarted: " + std::string(stamp) + ", pid " + std::to_string(::getpid());
  return s;
}

// ---- the training state (WORK_DIR/latest.state.safetensors) ----

// Where a run stands, as saved after an iteration or an epoch. `val_pending`: the epoch's training is done and
// saved but its validation has not been recorded yet, so a resume validates first.
struct TrainPosition {
  int64_t epoch = 0, iter = 0;
  bool val_pending = false;
  double best_top1 = -1;  // -1: never validated
  int64_t best_epoch = 0;
  int64_t log_lines = 0;  // lines of log.json that belong to the run up to here
  std::string rng;        // the default generator's state (dropout)
};

struct TrainState {
  TrainPosition at;
  int64_t processes = 1;    // that trained it (data-parallel ranks)
  int64_t global_batch = 0; // samples per iteration over all of them (0: a state from before it was kept)
  std::string model;
  std::map<std::string, std::string> config;  // the run's settings as given (Config::values())
  std::string train_list_digest;              // the training list as read: count and a hash
  std::map<std::string, Tensor<float>> weights, momenta;
};

namespace detail {

inline std::string config_text(const std::map<std::string, std::string>& values) {
  std::string out;
  for (const auto& [k, v] : values) out += k + " = " + v + "\n";
  return out;
}

inline std::map<std::string, std::string> parse_config_text(const std::string& text) {
  std::map<std::string, std::string> out;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    const std::string line = text.substr(start, end - start);
    const size_t eq = line.find(" = ");
    if (eq != std::string::npos) out[line.substr(0, eq)] = line.substr(eq + 3);
    start = end + 1;
  }
  return out;
}

}  // namespace detail

inline void save_train_state(const std::string& path, const TrainState& s, const nn::StateDict<float>& weights,
                             const std::vector<std::pair<std::string, Tensor<float>>>& momenta) {
  nn::StateDict<float> tensors;
  for (const auto& [k, t] : weights) tensors.emplace_back("model." + k, t);
  for (const auto& [k, t] : momenta) tensors.emplace_back("momentum." + k, t);
  char best[64];
  std::snprintf(best, sizeof(best), "%.17g", s.at.best_top1);
  const std::map<std::string, std::string> meta{
      {"format", "tinyvid-train-state"},
      {"model", s.model},
      {"epoch", std::to_string(s.at.epoch)},
      {"iter", std::to_string(s.at.iter)},
      {"val_pending", s.at.val_pending ? "1" : "0"},
      {"rng", s.at.rng},
      {"best_top1", best},
      {"best_epoch", std::to_string(s.at.best_epoch)},
      {"log_lines", std::to_string(s.at.log_lines)},
      {"processes", std::to_string(s.processes)},
      {"global_batch", std::to_string(s.global_batch)},
      {"train_list", s.train_list_digest},
      {"config", detail::config_text(s.config)}};
  io::save_safetensors<float>(path, tensors, meta);
}

// Reads and checks a state file (all of it); nothing else is touched, so a bad file leaves the run as it was.
inline TrainState load_train_state(const std::string& path) {
  const io::SafetensorsReader reader(path, "train --resume");  // header first, then one tensor at a time
  const io::SafetensorsFile& file = reader.file();
  const char* not_a_state =
      "not a tinyvid training state (or one of an older tinyvid). --resume reads a run's latest.state.safetensors; "
      "epoch_N, latest and best files hold weights only (load_from starts from those)";
  auto meta = [&](const std::string& k) -> const std::string& {
    auto it = file.metadata.find(k);
    TV_CHECK(it != file.metadata.end(), "train --resume: '", path, "' has no '", k, "' entry: ", not_a_state);
    return it->second;
  };
  TV_CHECK(meta("format") == "tinyvid-train-state", "train --resume: '", path, "' is a '", meta("format"), "' file: ",
           not_a_state);
  const std::string what = "train --resume: '" + path + "'";
  auto whole = [&](const std::string& k) { return parse_int(meta(k), what, Range::at_least(0), k); };
  TrainState s;
  s.model = meta("model");
  s.at.epoch = whole("epoch");
  s.at.iter = whole("iter");
  s.at.val_pending = whole("val_pending") != 0;
  s.at.best_epoch = whole("best_epoch");
  s.at.log_lines = whole("log_lines");
  s.at.rng = meta("rng");
  // Kept since data-parallel training; a state without them was written by one process.
  if (file.metadata.count("processes")) s.processes = parse_int(meta("processes"), what, Range::at_least(1), "processes");
  if (file.metadata.count("global_batch"))
    s.global_batch = parse_int(meta("global_batch"), what, Range::at_least(1), "global_batch");
  s.at.best_top1 = parse_real(meta("best_top1"), what, Range::closed(-1, 1), "best_top1");
  TV_CHECK(s.at.best_top1 == -1 || s.at.best_top1 >= 0, what, ": 'best_top1' must be -1 (never validated) or in [0, 1], got ",
           s.at.best_top1);
  s.train_list_digest = meta("train_list");
  s.config = detail::parse_config_text(meta("config"));
  for (const auto& e : file.entries) {
    Tensor<float> t = reader.read<float>(e);
    if (e.name.rfind("model.", 0) == 0) s.weights.emplace(e.name.substr(6), t);
    else if (e.name.rfind("momentum.", 0) == 0) s.momenta.emplace(e.name.substr(9), t);
    else TV_FAIL("train --resume: '", path, "' holds an unexpected tensor '", e.name, "'");
  }
  return s;
}

// The keys whose values differ between a saved run's settings and this one's, as "key: old -> new" lines.
inline std::vector<std::string> changed_settings(const std::map<std::string, std::string>& before,
                                                 const std::map<std::string, std::string>& now) {
  std::vector<std::string> out;
  for (const auto& [k, v] : before) {
    auto it = now.find(k);
    if (it == now.end()) out.push_back(k + ": " + v + " -> (unset)");
    else if (it->second != v) out.push_back(k + ": " + v + " -> " + it->second);
  }
  for (const auto& [k, v] : now)
    if (!before.count(k)) out.push_back(k + ": (unset) -> " + v);
  return out;
}

}  // namespace tv::train
