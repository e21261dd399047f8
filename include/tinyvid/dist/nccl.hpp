#pragma once
// Collectives on GPU memory: the device side of data-parallel training. A DeviceCommunicator sums (or
// broadcasts) buffers that live on the GPU over the ranks of a ProcessGroup without a trip through the host;
// NCCL's (src/cuda/nccl.cu, a build with TINYVID_WITH_NCCL: CMake's TINYVID_NCCL) is the one the library
// makes. Declarations only, on plain device pointers, as backend/cuda.hpp: this header compiles without the
// CUDA headers, and in every build (the factory alone needs NCCL).
//
//   tv::dist::DeviceCommunicator* comm = tv::dist::device_communicator(pg);  // nullptr: use the host path
//   comm->start_all_reduce_sum(grads.data(), n);   // ordered after the kernels that wrote grads
//   ...                                           // the backend's stream goes on meanwhile
//   comm->wait();                                 // the sums are there for every kernel queued from now on
//
// Ordering: a collective runs on the communicator's own stream, after everything queued on the CUDA backend's
// stream before it was started (so after the kernels that produced its input), and the backend's stream does
// not wait for it: backward goes on while a gradient bucket is summed. join() makes the backend's stream wait
// for every collective started so far (on the GPU; the host goes on); wait() joins and then blocks the host
// until the backend's stream has passed that point, at most the group's timeout(). A collective that does not
// complete by then (a rank died, hung or took another path), NCCL's report of an error, or a GPU fault ends
// every rank through the group's abort(), with a message naming the collective, as the group's own
// collectives do. Buffers must stay alive until join() or wait(); after join(), the backend's allocator may
// hand them out again at once.
//
// One GPU per rank: the CUDA backend uses GPU (local rank mod visible GPUs), the launcher's local rank from
// OMPI_COMM_WORLD_LOCAL_RANK, SLURM_LOCALID, MPI_LOCALRANKID or LOCAL_RANK (src/cuda/runtime.cu). NCCL cannot
// put two ranks on one GPU, so where two ranks share one there is no communicator and the host path is used.
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "tinyvid/dist/process_group.hpp"

namespace tv::dist {

class DeviceCommunicator {
 public:
  virtual ~DeviceCommunicator() = default;
  DeviceCommunicator() = default;
  DeviceCommunicator(const DeviceCommunicator&) = delete;
  DeviceCommunicator& operator=(const DeviceCommunicator&) = delete;

  virtual const char* name() const = 0;       // "nccl"
  virtual std::string describe() const = 0;   // for a log line: "NCCL 2.28.9, 2 ranks, this one on GPU 1 (...)"

  // device_data[0, count) = its sum over the ranks (every rank passes the same count), in place; returns at once.
  template <class T>
  void start_all_reduce_sum(T* device_data, int64_t count) {
    check_buffer("all_reduce_sum", device_data, count);
    all_reduce_sum_raw(device_data, count, dtype_of<T>());
  }
  // device_data[0, count) of rank `root` to every rank; returns at once.
  template <class T>
  void start_broadcast(T* device_data, int64_t count, int root) {
    check_buffer("broadcast", device_data, count);
    broadcast_raw(device_data, count, dtype_of<T>(), root);
  }

  // The backend's stream waits (on the GPU) for every collective started so far.
  virtual void join() = 0;
  // join(), then the host waits until the backend's stream has passed it (at most timeout(), see above).
  // Returns the seconds the backend's stream waited for communication after the work queued before this call:
  // the communication that the computation did not hide.
  virtual double wait() = 0;

  // Started and waited for.
  template <class T>
  void all_reduce_sum(T* device_data, int64_t count) {
    start_all_reduce_sum(device_data, count);
    wait();
  }
  template <class T>
  void broadcast(T* device_data, int64_t count, int root) {
    start_broadcast(device_data, count, root);
    wait();
  }

 protected:
  virtual void all_reduce_sum_raw(void* device_data, int64_t count, DType type) = 0;
  virtual void broadcast_raw(void* device_data, int64_t count, DType type, int root) = 0;

 private:
  static void check_buffer(const char* op, const void* data, int64_t count) {
    TV_CHECK(count >= 0, "device ", op, ": expected a count >= 0, got ", count);
    TV_CHECK(data != nullptr || count == 0, "device ", op, ": the buffer of ", count, " elements is null");
  }
};

#ifdef TINYVID_WITH_NCCL
// NCCL's communicator for the ranks of `pg`, on this process's GPU (the CUDA backend's; it starts the backend
// if it has not started). A collective over pg: every rank calls it at the same point. The ranks first agree
// that each has a usable GPU of its own; then rank 0 makes NCCL's unique id and sends it through pg, and every
// rank joins NCCL's communicator (bounded by pg.timeout()). nullptr on every rank, with the reason in `why`,
// when a rank declines (no usable GPU, two ranks on one GPU, TINYVID_NCCL=0 in its environment) or NCCL fails
// to start on any rank.
std::unique_ptr<DeviceCommunicator> make_nccl_communicator(ProcessGroup& pg, std::string& why);
#endif

// The communicator for the device tensors of `pg`: NCCL's, made on the first call for that group and kept to
// the end of the process (the group must live as long: world() does). The first call is a collective (see
// make_nccl_communicator): every rank makes it at the same point, e.g. where each finds its parameters on a
// GPU. nullptr, with the reason in *why, with one rank, in a build without NCCL, or where NCCL declined;
// callers then take the host path (a contiguous host copy summed by pg).
inline DeviceCommunicator* device_communicator(ProcessGroup& pg, std::string* why = nullptr) {
  std::string reason;
  DeviceCommunicator* comm = nullptr;
  if (pg.size() == 1) {
    reason = "one rank: nothing to exchange";
  } else {
#ifdef TINYVID_WITH_NCCL
    struct Made {
      ProcessGroup* pg;
      DeviceCommunicator* comm;
      std::string why;
    };
    static std::mutex mutex;
    static auto* made = new std::vector<Made>;  // never destroyed, as world(): NCCL is not torn down at exit
    std::lock_guard<std::mutex> lock(mutex);
    auto it = made->begin();
    while (it != made->end() && it->pg != &pg) ++it;
    if (it == made->end()) {
      std::string w;
      DeviceCommunicator* c = make_nccl_communicator(pg, w).release();
      it = made->insert(made->end(), Made{&pg, c, w});
    }
    comm = it->comm;
    reason = it->why;
#else
    reason = "built without NCCL (CMake's TINYVID_NCCL: it needs the CUDA backend, MPI and NCCL beside the toolkit)";
#endif
  }
  if (why) *why = reason;
  return comm;
}

}  // namespace tv::dist
