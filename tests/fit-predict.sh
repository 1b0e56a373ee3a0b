#!/bin/sh
# fit-predict.sh -- prumux-fit's answers on small hand-worked tables:
# ranking, budget sweep (with held-out s), leave-one-out, the throughput
# models, JSON and -o.  Every expected number is worked out in the comments.
. "$abs_top_srcdir/tests/init.sh"

# Task x: N {1,2} x s {0, 0.5, 0.9}; task y: the N=1 and s=0 rows of x with
# doubled throughput.
cat > t.tsv <<'END'
task	N	s	accuracy	throughput
x	1	0	90	1
x	1	0.5	89	2
x	1	0.9	85	4
x	2	0	88	1.8
x	2	0.5	86	3.6
x	2	0.9	80	7.2
y	1	0	90	2
y	1	0.5	89	4
y	2	0	88	3.6
y	2	0.5	86	7.2
END

# Budget 3 on x over N {1,2} x s {0, 0.5, 0.9}: threshold 87; measured
# points are exact: (1,0.5) 89/2, (2,0) 88/1.8, (1,0) 90/1 qualify.
prumux-fit -q -b 3 --task x --N 1,2 --s 0,0.5,0.9 t.tsv > out || fail_ "budget"
cat > exp <<'END'
task	rank	N	s	predicted_accuracy	predicted_throughput
x	1	1	0.5	89	2
x	2	2	0	88	1.8
x	3	1	0	90	1
END
compare exp out || fail_ "budget ranking"

# Between grid points: (2, 0.25) is 87 / 2.7 (midpoints of (2,0) and
# (2,0.5)); (1.5 is not a width, so only s is fractional).  Threshold 0.87
# as a fraction = 87 points; -k 2.
prumux-fit -q -t 0.87 --task x --N 2 --s 0.25 -k 2 t.tsv > out || fail_ "threshold"
printf 'x\t1\t2\t0.25\t87\t2.7\n' > exp
tail -n +2 out > got
compare exp got || fail_ "interpolated candidate"

# Throughput models for y at (1, 0.5): the reference task (x has the most
# points) says 2; y's own says 4; --throughput-task=y says 4 as well.
for mode in "" "--throughput=per-task" "--throughput-task=y"; do
  prumux-fit -q -t 80 --task y --N 1 --s 0.5 -k 1 $mode t.tsv > out \
    || fail_ "throughput $mode"
  case $mode in "") want=2 ;; *) want=4 ;; esac
  printf 'y\t1\t1\t0.5\t89\t%s\n' $want > exp
  tail -n +2 out > got
  compare exp got || fail_ "throughput model '$mode'"
done

# The default reference is the task with the most measured throughputs,
# not the most rows: z has 7 rows but throughput for one.
{ cat t.tsv; printf 'z\t1\t0\t90\t1\n'
  for s in 0.1 0.2 0.3 0.4 0.5 0.6; do printf 'z\t1\t%s\t89\t\n' $s; done; } > tz.tsv
prumux-fit -q -t 80 --task y --N 1 --s 0.5 -f json tz.tsv > out || fail_ "tz"
grep -q '"throughput_task": "x"' out || { cat out >&2; fail_ "reference choice"; }

# Budget sweep with s=0.5 held out of the fit (x's N=1 line is then
# linear from 90 to 85: 87.22 at 0.5, throughput 2.667; N=2: 83.56, 4.8):
#  budget 1 (89): true best (1,0.5); only (1,0) predicted >= 89 -> no
#  budget 2 (88): true (1,0.5); predicted (2,0) 1.8, (1,0) 1 -> no
#  budget 3 (87): true (1,0.5); predicted (1,0.5) 2.667 first -> yes
#  budget 5 (85): true (1,0.9) 4; predicted (1,0.9) 4, (1,0.5), (2,0) -> yes
#  budget 10 (80): true (2,0.9) 7.2; predicted (2,0.9), (2,0.5) 4.8, (1,0.9)
prumux-fit -q --budget-sweep 1,2,3,5,10 --fit-s 0.9 --task x --N 1,2 \
  --s 0,0.5,0.9 t.tsv > out || fail_ "sweep"
