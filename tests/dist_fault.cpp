// A rank that fails mid-run, for tests/dist_fault.cmake: both ranks all_reduce three times, and before the third
// rank 1 instead, by the mode in argv[1],
//   hang   sleeps 20 s (the others must time out: TINYVID_DIST_TIMEOUT),
//   exit   calls std::exit(3) (a normal exit: the others must stop at once, not at their timeout),
//   abort  calls abort() with a message (every rank ends now),
//   throw  throws a tv::Error out of main (std::terminate: the launcher ends the others).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <tinyvid/dist/process_group.hpp>
#include <vector>

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  if (mode != "hang" && mode != "exit" && mode != "abort" && mode != "throw") {
    std::fprintf(stderr, "usage: %s hang|exit|abort|throw (under mpirun -np 2)\n", argv[0]);
    return 2;
  }
  tv::dist::ProcessGroup& pg = tv::dist::world();
  std::vector<float> x(1024, 1.0f);
  for (int step = 1; step <= 3; ++step) {
    if (step == 3 && pg.rank() == 1) {
      if (mode == "hang") std::this_thread::sleep_for(std::chrono::seconds(20));
      if (mode == "exit") {
        std::fprintf(stderr, "rank 1: leaving with exit code 3 on purpose\n");
        std::exit(3);
      }
      if (mode == "abort") pg.abort("a data file is missing (on purpose)");
      if (mode == "throw") throw tv::Error("tinyvid: thrown on purpose");
    }
    pg.all_reduce(x.data(), 1024, tv::dist::ReduceOp::Sum);
  }
  std::printf("rank %d: all steps done\n", pg.rank());
  return 0;
}
