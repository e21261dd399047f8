#pragma once
// The threaded loader: worker threads decode and transform whole batches while the consumer computes, a
// bounded number of batches ahead. What comes out depends only on (seed, epoch), never on the number of
// workers or their timing: the epoch's order is a seeded shuffle, sample i draws from a Generator seeded
// from (seed, epoch, i), and batches are handed out in order.
//
//   tv::data::Loader loader(dataset, {.batch_size = 8, .seed = 1});
//   for (int64_t e = 0; e < epochs; ++e) {
//     loader.start_epoch(e);
//     while (auto batch = loader.next()) { ... batch->clips, batch->labels ... }
//     report(dataset.skipped());
//   }
//
// Threads: workers never enter OpenMP regions of their own; tv::parallel_for called from a transform inside a
// worker would split across the thread count and compete with the consumer's compute, so the data pipeline
// keeps its loops serial and each VideoReader decodes with decode_threads=1. (parallel_for runs serially
// only when nested in an OpenMP region, which a std::thread is not.)
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <exception>
#include <map>
#include <mutex>
#include <numeric>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "tinyvid/core/error.hpp"
#include "tinyvid/core/generator.hpp"
#include "tinyvid/core/tensor.hpp"
#include "tinyvid/data/dataset.hpp"

namespace tv::data {

struct LoaderOptions {
  int64_t batch_size = 1;
  bool shuffle = true;
  bool drop_last = false;   // drop the last batch when it would have fewer than batch_size indices
  int num_workers = 2;      // threads decoding batches; 0: next() decodes on the calling thread (debugging)
  int64_t prefetch = 4;     // batches decoded ahead of the consumer, at most
  uint64_t seed = 0;
  // Workers run at this nice level (Linux; 0: the process's): on a machine whose cores the training threads
  // fill, a worker at full priority preempts one of them mid-parallel-loop and the others spin waiting for it,
  // so data loading costs twice its own time. Niced workers take the cores' idle moments instead.
  int worker_nice = 19;
  // Batches in pinned host memory (Tensor::empty_pinned), as PyTorch's DataLoader(pin_memory=True): their
  // upload to a GPU is queued and the host goes on at once. Ordinary memory where there is no GPU.
  bool pin_memory = false;
  // Data-parallel training (dist/): this process's share of every batch. A batch of the epoch's order holds
  // batch_size x num_shards samples; shard r gets the r-th run of batch_size of them, so that the shards of
  // one batch together are exactly one process's batch of that size. Every shard gets every batch, one with
  // no samples too (Batch::indices empty), so that the processes stay in step.
  int64_t num_shards = 1;
  int64_t shard = 0;
};

// Samples of one batch stacked: clips (N*M) x 3 x H x W, sample-major; labels N; indices into the dataset.
// With skip_bad, N counts the samples that could be read (a batch whose samples were all skipped is not
// returned at all, except to a shard: then clips and labels are undefined and indices empty).
struct Batch {
  Tensor<float> clips;
  Tensor<int64_t> labels;
  std::vector<int64_t> indices;
};

namespace detail {
inline uint64_t sample_seed(uint64_t seed, int64_t epoch, int64_t index) {
  return mix_seed(mix_seed(mix_seed(seed) ^ static_cast<uint64_t>(epoch)) ^ static_cast<uint64_t>(index));
}

inline Batch collate(std::vector<Sample>& samples, bool pin_memory) {
  const Shape& s0 = samples.front().clips.shape();
  for (const Sample& s : samples)
    TV_CHECK(s.clips.shape() == s0, "Loader: cannot stack sample ", s.index, " of shape ", s.clips.shape(),
             " with sample ", samples.front().index, " of shape ", s0, "; the pipeline must give equal shapes");
  const auto n = static_cast<int64_t>(samples.size());
  const int64_t per = samples.front().clips.numel();
  Batch b;
  const Shape clips_shape{n * s0[0], s0[1], s0[2], s0[3]};
  b.clips = pin_memory ? Tensor<float>::empty_pinned(clips_shape) : Tensor<float>::empty(clips_shape);
  b.labels = pin_memory ? Tensor<int64_t>::empty_pinned({n}) : Tensor<int64_t>::empty({n});
  for (int64_t i = 0; i < n; ++i) {
    Sample& s = samples[static_cast<size_t>(i)];
    std::memcpy(b.clips.data() + i * per, s.clips.data(), static_cast<size_t>(per) * sizeof(float));
    b.labels.data()[i] = s.label;
    b.indices.push_back(s.index);
  }
  return b;
}
}  // namespace detail

// The dataset must outlive the loader. One consumer thread calls start_epoch / next / stop.
class Loader {
 public:
  Loader(const Dataset& dataset, LoaderOptions options = {}) : ds_(dataset), opt_(options) {
    TV_CHECK(opt_.batch_size >= 1, "Loader: batch_size must be >= 1, got ", opt_.batch_size);
    TV_CHECK(opt_.num_workers >= 0, "Loader: num_workers must be >= 0, got ", opt_.num_workers);
    TV_CHECK(opt_.prefetch >= 1, "Loader: prefetch must be >= 1, got ", opt_.prefetch);
    TV_CHECK(opt_.num_shards >= 1 && opt_.shard >= 0 && opt_.shard < opt_.num_shards, "Loader: shard ", opt_.shard,
             " of ", opt_.num_shards, " is not a shard (0 <= shard < num_shards)");
  }
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;
  ~Loader() { stop(); }

  // Batches of an epoch (the last one partial unless drop_last).
  int64_t num_batches() const {
    const int64_t n = ds_.size(), b = global_batch();
    return opt_.drop_last ? n / b : (n + b - 1) / b;
  }

