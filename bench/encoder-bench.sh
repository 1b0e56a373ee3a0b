#!/bin/sh
# encoder-bench.sh BENCH PYTHON TORCH_SCRIPT [ORT_PYTHON ORT_SCRIPT] -- the
# encoder, ONNX Runtime and PyTorch side by side (make bench-encoder):
# BERT-base, MiniLM-L6 and a CoFi-pruned BERT-base, T = 128, batch 32,
# 2 threads, fp32, random weights.  ONNX Runtime runs the same encoder graph
# exported from PyTorch (bench/ort_encoder.py); it is skipped with a note
# when ORT_PYTHON has no onnxruntime.
#
# The machine may be shared, so each shape runs REPEAT rounds, each round
# the encoder (all positions, the CLS row only, and all positions with
# OpenBLAS instead of the packed GEMM kernels) and torch back to back:
# compare the ranges, and the best passes, which are least disturbed.  With
# THREADS=1 compare "seq per CPU-s", which other processes hardly disturb.
# SHAPES, THREADS, BATCH, PASSES and REPEAT override the defaults.
bench=$1 py=$2 torch_script=$3 ort_py=${4:-python3} ort_script=${5:-}
threads=${THREADS:-2} batch=${BATCH:-32} passes=${PASSES:-3} repeat=${REPEAT:-2}
shapes=${SHAPES:-"base minilm pruned"}

base="--layers=12 --hidden=768 --heads=12 --ffn=3072"
minilm="--layers=6 --hidden=384 --heads=12 --head-dim=32 --ffn=1536"
# A CoFi-style pruned BERT-base: fewer heads and a narrower FFN in the upper
# layers, two layers without attention, one without FFN.
pruned="--layers=12 --hidden=768 --heads=12,11,10,9,8,6,5,4,3,2,0,0 \
--ffn=3072,2600,2200,1900,1600,1300,1000,800,600,400,200,0"

echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) online"
have_torch=yes
"$py" -c 'import torch' 2>/dev/null || { have_torch=no; echo "no torch: encoder only"; }
forced_core=
grep -qw avx2 /proc/cpuinfo && forced_core=Haswell
grep -qw avx512f /proc/cpuinfo && forced_core=SkylakeX
grep -qw avx512_bf16 /proc/cpuinfo && forced_core=Cooperlake
have_ort=no
if [ -n "$ort_script" ] && [ $have_torch = yes ] &&
   "$ort_py" -c 'import onnxruntime' 2>/dev/null; then
  have_ort=yes
  onnx_dir=$(mktemp -d) || exit 1
  trap 'rm -rf "$onnx_dir"' EXIT
else
  echo "no onnxruntime for $ort_py (pip install onnxruntime): no ONNX Runtime figures"
fi
for shape in $shapes; do
  eval args=\$$shape
  i=0
  while [ $i -lt "$repeat" ]; do
    i=$((i + 1))
    echo "== $shape, round $i: $(date -u +%H:%M:%S), load $(cut -d' ' -f1-3 /proc/loadavg)"
    sgemm=
    [ $i = 1 ] && sgemm=--sgemm
    # shellcheck disable=SC2086
    "$bench" $args --seq=128 --batch="$batch" --threads="$threads" --passes="$passes" \
      $sgemm || exit 1
    # shellcheck disable=SC2086
    "$bench" $args --seq=128 --batch="$batch" --threads="$threads" --passes="$passes" \
      --positions=cls || exit 1
    # The same encoder with OpenBLAS for the dense layers, for comparison
    # with the packed-weight kernels (lib/cpu/gemm.c) that the lines above use.
    # shellcheck disable=SC2086
    "$bench" $args --seq=128 --batch="$batch" --threads="$threads" --passes="$passes" \
      --device=cpu:blas || exit 1
    if [ $have_ort = yes ]; then
      [ -f "$onnx_dir/$shape.onnx" ] ||
        "$py" "$ort_script" $args --seq=128 --batch="$batch" \
          --export="$onnx_dir/$shape.onnx" >/dev/null 2>&1 || exit 1
      # shellcheck disable=SC2086
      "$ort_py" "$ort_script" $args --seq=128 --batch="$batch" --threads="$threads" \
        --passes="$passes" --run="$onnx_dir/$shape.onnx" || exit 1
    fi
    if [ $have_torch = yes ]; then
      # Torch at its best here (PERF-ANCHORS.md): one torch thread, the fp32
      # GEMMs in OpenBLAS's pool of THREADS.
      # shellcheck disable=SC2086
      OPENBLAS_NUM_THREADS=$threads OMP_NUM_THREADS=1 "$py" "$torch_script" $args \
        --seq=128 --batch="$batch" --passes="$passes" || exit 1
      # Debian's OpenBLAS 0.3.21 falls back to generic SSE3 kernels on CPUs
      # it does not know: also run torch with the core type forced to the
      # best this CPU runs, and take the faster of the two.
      # shellcheck disable=SC2086
      [ -n "$forced_core" ] &&
        { echo "(torch with OPENBLAS_CORETYPE=$forced_core)"
          OPENBLAS_CORETYPE=$forced_core OPENBLAS_NUM_THREADS=$threads OMP_NUM_THREADS=1 \
            "$py" "$torch_script" $args --seq=128 --batch="$batch" --passes="$passes" ||
            exit 1; }
    fi
  done
done
