// NCCL's DeviceCommunicator (include/tinyvid/dist/nccl.hpp): gradient buckets summed in GPU memory over the
// ranks of a ProcessGroup. Only a machine with GPUs runs this; the tests' host stand-in has no NCCL.
//
// Streams: each collective runs on this communicator's stream (the device's highest priority, so that a
// bucket's sum is not queued behind backward's kernels), after an event recorded on the backend's stream when
// it is started; join() puts an event of this stream into the backend's. So NCCL reads a gradient only after
// the kernels that wrote it, the backend's kernels go on while it runs, and whatever the backend queues after
// join() (the copy of the sums back into .grad, the optimizer step) sees the sums.
//
// Bounded waits: the communicator is non-blocking (ncclConfig_t::blocking = 0), so neither joining NCCL nor
// starting a collective (which may connect to the peers the first time) can block the host without limit;
// every wait polls, with the group's timeout(), and a collective that does not complete by then ends every
// rank through the group's abort(), as the group's own collectives do. No thread of ours watches in the
// background: wait() is where the host waits, and GradReducer::finish() calls it every iteration.
#include <cuda_runtime.h>
#include <nccl.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "launch.cuh"
#include "tinyvid/core/device.hpp"
#include "tinyvid/dist/nccl.hpp"

namespace tv::dist {

namespace {

using Clock = std::chrono::steady_clock;

// NCCL's text for r, with its last error message where it has one ("remote process exited or there was a
// network error ...").
std::string nccl_text(ncclResult_t r, ncclComm_t comm) {
  std::string s = ncclGetErrorString(r);
  const char* last = ncclGetLastError(comm);
  if (last && *last) s += std::string(" (") + last + ")";
  return s;
}

void cuda_check(cudaError_t err, const char* what) {
  if (err != cudaSuccess) {
    (void)cudaGetLastError();
    TV_FAIL("nccl: ", what, ": ", cudaGetErrorString(err));
  }
}

ncclDataType_t nccl_type(DType t) {
  return t == DType::Float32 ? ncclFloat32 : t == DType::Float64 ? ncclFloat64 : ncclInt64;
}

// Between polls: the core yielded for the first 100 us (a small sum's answer is due within microseconds), then
// sleeps of 50 us, 200 us from 10 ms on and 1 ms from 1 s on (as the MPI group's thread).
void poll_pause(Clock::duration waited) {
  using namespace std::chrono;
  if (waited < microseconds(100)) std::this_thread::yield();
  else if (waited < milliseconds(10)) std::this_thread::sleep_for(microseconds(50));
  else if (waited < seconds(1)) std::this_thread::sleep_for(microseconds(200));
  else std::this_thread::sleep_for(milliseconds(1));
}

Clock::time_point deadline_after(double seconds) {
  return Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
}

std::string version_text() {
  int v = 0;
  if (ncclGetVersion(&v) != ncclSuccess) return "NCCL";
  return "NCCL " + std::to_string(v / 10000) + "." + std::to_string(v / 100 % 100) + "." + std::to_string(v % 100);
}

class NcclCommunicator final : public DeviceCommunicator {
 public:
  // The CUDA side only; the communicator joins NCCL in start().
  NcclCommunicator(ProcessGroup& pg, std::string gpu_text) : pg_(pg), gpu_text_(std::move(gpu_text)) {
    (void)tv::cuda::stream();  // this thread on the backend's GPU
    int least = 0, greatest = 0;
    cuda_check(cudaDeviceGetStreamPriorityRange(&least, &greatest), "cudaDeviceGetStreamPriorityRange");
    cuda_check(cudaStreamCreateWithPriority(&stream_, cudaStreamNonBlocking, greatest), "creating its stream");
    for (cudaEvent_t* e : {&ready_, &joined_})
      cuda_check(cudaEventCreateWithFlags(e, cudaEventDisableTiming), "creating an event");
    for (cudaEvent_t* e : {&before_, &after_}) cuda_check(cudaEventCreate(e), "creating a timing event");
  }

