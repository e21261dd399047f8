// The CUDA backend's runtime, the part only a GPU runs: device memory (a caching allocator), the one stream
// every kernel and copy is queued on, copies between devices, and cuBLAS for the matrix products.
//
// One GPU per process: the launcher's local rank (the process's index among the ranks on its machine) modulo
// the GPUs it can see, so that data-parallel ranks on a machine with several GPUs each take their own; GPU 0
// for a process started without a launcher (CUDA_VISIBLE_DEVICES chooses another). CUDA's current device is
// a property of each thread, so every thread makes that GPU its current one before its first CUDA call here
// (bind_thread).
#include <atomic>
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <climits>
#include <cstdlib>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>

#include "launch.cuh"
#include "tinyvid/backend/cuda.hpp"
#include "tinyvid/backend/gpu/blas.hpp"
#include "tinyvid/backend/gpu/memory.hpp"

namespace tv::cuda {

void check(cudaError_t err, const char* what) {
  if (err != cudaSuccess) {
    (void)cudaGetLastError();  // clears a launch error; a fault inside a kernel stays, the context is then lost
    TV_FAIL("cuda: ", what, ": ", cudaGetErrorString(err));
  }
}

bool sync_each_launch() {
  static const bool on = [] {
    const char* v = std::getenv("TINYVID_CUDA_SYNC");
    return v && *v && std::string(v) != "0";
  }();
  return on;
}

namespace {

// A launcher's local rank: OpenMPI's mpirun, Slurm's srun, MPICH's Hydra, torchrun-style launchers; -1 when none
// says (a process started alone).
int local_rank() {
  for (const char* var : {"OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID", "MPI_LOCALRANKID", "LOCAL_RANK"}) {
    const char* v = std::getenv(var);
    if (!v || !*v) continue;
    char* end = nullptr;
    const long r = std::strtol(v, &end, 10);
    if (*end == '\0' && r >= 0 && r < INT_MAX) return static_cast<int>(r);
  }
  return -1;
}

// The GPU this process uses, chosen once: local rank mod the visible GPUs, else 0.
int chosen_device() {
  static const int chosen = [] {
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess || count <= 0) {
      (void)cudaGetLastError();
      return 0;
    }
    const int r = local_rank();
    return r < 0 ? 0 : r % count;
  }();
  return chosen;
}

// Makes the chosen GPU the calling thread's current device, once per thread: the stream, the cuBLAS handle,
// device memory and pinned memory all belong to its context. A failure is left for the CUDA call that follows
// to report.
void bind_thread() {
  thread_local bool bound = false;
  if (bound) return;
  if (cudaSetDevice(chosen_device()) == cudaSuccess)
    bound = true;
  else
    (void)cudaGetLastError();
}

void check_blas(cublasStatus_t status, const char* what) {
  if (status != CUBLAS_STATUS_SUCCESS) TV_FAIL("cuda: ", what, ": cuBLAS status ", static_cast<int>(status));
}

// The current device's stream and cuBLAS handle, made on first use. Work is queued in order on one stream,
// so a freed block handed out again by the allocator is only touched after the work that used it.
struct Runtime {
  cudaStream_t stream = nullptr;
  cublasHandle_t blas = nullptr;
  Runtime() {
    check(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "creating the stream");
    check_blas(cublasCreate(&blas), "creating the cuBLAS handle");
    check_blas(cublasSetStream(blas, stream), "cublasSetStream");
    // TINYVID_TF32=1: float products on TF32 tensor cores (faster, 10 mantissa bits), as cuDNN's convolutions.
    const char* tf32 = std::getenv("TINYVID_TF32");
    if (tf32 && *tf32 && std::string(tf32) != "0")
      check_blas(cublasSetMathMode(blas, CUBLAS_TF32_TENSOR_OP_MATH), "cublasSetMathMode");
  }
};

Runtime& runtime() {
  bind_thread();
  static Runtime* r = new Runtime;  // never destroyed: tensors freed during exit still queue their frees
  return *r;
}

class DeviceMemory final : public ::tv::detail::CachingAllocator {
 public:
  DeviceMemory() : CachingAllocator(kCudaCachePolicy) {}

