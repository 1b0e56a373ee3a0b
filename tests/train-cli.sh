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
# Starting from an archive; -v names the threads and kernels (and -q
# keeps the progress off).
prumux-train -i m.pmx -t train.pmxs -o m2.pmx --seed=1 -s 1 -b 4 -q -v -j 2 2> verbose \
  || fail_ "training from an archive failed"
test -s m2.pmx || fail_ "no m2.pmx"
grep -q '^prumux-train: 2 threads, matrix products on ' verbose \
  || fail_ "-v: no kernel line: $(cat verbose)"
test "$(wc -l < verbose)" -eq 1 || fail_ "-v -q: more than one line: $(cat verbose)"

# Off a terminal: a progress line every --progress-every steps (not on the
# evaluation steps, which have their own line); the log of an appended
# run is set off by a '# run' line.
prumux-train -i m.pmx -t train.pmxs -o m3.pmx -s 6 -b 4 -E 3 --progress-every=2 \
  -L log.tsv 2> progress || fail_ "--progress-every"
grep -Eq '^prumux-train: step 2/6 loss [0-9.]+ [0-9.]+ ex/s ETA [0-9]+:[0-9]{2}$' progress \
  || { cat progress >&2; fail_ "no progress line at step 2"; }
[ "$(grep -c '^prumux-train: step' progress)" = 2 ] || { cat progress >&2; fail_ "progress lines"; }
grep -q '^step 3/6' progress || fail_ "no evaluation line"
prumux-train -i m.pmx -t train.pmxs -o m3.pmx -s 6 -b 4 -E 3 -q -L log.tsv 2> progress \
  || fail_ "second run"
[ ! -s progress ] || fail_ "--quiet printed progress"
[ "$(head -1 log.tsv | cut -f 1)" = step ] || fail_ "log header"
[ "$(grep -c '^step' log.tsv)" = 1 ] || fail_ "log header repeated"
[ "$(sed -n 4p log.tsv | cut -c 1-18)" = "# run of prumux-tr" ] || { cat log.tsv >&2; fail_ "no separator"; }
[ "$(wc -l < log.tsv)" = 6 ] || { cat log.tsv >&2; fail_ "log lines"; }
# A new model on a pretrained encoder (base=): its shape and vocabulary
# come from the archive, its embeddings and encoder weights are the
# archive's (checked after a step at learning rate 0), the multiplexer and
# heads are new.  m.pmx (N = 2) is refused as a base; a plain model is not.
expect_fail 1 'unmultiplexed' prumux-train --init=base=m.pmx,n=2,labels=3 -t train.pmxs -o b.pmx
prumux-train --init=layers=2,hidden=16,heads=2,ffn=32,labels=3,max-length=16 --vocab=vocab.txt \
  -t train.pmxs -o plain.pmx -s 3 -b 4 -q || fail_ "plain model"
expect_fail 1 'gives the shape' prumux-train --init=base=plain.pmx,hidden=32 -t train.pmxs -o b.pmx
expect_fail 1 'no --vocab' prumux-train --init=base=plain.pmx,labels=3 --vocab=vocab.txt \
  -t train.pmxs -o b.pmx
expect_fail 1 'above the base' prumux-train --init=base=plain.pmx,labels=3,max-length=99 \
  -t train.pmxs -o b.pmx
expect_fail 1 'no-such.pmx' prumux-train --init=base=no-such.pmx,labels=3 -t train.pmxs -o b.pmx
prumux-train --init=n=2,labels=a:b:c,base=plain.pmx -t train.pmxs -o b.pmx -s 1 -b 4 --lr=0 -q \
  || fail_ "base="
prumux-model info b.pmx > info || fail_ "info of b.pmx"
for want in 'mux_n: *2' 'layers: *2' 'hidden: *16' 'labels: *a,b,c' 'max_length: *16'; do
  grep -q "^$want\$" info || { cat info >&2; fail_ "b.pmx: no '$want'"; }
done
cmp -s "$(prumux-model vocab b.pmx > v1; echo v1)" "$(prumux-model vocab plain.pmx > v2; echo v2)" \
  || fail_ "the vocabulary is not the base's"
if py=$(torch_python); then
  PYTHONPATH=$srcdir/share/python "$py" - plain.pmx b.pmx <<'PY' || fail_ "encoder weights differ from the base's"
import sys
import numpy as np
from prumux.model import open_model
a, b = open_model(sys.argv[1]), open_model(sys.argv[2])
names = [n for n, _, _, _ in a.tensor_table() if n.startswith(("embeddings.", "encoder."))]
assert len(names) > 10, names
for n in names:
    assert np.array_equal(np.asarray(a[n]), np.asarray(b[n])), n
assert "classifier.weight" in b and "demux_module.dense_1.weight" in b
PY
fi
exit 0
