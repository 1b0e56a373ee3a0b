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
#  3. logits of prumux-mux | prumux-infer | prumux-demux on the GPU within
#     1e-4 of the CPU's: dense N = 1, MUX N = 2, 5, 10 and a CoFi-pruned
#     N = 5 model (tests/ref-mux.py's weights), and the same on cuda:0:tf32
#     with its difference printed (TF32's tolerance is not set yet);
#  4. the benchmark at the paper's protocol (fp32, T = 128, batch 128 N
#     rows = 128 sequences): bench/encoder-bench on cuda:0 for BERT-base and
#     a CoFi-pruned BERT-base, and bench/pipeline-bench.sh (rows/s of the
#     whole pipeline, mux and demux on the CPU) for N = 1, 2, 5, 10, with
#     the most GPU memory nvidia-smi saw in use.
# Exit status: 0 if every check passed, 1 otherwise.
set -u
src=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$src}
mkdir -p "$build" && cd "$build" || exit 1
build=$(pwd)
fails=0
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

step "1. per-op harness and whole layers on cuda:0"
./tests/test-backend cuda:0; rc=$?
[ $rc = 0 ] || fail "test-backend cuda:0 (exit $rc)"

step "2. reference tests with PRUMUX_DEVICE=cuda:0"
tests='tests/cuda-host.sh tests/infer-ref.sh tests/mux-e2e.sh tests/pipeline-minilm.sh'
PRUMUX_DEVICE=cuda:0 make check TESTS="$tests" || fail "reference tests on the GPU"
for t in $tests; do
  echo "-- ${t%.sh}.log"; cat "${t%.sh}.log"
done

step "3. logits, GPU against CPU"
py=/usr/bin/python3
"$py" -c 'import torch' 2>/dev/null || py=python3
w=$build/gpu-check.d
rm -rf "$w" && mkdir -p "$w"
# The max absolute difference of the numbers of two TSV files.
maxdiff () {
  paste "$1" "$2" | awk -F'\t' '{ n = NF / 2; for (i = 1; i <= n; i++) {
      d = $i - $(i + n); d = d < 0 ? -d : d; m = d > m ? d : m } }
    END { printf "%.3g\n", m + 0 }'
}
"$py" - "$src/tests" "$w" <<'PYEOF' || fail "cannot write the models"
import importlib.util, os, sys
sys.path.insert(0, sys.argv[1])
import numpy as np
import pmxstream
spec = importlib.util.spec_from_file_location("refmux", os.path.join(sys.argv[1], "ref-mux.py"))
m = importlib.util.module_from_spec(spec)
spec.loader.exec_module(m)
out = sys.argv[2]
for name, n, demux, shape in [("dense1", 1, "index_pos", {}), ("mux2", 2, "index_pos", {}),
                              ("mux5", 5, "index_pos", {}), ("mux10", 10, "index_pos", {}),
                              ("mux2index", 2, "index", {}),
                              ("pruned5", 5, "index_pos",
                               {"H": 24, "D": 32, "pruned": True, "layers": 3})]:
    W = m.make_model(17 + n, n, demux, labels=2, head_dim=8, **shape)
    pmxstream.write(os.path.join(out, name + ".pmxs"), [{k: v.numpy() for k, v in W.items()}],
                    {"id": name, "hidden": shape.get("H", 32), "layers": shape.get("layers", 2),
                     "head_dim": 8, "mux_n": n,
                     "mux_variant": "gaussian_hadamard" if n > 1 else "none",
                     "demux_variant": demux if n > 1 else "none", "num_labels": 2,
                     "labels": "neg,pos", "max_length": 16, "attend_padding": int(n > 1),
                     "pooling": "cls"})
PYEOF
for m in dense1 mux2 mux5 mux10 mux2index pruned5; do
  "$py" "$src/tests/ref-mux.py" tokens "$w/$m.tok" 503 "$m" || fail "tokens for $m"
  for dev in cpu cuda:0 cuda:0:tf32; do
    bin/prumux-mux -w "$w/$m.pmxs" "$w/$m.tok" \
      | bin/prumux-infer -w "$w/$m.pmxs" --device=$dev \
      | bin/prumux-demux -w "$w/$m.pmxs" --output=logits > "$w/$m.$dev.tsv" \
      || fail "$m on $dev"
  done
  d=$(maxdiff "$w/$m.cpu.tsv" "$w/$m.cuda:0.tsv")
  d32=$(maxdiff "$w/$m.cpu.tsv" "$w/$m.cuda:0:tf32.tsv")
  echo "$m: $(wc -l < "$w/$m.cpu.tsv") rows; max |logits cuda:0 - cpu| = $d;" \
       "cuda:0:tf32 - cpu = $d32"
  [ "$(wc -l < "$w/$m.cpu.tsv")" = 503 ] || fail "$m: not 503 rows"
  awk -v d="$d" 'BEGIN { exit !(d <= 1e-4) }' || fail "$m: cuda:0 differs by $d > 1e-4"
done

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
sh "$src/bench/pipeline-bench.sh" bin 128 || fail "pipeline-bench (cpu)"
kill "$sampler" 2>/dev/null

step "done: $fails failure(s)"
[ "$fails" = 0 ]
