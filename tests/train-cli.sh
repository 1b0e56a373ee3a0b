#!/bin/sh
# prumux-train: options, usage errors and bad input give clear errors.
. "$abs_top_srcdir/tests/init.sh"
. "$srcdir/tests/train-data.sh"

prumux-train --help > help || fail_ "--help failed"
grep -q -- '--objective' help || fail_ "--help lacks --objective"
prumux-train --version > /dev/null || fail_ "--version failed"

new="--init=layers=1,hidden=16,heads=2,ffn=32,n=2,labels=3,max-length=16"
expect_fail 1 'required' prumux-train -t train.pmxs -o m.pmx
expect_fail 1 'unknown objective' prumux-train $new --vocab=vocab.txt -t train.pmxs -o m.pmx -O bogus
expect_fail 1 'invalid weight' prumux-train $new --vocab=vocab.txt -t train.pmxs -o m.pmx -O task:x
expect_fail 1 'unknown key' prumux-train --init=layers=1,colour=3 --vocab=vocab.txt -t train.pmxs -o m.pmx
expect_fail 1 'needs --vocab' prumux-train $new -t train.pmxs -o m.pmx
expect_fail 1 'not a multiple of n' prumux-train $new --vocab=vocab.txt -t train.pmxs -o m.pmx -b 5
expect_fail 1 'mlm objectives need a multiplexed' \
  prumux-train --init=layers=1,hidden=16,heads=2,ffn=32,labels=3 --vocab=vocab.txt \
  -t train.pmxs -o m.pmx -O retrieval
expect_fail 1 "not one of the model's 2" \
  prumux-train --init=layers=1,hidden=16,heads=2,ffn=32,labels=2 --vocab=vocab.txt \
  -t train.pmxs -o m.pmx
prumux-tokenize -v vocab.txt -f 2 -n 16 train.tsv > nolabel.pmxs || framework_failure_ "tokenize"
expect_fail 1 "needs 'label'" prumux-train $new --vocab=vocab.txt -t nolabel.pmxs -o m.pmx
expect_fail 1 'no-such' prumux-train $new --vocab=vocab.txt -t no-such.pmxs -o m.pmx
printf 'not a stream\n' > junk.pmxs
expect_fail 1 'junk.pmxs' prumux-train $new --vocab=vocab.txt -t junk.pmxs -o m.pmx
expect_fail 1 'junk.pmxs' prumux-train -i junk.pmxs -t train.pmxs -o m.pmx
expect_fail 1 'no state\|No such file' prumux-train $new --vocab=vocab.txt -t train.pmxs -o m.pmx -r
head -c 3000 train.pmxs > cut.pmxs
expect_fail 1 'cut.pmxs' prumux-train $new --vocab=vocab.txt -t cut.pmxs -o m.pmx
# A state saved with other options is refused.
prumux-train $new --vocab=vocab.txt -t train.pmxs -o m.pmx -s 2 -q || fail_ "2 steps"
expect_fail 1 'other options' prumux-train $new --vocab=vocab.txt -t train.pmxs -o m.pmx -s 3 -r
# Starting from an archive.
prumux-train -i m.pmx -t train.pmxs -o m2.pmx --seed=1 -s 1 -b 4 -q \
  || fail_ "training from an archive failed"
test -s m2.pmx || fail_ "no m2.pmx"
exit 0
