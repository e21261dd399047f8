// The CUDA backend on the host, for the tests: the kernels of include/tinyvid/backend/gpu/, compiled here by
// the host compiler, under the CUDA device tag. launch() walks every block and thread of the grid a GPU would
// run, in turn; the matrix products, which cuBLAS does on a GPU, are plain loops; cuDNN declines every
// convolution (src/cuda/dnn_none.cpp), so conv takes the backend's own path. The test binary built with
// this file (tinyvid_cuda_sim_tests, TINYVID_WITH_CUDA defined) runs the backend table of test_ops.cpp and the
// device tests on "cuda", so the index arithmetic, bounds and broadcasting of every CUDA kernel are checked
// on every CI run.
// The device's memory is host memory that the host cannot touch: pages mapped with no access, opened only
// while a kernel or a copy_across runs. A host read of a device tensor that would crash on a GPU (or read
// garbage) faults here too, so the tests catch it.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <unordered_map>

#include "tinyvid/backend/gpu/blas.hpp"
#include "tinyvid/backend/gpu/instances.hpp"

namespace tv::cuda {

namespace {
// Host memory carved from one reserved region, closed to the host except while set_open(true) is in force:
// one mprotect of the used part opens or closes every block at once.
class ClosedHostMemory final : public ::tv::detail::CachingAllocator {
 public:
  ClosedHostMemory() : CachingAllocator(kCudaCachePolicy) {
    base_ = static_cast<char*>(mmap(nullptr, kReserved, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0));
    TV_CHECK(base_ != MAP_FAILED, "cuda_sim: cannot reserve the device's address range");
  }

  // Opens every block for reading and writing (true) or closes them again (false).
  void set_open(bool open) {
    std::lock_guard<std::mutex> lock(mu_);
    if (top_ > 0 && mprotect(base_, top_, open ? PROT_READ | PROT_WRITE : PROT_NONE) != 0)
      TV_FAIL("cuda_sim: mprotect failed");
  }

 private:
  static constexpr size_t kReserved = size_t{1} << 36;  // 64 GB of addresses, pages made only when touched

  // Blocks are cut from the top of the region; a freed block is kept for a request of its size.
  void* system_allocate(size_t bytes) override {
    const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE)), len = (bytes + page - 1) / page * page;
    std::lock_guard<std::mutex> lock(mu_);
    if (auto it = spare_.find(len); it != spare_.end()) {
      void* p = it->second;
      spare_.erase(it);
      sizes_[p] = len;
      return p;
    }
    if (top_ + len > kReserved) return nullptr;
    void* p = base_ + top_;
    top_ += len;
    sizes_[p] = len;
    return p;
  }
  void system_free(void* p) override {
    std::lock_guard<std::mutex> lock(mu_);
    const auto it = sizes_.find(p);
    spare_.emplace(it->second, p);
    sizes_.erase(it);
  }
  std::mutex mu_;
  char* base_ = nullptr;
  size_t top_ = 0;
  std::unordered_map<void*, size_t> sizes_;
  std::unordered_multimap<size_t, void*> spare_;
};

ClosedHostMemory& memory() {
  static auto* m = new ClosedHostMemory;  // never destroyed, like the CUDA library's
  return *m;
}

// Device memory is open while it lives.
struct OpenDeviceMemory {
  OpenDeviceMemory() { memory().set_open(true); }
  ~OpenDeviceMemory() { memory().set_open(false); }
};
}  // namespace

template <class K>
void launch(const char* name, Launch l, const K& k) {
  TV_CHECK(l.blocks > 0 && l.threads > 0 && l.threads <= 1024, name, ": a launch of ", l.blocks, " blocks of ",
           l.threads, " threads");
  // A GPU runs threads in no set order, so a kernel must not depend on one: TINYVID_SIM_ORDER=reverse walks
  // the grid from its last thread to its first (ctest runs the tests both ways), which changes the result of
  // a kernel whose threads race for an element or read what another thread of the launch writes.
  static const bool reverse = [] {
    const char* v = std::getenv("TINYVID_SIM_ORDER");
    return v && std::string(v) == "reverse";
  }();
  OpenDeviceMemory open;
  for (int64_t i = 0; i < l.blocks * l.threads; ++i) {
    const int64_t j = reverse ? l.blocks * l.threads - 1 - i : i;
    k(Thread{j / l.threads, j % l.threads, l.blocks, l.threads});
  }
}

template <class T>
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
          int64_t stride_a, const T* B, int64_t ldb, int64_t stride_b, T beta, T* C, int64_t ldc, int64_t stride_c,
          int64_t batch) {
  OpenDeviceMemory open;
  for (int64_t b = 0; b < batch; ++b) {
    const T* a = A + b * stride_a;
    const T* bb = B + b * stride_b;
    T* c = C + b * stride_c;
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) {
        T acc = 0;
        for (int64_t k = 0; k < K; ++k)
          acc += (trans_a ? a[k * lda + i] : a[i * lda + k]) * (trans_b ? bb[j * ldb + k] : bb[k * ldb + j]);
        c[i * ldc + j] = beta == T(0) ? alpha * acc : alpha * acc + beta * c[i * ldc + j];  // beta 0 ignores C
      }
  }
}
template void gemm<float>(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t, int64_t, const float*,
                          int64_t, int64_t, float, float*, int64_t, int64_t, int64_t);
template void gemm<double>(bool, bool, int64_t, int64_t, int64_t, double, const double*, int64_t, int64_t,
                           const double*, int64_t, int64_t, double, double*, int64_t, int64_t, int64_t);

void copy_across(void* dst, Device, const void* src, Device, size_t bytes) {
  OpenDeviceMemory open;
  if (bytes) std::memcpy(dst, src, bytes);
}

void synchronize() {}

Allocator* device_allocator(std::string&) { return &memory(); }

// Pinned memory is host memory the host reads as any other; here it is ordinary host memory, kept apart so
// that the tests can tell the loader's pinned batches by Tensor::is_pinned.
Allocator* pinned_host_allocator() {
  static ::tv::detail::CpuAllocator* pinned = new ::tv::detail::CpuAllocator;
  return pinned;
}

}  // namespace tv::cuda

TINYVID_CUDA_INSTANCES()