  ~NcclCommunicator() override {
    if (comm_) {
      join();  // the backend's stream (and its allocator) waits for whatever is still in flight
      (void)ncclCommAbort(comm_);  // never blocks on a peer, unlike ncclCommDestroy's flush
    }
    for (cudaEvent_t e : {ready_, joined_, before_, after_})
      if (e) (void)cudaEventDestroy(e);
    for (const Op& op : pending_) (void)cudaEventDestroy(op.done);
    for (cudaEvent_t e : spare_) (void)cudaEventDestroy(e);
    if (stream_) (void)cudaStreamDestroy(stream_);
  }

  // Joins NCCL's communicator of pg's ranks (non-blocking, polled until it is ready or timeout() has passed).
  // Returns "" or what failed; a communicator that fails to start is not used.
  std::string start(const ncclUniqueId& id) {
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    ncclResult_t r = ncclCommInitRankConfig(&comm_, pg_.size(), id, pg_.rank(), &config);
    if (r == ncclSuccess || r == ncclInProgress) r = settle(r, "joining NCCL's communicator", /*abort_on_error=*/false);
    if (r == ncclSuccess) return "";
    std::string what = "ncclCommInitRankConfig: " + nccl_text(r, comm_);
    if (comm_) (void)ncclCommAbort(comm_);
    comm_ = nullptr;
    return what;
  }

  const char* name() const override { return "nccl"; }
  std::string describe() const override {
    return version_text() + " on " + std::to_string(pg_.size()) + " ranks; this one on " + gpu_text_;
  }

  void join() override {
    if (!unjoined_) return;
    const cudaStream_t main = tv::cuda::stream();
    ok(cudaEventRecord(joined_, stream_), "join: recording an event");
    ok(cudaStreamWaitEvent(main, joined_, 0), "join: the backend's stream waiting for it");
    unjoined_ = false;
  }

  double wait() override {
    if (!unjoined_ && pending_.empty()) return 0;
    const cudaStream_t main = tv::cuda::stream();
    ok(cudaEventRecord(before_, main), "wait: recording an event");
    join();
    ok(cudaEventRecord(after_, main), "wait: recording an event");
    const double limit = pg_.timeout();
    const auto start = Clock::now(), deadline = deadline_after(limit);
    for (;;) {
      const cudaError_t e = cudaEventQuery(after_);
      if (e == cudaSuccess) break;
      (void)cudaGetLastError();  // cudaErrorNotReady
      if (e != cudaErrorNotReady)  // a fault of any kernel queued before, ours or NCCL's
        fail(std::string("cuda: waiting for the GPU to finish ") + incomplete() + ": " + cudaGetErrorString(e));
      ncclResult_t async = ncclSuccess;
      const ncclResult_t r = ncclCommGetAsyncError(comm_, &async);
      if (r != ncclSuccess) async = r;
      if (async != ncclSuccess && async != ncclInProgress) fail(incomplete() + " failed: " + nccl_text(async, comm_));
      const auto now = Clock::now();
      if (now > deadline)
        fail(incomplete() + " did not complete within " + Range::text(limit) + " s: another rank died, hung or diverged");
      poll_pause(now - start);
    }
    float ms = 0;
    ok(cudaEventElapsedTime(&ms, before_, after_), "wait: reading the time");
    for (const Op& op : pending_) spare_.push_back(op.done);
    pending_.clear();
    return static_cast<double>(ms) / 1000;
  }

 protected:
  void all_reduce_sum_raw(void* data, int64_t count, DType type) override {
    issue("all_reduce", count, type, "", [&] {
      return ncclAllReduce(data, data, static_cast<size_t>(count), nccl_type(type), ncclSum, comm_, stream_);
    });
  }
  void broadcast_raw(void* data, int64_t count, DType type, int root) override {
    TV_CHECK(root >= 0 && root < pg_.size(), "device broadcast: root ", root, " is outside [0, ", pg_.size(),
             ") (the ranks of this group)");
    issue("broadcast", count, type, " from rank " + std::to_string(root), [&] {
      return ncclBroadcast(data, data, static_cast<size_t>(count), nccl_type(type), root, comm_, stream_);
    });
  }

