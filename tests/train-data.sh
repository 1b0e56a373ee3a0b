# tests/train-data.sh -- sourced by the training tests: a BERT-style
# vocabulary ([CLS] = 101 as the multiplexer expects) and a synthetic
# three-class task whose label is given by one keyword, tokenized into
# train.pmxs (500 rows) and dev.pmxs (100 rows).
{ echo "[PAD]"
  i=0; while [ $i -lt 99 ]; do echo "[unused$i]"; i=$((i + 1)); done
  printf '%s\n' "[UNK]" "[CLS]" "[SEP]" "[MASK]" red green blue cat dog bird \
    runs sleeps eats big small the a very good bad fish tree house car
} > vocab.txt || framework_failure_ "vocab"
awk 'BEGIN { s = 7
  n = split("red green blue cat dog bird runs sleeps eats big small the a fish tree house car", W, " ")
  for (i = 0; i < 600; i++) {
    s = (s * 1103515245 + 12345) % 2147483648; len = 3 + s % 6
    s = (s * 1103515245 + 12345) % 2147483648; lab = s % 3; t = ""
    for (j = 0; j < len; j++) {
      s = (s * 1103515245 + 12345) % 2147483648; t = t (j ? " " : "") W[1 + s % n] }
    k = lab == 0 ? "good" : lab == 1 ? "bad" : "very"
    print lab "\t" t " " k } }' > all.tsv || framework_failure_ "data"
head -n 500 all.tsv > train.tsv && tail -n 100 all.tsv > dev.tsv \
  || framework_failure_ "split"
for s in train dev; do
  prumux-tokenize --vocab=vocab.txt -f 2 -l 1 -n 16 $s.tsv > $s.pmxs \
    || framework_failure_ "prumux-tokenize $s"
done