cat > exp <<'END'
budget	task	threshold	best_N	best_s	best_accuracy	best_throughput	in_top3	predicted
1	x	89	1	0.5	89	2	no	1/0
2	x	88	1	0.5	89	2	no	2/0,1/0
3	x	87	1	0.5	89	2	yes	1/0.5,2/0,1/0
5	x	85	1	0.9	85	4	yes	1/0.9,1/0.5,2/0
10	x	80	2	0.9	80	7.2	yes	2/0.9,2/0.5,1/0.9
# x: best measured pair in the top 3: 3 of 5
# all tasks: best measured pair in the top 3: 3 of 5 (0.6000)
END
compare exp out || fail_ "budget sweep"
# Fitting on everything, every measured best is found (it is exact).
prumux-fit -q -w 0:10:0.5 --task x t.tsv | tail -n 1 > out
grep -q "21 of 21 (1.0000)" out || { cat out >&2; fail_ "in-sample sweep"; }

# Leave-one-out on x: the 4 corners are not predictable; (1,0.5) is
# predicted 87.22 (off 1.78) and (2,0.5) 83.56 (off 2.44); throughputs
# 2.667 vs 2 and 4.8 vs 3.6 (both 33% off).  With tolerances 2 points and
# 35%: M_A 1/2, M_T 2/2; with the defaults (1.5, 20%) 0/2 and 0/2.
prumux-fit -q --loo --task x --acc-tol 2 --thr-tol 0.35 t.tsv > out || fail_ "loo"
cat > exp <<'END'
task	acc_points	acc_predicted	acc_within	M_A	thr_points	thr_predicted	thr_within	M_T
x	6	2	1	0.5000	6	2	2	1.0000
ALL	6	2	1	0.5000	6	2	2	1.0000
END
compare exp out || fail_ "loo"
prumux-fit -q --loo --task x t.tsv | sed -n 2p > out
printf 'x\t6\t2\t0\t0.0000\t6\t2\t0\t0.0000\n' > exp
compare exp out || fail_ "loo default tolerances"
# y's throughputs come from x (the reference), which measured none of
# them at y's values: y's (1,0.5) true 4 vs x's 2 -> all 4 off by 50%.
prumux-fit -q --loo --task y t.tsv | sed -n 2p | cut -f 6-9 > out
printf '4\t4\t0\t0.0000\n' > exp
compare exp out || fail_ "loo reference throughput"

# JSON and -o: the same answer, to a file, nothing on stdout.
prumux-fit -q -b 3 --task x --N 1,2 --s 0,0.5,0.9 -f json -o out.json t.tsv > stdout \
  || fail_ "json"
[ -s stdout ] && fail_ "-o also wrote to stdout"
if command -v python3 > /dev/null 2>&1; then
  python3 - out.json <<'END' || fail_ "JSON content"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["mode"] == "predict" and d["accuracy_scale"] == "percent", d
assert d["throughput_task"] == "x" and d["budget"] == 3
t = d["tasks"][0]
assert t["task"] == "x" and t["threshold"] == 87 and t["base_accuracy"] == 90
got = [(p["rank"], p["N"], p["s"], p["accuracy"], p["throughput"]) for p in t["top"]]
assert got == [(1, 1, 0.5, 89, 2), (2, 2, 0, 88, 1.8), (3, 1, 0, 90, 1)], got
END
  for mode in --loo "--budget-sweep 0:4:1"; do
    prumux-fit -q $mode -f json t.tsv > j.json || fail_ "json $mode"
    python3 -c 'import json,sys; json.load(open(sys.argv[1]))' j.json \
      || fail_ "invalid JSON from $mode"
  done
else
  grep -q '"accuracy": 89' out.json || fail_ "JSON content"
fi

# A generated 1,000-row table (4 tasks x 10 N x 25 s): every mode runs and
# answers for every task.  (Timing is reported by hand, not asserted.)
awk 'BEGIN { OFS = "\t"; print "task", "N", "s", "accuracy", "throughput";
  for (t = 1; t <= 4; t++) for (n = 1; n <= 10; n++) for (j = 0; j < 25; j++) {
    s = j * 0.038; print "t" t, n, s, 90 - 0.4 * n - 8 * s * s + 0.1 * t,
      100 * n ^ 0.8 / (1 - 0.9 * s) } }' > big.tsv
[ "$(wc -l < big.tsv)" = 1001 ] || framework_failure_ "big table"
prumux-fit -q -b 3 -k 5 big.tsv > out || fail_ "big budget"
[ "$(wc -l < out)" = 21 ] || fail_ "big: expected 4 x 5 picks"
prumux-fit -q --loo big.tsv > out || fail_ "big loo"
grep -q "^ALL	1000	" out || { cat out >&2; fail_ "big loo counts"; }
prumux-fit -q -w 0:10:0.5 big.tsv > out || fail_ "big sweep"
grep -q "^# all tasks: .* of 84 " out || { tail -n 1 out >&2; fail_ "big sweep count"; }
exit 0
