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
# prumux-train and prumux-prune from PATH).
set -eu
py=${1:-/usr/bin/python3}
torch_bench=${2:-$(dirname "$0")/prune_bench.py}
threads=${THREADS:-2} batch=40 T=32 words=6000
case ${SHAPE:-small} in
  small) shape="2 64 2 256" steps=${STEPS:-40};;
  minilm) shape="6 384 12 1536" steps=${STEPS:-10};;
  *) echo "prune-bench.sh: SHAPE is small or minilm" >&2; exit 1;;
esac
set -- $shape
spec=layers=$1,hidden=$2,heads=$3,ffn=$4,max-length=$T
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) online; model $spec"
dir=$(mktemp -d "${TMPDIR:-/tmp}/prune-bench.XXXXXX")
trap 'rm -rf "$dir"' EXIT
{ echo "[PAD]"; i=0; while [ $i -lt 99 ]; do echo "[unused$i]"; i=$((i + 1)); done
  printf '%s\n' "[UNK]" "[CLS]" "[SEP]" "[MASK]"
  i=0; while [ $i -lt $words ]; do echo "w$i"; i=$((i + 1)); done; } > "$dir/vocab.txt"
awk -v w=$words 'BEGIN { s = 1; for (r = 0; r < 800; r++) { t = ""
    for (j = 0; j < 40; j++) { s = (s * 69069 + 1) % 4294967296; t = t " w" s % w }
    print r % 8 "\t" t } }' > "$dir/data.tsv"
prumux-tokenize --vocab="$dir/vocab.txt" -f 2 -l 1 -n $T -o "$dir/data.pmxs" "$dir/data.tsv"
V=$(wc -l < "$dir/vocab.txt")
printf 'N\tprumux_ex_per_s\ttorch_ex_per_s\tratio\n'
# Best of 3 alternating runs each: the machine is shared.
best () { awk -v a="$1" -v b="$2" 'BEGIN { print (a + 0 > b + 0 ? a : b) }'; }
for n in 1 2; do
  prumux-train --init=$spec,n=$n,labels=8 --vocab="$dir/vocab.txt" -t "$dir/data.pmxs" \
    -b $batch -s 1 -q -o "$dir/t-$n.pmx"
  c=0 t=0
  for r in 1 2 3; do
    prumux-prune -m "$dir/t-$n.pmx" -t "$dir/data.pmxs" -b $batch -s $steps -E $steps \
      --sparsity=0.5 --dropout=0 -j $threads -q --log="$dir/log-$n-$r.tsv" -o "$dir/p-$n.pmx"
    c=$(best "$c" "$(tail -n 1 "$dir/log-$n-$r.tsv" | cut -f 14)")
    t=$(best "$t" "$(OPENBLAS_NUM_THREADS=$threads OMP_NUM_THREADS=1 "$py" \
        "$torch_bench" $n $steps $batch $T $V $threads $shape)")
  done
  printf '%s\t%s\t%s\t%s\n' $n "$c" "$t" $(awk -v c="$c" -v t="$t" 'BEGIN { printf "%.2f", c / t }')
done
