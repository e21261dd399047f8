#pragma once
// The MPI process group (a build with TINYVID_WITH_MPI; tv::dist::world() makes it under a launcher).
//
// One thread per group, the communication thread, makes every MPI call of the process, from MPI_Init_thread
// to MPI_Finalize. The reason is progress: OpenMPI advances a non-blocking collective only inside MPI calls, so
// an all_reduce_async left to itself while the caller runs backward would not move until wait(). The thread
// starts each collective (MPI_I*) as it is queued and polls MPI_Test on all of them until they complete. A
// blocking collective is the same queued operation plus a wait, so every collective starts in the order the
// caller made them, as MPI's matching requires.
//
// Thread level: MPI_THREAD_FUNNELED. The thread that calls MPI_Init_thread is MPI's main thread, and here it is
// the only one that ever calls MPI. MPI_THREAD_MULTIPLE would let abort() call MPI_Abort from any thread, but it
// puts a lock around every MPI call and some transports refuse it; abort() hands MPI_Abort to this thread
// instead.
//
// Bounded waits: each collective has a deadline (started + timeout()), checked at every poll; when it passes, the
// thread prints which collective did not complete and calls MPI_Abort, which ends every rank. Between polls the
// thread yields for the first 100 us after something happened (a small all_reduce takes ~16 us on 2 ranks), then
// sleeps 50 us, backing off to 1 ms while nothing happens, so a rank waiting for a slow one costs a few percent
// of a core (4% measured), not all of it: two ranks may share two cores.
//
// Ending: at exit (std::atexit) the thread finishes the collectives in flight and sends every other rank
// how many collectives this rank started (its "goodbye"). A rank still waiting in a later collective, or starting
// one, then ends the job at once, naming the rank that left, instead of waiting out its timeout; and a rank enters
// MPI_Finalize (which waits for all ranks) only once every rank has said goodbye, within the timeout, so a rank
// that returns from main or calls std::exit mid-run never leaves the job hanging in MPI_Finalize.
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <future>
#include <thread>

#include "tinyvid/dist/process_group.hpp"

namespace tv::dist {

namespace detail {

using Clock = std::chrono::steady_clock;

// A collective as messages name it: "all_reduce #57 (4,194,304 floats)", "broadcast #3 (10 doubles from
// rank 1)". seq counts this group's collectives from 1, in the order they were called, the same on every rank.
struct CollectiveInfo {
  const char* kind = "";
  int64_t count = -1;  // -1: no data (barrier)
  const char* unit = "";
  std::string from{};  // " from rank 1", " from each rank"
  uint64_t seq = 0;

  std::string describe() const {
    std::string s = std::string(kind) + " #" + std::to_string(seq);
    if (count < 0) return s;
    std::string u = unit;
    if (count == 1 && !u.empty()) u.pop_back();  // "1 float"
    return s + " (" + grouped(count) + " " + u + from + ")";
  }
};

// What a queued collective shares with its Work: completion, and the error that failed it.
struct MpiOpState {
  CollectiveInfo info;
  int rank = 0;
  double timeout = 0;
  Clock::time_point backstop;  // see MpiWork::wait
  std::mutex mutex;
  std::condition_variable cv;
  std::atomic<bool> done{false};
  std::string error;  // written before done
};

class MpiWork final : public Work {
 public:
  explicit MpiWork(std::shared_ptr<MpiOpState> state) : s_(std::move(state)) {}
  void wait() override {
    std::unique_lock<std::mutex> lock(s_->mutex);
    if (!s_->cv.wait_until(lock, s_->backstop, [&] { return s_->done.load(); })) {
      // The communication thread ends the job at the deadline; this is the guard should that thread itself hang.
      print_rank_line(s_->rank, s_->info.describe() + " did not complete within " + Range::text(s_->timeout) +
                                    " s and the communication thread did not end the job; ending this process");
      std::_Exit(kAbortExitCode);
    }
    if (!s_->error.empty()) throw Error(s_->error);
  }
  bool done() const override { return s_->done.load(std::memory_order_acquire); }