 private:
  void* system_allocate(size_t bytes) override {
    bind_thread();
    void* p = nullptr;
    if (cudaMalloc(&p, bytes) != cudaSuccess) {
      (void)cudaGetLastError();
      return nullptr;  // Storage reports it, with the size
    }
    return p;
  }
  // The cache keeps blocks and gives them back only here (empty_cache, or an allocation that failed), after the
  // queued work that may still use them has finished.
  void system_free(void* p) override {
    (void)cudaStreamSynchronize(stream());
    (void)cudaFree(p);
  }
};

// Page-locked host memory for batches on their way to the GPU. A copy from it is queued and runs later, so
// a freed block carries an event recorded on the stream at its release, and is handed out again only once
// that event has passed (PyTorch's pinned-memory cache does the same). Sizes are rounded to 64 KB, from
// 1 MB on to 1 MB; at most 2 GB are kept (page-locked memory is taken from the whole machine).
class PinnedHostMemory final : public Allocator {
 public:
  void* allocate(size_t bytes) override {
    bind_thread();  // a loader's worker thread: the pinned pages belong to the chosen GPU's context
    bytes = rounded(bytes);
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto [first, last] = free_.equal_range(bytes);
      for (auto it = first; it != last; ++it) {
        if (cudaEventQuery(it->second.released) != cudaSuccess) continue;  // still read by a queued copy
        void* p = it->second.p;
        (void)cudaEventDestroy(it->second.released);
        free_.erase(it);
        cached_ -= bytes;
        return p;
      }
      (void)cudaGetLastError();  // cudaEventQuery's cudaErrorNotReady
    }
    void* p = system_allocate(bytes);
    if (!p && empty_cache() > 0) p = system_allocate(bytes);
    return p;
  }
  void deallocate(void* p, size_t bytes) override {
    bind_thread();  // the event is made on the stream's GPU
    bytes = rounded(bytes);
    cudaEvent_t released = nullptr;
    if (cudaEventCreateWithFlags(&released, cudaEventDisableTiming) != cudaSuccess ||
        cudaEventRecord(released, stream()) != cudaSuccess) {
      (void)cudaGetLastError();
      if (released) (void)cudaEventDestroy(released);
      (void)cudaStreamSynchronize(stream());
      (void)cudaFreeHost(p);
      return;
    }
    std::lock_guard<std::mutex> lock(mu_);
    if (cached_ + bytes > kMaxCached) {
      (void)cudaEventSynchronize(released);
      (void)cudaEventDestroy(released);
      (void)cudaFreeHost(p);
      return;
    }
    free_.emplace(bytes, Block{p, released});
    cached_ += bytes;
  }
  size_t empty_cache() override {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [bytes, block] : free_) {
      (void)cudaEventSynchronize(block.released);
      (void)cudaEventDestroy(block.released);
      (void)cudaFreeHost(block.p);
    }
    free_.clear();
    return std::exchange(cached_, 0);
  }
  size_t cached_bytes() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return cached_;
  }

 private:
  static constexpr size_t kMaxCached = size_t{2} << 30;
  struct Block {
    void* p;
    cudaEvent_t released;
  };
  static size_t rounded(size_t bytes) {
    const size_t g = bytes >= (size_t{1} << 20) ? size_t{1} << 20 : size_t{1} << 16;
    return bytes == 0 ? g : (bytes + g - 1) / g * g;
  }
  static void* system_allocate(size_t bytes) {
    void* p = nullptr;
    if (cudaHostAlloc(&p, bytes, cudaHostAllocDefault) != cudaSuccess) {
      (void)cudaGetLastError();
      return nullptr;
    }
    return p;
  }
  mutable std::mutex mu_;
  std::unordered_multimap<size_t, Block> free_;
  size_t cached_ = 0;
};

// A kernel of this library, to ask the driver whether the GPU can run the code compiled here.
__global__ void probe_kernel() {}

