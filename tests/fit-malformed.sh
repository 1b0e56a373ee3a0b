#!/bin/sh
# fit-malformed.sh -- prumux-fit on bad tables and bad options: a clear
# error naming the line, exit 1, never a crash; and the odd-but-valid
# tables (duplicates, unsorted rows, holes, fractions) handled.
. "$abs_top_srcdir/tests/init.sh"

H=$(printf 'task\tN\ts\taccuracy\tthroughput')
good () {  # a small valid table
  printf '%s\n' "$H"
  printf 'a\t1\t0\t80\t100\n'
  printf 'a\t1\t0.5\t78\t200\n'
  printf 'a\t2\t0\t77\t190\n'
  printf 'a\t2\t0.5\t74\t350\n'
}

# A non-numeric cell: the message the manual promises, line counted past
# comments and blank lines.
{ printf '# comment\n\n'; good; printf 'a\t3\t0\tabc\t1\n'; } > grid.tsv
expect_fail 1 "^prumux-fit: grid.tsv:8: accuracy: 'abc' is not a number$" \
  prumux-fit --budget 3 grid.tsv
{ good; printf 'a\tx\t0\t80\t1\n'; } > g.tsv
expect_fail 1 "g.tsv:6: N: 'x' is not a number" prumux-fit -b 3 g.tsv
{ good; printf 'a\t2\t0.5x\t80\t1\n'; } > g.tsv
expect_fail 1 "g.tsv:6: s: '0.5x' is not a number" prumux-fit -b 3 g.tsv
{ good; printf 'a\t2\t0.6\t80\tnan\n'; } > g.tsv
expect_fail 1 "g.tsv:6: throughput: 'nan' is not a number" prumux-fit -b 3 g.tsv
{ good; printf 'a\t2\t0.6\t80\t1e999\n'; } > g.tsv
expect_fail 1 "g.tsv:6: throughput: '1e999' is not a number" prumux-fit -b 3 g.tsv
{ good; printf 'a\t2\t0.6\t80\t-5\n'; } > g.tsv
expect_fail 1 "g.tsv:6: throughput: '-5' must be positive" prumux-fit -b 3 g.tsv
{ good; printf 'a\t0\t0.6\t80\t5\n'; } > g.tsv
expect_fail 1 "g.tsv:6: N: '0' is not a multiplexing width" prumux-fit -b 3 g.tsv
{ good; printf 'a\t2.5\t0.6\t80\t5\n'; } > g.tsv
expect_fail 1 "g.tsv:6: N: '2.5' is not a multiplexing width" prumux-fit -b 3 g.tsv
{ good; printf 'a\t2\t1.2\t80\t5\n'; } > g.tsv
expect_fail 1 "g.tsv:6: s: '1.2' is not a sparsity" prumux-fit -b 3 g.tsv
{ good; printf 'a\t2\t0.6\t150\t5\n'; } > g.tsv
expect_fail 1 "g.tsv:6: accuracy: '150' is out of range" prumux-fit -b 3 g.tsv
{ good; printf 'a\t2\t0.6\t0.75\t5\n'; } > g.tsv
expect_fail 1 "g.tsv:6: accuracy: 0.75 looks like a fraction, but other rows give percentages" \
  prumux-fit -b 3 g.tsv
{ good; printf '\t2\t0.6\t75\t5\n'; } > g.tsv
expect_fail 1 "g.tsv:6: task: empty task name" prumux-fit -b 3 g.tsv
{ good; printf 'a\t2\t0.6\t75\n'; } > g.tsv
expect_fail 1 "g.tsv:6: 4 fields, but the header has 5" prumux-fit -b 3 g.tsv
{ good; printf 'a\t2\t0.6\t75\t5\t6\n'; } > g.tsv
expect_fail 1 "g.tsv:6: 6 fields, but the header has 5" prumux-fit -b 3 g.tsv

# Header problems.
printf 'task\tN\ts\tacc\tthroughput\na\t1\t0\t80\t1\n' > g.tsv
expect_fail 1 "g.tsv:1: no 'accuracy' column in the header" prumux-fit -b 3 g.tsv
printf 'task\tN\ts\taccuracy\tlatency\na\t1\t0\t80\t1\n' > g.tsv
expect_fail 1 "g.tsv:1: no 'throughput' or 'speedup' column" prumux-fit -b 3 g.tsv
printf 'task\tN\ts\taccuracy\ts\tspeedup\na\t1\t0\t80\t0\t1\n' > g.tsv
expect_fail 1 "g.tsv:1: column 's' appears twice" prumux-fit -b 3 g.tsv
printf '%s\n' "$H" > g.tsv
expect_fail 1 "g.tsv: no data rows" prumux-fit -b 3 g.tsv
printf '# only a comment\n' > g.tsv
expect_fail 1 "g.tsv: empty table" prumux-fit -b 3 g.tsv
: > g.tsv
expect_fail 1 "g.tsv: empty table" prumux-fit -b 3 g.tsv
printf '%s\na\t1\t0\t8\0000\t1\n' "$H" > g.tsv
expect_fail 1 "g.tsv: contains a NUL byte" prumux-fit -b 3 g.tsv
expect_fail 1 "no-such.tsv: No such file" prumux-fit -b 3 no-such.tsv
expect_fail 1 "^prumux-fit: -:6: accuracy: 'abc' is not a number" \
  sh -c 'sed -n 3,8p grid.tsv | prumux-fit -b 3'

