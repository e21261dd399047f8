// Data-parallel training step (dist/): one global batch of 8 clips split over the processes of the run, the
// same step the trainer takes (forward on this rank's share, its loss weighted by the share, backward with the
// gradients summed over the ranks in buckets while backward runs, running statistics averaged, clipping, SGD).
// Run alone with 2 threads and under `mpirun -np 2` with 1 thread each to compare the two ways of using two
// cores. The input is one fixed tensor (bench_train measures the data pipeline). Rank 0 prints one JSON line:
// clips/s over all ranks, and the time per iteration spent waiting for the gradients' sums (what backward did
// not hide) and in the iteration's small all-reduce of the loss.
// Usage: [mpirun -np N] bench_dist [--model tsn_r18|tsn_r50] [--width 16] [--size 112] [--batch 8 (global)]
//                                  [--iters 10] [--threads 2]
#include <chrono>
#include <vector>
#include <cstdio>
#include <string>

#include <tinyvid/dist/data_parallel.hpp>
#include <tinyvid/models/registry.hpp>
#include <tinyvid/optim/clip_grad.hpp>
#include <tinyvid/optim/sgd.hpp>
#include <tinyvid/tinyvid.hpp>

#include "bench_util.hpp"

int main(int argc, char** argv) {
  using Clock = std::chrono::steady_clock;
  const std::string model_name = bench::flag(argc, argv, "model", "tsn_r18");
  const int64_t width = std::stol(bench::flag(argc, argv, "width", model_name == "tsn_r18" ? "16" : "64"));
  const int64_t size = std::stol(bench::flag(argc, argv, "size", model_name == "tsn_r18" ? "112" : "224"));
  const int64_t global_batch = std::stol(bench::flag(argc, argv, "batch", "8"));
  const int64_t iters = std::stol(bench::flag(argc, argv, "iters", "10"));
  tv::set_num_threads(std::stoi(bench::flag(argc, argv, "threads", "2")));

  tv::dist::ProcessGroup& pg = tv::dist::world();
  const int64_t ranks = pg.size(), frames = 8;
  const int64_t n = global_batch / ranks + (pg.rank() < global_batch % ranks ? 1 : 0);
  tv::Generator gen(1);
  auto model = tv::models::make_model<float>(
      model_name, {.num_classes = 400, .frames = frames, .set = {{"width", std::to_string(width)}}}, gen);
  model->train();
  tv::dist::broadcast_state(pg, *model);
  tv::optim::SGD opt(model->parameters(), tv::optim::SGDOptions(0.01).momentum(0.9).weight_decay(1e-4));
  tv::dist::GradReducer reducer(pg, model->parameters());
  const auto clips = tv::normal<float>({n * frames, 3, size, size}, 0.0, 1.0, gen);
  std::vector<int64_t> label_values;
  for (int64_t i = 0; i < n; ++i) label_values.push_back((i * 37 + pg.rank() * 11) % 400);
  const auto labels = tv::tensor<int64_t>(label_values);

  double comm = 0, small = 0;
  auto step = [&] {
    auto loss = tv::cross_entropy((*model)(clips), labels);
    double totals[2] = {static_cast<double>(n), loss.item() * static_cast<double>(n)};
    const auto t0 = Clock::now();
    pg.all_reduce(totals, 2, tv::dist::ReduceOp::Sum);
    small += std::chrono::duration<double>(Clock::now() - t0).count();
    opt.zero_grad();
    (ranks > 1 ? loss * static_cast<float>(static_cast<double>(n) / totals[0]) : loss).backward();
    comm += reducer.finish();
    tv::dist::average_running_stats(pg, *model, static_cast<double>(n) / totals[0]);
    tv::optim::clip_grad_norm(opt.parameters(), 40.0);
    opt.step();
  };
  for (int i = 0; i < 2; ++i) step();  // warm-up: the allocator's pool, first-touch page faults
  comm = small = 0;
  pg.barrier();
  const auto t0 = Clock::now();
  for (int64_t i = 0; i < iters; ++i) step();
  pg.barrier();
  const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  const double per_iter = seconds / static_cast<double>(iters);
  // The slowest rank's waits stand for the run.
  double waits[2] = {comm / static_cast<double>(iters), small / static_cast<double>(iters)};
  pg.all_reduce(waits, 2, tv::dist::ReduceOp::Max);
  if (pg.rank() == 0)
    std::printf("{\"bench\":\"dist_train_step\",\"impl\":\"tinyvid\",\"model\":\"%s\",\"width\":%lld,\"frames\":%lld,"
                "\"size\":%lld,\"global_batch\":%lld,\"ranks\":%lld,\"threads_per_rank\":%d,\"buckets\":%lld,"
                "\"s_per_iter\":%.4f,\"clips_per_s\":%.2f,\"grad_wait_s_per_iter\":%.4f,\"loss_allreduce_s_per_iter\":%.4f,"
                "\"comm_share\":%.4f}\n",
                model_name.c_str(), static_cast<long long>(width), static_cast<long long>(frames),
                static_cast<long long>(size), static_cast<long long>(global_batch), static_cast<long long>(ranks),
                tv::get_num_threads(), static_cast<long long>(reducer.num_buckets()), per_iter,
                static_cast<double>(global_batch) / per_iter, waits[0], waits[1], (waits[0] + waits[1]) / per_iter);
  return 0;
}
