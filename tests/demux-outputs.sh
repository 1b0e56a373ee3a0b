#!/bin/sh
# Outputs that describe themselves: prumux-demux --header (class names),
# --row-numbers, --gold, the --eval report (per class and the confusion
# matrix, checked by recounting the printed predictions), and
# prumux-infer --progress.  On the shipped demo model and its glosses.
. "$abs_top_srcdir/tests/init.sh"
m=$srcdir/share/prumux/wordnet-lexfile-n2.pmx
g=$srcdir/share/prumux/sample-glosses.tsv
prumux-tokenize -m "$m" -f 2 -l 1 "$g" | prumux-mux -m "$m" \
  | prumux-infer -m "$m" --progress > hid.pmxs 2> progress || fail_ "pipeline"
grep -Eq '^prumux-infer: 1 records, 24 rows, [0-9.]+ rows/s$' progress \
  || { cat progress >&2; fail_ "--progress line"; }
prumux-tokenize -m "$m" -f 2 "$g" | prumux-mux -m "$m" > emb.pmxs && prumux-infer -m "$m" emb.pmxs > nolab.pmxs 2> err \
  || fail_ "pipeline without labels"
[ ! -s err ] || fail_ "progress when not asked"

labels=$(prumux-model info "$m" | sed -n 's/^labels: *//p' | tr ',' '\t')
[ -n "$labels" ] || framework_failure_ "no labels in the model"

# --emit=probs --header: the class names, then probabilities summing to 1.
prumux-demux -m "$m" --emit=probs -H --row-numbers --gold hid.pmxs > probs.tsv \
  || fail_ "probs"
[ "$(head -1 probs.tsv)" = "$(printf 'row\t%s\tgold' "$labels")" ] \
  || { head -1 probs.tsv >&2; fail_ "probs header"; }
[ "$(wc -l < probs.tsv)" = 25 ] || fail_ "probs: not a header and 24 rows"
awk -F '\t' 'NR > 1 { s = 0; for (i = 2; i < NF; i++) s += $i
  if (s < 0.9999 || s > 1.0001 || $1 != NR - 2) exit 1 }' probs.tsv \
  || fail_ "probs rows (row number, sum 1)"
# The gold column is the label column of the input, by name.
cut -f 1 "$g" > gold.txt
tail -n +2 probs.tsv | awk -F '\t' '{ print $NF }' > got-gold.txt
compare gold.txt got-gold.txt || fail_ "--gold"

# Labels with the header; JSON with gold.
prumux-demux -m "$m" -H --gold hid.pmxs > labels.tsv || fail_ "labels"
[ "$(head -1 labels.tsv)" = "$(printf 'label\tprobability\tgold')" ] || fail_ "labels header"
prumux-demux -m "$m" -f json --gold hid.pmxs > labels.json || fail_ "json"
python3 - labels.json labels.tsv <<'PY' || fail_ "json --gold"
import json, sys
js = [json.loads(l) for l in open(sys.argv[1])]
tsv = [l.rstrip("\n").split("\t") for l in open(sys.argv[2])][1:]
assert [j["row"] for j in js] == list(range(24))
for j, t in zip(js, tsv):
    assert j["label"] == t[0] and j["gold"] == t[2] and abs(j["score"] - float(t[1])) < 1e-6
PY

# --eval: recount everything from the printed predictions and gold labels.
prumux-demux -m "$m" --eval=eval.tsv hid.pmxs > /dev/null || fail_ "--eval"
tail -n +2 labels.tsv | cut -f 1,3 > pairs.tsv
python3 - eval.tsv pairs.tsv "$labels" <<'PY' || { cat eval.tsv >&2; fail_ "--eval report"; }
import sys
blocks = open(sys.argv[1]).read().rstrip("\n").split("\n\n")
pairs = [l.rstrip("\n").split("\t") for l in open(sys.argv[2])]
names = sys.argv[3].split("\t")
summary = dict(l.split("\t") for l in blocks[0].splitlines())
assert int(summary["rows"]) == len(pairs) == 24
acc = sum(p == g for p, g in pairs) / len(pairs)
assert abs(float(summary["accuracy"]) - acc) < 1e-6, (summary, acc)
table = [l.split("\t") for l in blocks[1].splitlines()]
assert table[0] == ["class", "precision", "recall", "f1", "support"], table[0]
f1s = []
for row, name in zip(table[1:], names):
    tp = sum(p == g == name for p, g in pairs)
    npred = sum(p == name for p, g in pairs); nsup = sum(g == name for p, g in pairs)
    prec = tp / npred if npred else 0.0; rec = tp / nsup if nsup else 0.0
    f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
    f1s.append(f1)
    assert row[0] == name and int(row[4]) == nsup, row
    for got, want in zip(row[1:4], (prec, rec, f1)):
        assert abs(float(got) - want) < 1e-6, (row, prec, rec, f1)
assert abs(float(summary["macro_f1"]) - sum(f1s) / len(f1s)) < 1e-6
cm = [l.split("\t") for l in blocks[2].splitlines()]
assert cm[0] == ["gold\\predicted"] + names, cm[0]
for row, gname in zip(cm[1:], names):
    assert row[0] == gname
    for cell, pname in zip(row[1:], names):
        assert int(cell) == sum(g == gname and p == pname for p, g in pairs), (gname, pname)
PY

# --gold without labels in the stream is an error that says so.
expect_fail 1 "no gold labels" prumux-demux -m "$m" --gold nolab.pmxs
# --format=json --header: probs and logits keyed by the class names, the
# same numbers as the plain arrays.
for e in probs logits; do
  prumux-demux -m "$m" --emit=$e --format=json -H hid.pmxs > named.json &&
  prumux-demux -m "$m" --emit=$e --format=json hid.pmxs > plain.json ||
    fail_ "json $e"
  LABELS="$labels" python3 - "$e" named.json plain.json <<'PY' || fail_ "json --header $e"
import json, os, sys
key, names = sys.argv[1], os.environ["LABELS"].split("\t")
named = [json.loads(l) for l in open(sys.argv[2])]
plain = [json.loads(l) for l in open(sys.argv[3])]
assert len(named) == len(plain) == 24, (len(named), len(plain))
for a, b in zip(named, plain):
    assert a["row"] == b["row"]
    assert list(a[key]) == names, list(a[key])
    assert list(a[key].values()) == b[key]
PY
done
exit 0