# Usage errors.
good > good.tsv
expect_fail 1 "nothing to do" prumux-fit good.tsv
expect_fail 1 "exclude each other" prumux-fit -b 3 -t 0.8 good.tsv
expect_fail 1 "choose one of" prumux-fit -b 3 --loo good.tsv
expect_fail 1 "--format must be" prumux-fit -b 3 --format=xml good.tsv
expect_fail 1 "must end in .png or .svg" prumux-fit --plot out.gif good.tsv
expect_fail 1 "no task 'zzz'" prumux-fit -b 3 --task zzz good.tsv
expect_fail 1 "throughput-task: no task 'zzz'" prumux-fit -b 3 -r zzz good.tsv
expect_fail 1 "--throughput must be" prumux-fit -b 3 --throughput=x good.tsv
expect_fail 1 "--missing must be" prumux-fit -b 3 --missing=x good.tsv
expect_fail 1 "--N: 2.5 is not a multiplexing width" prumux-fit -b 3 --N 2.5 good.tsv
expect_fail 1 "--s: 1 is not a sparsity" prumux-fit -b 3 --s 0.5,1 good.tsv
expect_fail 1 "invalid range for --s" prumux-fit -b 3 --s 0.9:0.5:0.1 good.tsv
expect_fail 1 "invalid number for --budget" prumux-fit -b x good.tsv
expect_fail 1 "--top must be between" prumux-fit -b 3 -k 0 good.tsv
expect_fail 1 "extra operand" prumux-fit -b 3 good.tsv good.tsv
[ -e out.gif ] && fail_ "a refused --plot left a file"

# Duplicates: averaged, with a warning naming both lines.  (1, 0) given as
# 80 and 82 -> base 81; budget 0 keeps only points >= 81.
{ good; printf 'a\t1\t0\t82\t100\n'; } > dup.tsv
prumux-fit -b 0 --N 1 --s 0 dup.tsv > out 2> err || fail_ "duplicates refused"
grep -q "dup.tsv:6: duplicate of line 2 (task a, N=1, s=0): values averaged" err \
  || { cat err >&2; fail_ "no duplicate warning"; }
printf 'a\t1\t1\t0\t81\t100\n' > exp
tail -n +2 out > got
compare exp got || fail_ "duplicates not averaged"

# Unsorted rows and columns in another order give the same answer.
good > sorted.tsv
{ printf 'throughput\ts\tnote\taccuracy\tN\ttask\n'
  printf '350\t0.5\tx\t74\t2\ta\n190\t0\ty\t77\t2\ta\n'
  printf '100\t0\tz\t80\t1\ta\n200\t0.5\tw\t78\t1\ta\n'; } > unsorted.tsv
prumux-fit -q -b 4 --s 0:0.5:0.1 sorted.tsv > a.out || fail_ "sorted"
prumux-fit -q -b 4 --s 0:0.5:0.1 unsorted.tsv > b.out || fail_ "unsorted"
compare a.out b.out || fail_ "row order changed the answer"

# A hole in the grid: s grid {0, 0.5, 0.9}, (2, 0.5) not measured.  With
# 'fill' it is bridged along the N=2 line from (2,0)=77 to (2,0.9)=70:
# 77 - 7 * 0.5/0.9 = 73.1111.  With 'refuse' it is not predicted and the run
# says so.
{ printf '%s\n' "$H"
  printf 'a\t1\t0\t80\t100\na\t1\t0.5\t78\t200\na\t1\t0.9\t75\t400\n'
  printf 'a\t2\t0\t77\t190\na\t2\t0.9\t70\t700\n'; } > hole.tsv
prumux-fit -q -t 50 --N 2 --s 0.5 -f json hole.tsv > out || fail_ "hole"
grep -q '"accuracy": 73.11111' out || { cat out >&2; fail_ "hole not filled"; }
prumux-fit -t 50 --N 2 --s 0.5 --missing=refuse hole.tsv > out 2> err \
  || fail_ "hole refuse"
grep -q "1 of 1 candidates could not be predicted.*see --missing" err \
  || { cat err >&2; fail_ "refused hole not reported"; }
grep -q "no candidate is predicted" err || fail_ "empty answer not reported"
[ "$(wc -l < out)" = 1 ] || fail_ "refused hole still predicted"

# Outside the grid: not predicted unless --extrapolate.
prumux-fit -t 50 --N 3 --s 0 good.tsv > out 2> err || fail_ "outside"
grep -q "see --extrapolate" err || { cat err >&2; fail_ "outside not reported"; }
prumux-fit -q -t 50 --N 3 --s 0 -x good.tsv > out || fail_ "extrapolate"
# (3, 0): 77 + (77 - 80) = 74, throughput 190 + 90 = 280.
printf 'a\t1\t3\t0\t74\t280\n' > exp
tail -n +2 out > got
compare exp got || fail_ "extrapolation"

# Fractions are detected and reported; output keeps the input's scale.
{ printf '%s\n' "$H"; printf 'a\t1\t0\t0.80\t100\na\t1\t0.5\t0.78\t200\n'; } > frac.tsv
prumux-fit -b 2 frac.tsv > out 2> err || fail_ "fractions"
grep -q "accuracy read as fractions" err || fail_ "fraction scale not reported"
printf 'a\t1\t1\t0.5\t0.78\t200\n' > exp
sed -n 2p out > got
compare exp got || fail_ "fraction output"
prumux-fit -b 2 good.tsv 2> err > /dev/null || fail_ "percent"
grep -q "accuracy read as percentages" err || fail_ "percent scale not reported"

# A task without a base model cannot take a budget: warned, skipped.
{ printf '%s\n' "$H"; printf 'b\t2\t0.5\t70\t5\n'; } > nobase.tsv
prumux-fit -b 2 nobase.tsv > out 2> err || fail_ "no base"
grep -q "task b has no base model row" err || fail_ "no base not reported"
exit 0
