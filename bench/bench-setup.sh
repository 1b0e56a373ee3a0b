# bench-setup.sh -- what train-bench.sh and prune-bench.sh share, sourced
# by both after they read their arguments: the model's shape (SHAPE small
# or minilm; STEPS, THREADS), a temporary directory removed on exit, a
# vocabulary of 6000 words and 800 rows of exactly T = 32 tokens, so that
# prumux and PyTorch compute the same shapes, best () for the best of
# alternating runs and steady () for a rate after WARM untimed steps.
# NAME is the caller's name (messages, directory).
# Sets threads batch T steps shape spec dir V warm; replaces the positional
# parameters with the shape's four numbers.
threads=${THREADS:-2} batch=40 T=32 words=6000
case ${SHAPE:-small} in
  small) shape="2 64 2 256" steps=${STEPS:-40};;
  minilm) shape="6 384 12 1536" steps=${STEPS:-10};;
  *) echo "$name.sh: SHAPE is small or minilm" >&2; exit 1;;
esac
set -- $shape
spec=layers=$1,hidden=$2,heads=$3,ffn=$4,max-length=$T
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) online; model $spec"
dir=$(mktemp -d "${TMPDIR:-/tmp}/$name.XXXXXX")
trap 'rm -rf "$dir"' EXIT
{ echo "[PAD]"; i=0; while [ $i -lt 99 ]; do echo "[unused$i]"; i=$((i + 1)); done
  printf '%s\n' "[UNK]" "[CLS]" "[SEP]" "[MASK]"
  i=0; while [ $i -lt $words ]; do echo "w$i"; i=$((i + 1)); done; } > "$dir/vocab.txt"
awk -v w=$words 'BEGIN { s = 1; for (r = 0; r < 800; r++) { t = ""
    for (j = 0; j < 40; j++) { s = (s * 69069 + 1) % 4294967296; t = t " w" s % w }
    print r % 8 "\t" t } }' > "$dir/data.tsv"
prumux-tokenize --vocab="$dir/vocab.txt" -f 2 -l 1 -n $T -o "$dir/data.pmxs" "$dir/data.tsv"
V=$(wc -l < "$dir/vocab.txt")
# Best of alternating runs: the machine is shared, and the best run is the
# one least disturbed.
best () { awk -v a="$1" -v b="$2" 'BEGIN { print (a + 0 > b + 0 ? a : b) }'; }
# Examples/s of the steps after the first WARM, from the progress lines of
# a run (ERR, its standard error: "step K/TOTAL ... RATE ex/s", RATE the
# mean since the first step): the time to step K is K BATCH / RATE.
warm=3
steady () {
  awk -v w="$2" -v b="$3" '{
      k = 0; r = 0
      for (i = 1; i < NF; i++) { if ($i == "step") { split ($(i + 1), s, "/"); k = s[1] }
                                 if ($(i + 1) == "ex/s") r = $i }
      if (k > 0 && r > 0) { t[k] = k * b / r; if (k > last) last = k }
    }
    END { if (!(w in t) || last <= w) { print "no progress lines" > "/dev/stderr"; exit 1 }
          printf "%.1f\n", (last - w) * b / (t[last] - t[w]) }' "$1"
}
