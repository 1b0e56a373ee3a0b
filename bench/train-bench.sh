#!/bin/sh
# train-bench.sh -- training examples/s of prumux-train against PyTorch
# training the same small model (bench/train_bench.py), fp32, 2 GEMM
# threads (torch: OpenBLAS 2 threads, its OpenMP pool 1), no dropout, for
# N = 1, 2, 5.  THREADS and STEPS override 2 and 40; SHAPE=minilm trains a
# model of all-MiniLM-L6-v2's size instead of the small one (6 layers,
# hidden 384, 12 heads, FFN 1536; STEPS default 10).  Usage: train-bench.sh PYTHON TRAIN_BENCH_PY
# (prumux-tokenize and prumux-train from PATH).  Rows are exactly T = 32
# tokens, so both sides compute the same shapes.  Both sides time the
# steps after 3 untimed ones (the first step allocates and faults in the
# activations and the optimizer's moments; it was 7 % of 10 MiniLM-size
# steps).
set -eu
py=${1:-/usr/bin/python3}
torch_bench=${2:-$(dirname "$0")/train_bench.py}
name=train-bench
. "$(dirname "$0")/bench-setup.sh"
printf 'N\tprumux_ex_per_s\ttorch_ex_per_s\tratio\n'
v=-v    # the first run says (on standard error) which kernels run
# Best of 3 alternating runs each (best (), bench-setup.sh).
for n in 1 2 5; do
  c=0 t=0
  for r in 1 2 3; do
    # WARM steps more, not timed (steady (), bench-setup.sh), as
    # train_bench.py does not time its first 3.
    prumux-train --init=$spec,n=$n,labels=8 --vocab="$dir/vocab.txt" -t "$dir/data.pmxs" \
      -b $batch -s $((warm + steps)) -E $((warm + steps)) --dropout=0 -l 1e-4 \
      -j $threads --progress-every=1 $v -o "$dir/m-$n.pmx" 2> "$dir/err" \
      || { cat "$dir/err" >&2; exit 1; }
    grep 'matrix products' "$dir/err" >&2 || :
    v=
    c=$(best "$c" "$(steady "$dir/err" $warm $batch)")
    t=$(best "$t" "$(OPENBLAS_NUM_THREADS=$threads OMP_NUM_THREADS=1 "$py" \
        "$torch_bench" $n $steps $batch $T $V $threads $shape)")
  done
  printf '%s\t%s\t%s\t%s\n' $n "$c" "$t" $(awk -v c="$c" -v t="$t" 'BEGIN { printf "%.2f", c / t }')
done