int as_int(int64_t v, const char* what) {
  TV_CHECK(v >= 0 && v <= INT_MAX, "cuda gemm: ", what, " = ", v, " does not fit cuBLAS's 32-bit int");
  return static_cast<int>(v);
}

}  // namespace

cudaStream_t stream() { return runtime().stream; }

int device() { return chosen_device(); }

Allocator* device_allocator(std::string& why) {
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    (void)cudaGetLastError();
    why = std::string("no usable GPU (") + cudaGetErrorString(err) + ")";
    return nullptr;
  }
  if (count == 0) {
    why = "no GPU on this machine";
    return nullptr;
  }
  // A context on this process's GPU, and code it can run: a GPU older than the architectures built (CMake's
  // CMAKE_CUDA_ARCHITECTURES) has no kernel image, which would otherwise fail at the first launch.
  const int gpu = chosen_device();
  cudaFuncAttributes attributes{};
  cudaError_t ready = cudaSetDevice(gpu);
  if (ready == cudaSuccess) ready = cudaFree(nullptr);
  if (ready == cudaSuccess) ready = cudaFuncGetAttributes(&attributes, probe_kernel);
  if (ready != cudaSuccess) {
    (void)cudaGetLastError();
    cudaDeviceProp prop{};
    const bool known = cudaGetDeviceProperties(&prop, gpu) == cudaSuccess;
    why = "GPU " + std::to_string(gpu) + " cannot run this build (" + cudaGetErrorString(ready) + ")" +
          (known ? std::string("; it is ") + prop.name + ", compute capability " + std::to_string(prop.major) + "." +
                       std::to_string(prop.minor) + "; rebuild with -DCMAKE_CUDA_ARCHITECTURES for it"
                 : std::string());
    return nullptr;
  }
  static DeviceMemory* memory = new DeviceMemory;
  return memory;
}

Allocator* pinned_host_allocator() {
  std::string why;
  if (!device_allocator(why)) return nullptr;
  static PinnedHostMemory* pinned = new PinnedHostMemory;
  return pinned;
}

void copy_across(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes) {
  if (bytes == 0) return;
  // Unified addressing tells the direction from the pointers. From pageable host memory the call returns once
  // the source has been staged, so the caller may free it at once; from pinned memory it returns at once, and
  // the pinned allocator keeps the source until the copy has run.
  check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, stream()), "copying between devices");
  if (dst_device == Device::CPU) check(cudaStreamSynchronize(stream()), "copying to the host");
}

void synchronize() { check(cudaStreamSynchronize(stream()), "synchronize"); }

// Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: cuBLAS gets B first, N and M swapped.
template <>
void gemm<float>(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                 int64_t stride_a, const float* B, int64_t ldb, int64_t stride_b, float beta, float* C, int64_t ldc,
                 int64_t stride_c, int64_t batch) {
  if (M == 0 || N == 0 || batch == 0) return;
  check_blas(cublasSgemmStridedBatched(runtime().blas, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                                       trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, as_int(N, "N"), as_int(M, "M"),
                                       as_int(K, "K"), &alpha, B, as_int(ldb, "ldb"), stride_b, A, as_int(lda, "lda"),
                                       stride_a, &beta, C, as_int(ldc, "ldc"), stride_c, as_int(batch, "batch")),
             "sgemm");
}

template <>
void gemm<double>(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, double alpha, const double* A,
                  int64_t lda, int64_t stride_a, const double* B, int64_t ldb, int64_t stride_b, double beta, double* C,
                  int64_t ldc, int64_t stride_c, int64_t batch) {
  if (M == 0 || N == 0 || batch == 0) return;
  check_blas(cublasDgemmStridedBatched(runtime().blas, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                                       trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, as_int(N, "N"), as_int(M, "M"),
                                       as_int(K, "K"), &alpha, B, as_int(ldb, "ldb"), stride_b, A, as_int(lda, "lda"),
                                       stride_a, &beta, C, as_int(ldc, "ldc"), stride_c, as_int(batch, "batch")),
             "dgemm");
}

}  // namespace tv::cuda
