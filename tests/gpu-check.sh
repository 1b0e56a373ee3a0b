#!/bin/sh
# gpu-check.sh -- everything about the CUDA backend that needs a GPU, in one
# run, for a session that has one (no GPU in make check or CI: there the
# GPU tests skip).  Run from the top of a source tree:
#
#   sh tests/gpu-check.sh [BUILDDIR] 2>&1 | tee gpu-check.log
#
# BUILDDIR defaults to the source tree itself.  It builds when BUILDDIR has
# no Makefile (configure --with-cuda, make), then runs, going on after a
# failure:
#  1. tests/test-backend cuda:0 -- every op and three whole layers (dense,
#     one without attention, one without FFN, padding masked) against
#     double-precision references (tolerances in tests/test-backend.c);
#  2. the reference tests with the encoder on the GPU (PRUMUX_DEVICE):
#     random dense and CoFi-pruned encoders and the real all-MiniLM-L6-v2
#     against PyTorch (infer-ref.sh), the MUX pipeline N = 1, 2, 5 against
#     PyTorch (mux-e2e.sh), all-MiniLM-L6-v2 through the whole pipeline
#     (pipeline-minilm.sh), all within 1e-4;
#  3. tests/gpu-pipeline.sh: logits of prumux-mux | prumux-infer |
#     prumux-demux on the GPU within 1e-4 of the CPU's: dense N = 1, MUX
#     N = 2, 5, 10 and a CoFi-pruned N = 5 model, and cuda:0:tf32's
#     difference printed (TF32's tolerance is not set yet);
#  4. the benchmark at the paper's protocol (fp32, T = 128, batch 128 N
#     rows = 128 sequences): bench/encoder-bench on cuda:0 for BERT-base and
#     a CoFi-pruned BERT-base, and bench/pipeline-bench.sh (rows/s of the
#     whole pipeline, mux and demux on the CPU) for N = 1, 2, 5, 10, with
#     the most GPU memory nvidia-smi saw in use.
# STEPS (default "1 2 3 4") picks steps, so that the run fits a device
# session's time in parts: STEPS="1 3" sh tests/gpu-check.sh; "cpu" adds
# the CPU's pipeline-bench for comparison.
# Exit status: 0 if every check passed, 1 otherwise.
set -u
src=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$src}
mkdir -p "$build" && cd "$build" || exit 1
build=$(pwd)
fails=0
steps=" ${STEPS:-1 2 3 4} "
want () { case $steps in *" $1 "*) return 0;; esac; return 1; }
fail () { echo "FAIL: $*"; fails=$((fails + 1)); }
step () { echo; echo "== $* ($(date -u +%H:%M:%S))"; }

step "machine"
nvidia-smi || fail "nvidia-smi"
lscpu | grep 'Model name'
if [ ! -f Makefile ]; then
  step "build"
  [ -f "$src/configure" ] || (cd "$src" && autoreconf -fi) || { fail autoreconf; exit 1; }
  "$src/configure" --with-cuda || { fail configure; exit 1; }
  make -j"$(nproc)" || { fail make; exit 1; }
fi
make -j"$(nproc)" tests/test-backend bench/encoder-bench || fail "make the tests"
grep -q '^#define HAVE_CUDA 1' config.h || { fail "not built with CUDA"; exit 1; }

if want 1; then
step "1. per-op harness and whole layers on cuda:0"
./tests/test-backend cuda:0; rc=$?
[ $rc = 0 ] || fail "test-backend cuda:0 (exit $rc)"
fi

if want 2; then
step "2. reference tests with PRUMUX_DEVICE=cuda:0"
tests='tests/cuda-host.sh tests/infer-ref.sh tests/mux-e2e.sh tests/pipeline-minilm.sh'
PRUMUX_DEVICE=cuda:0 make check TESTS="$tests" || fail "reference tests on the GPU"
for t in $tests; do
  echo "-- ${t%.sh}.log"; cat "${t%.sh}.log"
done
fi

if want 3; then
step "3. logits, GPU against CPU (tests/gpu-pipeline.sh)"
make check TESTS=tests/gpu-pipeline.sh || fail "gpu-pipeline.sh"
cat tests/gpu-pipeline.log
grep -q '^:test-result: PASS' tests/gpu-pipeline.trs \
  || fail "gpu-pipeline.sh did not pass (skipped?)"
fi
w=$build/gpu-check.d
rm -rf "$w" && mkdir -p "$w"

if want 4; then
step "4. benchmark (fp32, T = 128, 128 sequences)"
peak=$w/gpu-mem
( m=0; while :; do
    u=$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits 2>/dev/null | head -1)
    [ -n "$u" ] && [ "$u" -gt "$m" ] 2>/dev/null && { m=$u; echo "$m" > "$peak"; }
    sleep 0.2
  done ) &
sampler=$!
base="--layers=12 --hidden=768 --heads=12 --ffn=3072"
pruned="--layers=12 --hidden=768 --heads=12,11,10,9,8,6,5,4,3,2,0,0 \
--ffn=3072,2600,2200,1900,1600,1300,1000,800,600,400,200,0"
for dev in cuda:0 cuda:0:tf32; do
  for shape in base pruned; do
    eval args=\$$shape
    for pos in all cls; do
      echo 0 > "$peak"
      # shellcheck disable=SC2086
      bench/encoder-bench $args --seq=128 --batch=128 --passes=10 --positions=$pos \
        --device=$dev || fail "encoder-bench $shape $dev"
      sleep 0.5
      echo "  $shape $dev positions $pos: most GPU memory in use $(cat "$peak") MiB" \
           "(the whole GPU, nvidia-smi)"
    done
  done
done
echo "(rows/s of the encoder = N x seq/s: N = 10 multiplexes 1280 rows into these 128"
echo " sequences; the pipeline below measures rows/s with mux and demux on the CPU)"
echo 0 > "$peak"
PRUMUX_DEVICE=cuda:0 sh "$src/bench/pipeline-bench.sh" bin 128 || fail "pipeline-bench"
echo "pipeline: most GPU memory in use $(cat "$peak") MiB"
kill "$sampler" 2>/dev/null
fi
if want cpu; then
  step "the same pipeline on the CPU"
  sh "$src/bench/pipeline-bench.sh" bin 128 || fail "pipeline-bench (cpu)"
fi

step "done: $fails failure(s)"
[ "$fails" = 0 ]