 private:
  struct Op {
    cudaEvent_t done;  // recorded on stream_ after it
    std::string what;  // "NCCL all_reduce #57 (4,194,304 floats)"
  };

  // Queues one collective on stream_, after the work queued on the backend's stream so far.
  template <class F>
  void issue(const char* kind, int64_t count, DType type, const std::string& from, F&& call) {
    std::string u = dtype_plural(type);
    if (count == 1) u.pop_back();
    Op op{nullptr, std::string("NCCL ") + kind + " #" + std::to_string(++seq_) + " (" + detail::grouped(count) + " " +
                       u + from + ")"};
    if (count == 0) return;  // every rank passes the same count: every rank skips it
    const cudaStream_t main = tv::cuda::stream();
    ok(cudaEventRecord(ready_, main), "recording the input's event");
    ok(cudaStreamWaitEvent(stream_, ready_, 0), "ordering the collective after its input");
    if (spare_.empty()) {
      op.done = nullptr;
      ok(cudaEventCreateWithFlags(&op.done, cudaEventDisableTiming), "creating an event");
    } else {
      op.done = spare_.back();
      spare_.pop_back();
    }
    pending_.push_back(op);
    unjoined_ = true;
    const ncclResult_t r = call();
    if (r != ncclSuccess && r != ncclInProgress) fail(op.what + " could not start: " + nccl_text(r, comm_));
    settle(r, op.what.c_str(), /*abort_on_error=*/true);
    ok(cudaEventRecord(op.done, stream_), "recording a collective's event");
  }

  // A non-blocking call's ncclInProgress, polled until NCCL has done it (or failed); bounded by timeout().
  ncclResult_t settle(ncclResult_t r, const char* what, bool abort_on_error) {
    const double limit = pg_.timeout();
    const auto start = Clock::now(), deadline = deadline_after(limit);
    while (r == ncclInProgress) {
      const ncclResult_t q = ncclCommGetAsyncError(comm_, &r);
      if (q != ncclSuccess) r = q;
      if (r != ncclInProgress) break;
      const auto now = Clock::now();
      if (now > deadline)
        fail(std::string(what) + " did not complete within " + Range::text(limit) +
             " s: another rank died, hung or did not start NCCL");
      poll_pause(now - start);
    }
    if (r != ncclSuccess && abort_on_error) fail(std::string(what) + " failed: " + nccl_text(r, comm_));
    return r;
  }

  // The first collective since the last wait() that has not completed ("NCCL all_reduce #57 (...)"), or, when
  // they all have, the work the backend queued before them.
  std::string incomplete() const {
    for (const Op& op : pending_) {
      const cudaError_t e = cudaEventQuery(op.done);
      if (e == cudaSuccess) continue;
      (void)cudaGetLastError();
      return op.what;
    }
    return "the work queued on the GPU before the NCCL collectives";
  }

  void ok(cudaError_t err, const char* what) {
    if (err != cudaSuccess) {
      (void)cudaGetLastError();
      fail(std::string("cuda: NCCL's ") + what + ": " + cudaGetErrorString(err));
    }
  }

  // This rank can no longer take part: every rank ends, with the message (and the group's hint).
  [[noreturn]] void fail(const std::string& what) {
    const std::string hint = pg_.failure_hint();
    pg_.abort(what + (hint.empty() ? "" : "; " + hint));
    std::_Exit(kAbortExitCode);  // abort() does not return; should it, this process still ends
  }

