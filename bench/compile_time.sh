#!/usr/bin/env bash
# Compile time of a user's file: a small typical program that includes <tinyvid/tinyvid.hpp>, built as the
# CMake target tinyvid::tinyvid builds it (mode "compiled": -DTINYVID_COMPILED, the common template instances
# come from the target's library, include/tinyvid/instances.hpp) and as a header-only user builds it (mode
# "header_only"); the same program including only the headers it needs (header-only: the floor of the header
# layout); and a file that includes only <Eigen/Dense> and does a small matrix product (the reference), each
# at -O0 and -O2. Flags are what the target gives a user: -std=c++20, include/ and Eigen's include dir,
# -fopenmp, and -DTINYVID_WITH_OPENBLAS -DEIGEN_USE_BLAS where Debian's OpenMP build of OpenBLAS is
# installed (as cmake/TinyvidBlas.cmake decides); no -march=native (the user chooses).
# Every compile (-c, to an object file) runs --reps times, interleaved; the best wall time counts.
# Prints one JSON line per figure: seconds (best wall), cpu_seconds (best user+sys) and, for tinyvid's
# files, ratio = seconds / the Eigen file's seconds at the same -O.
# Usage: bash bench/compile_time.sh [--reps N] [--opt "O0 O2"] [--include DIR] [--flags "EXTRA FLAGS"]
#   --include: another include/ tree (e.g. an experimental copy); default the repo's include/
#   --flags:   added to tinyvid's compiles only (e.g. "-march=native", or a mode define)
#   CXX (environment): the compiler, default g++; ccache is bypassed so every run compiles.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
reps=3
opts="O0 O2"
include="$root/include"
extra=""
while (($#)); do
  case "$1" in
    --reps) reps="$2"; shift 2 ;;
    --opt) opts="$2"; shift 2 ;;
    --include) include=$(realpath "$2"); shift 2 ;;
    --flags) extra="$2"; shift 2 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "compile_time.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
opts=$(sed 's/-//g' <<< "$opts")  # "O2" or "-O2"
for opt in $opts; do
  [[ "$opt" =~ ^O[0-3sg]$ ]] || { echo "compile_time.sh: --opt expects levels such as \"O0 O2\", got '$opt'" >&2; exit 2; }
done
[[ "$reps" =~ ^[1-9][0-9]*$ ]] || { echo "compile_time.sh: --reps expects a positive number, got '$reps'" >&2; exit 2; }

cxx=$(command -v "${CXX:-g++}") || { echo "compile_time.sh: ${CXX:-g++} not found (bash tools/install_deps.sh)" >&2; exit 1; }
if [[ "$(basename "$(readlink -f "$cxx")")" == ccache ]]; then  # a ccache masquerade dir in PATH: time the real compiler
  cxx=$(command -v "/usr/bin/$(basename "$cxx")") || { echo "compile_time.sh: $cxx is ccache; set CXX to the compiler" >&2; exit 1; }
fi
eigen=""
for d in /usr/include/eigen3 /usr/local/include/eigen3; do [[ -f "$d/Eigen/Dense" ]] && { eigen=$d; break; }; done
if [[ -z "$eigen" ]] && command -v pkg-config >/dev/null && pkg-config --exists eigen3; then
  eigen=$(pkg-config --variable=includedir eigen3)
fi
[[ -n "$eigen" && -f "$eigen/Eigen/Dense" ]] || { echo "compile_time.sh: Eigen 3 not found (libeigen3-dev)" >&2; exit 1; }
[[ -f "$include/tinyvid/tinyvid.hpp" ]] || { echo "compile_time.sh: no tinyvid/tinyvid.hpp under $include" >&2; exit 1; }

common=(-std=c++20 -isystem "$eigen" -fopenmp)
arch=$("$cxx" -print-multiarch 2>/dev/null || true)
blas=no
for d in "/usr/lib/$arch/openblas-openmp" /usr/lib64/openblas-openmp; do
  if [[ -n "$d" && -e "$d/libopenblas.so" ]]; then blas=yes; break; fi
done
tinyvid_flags=(-I"$include")
[[ $blas == yes ]] && tinyvid_flags+=(-DTINYVID_WITH_OPENBLAS -DEIGEN_USE_BLAS)
read -r -a extra_flags <<< "$extra"
tinyvid_flags+=("${extra_flags[@]}")

