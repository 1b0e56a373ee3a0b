#!/bin/sh
# pipeline-bench.sh -- rows per second of prumux-mux | prumux-infer |
# prumux-demux on the BERT-base shape (12 layers, H 768, 12 heads, FFN
# 3072, vocabulary 30522, random weights; T = 128 full rows), for N = 1, 2,
# 5, 10 instances per multiplexed sequence (index_pos demux; N = 1: the
# BERT pooler classifier).  The models are converted with prumux-convert
# from checkpoint directories written by tests/ref-mux.py.
#
# usage: bench/pipeline-bench.sh [BINDIR [SEQUENCES [THREADS]]]
#   BINDIR     where the programs are (default: bin)
#   SEQUENCES  encoder sequences per run (default 32): N * SEQUENCES rows
#   THREADS    prumux-infer threads (default: all CPUs)
# Prints one line per N: rows, seconds (wall clock, whole pipeline), the
# start-up seconds (the same pipeline on an empty stream), rows per second
# without the start-up, the speed-up over N = 1, and the same run in
# process (prumux-infer --from-ids | prumux-demux: the multiplexer runs
# inside prumux-infer, one pipe hop less) with the pipes' overhead.  The
# two outputs must be identical; then prumux-infer's peak resident memory
# (--verbose) beside the archive's size.  Needs Debian's python3 with torch.
set -eu
bindir=${1:-bin}
seqs=${2:-32}
threads=${3:-0}
here=$(cd "$(dirname "$0")/.." && pwd)
py=/usr/bin/python3
"$py" -c 'import torch' 2>/dev/null || py=python3
tmp=$(mktemp -d "${TMPDIR:-/tmp}/pipeline-bench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
targs=
[ "$threads" -gt 0 ] && targs="-t $threads"

# Seconds of the pipeline on the token stream $1.
run () {
  start=$(date +%s.%N)
  "$bindir/prumux-mux" -m "$tmp/m.pmx" "$1" \
    | "$bindir/prumux-infer" -v $targs -m "$tmp/m.pmx" 2> "$tmp/infer.err" \
    | "$bindir/prumux-demux" -m "$tmp/m.pmx" > "$tmp/out"
  end=$(date +%s.%N)
  awk -v s="$start" -v e="$end" 'BEGIN { printf "%.3f", e - s }'
}

# The same with the multiplexer inside prumux-infer.
run_fused () {
  start=$(date +%s.%N)
  "$bindir/prumux-infer" --from-ids $targs -m "$tmp/m.pmx" "$1" \
    | "$bindir/prumux-demux" -m "$tmp/m.pmx" > "$tmp/fused"
  end=$(date +%s.%N)
  awk -v s="$start" -v e="$end" 'BEGIN { printf "%.3f", e - s }'
}

"$py" "$here/tests/ref-mux.py" bench-tokens "$tmp/empty" 0 128
printf 'N\trows\tseconds\tstart-up\trows/s\tvs N=1\tfused s\tfused rows/s\tpipe overhead\tinfer peak MiB\tarchive MiB\n'
base=
for n in 1 2 5 10; do
  rm -rf "$tmp/hf" "$tmp/m.pmx"
  "$py" "$here/tests/ref-mux.py" bench-hf "$tmp/hf" "$n"
  "$bindir/prumux-convert" "$tmp/hf" -o "$tmp/m.pmx"
  rows=$((n * seqs))
  "$py" "$here/tests/ref-mux.py" bench-tokens "$tmp/tok" "$rows" 128
  t0=$(run "$tmp/empty")
  t=$(run "$tmp/tok")
  rss=$(sed -n 's/^prumux-infer: peak resident memory \([0-9.]*\) MiB$/\1/p' "$tmp/infer.err")
  got=$(wc -l < "$tmp/out")
  [ "$got" = "$rows" ] || { echo "N=$n: $got output lines, expected $rows" >&2; exit 1; }
  f0=$(run_fused "$tmp/empty")
  f=$(run_fused "$tmp/tok")
  cmp -s "$tmp/out" "$tmp/fused" || { echo "N=$n: in-process output differs" >&2; exit 1; }
  rate=$(awk -v r="$rows" -v t="$t" -v t0="$t0" 'BEGIN { printf "%.3f", r / (t - t0) }')
  [ -n "$base" ] || base=$rate
  awk -v n="$n" -v r="$rows" -v t="$t" -v t0="$t0" -v rate="$rate" -v base="$base" \
      -v f="$f" -v f0="$f0" -v rss="${rss:-NA}" -v size="$(wc -c < "$tmp/m.pmx")" 'BEGIN {
    frate = r / (f - f0)
    printf "%d\t%d\t%.2f\t%.2f\t%.2f\t%.2fx\t%.2f\t%.2f\t%+.1f%%\t%s\t%.1f\n", n, r, t, t0, rate,
      rate / base, f, frate, 100 * (frate / rate - 1), rss, size / 1048576 }'
done
