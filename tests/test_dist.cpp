// dist/: the process group's collectives with exact results, under `mpirun -np 2` (ctest dist_np2) and alone
// (SingleProcess, size 1). Every rank runs the same cases in the same order, so their collectives match; a
// failed CHECK does not skip the collectives after it (REQUIRE would, and leave the other rank waiting).
#include <doctest/doctest.h>

#include <cmath>
#include <cstdlib>
#include <string>
#include <tinyvid/dist/data_parallel.hpp>
#include <tinyvid/dist/process_group.hpp>
#include <tinyvid/dist/tensor_ops.hpp>
#include <tinyvid/ops/creation.hpp>
#include <tinyvid/ops/elementwise.hpp>
#include <tinyvid/ops/reduce.hpp>
#include <vector>

using namespace tv::dist;

namespace {
ProcessGroup& pg() { return world(); }

// Exactly representable values that differ per rank, of both signs: (+-)(rank + 1) * (i + 1).
template <class T>
std::vector<T> per_rank(int rank, int64_t n) {
  std::vector<T> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    v[static_cast<size_t>(i)] = static_cast<T>((i % 2 ? -1 : 1) * (rank + 1) * (i + 1));
  return v;
}
template <class T>
std::vector<T> expected_sum(int size, int64_t n) {
  std::vector<T> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    v[static_cast<size_t>(i)] = static_cast<T>((i % 2 ? -1 : 1) * (i + 1) * size * (size + 1) / 2);
  return v;
}
template <class T>
std::vector<T> expected_max(int size, int64_t n) {  // the largest rank's positives, the smallest's negatives
  std::vector<T> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = static_cast<T>(i % 2 ? -(i + 1) : (i + 1) * size);
  return v;
}

template <class T>
void check_broadcast(int root) {
  std::vector<T> v = per_rank<T>(pg().rank(), 37);
  pg().broadcast(v.data(), 37, root);
  CHECK(v == per_rank<T>(root, 37));
}

template <class T>
void check_all_reduce() {
  std::vector<T> s = per_rank<T>(pg().rank(), 1001), m = s;
  pg().all_reduce(s.data(), 1001, ReduceOp::Sum);
  pg().all_reduce(m.data(), 1001, ReduceOp::Max);
  CHECK(s == expected_sum<T>(pg().size(), 1001));
  CHECK(m == expected_max<T>(pg().size(), 1001));
}

template <class T>
void check_all_gather() {
  const int n = pg().size();
  std::vector<T> mine = per_rank<T>(pg().rank(), 5), all(static_cast<size_t>(5 * n));
  pg().all_gather(mine.data(), 5, all.data());
  for (int r = 0; r < n; ++r)
    CHECK(std::vector<T>(all.begin() + 5 * r, all.begin() + 5 * (r + 1)) == per_rank<T>(r, 5));
  // In place: this rank's part already sits in the output.
  std::vector<T> in_place(static_cast<size_t>(5 * n), T(0));
  std::copy(mine.begin(), mine.end(), in_place.begin() + 5 * pg().rank());
  pg().all_gather(in_place.data() + 5 * pg().rank(), 5, in_place.data());
  CHECK(in_place == all);
}
}  // namespace

TEST_CASE("dist: rank and size; the group the launcher asked for") {
  CHECK(pg().size() >= 1);
  CHECK(pg().rank() >= 0);
  CHECK(pg().rank() < pg().size());
  if (const char* n = std::getenv("OMPI_COMM_WORLD_SIZE")) {
    CHECK(std::string(pg().name()) == "mpi");
    CHECK(pg().size() == std::atoi(n));
    CHECK(pg().rank() == std::atoi(std::getenv("OMPI_COMM_WORLD_RANK")));
  } else if (!std::getenv("PMI_SIZE") && !std::getenv("PMIX_RANK")) {
    CHECK(std::string(pg().name()) == "single");
  }
  CHECK(&world() == &pg());  // one group per process
}

TEST_CASE("dist: broadcast of each type from the first and the last rank") {
  for (int root : {0, pg().size() - 1}) {
    check_broadcast<float>(root);
    check_broadcast<double>(root);
    check_broadcast<int64_t>(root);
  }
}

TEST_CASE("dist: all_reduce Sum and Max of each type are exact") {
  check_all_reduce<float>();
  check_all_reduce<double>();
  check_all_reduce<int64_t>();
  // int64 beyond double's 53 bits
  std::vector<int64_t> big{(int64_t{1} << 60) + pg().rank()};
  pg().all_reduce(big.data(), 1, ReduceOp::Max);
  CHECK(big[0] == (int64_t{1} << 60) + pg().size() - 1);
  // An empty buffer is allowed (a rank with nothing to add still takes part).
  pg().all_reduce(static_cast<float*>(nullptr), 0, ReduceOp::Sum);
}

