#!/bin/sh
# fit-sample.sh -- the whole of prumux-fit on the illustrative sample table
# shipped in share/prumux/: every mode, checked against what awk derives
# from the table itself.
. "$abs_top_srcdir/tests/init.sh"

grid=$srcdir/share/prumux/prumux-sample-grid.tsv
[ -r "$grid" ] || framework_failure_ "no $grid"
grep -v '^#' "$grid" > plain.tsv

# Budget 3: for each task, 3 picks, ranked by non-increasing predicted
# speedup, each predicted >= base - 3.
prumux-fit -b 3 "$grid" > out 2> err || { cat err >&2; fail_ "budget 3"; }
grep -q "accuracy read as percentages" err || fail_ "scale not reported"
head -n 1 out | grep -q '^task	rank	N	s	predicted_accuracy	predicted_speedup$' \
  || fail_ "header"
[ "$(wc -l < out)" = 10 ] || fail_ "expected 3 tasks x 3 picks"
awk -F '\t' 'NR == FNR { if ($2 == 1 && $3 == 0) base[$1] = $4; next }
  FNR == 1 { next }
  { if ($5 < base[$1] - 3 - 1e-9) { print "below budget: " $0; bad = 1 }
    if ($2 != 1 && $6 > last + 1e-9) { print "not ranked: " $0; bad = 1 }
    if ($2 != (prev == $1 ? r + 1 : 1)) { print "rank: " $0; bad = 1 }
    prev = $1; r = $2; last = $6 }
  END { exit bad }' plain.tsv out >&2 || fail_ "picks violate the budget"

# The first pick is the best *measured* model under the budget here (the
# interpolated candidates lie on segments between measured ones), with the
# reference task mnli's speedup standing for every task's.
awk -F '\t' 'NR == 1 { next }
  { acc[$1 SUBSEP $2 SUBSEP $3] = $4; if ($1 == "mnli") sp[$2 SUBSEP $3] = $5
    if ($2 == 1 && $3 == 0) base[$1] = $4; task[$1] = 1 }
  END { for (t in task) { best = -1
      for (k in acc) { split (k, f, SUBSEP); if (f[1] != t) continue
        key = f[2] SUBSEP f[3]
        if (acc[k] >= base[t] - 3 && sp[key] > best) {
          best = sp[key]; bn = f[2]; bs = f[3] + 0; ba = acc[k] } }
      printf "%s\t1\t%s\t%s\t%s\t%s\n", t, bn, bs, ba + 0, best + 0 } }' \
  plain.tsv | sort > exp
grep '	1	[0-9]*	[0-9.]*	' out | awk -F '\t' '$2 == 1' | sort > got
compare exp got || fail_ "top pick is not the best measured model"

# Leave-one-out: 113 measured points (qnli lacks one); shares in [0, 1].
prumux-fit -q --loo "$grid" > out || fail_ "loo"
cat out
grep -q '^ALL	113	[0-9]*	[0-9]*	[01]\.[0-9]*	113	' out || fail_ "loo counts"
awk -F '\t' 'NR > 1 && ($3 > $2 || $4 > $3 || $5 < 0 || $5 > 1 || $9 < 0 || $9 > 1) \
  { bad = 1 } END { exit bad }' out || fail_ "loo shares out of range"

# The paper's Table 3 protocol: fit on s in {0.6, 0.7, 0.8, 0.9, 0.95},
# budgets 0..10 in steps of 0.5: 21 budgets x 3 tasks.
prumux-fit -q -w 0:10:0.5 --fit-s 0.6,0.7,0.8,0.9,0.95 "$grid" > out \
  || fail_ "sweep"
tail -n 4 out
[ "$(grep -vc '^#' out)" = 64 ] || fail_ "expected 63 sweep rows"
grep -q '^# all tasks: best measured pair in the top 3: [0-9]* of 63 (' out \
  || fail_ "sweep summary"
# Rows whose truth was held out of the fit exist, so this is not in-sample.
awk -F '\t' 'NR > 1 && !/^#/ && $5 != 0 && $5 != 0.6 && $5 != 0.7 && \
  $5 != 0.8 && $5 != 0.9 && $5 != 0.95 { n++ } END { exit !(n > 0) }' out \
  || fail_ "no held-out best pair in the sweep"

# JSON variants parse.
for mode in "-b 3" --loo "-w 0:10:1"; do
  prumux-fit -q $mode -f json "$grid" > j.json || fail_ "json $mode"
  if command -v python3 > /dev/null 2>&1; then
    python3 -c 'import json,sys; json.load(open(sys.argv[1]))' j.json \
      || fail_ "invalid JSON from $mode"
  fi
done
exit 0
