#!/bin/sh
# encoder-bench.sh BENCH PYTHON TORCH_SCRIPT -- the encoder and PyTorch side
# by side (make bench-encoder): BERT-base, MiniLM-L6 and a CoFi-pruned
# BERT-base, T = 128, batch 32, 2 threads, fp32, random weights.
#
# The machine may be shared, so each shape runs REPEAT rounds, each round
# the encoder (all positions, the CLS row only, and all positions with
# OpenBLAS instead of the packed GEMM kernels) and torch back to back:
# compare the ranges, and the best passes, which are least disturbed.  With
# THREADS=1 compare "seq per CPU-s", which other processes hardly disturb.
# SHAPES, THREADS, BATCH, PASSES and REPEAT override the defaults.
bench=$1 py=$2 torch_script=$3
threads=${THREADS:-2} batch=${BATCH:-32} passes=${PASSES:-3} repeat=${REPEAT:-2}
shapes=${SHAPES:-"base minilm pruned"}

base="--layers=12 --hidden=768 --heads=12 --ffn=3072"
minilm="--layers=6 --hidden=384 --heads=12 --head-dim=32 --ffn=1536"
# A CoFi-style pruned BERT-base: fewer heads and a narrower FFN in the upper
# layers, two layers without attention, one without FFN.
pruned="--layers=12 --hidden=768 --heads=12,11,10,9,8,6,5,4,3,2,0,0 \
--ffn=3072,2600,2200,1900,1600,1300,1000,800,600,400,200,0"

have_torch=yes
"$py" -c 'import torch' 2>/dev/null || { have_torch=no; echo "no torch: encoder only"; }
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
    # with the packed-weight kernels (lib/gemm.c) that the lines above use.
    # shellcheck disable=SC2086
    "$bench" $args --seq=128 --batch="$batch" --threads="$threads" --passes="$passes" \
      --device=cpu:blas || exit 1
    if [ $have_torch = yes ]; then
      # Torch at its best here (PERF-ANCHORS.md): one torch thread, the fp32
      # GEMMs in OpenBLAS's pool of THREADS.
      # shellcheck disable=SC2086
      OPENBLAS_NUM_THREADS=$threads OMP_NUM_THREADS=1 "$py" "$torch_script" $args \
        --seq=128 --batch="$batch" --passes="$passes" || exit 1
    fi
  done
done