 private:
  std::shared_ptr<MpiOpState> s_;
};

inline std::string collectives(int64_t n) { return std::to_string(n) + (n == 1 ? " collective" : " collectives"); }

inline std::string without_tinyvid_prefix(const std::string& s) {
  return s.rfind("tinyvid: ", 0) == 0 ? s.substr(9) : s;
}

// Throws "tinyvid: CALL: MPI's error text" unless code is MPI_SUCCESS.
inline void mpi_check(int code, const char* call) {
  if (code == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(code, text, &len) != MPI_SUCCESS) len = std::snprintf(text, sizeof(text), "error %d", code);
  TV_FAIL(call, ": ", std::string(text, static_cast<size_t>(std::max(len, 0))));
}

inline MPI_Datatype mpi_type(DType t) {
  return t == DType::Float32 ? MPI_FLOAT : t == DType::Float64 ? MPI_DOUBLE : MPI_INT64_T;
}

// MPI counts are int: a longer buffer goes as several collectives of at most this many elements (1 GiB of
// doubles; large messages are where MPI implementations have had their size bugs).
inline constexpr int64_t kMpiChunk = int64_t{1} << 27;

template <class F>
void for_chunks(void* data, int64_t count, DType type, F&& f) {
  char* p = static_cast<char*>(data);
  for (int64_t at = 0; at < count; at += kMpiChunk)
    f(p + at * static_cast<int64_t>(dtype_size(type)), static_cast<int>(std::min(kMpiChunk, count - at)));
}

}  // namespace detail

class MpiProcessGroup final : public ProcessGroup {
 public:
  // Starts the communication thread and MPI in it; throws tv::Error when MPI cannot start. One per process:
  // use tv::dist::world().
  MpiProcessGroup() {
    std::promise<void> ready;
    std::future<void> started = ready.get_future();
    thread_ = std::thread([this, ready = std::move(ready)]() mutable { run(ready); });
    try {
      started.get();
    } catch (...) {
      thread_.join();
      throw;
    }
  }
  ~MpiProcessGroup() override { shutdown(); }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  const char* name() const override { return "mpi"; }

  std::vector<std::string> all_gather_bytes(const std::string& mine) override {
    struct Buffers {
      int64_t mine = 0;
      std::vector<int64_t> sizes;
      std::vector<int> counts, displs;
      std::vector<char> data;
    };
    auto b = std::make_shared<Buffers>();
    b->mine = static_cast<int64_t>(mine.size());
    b->sizes.resize(static_cast<size_t>(size_));
    const char* send = mine.data();  // alive: this call waits
    auto issue = [this, b, send](int stage, std::vector<MPI_Request>& requests) {
      MPI_Request r;
      if (stage == 0) {  // everyone's size first
        detail::mpi_check(MPI_Iallgather(&b->mine, 1, MPI_INT64_T, b->sizes.data(), 1, MPI_INT64_T, comm_, &r),
                          "MPI_Iallgather");
        requests.push_back(r);
      } else if (stage == 1) {
        int64_t total = 0;
        for (int64_t s : b->sizes) {
          b->displs.push_back(static_cast<int>(total));
          b->counts.push_back(static_cast<int>(s));
          total += s;
          TV_CHECK(total <= INT_MAX, "the ranks' strings add up to more than ", detail::grouped(INT_MAX),
                   " bytes (MPI's int displacements); gather fewer at a time");
        }
        b->data.resize(static_cast<size_t>(total));
        if (total == 0) return;
        detail::mpi_check(MPI_Iallgatherv(send, static_cast<int>(b->mine), MPI_BYTE, b->data.data(),
                                          b->counts.data(), b->displs.data(), MPI_BYTE, comm_, &r),
                          "MPI_Iallgatherv");
        requests.push_back(r);
      }
    };
    detail::MpiWork(
        submit({.kind = "all_gather_bytes", .count = b->mine, .unit = "bytes", .from = " from this rank"}, issue))
        .wait();
    std::vector<std::string> out;
    for (size_t r = 0; r < static_cast<size_t>(size_); ++r)
      out.emplace_back(b->data.data() + b->displs[r], static_cast<size_t>(b->counts[r]));
    return out;
  }

