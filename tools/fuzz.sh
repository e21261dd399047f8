#!/usr/bin/env bash
# Fuzzes the readers with libFuzzer (ASan + UBSan), each target for the given seconds (default 30):
#   bash tools/fuzz.sh [seconds] [target...]
# Targets: safetensors (the .safetensors parser), video (VideoReader on FFmpeg), image (read_image /
# FrameFolderReader on libjpeg / libpng); all of them by default (video and image only where tinyvid::video is built).
# Builds tests/fuzz/fuzz_<target> with clang in build-fuzz/ (or $TINYVID_FUZZ_BUILD), seeds each corpus
# (build-fuzz/fuzz-corpus/<target>) with small real files and past findings (tests/fuzz/regressions/), and
# stops a target at its first finding, leaving the input as build-fuzz/<target>-crash-* (or -timeout-*,
# -oom-*). Every target runs; the exit code is non-zero if any had a finding.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-30}"
shift || true
build="${TINYVID_FUZZ_BUILD:-build-fuzz}"

# clang, the OpenMP runtime clang links (the tinyvid target uses OpenMP) and the fuzzer/sanitizer
# runtimes (only recommended by clang, so asked for by name).
bash tools/install_deps.sh clang libomp-dev libclang-rt-dev

CXX=clang++ cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTINYVID_BUILD_EXAMPLES=OFF -DTINYVID_CUDA=OFF \
  -DTINYVID_BUILD_BENCH=OFF >/dev/null

if (($#)); then
  targets=("$@")
else
  targets=(safetensors)
  # The video targets exist only where CMake found FFmpeg, libjpeg and libpng (tinyvid::video).
  if [[ $(cmake --build "$build" --target help) == *fuzz_video* ]]; then targets+=(video image); fi
fi
for t in "${targets[@]}"; do
  case "$t" in safetensors | video | image) ;; *) echo "fuzz.sh: unknown target '$t' (safetensors, video, image)" >&2; exit 2 ;; esac
done
cmake --build "$build" -j"$(nproc)" --target "${targets[@]/#/fuzz_}"

videos=tests/data/videos
seed() {  # seed TARGET: fills the corpus folder $corpus and sets the target's libFuzzer options $opts
  corpus="$build/fuzz-corpus/$1"
  mkdir -p "$corpus"
  # Inputs of past findings (tests/fuzz/regressions/<target>/) run first, so a fix that comes undone shows.
  if [[ -d tests/fuzz/regressions/$1 ]]; then cp tests/fuzz/regressions/"$1"/* "$corpus/"; fi
  opts=()
  case "$1" in
    safetensors)
      cp tests/fixtures/io_reference.safetensors "$corpus/"
      # The header's tokens, so mutations reach the checks past the JSON syntax.
      cat >"$build/safetensors.dict" <<'EOF'
"\"dtype\""
"\"shape\""
"\"data_offsets\""
"\"__metadata__\""
"\"F64\""
"\"F32\""
"\"F16\""
"\"BF16\""
"\"I64\""
"\"U8\""
"\"BOOL\""
"\\u"
"\\ud83d\\ude00"
EOF
      opts=(-dict="$build/safetensors.dict")
      ;;
    video)
      # The small files of PROVENANCE.md (<= 48 KB: containers MP4/MOV, WebM, Matroska with H.264, VP9,
      # MS-MPEG4; rotation; B-frame reordering; the broken ones), plus heads of AVI and WAV files.
      for f in unordered.mov video_0.mov video_90.mov video_180.mov video_270.mov test_stereo_left_right.webm \
        bbb_480p_vp9_opus_1second.webm corrupted.mp4 block_ends_beyond_cluster.mkv \
        invalid_vp9_bitstream-bug_1416.webm fixed_lacing_bad_lace_size.mkv; do
        cp "$videos/$f" "$corpus/"
      done
      head -c 32768 "$videos/test.avi" >"$corpus/test_head.avi"
      head -c 4096 "$videos/test.wav" >"$corpus/test_head.wav"
      # Inputs are at most 64 KB (the seeds fit); a hang past 10 s or 2 GB is a finding.
      opts=(-max_len=65536 -timeout=10 -rss_limit_mb=2048)
      ;;
    image)
      cp "$videos/rawframes/img_sample/img_00001.jpg" "$corpus/rgb.jpg"
      cp "$videos/rawframes/flow_sample/x_00001.jpg" "$corpus/gray.jpg"
      # Small PNGs (RGB, gray + alpha) and a PPM (which read_image must refuse).
      python3 - "$corpus" <<'EOF'
import struct, sys, zlib
def png(path, w, h, color, channels, interlace):
    def chunk(t, d): return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
    raw = b"".join(b"\0" + bytes((x * 37 + y * 11 + c * 5) % 256 for x in range(w) for c in range(channels)) for y in range(h))
    ihdr = struct.pack(">IIBBBBB", w, h, 8, color, 0, 0, interlace)
    open(path, "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
png(sys.argv[1] + "/rgb.png", 8, 6, 2, 3, 0)
png(sys.argv[1] + "/gray_alpha.png", 5, 7, 4, 2, 0)
open(sys.argv[1] + "/rgb.ppm", "wb").write(b"P6\n4 3\n255\n" + bytes(range(36)))
EOF
      opts=(-max_len=65536 -timeout=10 -rss_limit_mb=2048)
      ;;
  esac
}

failed=()
for t in "${targets[@]}"; do
  seed "$t"
  echo "== fuzz_$t for ${seconds} s"
  if ! "$build/tests/fuzz_$t" -max_total_time="$seconds" "${opts[@]}" -artifact_prefix="$build/$t-" \
    -print_final_stats=1 "$corpus"; then
    failed+=("$t")
  fi
done
if ((${#failed[@]})); then
  echo "fuzz.sh: findings in: ${failed[*]} (inputs under $build/)" >&2
  exit 1
fi
