#!/bin/sh
# prumux-prune end to end on the synthetic task of the training tests:
# usage errors and bad input (nothing written), N = 1 and N = 2 teachers
# pruned to a target, progress lines, an N = 1 (cls pooling) run that cuts hidden
# dimensions, the masks TSV (read back by prumux-model shrink),
# a run paused and resumed ending bit for bit where an unbroken run ends,
# and where runs on 1 and 3 threads end,
# and the pruned models running through prumux-mux | prumux-infer |
# prumux-demux.
. "$abs_top_srcdir/tests/init.sh"
. "$srcdir/tests/train-data.sh"

prumux-prune --help > help || fail_ "--help failed"
grep -q -- '--sparsity' help || fail_ "--help lacks --sparsity"
prumux-prune --version > /dev/null || fail_ "--version failed"
grep -q -- '--verbose' help || fail_ "--help lacks --verbose"

spec=layers=2,hidden=16,heads=2,ffn=32,labels=3,max-length=16
for n in 1 2; do
  prumux-train --init=$spec,n=$n --vocab=vocab.txt -t train.pmxs -b 16 -e 2 \
    -l 2e-3 -o t$n.pmx -q || framework_failure_ "teacher N=$n"
done

# Bad input: a clear error and no output.
run="-m t2.pmx -t train.pmxs -b 16"
expect_fail 1 'required' prumux-prune -m t2.pmx -t train.pmxs -o p.pmx
expect_fail 1 'not in \[0, 1)' prumux-prune $run --sparsity=1 -o p.pmx
expect_fail 1 'not in \[0, 1)' prumux-prune $run --sparsity=-0.1 -o p.pmx
expect_fail 1 'not a multiple of n' prumux-prune $run -b 15 --sparsity=0.5 -o p.pmx
{ cat vocab.txt; i=0; while [ $i -lt 77 ]; do echo "w$i"; i=$((i + 1)); done; } > big.txt
prumux-tokenize -v big.txt -f 2 -l 1 -n 16 train.tsv > big.pmxs || framework_failure_ "tokenize"
expect_fail 1 'vocabulary of 201, the model has' \
  prumux-prune -m t2.pmx -t big.pmxs --sparsity=0.5 -o p.pmx
prumux-mux -m t2.pmx dev.pmxs > muxed.pmxs || framework_failure_ "mux"
expect_fail 1 "stage 'embeds', not tokens" \
  prumux-prune -m t2.pmx -t muxed.pmxs --sparsity=0.5 -o p.pmx
: > empty.tsv
prumux-tokenize -v vocab.txt -f 2 -l 1 -n 16 empty.tsv > empty.pmxs || framework_failure_ "tokenize"
expect_fail 1 'no examples' prumux-prune -m t2.pmx -t empty.pmxs --sparsity=0.5 -o p.pmx
expect_fail 1 'fewer than one batch' \
  prumux-prune -m t2.pmx -t dev.pmxs -b 128 --sparsity=0.5 -o p.pmx
test ! -e p.pmx && test ! -e p.pmx.state || fail_ "output written on bad input"

# Prune both; the masks TSV fits the model (prumux-model shrink reads it).
for n in 1 2; do
  prumux-prune -m t$n.pmx -t train.pmxs -d dev.pmxs -b 16 -e 4 --lr=1e-3 \
    --reg-lr=0.05 --sparsity=0.5 --masks=m$n.tsv --log=p$n.tsv -o p$n.pmx -v \
    2> p$n.err || { cat p$n.err >&2; fail_ "pruning N=$n"; }
  grep -q 'expected_sparsity .* target 0.5000 lambda1' p$n.err \
    || fail_ "N=$n: no progress line"
  grep -q '^prumux-prune: 1 thread, matrix products on ' p$n.err \
    || fail_ "N=$n: -v: no kernel line"
  test $(wc -l < p$n.tsv) = 5 || fail_ "N=$n: metrics TSV"
  head -n 1 m$n.tsv | grep -q '^layer	kind	index	z$' || fail_ "N=$n: masks header"
  prumux-model shrink -M m$n.tsv -o s$n.pmx t$n.pmx || fail_ "N=$n: masks unreadable"
  prumux-model info p$n.pmx > info$n || fail_ "N=$n: info"
  # The archive's sparsity is the one the last evaluation reported (the
  # target is reached on real runs, not necessarily in 124 steps).
  sp=$(sed -n 's/^sparsity: *//p' info$n)
  last=$(tail -n 1 p$n.tsv | cut -f 12)
  awk -v s="$sp" -v l="$last" 'BEGIN { d = s - l; exit !(s > 0.05 && d < 1e-4 && d > -1e-4) }' \
    || fail_ "N=$n: sparsity $sp, last reported $last"
  echo "N=$n: sparsity $sp"
  prumux-mux -m p$n.pmx dev.pmxs | prumux-infer -m p$n.pmx \
    | prumux-demux -m p$n.pmx > pred$n.tsv || fail_ "N=$n: pipeline"
  test $(wc -l < pred$n.tsv) -ge 100 || fail_ "N=$n: $(wc -l < pred$n.tsv) predictions"
done
# Off a terminal: a progress line every --progress-every steps, as
# prumux-train has them (not on the evaluation steps); none with -q.
prumux-prune -m t2.pmx -t train.pmxs -b 16 -s 6 -E 3 --sparsity=0.5 \
  --progress-every=2 -o g.pmx 2> progress || fail_ "--progress-every"