  void barrier() override {
    auto issue = [this](int stage, std::vector<MPI_Request>& requests) {
      if (stage > 0) return;
      MPI_Request r;
      detail::mpi_check(MPI_Ibarrier(comm_, &r), "MPI_Ibarrier");
      requests.push_back(r);
    };
    detail::MpiWork(submit({.kind = "barrier"}, issue)).wait();
  }

  [[noreturn]] void abort(const std::string& message) override {
    detail::print_rank_line(rank_, message);
    if (std::this_thread::get_id() == comm_thread_id_) end_job();
    if (!finalized_.load()) {
      {
        std::lock_guard<std::mutex> lock(mutex_);
        abort_requested_ = true;
      }
      cv_.notify_all();
      // The communication thread calls MPI_Abort at its next poll. Should it be stuck inside MPI, this process
      // ends alone after a while; the launcher then ends the others.
      std::this_thread::sleep_for(std::chrono::seconds(10));
    }
    std::_Exit(kAbortExitCode);
  }

  // The end: finishes the collectives in flight, says goodbye (see the top of this file) and finalizes MPI.
  // Idempotent; runs at exit. Collectives called afterwards are errors.
  void shutdown() {
    if (std::this_thread::get_id() == comm_thread_id_ || aborting_.load()) return;  // exit() inside MPI_Abort
    std::lock_guard<std::mutex> once(shutdown_mutex_);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

 protected:
  void broadcast_raw(void* data, int64_t count, DType type, int root) override {
    auto issue = [this, data, count, type, root](int stage, std::vector<MPI_Request>& requests) {
      if (stage > 0) return;
      detail::for_chunks(data, count, type, [&](char* p, int n) {
        MPI_Request r;
        detail::mpi_check(MPI_Ibcast(p, n, detail::mpi_type(type), root, comm_, &r), "MPI_Ibcast");
        requests.push_back(r);
      });
    };
    detail::MpiWork(submit({.kind = "broadcast", .count = count, .unit = dtype_plural(type),
                             .from = " from rank " + std::to_string(root)},
                            issue))
        .wait();
  }

  std::shared_ptr<Work> all_reduce_raw(void* data, int64_t count, DType type, ReduceOp op) override {
    auto issue = [this, data, count, type, op](int stage, std::vector<MPI_Request>& requests) {
      if (stage > 0) return;
      const MPI_Op mop = op == ReduceOp::Sum ? MPI_SUM : MPI_MAX;
      detail::for_chunks(data, count, type, [&](char* p, int n) {
        MPI_Request r;
        detail::mpi_check(MPI_Iallreduce(MPI_IN_PLACE, p, n, detail::mpi_type(type), mop, comm_, &r),
                          "MPI_Iallreduce");
        requests.push_back(r);
      });
    };
    return std::make_shared<detail::MpiWork>(
        submit({.kind = "all_reduce", .count = count, .unit = dtype_plural(type)}, issue));
  }

  void all_gather_raw(const void* send, int64_t count, DType type, void* recv) override {
    TV_CHECK(count <= INT_MAX, "all_gather: ", detail::grouped(count), " elements per rank is more than MPI's ",
             detail::grouped(INT_MAX), "; gather in parts");
    const auto bytes = count * static_cast<int64_t>(dtype_size(type));
    const bool in_place = send == static_cast<const char*>(recv) + static_cast<int64_t>(rank_) * bytes;
    auto issue = [this, send, count, type, recv, in_place](int stage, std::vector<MPI_Request>& requests) {
      if (stage > 0 || count == 0) return;
      const MPI_Datatype t = detail::mpi_type(type);
      const int n = static_cast<int>(count);
      MPI_Request r;
      detail::mpi_check(MPI_Iallgather(in_place ? MPI_IN_PLACE : send, n, t, recv, n, t, comm_, &r),
                        "MPI_Iallgather");
      requests.push_back(r);
    };
    detail::MpiWork(
        submit({.kind = "all_gather", .count = count, .unit = dtype_plural(type), .from = " from each rank"}, issue))
        .wait();
  }

 private:
  // Issues the MPI_I* calls of one stage of a collective into `requests`; stage 0 first, the next once these
  // have completed; a stage that issues nothing ends the collective (all_gather_bytes: sizes, then the bytes).
  using Issue = std::function<void(int stage, std::vector<MPI_Request>& requests)>;
  struct Op {
    std::shared_ptr<detail::MpiOpState> state;
    Issue issue;
    std::vector<MPI_Request> requests{};
    int stage = 0;
    bool finished = false;
    std::string error{};
    detail::Clock::time_point deadline{};
  };
  static constexpr int kGoodbyeTag = 1;

  std::shared_ptr<detail::MpiOpState> submit(detail::CollectiveInfo info, Issue issue) {
    auto state = std::make_shared<detail::MpiOpState>();
    state->info = std::move(info);
    state->rank = rank_;
    state->timeout = timeout();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      TV_CHECK(!stopping_, state->info.kind, ": the process group has shut down (the process is exiting)");
      state->info.seq = ++started_;
      state->backstop = detail::Clock::now() + std::chrono::duration_cast<detail::Clock::duration>(
                                                   std::chrono::duration<double>(state->timeout + 30));
      queue_.push_back(Op{.state = state, .issue = std::move(issue)});
    }
    cv_.notify_all();
    return state;
  }