TEST_CASE("dist: several all_reduce_async in flight, waited in reverse order") {
  const int rank = pg().rank(), size = pg().size();
  std::vector<std::vector<float>> f;
  std::vector<std::vector<double>> d;
  std::vector<std::vector<int64_t>> l;
  std::vector<std::shared_ptr<Work>> works;
  for (int k = 0; k < 4; ++k) {  // sizes from one element to a few hundred thousand; types interleaved
    const int64_t n = int64_t{1} << (5 * k);
    f.push_back(per_rank<float>(rank, n));
    d.push_back(per_rank<double>(rank, n + 1));
    l.push_back(per_rank<int64_t>(rank, n + 2));
  }
  for (int k = 0; k < 4; ++k) {
    works.push_back(pg().all_reduce_async(f[k].data(), static_cast<int64_t>(f[k].size()), ReduceOp::Sum));
    works.push_back(pg().all_reduce_async(d[k].data(), static_cast<int64_t>(d[k].size()), ReduceOp::Max));
    works.push_back(pg().all_reduce_async(l[k].data(), static_cast<int64_t>(l[k].size()), ReduceOp::Sum));
  }
  for (auto it = works.rbegin(); it != works.rend(); ++it) (*it)->wait();
  for (auto& w : works) CHECK(w->done());
  for (int k = 0; k < 4; ++k) {
    CHECK(f[k] == expected_sum<float>(size, static_cast<int64_t>(f[k].size())));
    CHECK(d[k] == expected_max<double>(size, static_cast<int64_t>(d[k].size())));
    CHECK(l[k] == expected_sum<int64_t>(size, static_cast<int64_t>(l[k].size())));
  }
  works.front()->wait();  // again: returns at once
}

TEST_CASE("dist: a large all_reduce_async completes while the caller computes") {
  const int64_t n = int64_t{16} << 20;  // 64 MB of floats
  std::vector<float> v(static_cast<size_t>(n), static_cast<float>(pg().rank() + 1));
  auto w = pg().all_reduce_async(v.data(), n, ReduceOp::Sum);
  // Work that never calls into the group: the communication thread alone must move the reduction.
  double acc = 0;
  int64_t rounds = 0;
  do {
    for (int i = 0; i < 100000; ++i) acc += std::sqrt(static_cast<double>(i + rounds));
    ++rounds;
  } while (!w->done());
  w->wait();
  CHECK(acc > 0);
  const float want = static_cast<float>(pg().size() * (pg().size() + 1) / 2);
  int64_t wrong = 0;
  for (float x : v) wrong += x != want;
  CHECK(wrong == 0);
  MESSAGE("rank ", pg().rank(), ": ", rounds, " rounds of other work while 16M floats were reduced");
}

TEST_CASE("dist: all_gather of each type, and in place") {
  check_all_gather<float>();
  check_all_gather<double>();
  check_all_gather<int64_t>();
}

TEST_CASE("dist: all_gather_bytes with sizes that differ per rank, one of them empty") {
  auto text = [](int r) {  // rank 1 sends nothing; the others binary bytes, '\0' included
    std::string s;
    if (r != 1)
      for (int i = 0; i < 1000 * r + 5; ++i) s += static_cast<char>((i * 7 + r) % 256);
    return s;
  };
  std::vector<std::string> all = pg().all_gather_bytes(text(pg().rank()));
  REQUIRE(static_cast<int>(all.size()) == pg().size());
  for (int r = 0; r < pg().size(); ++r) CHECK(all[static_cast<size_t>(r)] == text(r));
  // Every rank empty.
  std::vector<std::string> none = pg().all_gather_bytes("");
  CHECK(none == std::vector<std::string>(static_cast<size_t>(pg().size())));
}

TEST_CASE("dist: barrier") {
  for (int i = 0; i < 5; ++i) pg().barrier();
}

TEST_CASE("dist: tensor helpers, contiguous and strided") {
  const int rank = pg().rank(), size = pg().size();
  // broadcast from the last rank: a float tensor and a parameter that requires grad
  auto t = tv::full<float>({2, 3}, static_cast<float>(rank + 1));
  broadcast(pg(), t, size - 1);
  CHECK(t.to_vector() == std::vector<float>(6, static_cast<float>(size)));
  auto p = tv::full<double>({4}, rank + 0.5).requires_grad_();
  broadcast(pg(), p, 0);
  CHECK(p.to_vector() == std::vector<double>(4, 0.5));
  // all_reduce of a transposed view (not contiguous): written back into the view's elements
  auto base = tv::arange<double>(6).reshape({2, 3}).contiguous();
  base.mul_(rank + 1);
  auto view = base.t();
  REQUIRE(!view.is_contiguous());
  all_reduce(pg(), view, ReduceOp::Sum);
  const double s = size * (size + 1) / 2.0;
  CHECK(base.to_vector() == std::vector<double>{0, s, 2 * s, 3 * s, 4 * s, 5 * s});
  auto m = tv::full<int64_t>({3}, rank);
  all_reduce(pg(), m, ReduceOp::Max);
  CHECK(m.to_vector() == std::vector<int64_t>(3, size - 1));
}

