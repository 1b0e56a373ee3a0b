#!/bin/sh
# mux-groups.sh -- tenant isolation: with prumux-tokenize --group-field,
# prumux-mux never puts rows of different keys into one multiplexed group
# (it closes the group with filler rows instead).  Over the shipped N = 2
# model and glosses with interleaved keys (runs of 1 to 4 rows, across
# record boundaries): from the stream, every group's real rows have one key
# (by their row numbers, from the input itself) and one 'group' value; the
# predictions come out one per input row, in input order, and are
# byte-identical to running each run of equal keys through the pipeline
# alone, and to prumux-infer --from-ids; without the keys they differ (so
# the check can fail).
. "$abs_top_srcdir/tests/init.sh"

m=$srcdir/share/prumux/wordnet-lexfile-n2.pmx
keys="a b b a a a c b a a a a c c b a b b b c a c b a"
awk -F '\t' -v keys="$keys" 'BEGIN { n = split(keys, k, " ") }
  { print k[(NR - 1) % n + 1] "\t" $2 }' "$srcdir/share/prumux/sample-glosses.tsv" > in.tsv \
  || framework_failure_ "cannot write the input"
rows=$(wc -l < in.tsv)

pipeline () {
  prumux-mux -m "$m" | prumux-infer -m "$m" | prumux-demux -m "$m" "$@"
}
prumux-tokenize -m "$m" --fields=2 --group-field=1 --batch=5 in.tsv > tok.pmxs \
  || fail_ "tokenize --group-field"
prumux-mux -m "$m" tok.pmxs > mux.pmxs || fail_ "mux"
prumux-cat -f tsv -t row,group mux.pmxs > mux.tsv || fail_ "cat"

# No group mixes keys; 'group' is constant in each group; real rows are the
# input's, each once, in order.
awk -F '\t' -v out=checked 'NR == FNR { key[NR - 1] = $1; next }
  $1 == "#meta" && $2 == "mux_n" { N = $3 }
  $1 == "#tensor" { what = $2; next }
  /^#/ { next }
  what == "row" { nr = split($0, r, "\t") }
  what == "group" {
    split($0, g, "\t")
    for (i = 1; i <= nr; i += N) {
      k = ""
      for (j = i; j < i + N; j++) {
        if (g[j] != g[i]) { print "group " g[i] " and " g[j] " share a mux group"; bad = 1 }
        if (r[j] < 0) continue
        if (r[j] != next_row) { print "row " r[j] " out of order"; bad = 1 }
        next_row = r[j] + 1
        if (k != "" && key[r[j]] != k) { print "keys " k " and " key[r[j]] " share a mux group (rows " r[i] "-" r[i + N - 1] ")"; bad = 1 }
        k = key[r[j]]; real++
      }
      groups++
    }
  }
  END { print real, groups > out; exit bad }' in.tsv mux.tsv >&2 \
  || fail_ "a multiplexed group mixes keys"
read real groups < checked
[ "$real" = "$rows" ] || fail_ "$real real rows in the stream, $rows in the input"
[ "$groups" -gt $((rows / 2)) ] || fail_ "only $groups groups: keys were not kept apart"

prumux-infer -m "$m" mux.pmxs | prumux-demux -m "$m" -f json > grouped.json \
  || fail_ "infer | demux"
seq 0 $((rows - 1)) > want-rows
sed 's/^{"row":\([0-9]*\),.*/\1/' grouped.json > got-rows
compare want-rows got-rows || fail_ "output rows are not the input's, in order"

# Each run of equal keys alone gives the same predictions, bit for bit.
prumux-infer -m "$m" mux.pmxs | prumux-demux -m "$m" > grouped.tsv || fail_ "demux"
: > alone.tsv
awk -F '\t' 'NR > 1 && $1 != prev { n++ } { prev = $1; print > ("run-" (n + 0) ".tsv") }' in.tsv
i=0
while [ -f "run-$i.tsv" ]; do
  prumux-tokenize -m "$m" --fields=2 "run-$i.tsv" | pipeline >> alone.tsv \
    || fail_ "run $i alone"
  i=$((i + 1))
done
compare alone.tsv grouped.tsv || fail_ "predictions differ from each run alone"
# prumux-infer --from-ids multiplexes in-process, by the same rule.
prumux-infer --from-ids -m "$m" tok.pmxs | prumux-demux -m "$m" > fused.tsv \
  || fail_ "infer --from-ids"
compare grouped.tsv fused.tsv || fail_ "infer --from-ids differs"

# Without the keys rows of different owners are muxed together, which
# changes some predictions: the comparison above can fail.
prumux-tokenize -m "$m" --fields=2 in.tsv | pipeline > mixed.tsv || fail_ "without keys"
cmp -s mixed.tsv grouped.tsv && fail_ "grouping by key changed nothing"

# Usage and input errors.
expect_fail 1 'needs --fields' prumux-tokenize -m "$m" --group-field=1 in.tsv
expect_fail 1 'field 3 is needed' prumux-tokenize -m "$m" --fields=2 --group-field=3 in.tsv
awk 'BEGIN { s = "k"; while (length(s) < 1100) s = s s; print s "\ttext" }' > long-key.tsv
expect_fail 1 'grouping key longer than 1024 bytes' \
  prumux-tokenize -m "$m" --fields=2 --group-field=1 long-key.tsv
echo "$testname: $rows rows, $groups groups, none mixes keys"
exit 0