  // ---- the communication thread ----
  void run(std::promise<void>& ready) {
    comm_thread_id_ = std::this_thread::get_id();
    try {
      init();
    } catch (...) {
      ready.set_exception(std::current_exception());
      return;
    }
    ready.set_value();
    try {
      loop();
      finish();
    } catch (const std::exception& e) {  // only MPI failing outside any one collective lands here
      fail(std::string("the communication thread failed: ") + detail::without_tinyvid_prefix(e.what()));
    }
  }

  void init() {
    int initialized = 0, finalized = 0;
    detail::mpi_check(MPI_Initialized(&initialized), "MPI_Initialized");
    detail::mpi_check(MPI_Finalized(&finalized), "MPI_Finalized");
    TV_CHECK(!finalized, "MPI was finalized already; the process group cannot start it again");
    int provided = 0;
    if (!initialized) {
      detail::mpi_check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
      TV_CHECK(provided >= MPI_THREAD_FUNNELED, "MPI_Init_thread: asked for MPI_THREAD_FUNNELED, this MPI gives "
               "thread level ", provided);
    } else {  // the program started MPI itself: then two threads call it
      owns_mpi_ = false;
      detail::mpi_check(MPI_Query_thread(&provided), "MPI_Query_thread");
      TV_CHECK(provided == MPI_THREAD_MULTIPLE, "the program initialized MPI at thread level ", provided,
               "; with tinyvid's communication thread calling MPI too it needs MPI_THREAD_MULTIPLE, or leave "
               "MPI_Init to tinyvid");
    }
    for (MPI_Comm* c : {&comm_, &goodbye_comm_}) {  // our own, so no other MPI user's messages can match ours
      detail::mpi_check(MPI_Comm_dup(MPI_COMM_WORLD, c), "MPI_Comm_dup");
      detail::mpi_check(MPI_Comm_set_errhandler(*c, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
    }
    detail::mpi_check(MPI_Comm_rank(comm_, &rank_), "MPI_Comm_rank");
    detail::mpi_check(MPI_Comm_size(comm_, &size_), "MPI_Comm_size");
    goodbye_.assign(static_cast<size_t>(size_), MPI_REQUEST_NULL);
    goodbye_count_.assign(static_cast<size_t>(size_), 0);
    for (int r = 0; r < size_; ++r)
      if (r != rank_)
        detail::mpi_check(MPI_Irecv(&goodbye_count_[static_cast<size_t>(r)], 1, MPI_INT64_T, r, kGoodbyeTag,
                                    goodbye_comm_, &goodbye_[static_cast<size_t>(r)]),
                          "MPI_Irecv");
  }

  // Poll interval: fast just after something happened (a small collective's answer is due within
  // microseconds; a large message moves in many steps, one per poll, where MPI has no single-copy transport),
  // slow while nothing does (a rank waiting for a slow one). Zero: yield the core, then poll again.
  static detail::Clock::duration poll_interval(detail::Clock::duration quiet) {
    using namespace std::chrono;
    if (quiet < microseconds(100)) return detail::Clock::duration::zero();
    if (quiet < milliseconds(10)) return microseconds(50);
    if (quiet < seconds(1)) return microseconds(200);
    return milliseconds(1);
  }

  void loop() {
    std::deque<Op> active;
    auto last_event = detail::Clock::now();
    for (;;) {
      std::deque<Op> incoming;
      bool stopping = false;
      const auto interval = poll_interval(detail::Clock::now() - last_event);
      if (!active.empty() && interval == detail::Clock::duration::zero()) std::this_thread::yield();
      {
        std::unique_lock<std::mutex> lock(mutex_);
        auto wake = [&] { return !queue_.empty() || stopping_ || abort_requested_; };
        if (active.empty())
          cv_.wait(lock, wake);
        else if (interval > detail::Clock::duration::zero())
          cv_.wait_for(lock, interval, wake);
        if (abort_requested_) end_job();  // abort() printed the message
        incoming.swap(queue_);
        stopping = stopping_;
      }
      const auto now = detail::Clock::now();
      for (Op& op : incoming) {
        op.deadline = now + std::chrono::duration_cast<detail::Clock::duration>(
                                std::chrono::duration<double>(op.state->timeout));
        progress(op);
        active.push_back(std::move(op));
        last_event = now;
      }
      for (Op& op : active)
        if (!op.finished && progress(op)) last_event = detail::Clock::now();
      while (!active.empty() && active.front().finished) {  // Works complete in the order they were started
        complete(active.front());
        active.pop_front();
      }
      if (!active.empty()) {
        receive_goodbyes();
        check(active);
      }
      if (stopping && active.empty()) return;
    }
  }

  // Issues stages as the previous ones complete; true when anything moved.
  bool progress(Op& op) {
    bool moved = false;
    try {
      while (!op.finished) {
        if (!op.requests.empty()) {
          int flag = 0;
          detail::mpi_check(MPI_Testall(static_cast<int>(op.requests.size()), op.requests.data(), &flag,
                                        MPI_STATUSES_IGNORE),
                            "MPI_Testall");
          if (!flag) return moved;
          op.requests.clear();
        }
        op.issue(op.stage++, op.requests);
        moved = true;
        if (op.requests.empty()) op.finished = true;
      }
    } catch (const std::exception& e) {
      op.error = "tinyvid: " + op.state->info.describe() + " failed: " + detail::without_tinyvid_prefix(e.what());
      op.finished = true;
      moved = true;
    }
    return moved;
  }

  static void complete(Op& op) {
    {
      std::lock_guard<std::mutex> lock(op.state->mutex);
      op.state->error = std::move(op.error);
      op.state->done.store(true, std::memory_order_release);
    }
    op.state->cv.notify_all();
  }

  // The collectives that can no longer complete: past their deadline, or later than a rank that has left.
  void check(const std::deque<Op>& active) {
    const auto now = detail::Clock::now();
    for (const Op& op : active) {
      if (op.finished) continue;
      const detail::CollectiveInfo& info = op.state->info;
      for (int r = 0; r < size_; ++r)
        if (left(r) && static_cast<int64_t>(info.seq) > goodbye_count_[static_cast<size_t>(r)])
          fail(info.describe() + " cannot complete: rank " + std::to_string(r) + " has ended after " +
               detail::collectives(goodbye_count_[static_cast<size_t>(r)]) + " (its output may say why)");
      if (now > op.deadline)
        fail(info.describe() + " did not complete within " + Range::text(op.state->timeout) +
             " s: another rank died, hung or diverged");
    }
  }

  bool left(int r) const { return r != rank_ && goodbye_[static_cast<size_t>(r)] == MPI_REQUEST_NULL; }

  void receive_goodbyes() {
    if (size_ == 1) return;
    int n = 0;
    goodbye_indices_.resize(static_cast<size_t>(size_));
    detail::mpi_check(MPI_Testsome(size_, goodbye_.data(), &n, goodbye_indices_.data(), MPI_STATUSES_IGNORE),
                      "MPI_Testsome");
  }

  void finish() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      goodbye_sent_ = static_cast<int64_t>(started_);  // final: no collective starts after stopping_
    }
    std::vector<MPI_Request> sends;
    for (int r = 0; r < size_; ++r) {
      if (r == rank_) continue;
      sends.push_back(MPI_REQUEST_NULL);
      detail::mpi_check(MPI_Isend(&goodbye_sent_, 1, MPI_INT64_T, r, kGoodbyeTag, goodbye_comm_, &sends.back()),
                        "MPI_Isend");
    }
    const auto start = detail::Clock::now();
    const double limit = timeout();
    for (;;) {
      receive_goodbyes();
      int sent = 0;
      detail::mpi_check(MPI_Testall(static_cast<int>(sends.size()), sends.data(), &sent, MPI_STATUSES_IGNORE),
                        "MPI_Testall");
      std::string waiting;
      for (int r = 0; r < size_; ++r)
        if (r != rank_ && !left(r)) waiting += (waiting.empty() ? "" : ", ") + std::to_string(r);
      if (sent && waiting.empty()) break;
      const auto now = detail::Clock::now();
      if (now - start > std::chrono::duration<double>(limit))
        fail("this rank has ended after " + detail::collectives(goodbye_sent_) + ", but rank(s) " + waiting +
             " did not end within " + Range::text(limit) + " s: hung, or going on without the others");
      std::unique_lock<std::mutex> lock(mutex_);
      cv_.wait_for(lock, poll_interval(now - start), [&] { return abort_requested_; });
      if (abort_requested_) end_job();
    }
    for (MPI_Comm* c : {&comm_, &goodbye_comm_}) MPI_Comm_free(c);
    if (owns_mpi_) detail::mpi_check(MPI_Finalize(), "MPI_Finalize");
    finalized_.store(true);
  }