  ProcessGroup& pg_;
  std::string gpu_text_;
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
  cudaEvent_t ready_ = nullptr, joined_ = nullptr, before_ = nullptr, after_ = nullptr;
  std::vector<Op> pending_;          // started since the last wait(), in order
  std::vector<cudaEvent_t> spare_;   // their events, for reuse
  bool unjoined_ = false;            // started since the last join()
  uint64_t seq_ = 0;
};

// What this rank offers, as one line for all_gather_bytes: "ok UUID GPU-TEXT" or "no REASON". Never throws: the
// other ranks are about to wait for this line.
std::string offer(std::string& gpu_text) {
  try {
    if (const char* v = std::getenv("TINYVID_NCCL"); v && std::strcmp(v, "0") == 0) return "no TINYVID_NCCL=0";
    std::string why;
    if (!tv::cuda::device_allocator(why)) return "no " + why;  // "no usable GPU (...)", "no GPU on this machine"
    (void)tv::cuda::stream();  // this thread on the backend's GPU
    const int gpu = tv::cuda::device();
    cudaDeviceProp prop{};
    cuda_check(cudaGetDeviceProperties(&prop, gpu), "cudaGetDeviceProperties");
    char bus[32] = {0};
    if (cudaDeviceGetPCIBusId(bus, sizeof(bus), gpu) != cudaSuccess) {
      (void)cudaGetLastError();
      std::snprintf(bus, sizeof(bus), "bus unknown");
    }
    std::string uuid;
    for (unsigned char c : prop.uuid.bytes) {
      char hex[3];
      std::snprintf(hex, sizeof(hex), "%02x", c);
      uuid += hex;
    }
    gpu_text = "GPU " + std::to_string(gpu) + " (" + prop.name + ", " + bus + ")";
    return "ok " + uuid + " " + gpu_text;
  } catch (const std::exception& e) {
    return std::string("no ") + e.what();
  }
}

}  // namespace

std::unique_ptr<DeviceCommunicator> make_nccl_communicator(ProcessGroup& pg, std::string& why) {
  // 1. Every rank has a GPU of its own, or no rank uses NCCL.
  std::string gpu_text;
  const std::vector<std::string> offers = pg.all_gather_bytes(offer(gpu_text));
  std::map<std::string, int> owner;  // GPU uuid -> the first rank on it
  for (int r = 0; r < static_cast<int>(offers.size()); ++r) {
    const std::string& o = offers[static_cast<size_t>(r)];
    if (o.rfind("ok ", 0) != 0) {
      why = "rank " + std::to_string(r) + ": " + (o.size() > 3 ? o.substr(3) : o);
      return nullptr;
    }
    const std::string uuid = o.substr(3, 32);
    const auto [it, fresh] = owner.emplace(uuid, r);
    if (!fresh) {
      why = "ranks " + std::to_string(it->second) + " and " + std::to_string(r) + " share one GPU (" +
            (o.size() > 36 ? o.substr(36) : uuid) + "); NCCL needs a GPU of its own for each rank";
      return nullptr;
    }
  }

  // 2. Rank 0's unique id to every rank.
  std::string id_line;
  if (pg.rank() == 0) {
    ncclUniqueId id{};
    const ncclResult_t r = ncclGetUniqueId(&id);
    id_line = r == ncclSuccess ? "ok " + std::string(id.internal, sizeof(id.internal))
                               : "no ncclGetUniqueId: " + nccl_text(r, nullptr);
  }
  const std::string root_line = pg.all_gather_bytes(id_line)[0];
  if (root_line.rfind("ok ", 0) != 0 || root_line.size() != 3 + sizeof(ncclUniqueId)) {
    why = "rank 0: " + (root_line.size() > 3 ? root_line.substr(3) : std::string("no unique id"));
    return nullptr;
  }
  ncclUniqueId id{};
  std::memcpy(id.internal, root_line.data() + 3, sizeof(id.internal));

  // 3. Every rank joins; all of them or none go on with NCCL.
  std::unique_ptr<NcclCommunicator> comm;
  std::string failed;
  try {
    comm = std::make_unique<NcclCommunicator>(pg, gpu_text);
    failed = comm->start(id);
  } catch (const std::exception& e) {
    failed = e.what();
  }
  const std::vector<std::string> outcomes = pg.all_gather_bytes(failed);
  for (int r = 0; r < static_cast<int>(outcomes.size()); ++r)
    if (!outcomes[static_cast<size_t>(r)].empty()) {
      why = "rank " + std::to_string(r) + ": " + outcomes[static_cast<size_t>(r)];
      return nullptr;  // comm's destructor leaves NCCL (ncclCommAbort)
    }
  why.clear();
  return comm;
}

}  // namespace tv::dist
