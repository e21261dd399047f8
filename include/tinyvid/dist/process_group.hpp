#pragma once
// Processes that train together: a group of ranks and the collectives data-parallel training needs, on
// contiguous host buffers of float, double or int64_t. tv::dist::world() is the process's group: the MPI
// group (dist/mpi.hpp) in a build with MPI started by a launcher (mpirun, srun), else SingleProcess, where
// every collective is a no-op or a copy, so one program runs either way.
//
//   tv::dist::ProcessGroup& pg = tv::dist::world();
//   pg.broadcast(weights.data(), n, 0);                        // every rank starts from rank 0's weights
//   auto w = pg.all_reduce_async(grads.data(), n, tv::dist::ReduceOp::Sum);  // while backward goes on
//   ...; w->wait();
//
// Collectives are matched by the order they are called in: every rank calls the same ones in the same order
// (from one thread per rank, or the caller orders them). No wait lasts forever: a collective that has not
// completed within timeout() seconds (default 1800, TINYVID_DIST_TIMEOUT overrides it) ends every rank with a
// message naming it, since a rank that died, hung or took another path would otherwise leave the others
// waiting for good.
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "tinyvid/core/error.hpp"
#include "tinyvid/core/parse.hpp"

namespace tv::dist {

enum class ReduceOp { Sum, Max };

// The element types the collectives carry; the template members below map T to these.
enum class DType { Float32, Float64, Int64 };

template <class T>
inline constexpr bool is_collective_type_v =
    std::is_same_v<T, float> || std::is_same_v<T, double> || std::is_same_v<T, int64_t>;

template <class T>
constexpr DType dtype_of() {
  static_assert(is_collective_type_v<T>, "tv::dist collectives carry float, double or int64_t");
  if constexpr (std::is_same_v<T, float>) return DType::Float32;
  else if constexpr (std::is_same_v<T, double>) return DType::Float64;
  else return DType::Int64;
}

inline size_t dtype_size(DType t) { return t == DType::Float32 ? 4 : 8; }
// As messages count them: "1,024 floats".
inline const char* dtype_plural(DType t) {
  return t == DType::Float32 ? "floats" : t == DType::Float64 ? "doubles" : "int64s";
}

// The exit code of a process that abort() ends (and mpirun's, which passes MPI_Abort's code on): 2, the
// tinyvid command line's code for an error, so a script sees one code for "tinyvid failed" whether it ran
// one process or many (1 there means "done, some inputs were bad"; 130 "interrupted, resumable").
inline constexpr int kAbortExitCode = 2;

namespace detail {
// 4194304 -> "4,194,304"
inline std::string grouped(int64_t n) {
  std::string digits = std::to_string(n < 0 ? -n : n), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return n < 0 ? "-" + out : out;
}

// TINYVID_DIST_TIMEOUT when set (checked: a typo must not silently mean 30 minutes), else 1800 s: long enough
// for a slow rank's validation or checkpoint, short enough that a dead job does not hold a machine for hours.
inline double default_timeout() {
  const char* env = std::getenv("TINYVID_DIST_TIMEOUT");
  if (!env) return 1800;
  return parse_real(env, "TINYVID_DIST_TIMEOUT (seconds)", Range::above(0));
}

// Prints "rank R: message" to stderr in one write, so the lines of ranks sharing a terminal do not interleave.
inline void print_rank_line(int rank, const std::string& message) {
  const std::string line = "rank " + std::to_string(rank) + ": " + message + "\n";
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}
}  // namespace detail

// A collective in flight. wait() returns when it has completed on this rank (and rethrows its failure as a
// tv::Error); done() asks without waiting.
class Work {
 public:
  virtual ~Work() = default;
  virtual void wait() = 0;
  virtual bool done() const = 0;
};

class ProcessGroup {
 public:
  ProcessGroup() : timeout_(detail::default_timeout()) {}
  virtual ~ProcessGroup() = default;
  ProcessGroup(const ProcessGroup&) = delete;
  ProcessGroup& operator=(const ProcessGroup&) = delete;

  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual const char* name() const = 0;  // "single", "mpi"

  // data[0, count) of rank `root` to every rank.
  template <class T>
  void broadcast(T* data, int64_t count, int root) {
    check_buffer("broadcast", data, count);
    TV_CHECK(root >= 0 && root < size(), "broadcast: root ", root, " is outside [0, ", size(),
             ") (the ranks of this group)");
    broadcast_raw(data, count, dtype_of<T>(), root);
  }

  // data[i] = the sum (or max) of data[i] over the ranks, in place, on every rank.
  template <class T>
  void all_reduce(T* data, int64_t count, ReduceOp op) {
    all_reduce_async(data, count, op)->wait();
  }

  // all_reduce that returns at once; data must stay alive and untouched until wait(). Several may be in
  // flight; they complete in the order they were started, and communication progresses while the caller
  // computes (a gradient bucket is reduced while backward fills the next).
  template <class T>
  std::shared_ptr<Work> all_reduce_async(T* data, int64_t count, ReduceOp op) {
    check_buffer("all_reduce", data, count);
    return all_reduce_raw(data, count, dtype_of<T>(), op);
  }

  // recv[r * count, (r + 1) * count) = send[0, count) of rank r; every rank sends the same count. send may be
  // recv + rank() * count (in place).
  template <class T>
  void all_gather(const T* send, int64_t count, T* recv) {
    check_buffer("all_gather", send, count);
    check_buffer("all_gather", recv, count);
    all_gather_raw(send, count, dtype_of<T>(), recv);
  }

