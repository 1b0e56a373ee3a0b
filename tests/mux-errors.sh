#!/bin/sh
# mux-errors.sh -- prumux-mux and prumux-demux refuse bad input with a clear
# message and status 1: a stream for another model, the wrong stage, -N
# against the model, a row count that does not fit N, bad options,
# truncated input.
. "$abs_top_srcdir/tests/init.sh"

py=$(torch_python) || skip_ "no Python with torch (to write test weights)"
ref=$srcdir/tests/ref-mux.py
"$py" "$ref" weights w5 5 index_pos model-a || framework_failure_ "weights"
"$py" "$ref" weights w5b 5 index_pos model-b || framework_failure_ "weights"
"$py" "$ref" weights w1 1 none model-a || framework_failure_ "weights"
"$py" "$ref" tokens tok 12 || framework_failure_ "tokens"
"$py" "$ref" tokens tok-a 12 model-a || framework_failure_ "tokens"

prumux-mux -w w5 tok > emb || fail_ "prumux-mux failed"
prumux-infer -j 1 -w w5 emb > hid || fail_ "prumux-infer failed"
prumux-demux -w w5 hid > out || fail_ "prumux-demux failed"
test "$(wc -l < out)" = 12 || fail_ "expected 12 lines"
prumux-mux -w w5 -N 5 tok-a > /dev/null || fail_ "-N 5 or model-a refused"

expect_fail 1 "the model multiplexes N = 5 instances, not 2" prumux-mux -w w5 -N 2 tok
expect_fail 1 "emb: encoder inputs (stage embeds, from prumux-mux) are past prumux-mux: give them to prumux-infer" prumux-mux -w w5 emb
expect_fail 1 "hid: hidden states (stage hidden, from prumux-infer) are past prumux-mux: give them to prumux-demux" prumux-mux -w w5 hid
expect_fail 1 "tok-a: made for model model-a, but w5b is model model-b: use one model for every stage" prumux-mux -w w5b tok-a
expect_fail 1 "hid: made for model model-a (w5), but w5b is model model-b: use one model" prumux-demux -w w5b hid
expect_fail 1 "emb: encoder inputs (stage embeds, from prumux-mux), but prumux-demux reads hidden states (stage hidden): run prumux-infer first" prumux-demux -w w5 emb
expect_fail 1 "'row' has 5 rows; 1 sequences of N = 1 instances need 1" prumux-demux -w w1 hid
expect_fail 1 "give exactly one of --model and --weights" prumux-mux tok
expect_fail 1 "give exactly one of --model and --weights" prumux-demux -m x -w w5 hid
expect_fail 1 "invalid --emit 'nonsense'" prumux-demux -w w5 --emit=nonsense hid
# -o and --output say where (all programs); --output=WHAT, what demux
# wrote before --emit, still means that.
prumux-demux -w w5 --emit=probs -o probs.tsv hid && prumux-demux -w w5 --output=probs hid |
  cmp -s - probs.tsv || fail_ "--output=probs is not --emit=probs"
prumux-demux -w w5 --output=./out.tsv hid && cmp -s out.tsv out || fail_ "--output=FILE"
expect_fail 1 "invalid --format" prumux-demux -w w5 --format=xml hid
expect_fail 1 "pooling applies only" prumux-demux -w w5 --pool=mean hid
"$py" -c "import sys; sys.path.insert(0, '$srcdir/tests'); import pmxstream as p
m, r = p.read('tok'); [x.pop('label') for x in r]; p.write('tok-nl', r, m)" \
  || framework_failure_ "tokens without labels"
prumux-mux -w w5 tok-nl | prumux-infer -j 1 -w w5 > hid-nl || fail_ "no-label pipeline"
expect_fail 1 "no gold labels" prumux-demux -w w5 --eval hid-nl
# Empty records are no error, for N = 1 and N = 5 alike.
"$py" -c "import sys; sys.path.insert(0, '$srcdir/tests'); import pmxstream as p
import numpy as np
m, r = p.read('tok')
e = {k: v[:0] for k, v in r[0].items()}
p.write('tok-e', [e] + r[:1] + [e] + r[1:], m)" || framework_failure_ "empty records"
for w in w1 w5; do
  prumux-mux -w $w tok | prumux-infer -j 1 -w $w | prumux-demux -w $w > want.$w \
    || fail_ "$w: pipeline"
  prumux-mux -w $w tok-e | prumux-infer -j 1 -w $w | prumux-demux -w $w > got.$w \
    || fail_ "$w: pipeline with empty records"
  compare want.$w got.$w || fail_ "$w: empty records change the output"
done

head -c $(($(wc -c < hid) - 100)) hid > hid.cut
expect_fail 1 "hid.cut" prumux-demux -w w5 hid.cut
head -c $(($(wc -c < tok) - 100)) tok > tok.cut
expect_fail 1 "tok.cut" prumux-mux -w w5 tok.cut
expect_fail 1 "no such file\|No such file" prumux-mux -w w5 missing-file
exit 0
