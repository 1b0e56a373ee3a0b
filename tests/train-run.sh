#!/bin/sh
# prumux-train end to end on a synthetic task: a plain model and a
# two-instance MUX-BERT (retrieval warm-up, then the task) learn it; the
# checkpoint gives the training forward's logits through prumux-mux |
# prumux-infer | prumux-demux (|diff| <= 1e-4); MLM learns; a run paused and resumed
# ends bit for bit where an unbroken run does, and the same seed repeats it,
# on any number of threads.
. "$abs_top_srcdir/tests/init.sh"
. "$srcdir/tests/train-data.sh"
logits="$abs_top_builddir/tests/test-train-logits"

# dev accuracy of the last line of a metrics log must reach $2
check_acc () {
  acc=$(tail -n 1 "$1" | cut -f "$3")
  awk -v a="$acc" -v m="$2" 'BEGIN { exit !(a >= m) }' \
    || fail_ "$1: accuracy $acc below $2"
  echo "$1: $acc"
}
# compare the training forward's logits with the inference programs'
same_logits () {
  "$logits" "$1" dev.pmxs > a.tsv || fail_ "test-train-logits $1"
  prumux-mux -m "$1" dev.pmxs | prumux-infer -m "$1" -t 1 \
    | prumux-demux -m "$1" --emit=logits > b.tsv || fail_ "pipeline $1"
  test $(wc -l < a.tsv) = 100 || fail_ "$1: $(wc -l < a.tsv) rows"
  paste a.tsv b.tsv | awk -F'\t' '{ n = NF / 2; for (i = 1; i <= n; i++) {
      d = $i - $(i + n); if (d < 0) d = -d; if (d > m) m = d } }
    END { print "max |diff|", m; exit !(NR == 100 && m <= 1e-4) }' \
    || fail_ "$1: training and inference logits differ"
}

spec=layers=2,hidden=32,heads=2,ffn=64,labels=3,max-length=16
prumux-train --init=$spec,n=1 --vocab=vocab.txt -t train.pmxs -d dev.pmxs -b 16 \
  -e 6 -l 2e-3 -w 0.1 -o m1.pmx -L m1.tsv -q || fail_ "N=1 training"
check_acc m1.tsv 0.95 7
same_logits m1.pmx

prumux-train --init=$spec,n=2 --vocab=vocab.txt -t train.pmxs -d dev.pmxs \
  -O retrieval -b 16 -e 12 -l 2e-3 -w 0.1 -o w2.pmx -L w2.tsv -q \
  || fail_ "N=2 warm-up"
check_acc w2.tsv 0.95 8
prumux-train -i w2.pmx -t train.pmxs -d dev.pmxs -b 16 -e 6 -l 1e-3 -w 0.1 \
  -o t2.pmx -L t2.tsv -q || fail_ "N=2 task"
best=$(cut -f 7 t2.tsv | sed 1d | sort -g | tail -n 1)
awk -v a="$best" 'BEGIN { exit !(a >= 0.5) }' || fail_ "N=2: best accuracy $best"
echo "N=2 best dev accuracy $best"
same_logits t2.pmx

# MLM (masked positions of both instances): the words are random, so the
# loss can only fall towards log 18 (from log 124) and the accuracy stays
# near a word's frequency; both are checked loosely.
prumux-train --init=$spec,n=2 --vocab=vocab.txt -t train.pmxs -d dev.pmxs -O mlm \
  -b 16 -e 4 -E 31 -l 2e-3 -o mlm.pmx -L mlm.tsv -q || fail_ "MLM training"
awk -F'\t' 'NR == 2 { first = $4 } END { print "MLM loss", first, "->", $4,
  "dev MLM accuracy", $9; exit !($4 < 0.8 * first && $9 > 0.05) }' mlm.tsv \
  || fail_ "MLM did not learn"

# Resume: paused after 12 of 30 steps, then resumed = unbroken.
a="--init=$spec,n=2 --vocab=vocab.txt -t train.pmxs -d dev.pmxs -b 16 -a 2 -s 30
   -E 7 -O task:0.9,retrieval:0.1 -l 2e-3 -w 5 --weight-decay=0.01 -q"
prumux-train $a -o A.pmx || fail_ "unbroken run"
prumux-train $a -o B.pmx -P 12 2> err || fail_ "paused run"
grep -q 'paused after step 12' err || fail_ "no pause message"
prumux-train $a -o B.pmx -r || fail_ "resumed run"
cmp A.pmx B.pmx || fail_ "resumed model differs"
cmp A.pmx.state B.pmx.state || fail_ "resumed state differs"
prumux-train $a -o C.pmx || fail_ "repeated run"
cmp A.pmx C.pmx || fail_ "the same seed gave another model"
# The thread count changes nothing (lib/cpu/par.h).
for j in 1 3; do
  prumux-train $a -j $j -o J$j.pmx || fail_ "-j $j"
  cmp A.pmx J$j.pmx || fail_ "-j $j gave another model"
done
prumux-train $a -o D.pmx --seed=7 || fail_ "other seed"
cmp -s A.pmx D.pmx && fail_ "another seed gave the same model"

# An interrupt saves the state and exits 1.
prumux-train --init=$spec,n=2 --vocab=vocab.txt -t train.pmxs -b 16 -s 1000000 \
  -o I.pmx -q 2> err &
pid=$!
sleep 1
kill -INT $pid
wait $pid
st=$?
test $st = 1 || { cat err >&2; fail_ "interrupted run exited $st"; }
grep -q 'interrupted after step' err || fail_ "no interrupt message"
test -s I.pmx.state || fail_ "no state after the interrupt"
exit 0