grep -Eq '^prumux-prune: step 2/6 loss [0-9.]+ expected_sparsity [0-9.]+ [0-9.]+ ex/s ETA [0-9]+:[0-9]{2}$' \
  progress || { cat progress >&2; fail_ "no progress line at step 2"; }
[ "$(grep -c '^prumux-prune: step' progress)" = 2 ] || { cat progress >&2; fail_ "progress lines"; }
grep -q '^step 3/6' progress || fail_ "no evaluation line"
prumux-prune -m t2.pmx -t train.pmxs -b 16 -s 6 -E 3 --sparsity=0.5 -q -o g.pmx \
  2> progress || fail_ "-q run"
[ ! -s progress ] || fail_ "--quiet printed progress"
# N = 1 without a pooler (the classifier reads h_0) prunes hidden
# dimensions too (a fast --reg-lr: hidden masks start near 1): the
# classifier loses the cut input columns, and the model runs.
prumux-prune -m t1.pmx -t train.pmxs -d dev.pmxs -b 16 -e 4 --lr=1e-3 \
  --reg-lr=1 --sparsity=0.7 --masks=mh.tsv -o h1.pmx -q 2> h1.err \
  || { cat h1.err >&2; fail_ "pruning N=1 with hidden masks"; }
prumux-model info h1.pmx > infoh || fail_ "N=1 hidden: info"
hid=$(sed -n 's/^hidden: *//p' infoh)
cut=$(awk -F '\t' '$2 == "hidden" && $4 == 0' mh.tsv | wc -l)
test "$hid" -lt 16 && test $((hid + cut)) = 16 \
  || fail_ "N=1: hidden $hid after cutting $cut of 16"
grep -q '^pooling: *cls' infoh || fail_ "N=1: not a cls-pooling model"
echo "N=1: hidden 16 -> $hid"
prumux-mux -m h1.pmx dev.pmxs | prumux-infer -m h1.pmx \
  | prumux-demux -m h1.pmx > predh.tsv || fail_ "N=1 hidden: pipeline"
test $(wc -l < predh.tsv) -ge 100 || fail_ "N=1 hidden: $(wc -l < predh.tsv) predictions"
# Fine-tuning the pruned model by distillation keeps its shape.
prumux-prune -m t2.pmx -t train.pmxs -d dev.pmxs -b 16 -e 2 --lr=1e-3 \
  --reg-lr=0.05 --sparsity=0.5 --finetune-epochs=1 -o f2.pmx 2> f2.err \
  || { cat f2.err >&2; fail_ "fine-tuning"; }
grep -q 'fine-tuned 31 steps.*dev_accuracy' f2.err || fail_ "fine-tuning: no report"
prumux-mux -m f2.pmx dev.pmxs | prumux-infer -m f2.pmx \
  | prumux-demux -m f2.pmx > predf.tsv || fail_ "fine-tuned: pipeline"
expect_fail 1 'already pruned to sparsity' \
  prumux-prune -m p2.pmx -t train.pmxs -b 16 --sparsity=0.3 -o q.pmx
test ! -e q.pmx || fail_ "q.pmx written"

# Paused after 5 steps and resumed: the same model and masks.
opts="-m t2.pmx -t train.pmxs -b 16 -s 9 -E 4 --lr=1e-3 --sparsity=0.4 -q"
prumux-prune $opts --masks=a.tsv -o a.pmx || fail_ "unbroken run"
prumux-prune $opts --masks=b.tsv -o b.pmx -P 5 || fail_ "paused run"
test ! -e b.pmx || fail_ "a paused run wrote the model"
expect_fail 1 'other options' prumux-prune $opts --seed=3 -o b.pmx -r
prumux-prune $opts --masks=b.tsv -o b.pmx -r || fail_ "resumed run"
cmp a.pmx b.pmx || fail_ "resumed model differs"
cmp a.tsv b.tsv || fail_ "resumed masks differ"
# The thread count changes nothing (lib/cpu/par.h).
for j in 1 3; do
  prumux-prune $opts -j $j --masks=j$j.tsv -o j$j.pmx || fail_ "-j $j"
  cmp a.pmx j$j.pmx || fail_ "-j $j gave another model"
  cmp a.tsv j$j.tsv || fail_ "-j $j gave other masks"
done

# Ctrl-C: the state is saved at the end of the step and the exit status
# is 1; --resume continues from it.  Interrupt once the metrics log shows
# a step (the handler is in place by then).
long="-m t2.pmx -t train.pmxs -b 16 -s 400 -E 1 --lr=1e-3 --sparsity=0.4 -q"
prumux-prune $long --log=int.tsv -o c.pmx 2> int.err &
pid=$!
i=0
while [ $(cat int.tsv 2>/dev/null | wc -l) -lt 2 ] && [ $i -lt 600 ]; do
  sleep 0.1; i=$((i + 1))
done
kill -INT $pid
wait $pid && fail_ "an interrupted run exited 0"
grep -q 'interrupted after step' int.err || { cat int.err >&2; fail_ "no interrupt message"; }
test -s c.pmx.state && test ! -e c.pmx || fail_ "Ctrl-C: no state, or a model"
prumux-prune $long --log=int.tsv -o c.pmx -r -P 1 2> res.err || fail_ "resume after Ctrl-C"
grep -q 'paused after step' res.err || fail_ "resume after Ctrl-C: no step"
# The appended run is set off in the log by a comment line, the header
# written once.
[ "$(grep -c '^step' int.tsv)" = 1 ] || fail_ "log header repeated"
grep -q '^# run of prumux-prune .* output c\.pmx, resumed after step [1-9]' int.tsv \
  || { cat int.tsv >&2; fail_ "no '# run' line for the resumed run"; }
exit 0