# The figures are single-threaded compiles: other work on the machine inflates them (wall time most).
read -r load _ < /proc/loadavg || load=0
if awk -v l="$load" -v n="$(nproc)" 'BEGIN { exit !(l > n) }'; then
  echo "compile_time.sh: load average $load on $(nproc) cores; the figures will be inflated (cpu_seconds less so)" >&2
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# (a) what a user writes: a Conv2d + BatchNorm2d + Linear network, a forward, a backward, an SGD step.
body='
int main() {
  using namespace tv::nn;
  auto conv = std::make_shared<Conv2d<float>>(Conv2dOptions(3, 8, 3).padding(1));
  auto bn = std::make_shared<BatchNorm2d<float>>(BatchNormOptions(8));
  auto fc = std::make_shared<Linear<float>>(8, 10);
  std::vector<tv::Tensor<float>> params;
  for (auto* m : std::initializer_list<Module<float>*>{conv.get(), bn.get(), fc.get()})
    for (auto& p : m->parameters()) params.push_back(p);
  tv::optim::SGD opt(params, tv::optim::SGDOptions(0.1).momentum(0.9));
  auto x = tv::normal<float>({4, 3, 16, 16});
  auto labels = tv::zeros<int64_t>({4});
  auto y = tv::relu((*bn)((*conv)(x)));
  auto loss = tv::cross_entropy((*fc)(tv::mean(y, {2, 3})), labels);
  opt.zero_grad();
  loss.backward();
  opt.step();
  std::printf("loss %.4f\n", loss.item());
}'
{
  echo '#include <tinyvid/tinyvid.hpp>'
  echo '#include <cstdio>'
  echo "$body"
} > "$work/user_umbrella.cpp"
cp "$work/user_umbrella.cpp" "$work/user_umbrella_header_only.cpp"
# (c) the same program including only the headers it uses: the floor of the header layout.
{
  echo '#include <tinyvid/autograd/engine.hpp>'
  echo '#include <tinyvid/nn/layers.hpp>'
  echo '#include <tinyvid/ops/loss.hpp>'
  echo '#include <tinyvid/optim/sgd.hpp>'
  echo '#include <cstdio>'
  echo "$body"
} > "$work/user_minimal.cpp"
# (b) the reference: Eigen only, a small matrix product.
cat > "$work/eigen_dense.cpp" <<'EOF'
#include <Eigen/Dense>
#include <cstdio>
int main() {
  Eigen::MatrixXf a = Eigen::MatrixXf::Random(64, 32), b = Eigen::MatrixXf::Random(32, 16);
  Eigen::MatrixXf c = a * b;
  std::printf("%f\n", c.sum());
}
EOF

files=(eigen_dense user_umbrella user_umbrella_header_only user_minimal)
declare -A wall cpu
# One compile: sets the globals w (wall seconds) and c (user+sys seconds); a failure shows the errors and exits.
compile() {
  local file=$1 opt=$2 flags=("${common[@]}")
  [[ $file != eigen_dense ]] && flags+=("${tinyvid_flags[@]}")
  [[ $file == user_umbrella ]] && flags+=(-DTINYVID_COMPILED)
  local t0 t1 times
  t0=$(date +%s.%N)
  times=$( { TIMEFORMAT='%U %S'; time "$cxx" "${flags[@]}" "-$opt" -c "$work/$file.cpp" -o "$work/$file.o" 2>"$work/err"; } 2>&1 ) || {
    echo "compile_time.sh: $file.cpp failed at -$opt:" >&2
    head -30 "$work/err" >&2
    exit 1
  }
  t1=$(date +%s.%N)
  w=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
  c=$(awk '{ printf "%.3f", $1 + $2 }' <<< "$times")
}
for ((r = 0; r < reps; ++r)); do
  for opt in $opts; do
    for f in "${files[@]}"; do
      compile "$f" "$opt"
      k="$f/$opt"
      if [[ -z "${wall[$k]:-}" ]] || awk -v a="$w" -v b="${wall[$k]}" 'BEGIN { exit !(a < b) }'; then wall[$k]=$w; fi
      if [[ -z "${cpu[$k]:-}" ]] || awk -v a="$c" -v b="${cpu[$k]}" 'BEGIN { exit !(a < b) }'; then cpu[$k]=$c; fi
    done
  done
done

version=$("$cxx" -dumpfullversion 2>/dev/null || "$cxx" -dumpversion)
for opt in $opts; do
  ref=${wall[eigen_dense/$opt]}
  ref_cpu=${cpu[eigen_dense/$opt]}
  for f in "${files[@]}"; do
    k="$f/$opt"
    if [[ $f == eigen_dense ]]; then
      printf '{"bench":"compile_time","impl":"eigen","file":"%s","opt":"%s","compiler":"%s %s","reps":%d,"seconds":%s,"cpu_seconds":%s}\n' \
        "$f" "$opt" "$(basename "$cxx")" "$version" "$reps" "${wall[$k]}" "${cpu[$k]}"
    else
      ratio=$(awk -v a="${wall[$k]}" -v b="$ref" 'BEGIN { printf "%.2f", a / b }')
      ratio_cpu=$(awk -v a="${cpu[$k]}" -v b="$ref_cpu" 'BEGIN { printf "%.2f", a / b }')
      mode=header_only
      [[ $f == user_umbrella ]] && mode=compiled
      printf '{"bench":"compile_time","impl":"tinyvid","file":"%s","mode":"%s","opt":"%s","compiler":"%s %s","openblas":%s,"flags":"%s","reps":%d,"seconds":%s,"cpu_seconds":%s,"ratio":%s,"ratio_cpu":%s}\n' \
        "$f" "$mode" "$opt" "$(basename "$cxx")" "$version" "$([[ $blas == yes ]] && echo true || echo false)" "$extra" "$reps" "${wall[$k]}" \
        "${cpu[$k]}" "$ratio" "$ratio_cpu"
    fi
  done
done