  // The epoch's order of sample indices: a pure function of (seed, epoch).
  std::vector<int64_t> order(int64_t epoch) const {
    std::vector<int64_t> o(static_cast<size_t>(ds_.size()));
    std::iota(o.begin(), o.end(), 0);
    if (opt_.shuffle) {
      Generator g(detail::sample_seed(opt_.seed, epoch, -1));
      for (size_t i = o.size(); i > 1; --i) std::swap(o[i - 1], o[static_cast<size_t>(g.randint(i))]);
    }
    return o;
  }

  // Stops the previous epoch if unfinished and starts decoding this one, from batch first_batch on (a
  // resumed run skips the batches it has trained on; they are not decoded).
  void start_epoch(int64_t epoch, int64_t first_batch = 0) {
    stop();
    TV_CHECK(first_batch >= 0 && first_batch <= num_batches(), "Loader::start_epoch: first_batch ", first_batch,
             " is not in [0, ", num_batches(), "]");
    epoch_ = epoch;
    order_ = order(epoch);
    total_ = num_batches();
    claimed_ = delivered_ = first_batch;
    stop_flag_ = false;
    started_ = true;
    const int workers = static_cast<int>(std::min<int64_t>(opt_.num_workers, total_ - first_batch));
    for (int w = 0; w < workers; ++w) workers_.emplace_back([this] { work(); });
  }

  // The next batch in order; nullopt at the end of the epoch. A worker's exception is re-thrown here, as it
  // was thrown, and ends the epoch.
  std::optional<Batch> next() {
    TV_CHECK(started_, "Loader: call start_epoch(epoch) before next()");
    if (opt_.num_workers == 0) {
      while (delivered_ < total_)
        if (std::optional<Batch> b = make_batch(delivered_++)) return b;
      return std::nullopt;
    }
    while (true) {
      std::unique_lock<std::mutex> lock(m_);
      if (delivered_ >= total_) {
        lock.unlock();
        stop();
        return std::nullopt;
      }
      ready_cv_.wait(lock, [&] { return error_ || ready_.count(delivered_) > 0; });
      if (error_) {
        std::exception_ptr e = std::exchange(error_, nullptr);
        lock.unlock();
        stop();
        std::rethrow_exception(e);
      }
      auto it = ready_.find(delivered_);
      std::optional<Batch> b = std::move(it->second);
      ready_.erase(it);
      ++delivered_;
      work_cv_.notify_all();
      if (b) return b;  // else every sample of it was skipped: go on to the next
    }
  }

  // Ends the epoch now: workers finish the sample in hand and are joined. Safe to call at any time.
  void stop() {
    {
      std::lock_guard<std::mutex> lock(m_);
      stop_flag_ = true;
    }
    work_cv_.notify_all();
    for (std::thread& t : workers_) t.join();
    workers_.clear();
    std::lock_guard<std::mutex> lock(m_);
    ready_.clear();
    error_ = nullptr;
    total_ = delivered_ = claimed_ = 0;
  }

 private:
  void work() {
    if (opt_.worker_nice > 0) (void)setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), opt_.worker_nice);
    while (true) {
      int64_t b;
      {
        std::unique_lock<std::mutex> lock(m_);
        // Bounded: a batch is started only within `prefetch` of the one the consumer waits for.
        work_cv_.wait(lock, [&] { return stop_flag_ || claimed_ >= total_ || claimed_ < delivered_ + opt_.prefetch; });
        if (stop_flag_ || claimed_ >= total_) return;
        b = claimed_++;
      }
      try {
        std::optional<Batch> batch = make_batch(b);
        std::lock_guard<std::mutex> lock(m_);
        if (stop_flag_) return;
        ready_.emplace(b, std::move(batch));
      } catch (...) {
        std::lock_guard<std::mutex> lock(m_);
        if (!error_ && !stop_flag_) error_ = std::current_exception();
        ready_cv_.notify_all();
        return;
      }
      ready_cv_.notify_all();
    }
  }

  // The samples of all shards of one batch.
  int64_t global_batch() const { return opt_.batch_size * opt_.num_shards; }

  std::optional<Batch> make_batch(int64_t b) {
    const auto n = static_cast<int64_t>(order_.size());
    const int64_t batch_end = std::min<int64_t>((b + 1) * global_batch(), n);
    const int64_t begin = std::min<int64_t>(b * global_batch() + opt_.shard * opt_.batch_size, batch_end);
    const int64_t end = std::min<int64_t>(begin + opt_.batch_size, batch_end);
    std::vector<Sample> samples;
    for (int64_t k = begin; k < end; ++k) {
      if (stop_flag_) return std::nullopt;  // stop(): drop the batch, the consumer will not ask for it
      const int64_t i = order_[static_cast<size_t>(k)];
      Generator gen(detail::sample_seed(opt_.seed, epoch_, i));
      if (auto s = ds_.get(i, gen)) samples.push_back(std::move(*s));
    }
    if (samples.empty()) return opt_.num_shards > 1 ? std::optional<Batch>(Batch{}) : std::nullopt;
    return detail::collate(samples, opt_.pin_memory);
  }

  const Dataset& ds_;
  LoaderOptions opt_;
  std::vector<int64_t> order_;
  int64_t epoch_ = 0;
  bool started_ = false;

  std::mutex m_;
  std::condition_variable work_cv_, ready_cv_;
  std::vector<std::thread> workers_;
  std::map<int64_t, std::optional<Batch>> ready_;  // decoded batches by number, until the consumer takes them
  std::exception_ptr error_;
  int64_t total_ = 0, claimed_ = 0, delivered_ = 0;
  std::atomic<bool> stop_flag_{false};
};

}  // namespace tv::data
