#pragma once
// Which vector instructions tinyvid's own CPU kernels use, chosen at run time from CPUID (docs/cpu_kernels.md
// says why not at compile time): AVX-512 where the CPU has it, else AVX2 + FMA, else none (the generic path:
// BLAS or Eigen, and plain loops). TINYVID_ISA=generic|avx2|avx512 in the environment, or set_isa(), lowers
// the choice (to compare kernels, or to run the AVX2 ones on an AVX-512 machine); asking for more than the CPU
// has is an error.
//
// The kernels (backend/cpu/microkernel.hpp) carry their ISA as a function attribute, so every translation unit
// has every body whatever its -m flags; a caller picks one with active_isa(), read once per operation.
// parallel_for reads it before opening a parallel region, so a bad TINYVID_ISA is reported (a tv::Error) by the
// first operation that runs on several threads, outside any region.
#include <omp.h>

#include <atomic>
#include <cstdlib>
#include <string>
#include <string_view>

#include "tinyvid/core/error.hpp"

// The kernels are built for x86-64 with GCC or Clang (their target attributes and intrinsics); elsewhere, and
// in device-compiler passes, only the generic path exists.
#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
#define TINYVID_X86_KERNELS 1
#endif

namespace tv::cpu {

enum class Isa { Generic = 0, Avx2 = 1, Avx512 = 2 };

inline const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Avx512: return "avx512";
    case Isa::Avx2: return "avx2";
    default: return "generic";
  }
}

inline Isa parse_isa(std::string_view name, std::string_view where) {
  if (name == "avx512") return Isa::Avx512;
  if (name == "avx2") return Isa::Avx2;
  if (name == "generic") return Isa::Generic;
  TV_FAIL(where, ": expected generic, avx2 or avx512, got '", name, "'");
}

// What the CPU (and the OS, which must save the wider registers) supports.
struct CpuFeatures {
  bool avx2 = false, fma = false, avx512f = false, avx512vl = false;
};

inline CpuFeatures detect_cpu_features() {
  CpuFeatures f;
#ifdef TINYVID_X86_KERNELS
  __builtin_cpu_init();
  f.avx2 = __builtin_cpu_supports("avx2");
  f.fma = __builtin_cpu_supports("fma");
  f.avx512f = __builtin_cpu_supports("avx512f");
  f.avx512vl = __builtin_cpu_supports("avx512vl");
#endif
  return f;
}

// Whether kernels of this ISA can run with these features (a pure function, so a test can check the refusal
// without such a CPU).
inline bool isa_supported(Isa isa, const CpuFeatures& f) {
#ifndef TINYVID_X86_KERNELS
  if (isa != Isa::Generic) return false;
#endif
  switch (isa) {
    case Isa::Avx512: return f.avx512f && f.avx512vl && f.avx2 && f.fma;
    case Isa::Avx2: return f.avx2 && f.fma;
    default: return true;
  }
}

inline Isa best_isa(const CpuFeatures& f) {
  for (Isa isa : {Isa::Avx512, Isa::Avx2})
    if (isa_supported(isa, f)) return isa;
  return Isa::Generic;
}

// The best ISA of this CPU, detected once.
inline Isa cpu_isa() {
  static const Isa isa = best_isa(detect_cpu_features());
  return isa;
}

namespace detail {
inline Isa check_supported(Isa isa, std::string_view where) {
  TV_CHECK(isa <= cpu_isa(), where, ": ", isa_name(isa), " kernels asked for, but this CPU supports at most ",
           isa_name(cpu_isa()));
  return isa;
}

// What is wrong with TINYVID_ISA, if anything (set once, with the setting below).
inline std::string& isa_env_error() {
  static std::string error;
  return error;
}

// The ISA in use as an int, -1 when TINYVID_ISA is not one this CPU runs.
inline std::atomic<int>& isa_setting() {
  static std::atomic<int> setting{[] {
    const char* env = std::getenv("TINYVID_ISA");
    if (env == nullptr || *env == '\0') return static_cast<int>(cpu_isa());
    try {
      return static_cast<int>(check_supported(parse_isa(env, "TINYVID_ISA"), "TINYVID_ISA"));
    } catch (const Error& e) {
      isa_env_error() = e.what();
      return -1;
    }
  }()};
  return setting;
}
}  // namespace detail

// The ISA the kernels use now: the CPU's best, or what TINYVID_ISA / set_isa chose. A bad TINYVID_ISA is a
// tv::Error at every call outside a parallel region; inside one, where nothing may throw, the generic path runs.
inline Isa active_isa() {
  const int setting = detail::isa_setting().load(std::memory_order_relaxed);
  if (setting >= 0) return static_cast<Isa>(setting);
  if (omp_in_parallel()) return Isa::Generic;
  throw Error(detail::isa_env_error());
}

inline void set_isa(Isa isa) {
  detail::isa_setting().store(static_cast<int>(detail::check_supported(isa, "tv::cpu::set_isa")),
                              std::memory_order_relaxed);
}

// Runs a scope with other kernels (tests, benchmarks), restoring the previous choice at its end.
class ScopedIsa {
 public:
  explicit ScopedIsa(Isa isa) : previous_(active_isa()) { set_isa(isa); }
  ~ScopedIsa() { set_isa(previous_); }
  ScopedIsa(const ScopedIsa&) = delete;
  ScopedIsa& operator=(const ScopedIsa&) = delete;

 private:
  Isa previous_;
};

}  // namespace tv::cpu
