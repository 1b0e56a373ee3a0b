#!/bin/sh
# prune-bench.sh -- examples/s of a CoFi pruning step (teacher forward,
# masked student forward and backward, masks, three optimizers) in
# prumux-prune against PyTorch taking the same steps on the same model
# (bench/prune_bench.py), fp32, 2 GEMM threads, no dropout, N = 1 and 2,
# the model of train-bench.sh.  THREADS and STEPS override 2 and 40;
# SHAPE=minilm prunes a model of all-MiniLM-L6-v2's size instead (6
# layers, hidden 384, 12 heads, FFN 1536; STEPS default 10), the shape of
# the PruMUX experiment (prumux-grid(7)).
# Usage: prune-bench.sh PYTHON PRUNE_BENCH_PY (prumux-tokenize,
# prumux-train and prumux-prune from PATH).  Both sides time the steps
# after 3 untimed ones.
set -eu
py=${1:-/usr/bin/python3}
torch_bench=${2:-$(dirname "$0")/prune_bench.py}
name=prune-bench
. "$(dirname "$0")/bench-setup.sh"
printf 'N\tprumux_ex_per_s\ttorch_ex_per_s\tratio\n'
v=-v    # the first run says (on standard error) which kernels run
# Best of 3 alternating runs each (best (), bench-setup.sh).
for n in 1 2; do
  prumux-train --init=$spec,n=$n,labels=8 --vocab="$dir/vocab.txt" -t "$dir/data.pmxs" \
    -b $batch -s 1 -q -o "$dir/t-$n.pmx"
  c=0 t=0
  for r in 1 2 3; do
    # WARM steps more, not timed (steady (), bench-setup.sh), as
    # prune_bench.py does not time its first 3.
    prumux-prune -m "$dir/t-$n.pmx" -t "$dir/data.pmxs" -b $batch -s $((warm + steps)) \
      -E $((warm + steps)) --sparsity=0.5 --dropout=0 -j $threads --progress-every=1 $v \
      -o "$dir/p-$n.pmx" 2> "$dir/err" \
      || { cat "$dir/err" >&2; exit 1; }
    grep 'matrix products' "$dir/err" >&2 || :
    v=
    c=$(best "$c" "$(steady "$dir/err" $warm $batch)")
    t=$(best "$t" "$(OPENBLAS_NUM_THREADS=$threads OMP_NUM_THREADS=1 "$py" \
        "$torch_bench" $n $steps $batch $T $V $threads $shape)")
  done
  printf '%s\t%s\t%s\t%s\n' $n "$c" "$t" $(awk -v c="$c" -v t="$t" 'BEGIN { printf "%.2f", c / t }')
done