TEST_CASE("dist: bad arguments are errors on every rank, before any communication") {
  std::vector<float> v(4);
  CHECK_THROWS_WITH_AS(pg().broadcast(v.data(), 4, pg().size()), doctest::Contains("is outside [0,"), tv::Error);
  CHECK_THROWS_WITH_AS(pg().broadcast(v.data(), 4, -1), doctest::Contains("root -1 is outside"), tv::Error);
  CHECK_THROWS_WITH_AS(pg().all_reduce(v.data(), -1, ReduceOp::Sum), doctest::Contains("expected a count >= 0"),
                       tv::Error);
  CHECK_THROWS_WITH_AS(pg().all_reduce(static_cast<float*>(nullptr), 3, ReduceOp::Sum),
                       doctest::Contains("is null"), tv::Error);
  CHECK_THROWS_AS(pg().set_timeout(0), tv::Error);
  CHECK_THROWS_AS(pg().set_timeout(NAN), tv::Error);
  const double before = pg().timeout();
  pg().set_timeout(12.5);
  CHECK(pg().timeout() == 12.5);
  pg().set_timeout(before);
  // The group still works after the errors (none of them started a collective).
  std::vector<int64_t> one{1};
  pg().all_reduce(one.data(), 1, ReduceOp::Sum);
  CHECK(one[0] == pg().size());
}

TEST_CASE("dist: SingleProcess leaves data as it is") {
  SingleProcess single;
  CHECK(single.rank() == 0);
  CHECK(single.size() == 1);
  CHECK(std::string(single.name()) == "single");
  std::vector<double> v{1.5, -2};
  single.broadcast(v.data(), 2, 0);
  single.all_reduce(v.data(), 2, ReduceOp::Max);
  CHECK(single.all_reduce_async(v.data(), 2, ReduceOp::Sum)->done());
  CHECK(v == std::vector<double>{1.5, -2});
  std::vector<double> out(2);
  single.all_gather(v.data(), 2, out.data());
  CHECK(out == v);
  CHECK(single.all_gather_bytes("abc") == std::vector<std::string>{"abc"});
  single.barrier();
  CHECK_THROWS_WITH_AS(single.broadcast(v.data(), 2, 1), doctest::Contains("root 1 is outside [0, 1)"), tv::Error);
}

// GradReducer and the running statistics on a tiny module: the gradients after finish() are the sum over the
// ranks, in several buckets, zeros for a parameter no rank's backward reached; each rank's running statistics
// become their weighted average.
namespace {
struct Tiny : tv::nn::Module<float> {
  tv::Tensor<float> a, b, unused, running_mean;
  Tiny() {
    a = register_parameter("a", tv::zeros<float>({300}));
    b = register_parameter("b", tv::zeros<float>({5}));
    unused = register_parameter("unused", tv::zeros<float>({7}));
    running_mean = register_buffer("running_mean", tv::zeros<float>({3}));
  }
};
}  // namespace

TEST_CASE("dist: GradReducer sums every gradient over the ranks, bucket by bucket, zeros where none came") {
  ProcessGroup& pg = world();
  const int R = pg.size(), r = pg.rank();
  Tiny m;
  // Buckets of 1,000 bytes: `a` (1,200 bytes) alone, then b and unused together.
  GradReducer reducer(pg, m.parameters(), {.bucket_mb = 1000.0 / (1 << 20)});
  CHECK(reducer.num_buckets() == 2);
  CHECK_THROWS_WITH_AS(GradReducer(pg, {tv::zeros<float>({2})}), doctest::Contains("parameter 0 is not a leaf that "
                       "requires grad"), tv::Error);
  for (int iteration = 0; iteration < 2; ++iteration) {  // the buffers and hooks serve again
    m.zero_grad();
    // rank k's loss: (k + 1) * sum(a) + (k + 1) * iteration * sum(b * b)
    const float k = static_cast<float>(r + 1);
    tv::Tensor<float> loss = tv::sum(m.a) * k + tv::sum(m.b * m.b) * (k * static_cast<float>(iteration));
    loss.backward();
    reducer.finish();
    const float ranks_sum = static_cast<float>(R * (R + 1) / 2);  // sum of k + 1 over the ranks
    CHECK(m.a.grad().to_vector() == std::vector<float>(300, ranks_sum));
    CHECK(m.b.grad().to_vector() == std::vector<float>(5, 0.0f));  // b is 0: d/db of b^2 is 0
    REQUIRE(m.unused.grad().defined() == (R > 1));
    if (R > 1) CHECK(m.unused.grad().to_vector() == std::vector<float>(7, 0.0f));
  }
  // Running statistics: rank k holds k + 1; weights 1/R each -> the mean of 1..R.
  m.running_mean.fill_(static_cast<float>(r + 1));
  average_running_stats(pg, m, 1.0 / R);
  const float mean = static_cast<float>(R + 1) / 2;
  for (float v : m.running_mean.to_vector()) CHECK(v == doctest::Approx(mean).epsilon(1e-6));
}