  // On the communication thread: "rank R: what; hint" and the end of every rank.
  [[noreturn]] void fail(const std::string& what) {
    const std::string hint = failure_hint();
    detail::print_rank_line(rank_, what + (hint.empty() ? "" : "; " + hint));
    end_job();
  }

  [[noreturn]] void end_job() {
    aborting_.store(true);
    MPI_Abort(MPI_COMM_WORLD, kAbortExitCode);
    std::_Exit(kAbortExitCode);  // MPI_Abort does not return; should it, this process still ends
  }

  int rank_ = 0, size_ = 1;
  MPI_Comm comm_ = MPI_COMM_NULL, goodbye_comm_ = MPI_COMM_NULL;
  bool owns_mpi_ = true;
  std::thread thread_;
  std::thread::id comm_thread_id_;
  std::mutex mutex_, shutdown_mutex_;
  std::condition_variable cv_;
  std::deque<Op> queue_;    // started by the caller, not yet by MPI (mutex_)
  uint64_t started_ = 0;    // collectives called (mutex_)
  bool stopping_ = false;   // (mutex_)
  bool abort_requested_ = false;  // (mutex_)
  std::atomic<bool> aborting_{false}, finalized_{false};
  std::vector<MPI_Request> goodbye_;     // per rank: its goodbye's receive, MPI_REQUEST_NULL once it came
  std::vector<int64_t> goodbye_count_;   // per rank: the collectives it started, from its goodbye
  std::vector<int> goodbye_indices_;     // MPI_Testsome's output, unused
  int64_t goodbye_sent_ = 0;
};

namespace detail {
inline std::unique_ptr<ProcessGroup> make_mpi_world() {
  auto group = std::make_unique<MpiProcessGroup>();
  static MpiProcessGroup* instance = nullptr;
  instance = group.get();
  std::atexit([] {
    try {
      instance->shutdown();
    } catch (...) {  // nothing may leave an atexit handler; MPI_Abort has printed its own message
    }
  });
  return group;
}
}  // namespace detail

}  // namespace tv::dist