  // Every rank's string, in rank order; sizes may differ (an evaluation shard's scores, serialized).
  virtual std::vector<std::string> all_gather_bytes(const std::string& mine) = 0;

  virtual void barrier() = 0;

  // Prints "rank R: message" to stderr and ends every rank of the group now, with kAbortExitCode. For an
  // error that leaves this rank unable to take part (a later collective would only hang the others).
  [[noreturn]] virtual void abort(const std::string& message) = 0;

  // The bound on every wait for a collective, in seconds (> 0). A collective started after the change uses it.
  void set_timeout(double seconds) {
    TV_CHECK(seconds > 0 && std::isfinite(seconds), "set_timeout: expected a finite number of seconds > 0, got ",
             seconds);
    timeout_.store(seconds);
  }
  double timeout() const { return timeout_.load(); }

  // What the message that ends a job for a timeout or a lost rank tells the user to do next (the trainer's
  // checkpoints are written whole, so the last one is intact).
  void set_failure_hint(std::string hint) {
    std::lock_guard<std::mutex> lock(hint_mutex_);
    hint_ = std::move(hint);
  }
  std::string failure_hint() const {
    std::lock_guard<std::mutex> lock(hint_mutex_);
    return hint_;
  }

 protected:
  // The implementations: buffers are checked (count >= 0, non-null when count > 0, root in range).
  virtual void broadcast_raw(void* data, int64_t count, DType type, int root) = 0;
  virtual std::shared_ptr<Work> all_reduce_raw(void* data, int64_t count, DType type, ReduceOp op) = 0;
  virtual void all_gather_raw(const void* send, int64_t count, DType type, void* recv) = 0;

 private:
  static void check_buffer(const char* op, const void* data, int64_t count) {
    TV_CHECK(count >= 0, op, ": expected a count >= 0, got ", count);
    TV_CHECK(data != nullptr || count == 0, op, ": the buffer of ", count, " elements is null");
  }

  std::atomic<double> timeout_;
  mutable std::mutex hint_mutex_;
  std::string hint_ = "the last checkpoint is intact, resume with --resume";
};

namespace detail {
class DoneWork final : public Work {
 public:
  void wait() override {}
  bool done() const override { return true; }
};
}  // namespace detail

// One process: rank 0 of 1. Every collective leaves the data as it is (all_gather copies it).
class SingleProcess final : public ProcessGroup {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  const char* name() const override { return "single"; }
  std::vector<std::string> all_gather_bytes(const std::string& mine) override { return {mine}; }
  void barrier() override {}
  // std::exit, not _Exit: with no other rank to stop, this process ends as after any error, its atexit
  // handlers run and its streams flushed.
  [[noreturn]] void abort(const std::string& message) override {
    detail::print_rank_line(0, message);
    std::exit(kAbortExitCode);
  }

 protected:
  void broadcast_raw(void*, int64_t, DType, int) override {}
  std::shared_ptr<Work> all_reduce_raw(void*, int64_t, DType, ReduceOp) override {
    return std::make_shared<detail::DoneWork>();
  }
  void all_gather_raw(const void* send, int64_t count, DType type, void* recv) override {
    if (send != recv && count > 0) std::memmove(recv, send, static_cast<size_t>(count) * dtype_size(type));
  }
};

namespace detail {
// How many processes the launcher says it started: 1 when none did, 0 for "several, how many unknown".
// OpenMPI's mpirun sets OMPI_COMM_WORLD_SIZE, Slurm's PMI and MPICH's Hydra PMI_SIZE; a PMIx launcher sets
// PMIX_RANK (no size, so a rank above 0 is the sign of several).
inline int64_t launched_size() {
  for (const char* var : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"})
    if (const char* v = std::getenv(var)) return parse_int(v, var, Range::at_least(1));
  if (const char* v = std::getenv("PMIX_RANK")) return parse_int(v, "PMIX_RANK", Range::at_least(0)) > 0 ? 0 : 1;
  return 1;
}
inline bool launched() {
  return std::getenv("OMPI_COMM_WORLD_SIZE") || std::getenv("PMI_SIZE") || std::getenv("PMIX_RANK");
}

#ifdef TINYVID_WITH_MPI
// Defined in dist/mpi.hpp: starts MPI and returns the world group, to be shut down at exit.
inline std::unique_ptr<ProcessGroup> make_mpi_world();
#endif

inline std::unique_ptr<ProcessGroup> make_world() {
#ifdef TINYVID_WITH_MPI
  if (launched()) return make_mpi_world();
#else
  const int64_t n = launched_size();
  TV_CHECK(n == 1, "this process is one of ", n ? std::to_string(n) : "several", " that a launcher (mpirun, srun) "
           "started, but tinyvid was built without MPI, so each would train alone; install MPI (Debian: "
           "libopenmpi-dev openmpi-bin) and rebuild with -DTINYVID_MPI=ON, or run one process without the launcher");
#endif
  return std::make_unique<SingleProcess>();
}
}  // namespace detail

// The process's group, made on first use (thread-safe). It is never destroyed: the MPI group shuts down at
// exit (std::atexit), after every static made after this first call, so their destructors may still use it.
inline ProcessGroup& world() {
  static ProcessGroup* const group = detail::make_world().release();
  return *group;
}

}  // namespace tv::dist

#ifdef TINYVID_WITH_MPI
#include "tinyvid/dist/mpi.hpp"
#endif
