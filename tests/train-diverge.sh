#!/bin/sh
# train-diverge.sh -- a training run whose loss or gradient becomes NaN or
# infinite stops with a message that says so (not "prumux-train:
# training: "), names the step, and leaves no output.
. "$abs_top_srcdir/tests/init.sh"
. "$srcdir/tests/train-data.sh"

new="--init=layers=1,hidden=16,heads=2,ffn=32,n=2,labels=3,max-length=16"
expect_fail 1 'prumux-train: training: step [0-9]*: the \(loss\|gradient norm\) is \(NaN\|infinite\|-infinite\): the run diverged (try a lower --lr' \
  prumux-train $new --vocab=vocab.txt -t train.pmxs -o m.pmx -s 10 --lr=1e30 -q
[ -e m.pmx ] && fail_ "a diverged run left m.pmx"
ls | grep -q 'm\.pmx' && fail_ "temporary output left: $(ls)"
prumux-train $new --vocab=vocab.txt -t train.pmxs -o m.pmx -s 2 -q || fail_ "a sane run failed"
exit 0
