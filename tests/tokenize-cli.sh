#!/bin/sh
# tokenize-cli.sh -- prumux-tokenize on a tiny vocabulary: ids worked out by
# hand, TSV fields and labels, the stream's records and metadata, --decode,
# errors, and a 10 MB line in bounded memory.  Needs no Python package.
. "$abs_top_srcdir/tests/init.sh"

printf '%s\n' '[PAD]' '[UNK]' '[CLS]' '[SEP]' '[MASK]' hello world '!' ',' \
  un '##aff' '##able' cafe 'café' '北' '京' the . a '##b' Hello > vocab.txt
#            0      1      2      3      4     5     6    7   8
#            9  10 11 12 13 14 15 16 17 18 19 20

tok () { prumux-tokenize --vocab=vocab.txt "$@"; }

# Ids by hand: lower-casing, punctuation, WordPiece pieces, an unsplittable
# word, accents, CJK, invalid UTF-8 (dropped), control characters, CRLF,
# an empty line, a tab in a plain line.
printf 'Hello, World!\nunaffable\nunaffablex\nCafé\n北京\nhel\377lo\n\001the\033.\r\n\na\tb\n' > in.txt
cat > exp <<'E'
2 5 8 6 7 3
2 9 10 11 3
2 1 3
2 12 3
2 14 15 3
2 5 3
2 16 17 3
2 3
2 18 1 3
E
tok --format=tsv in.txt > out || fail_ "tokenize failed"
compare exp out || fail_ "uncased ids"
printf 'Café\nHello\n' | tok -F tsv --no-strip-accents > out
printf '2 13 3\n2 5 3\n' > exp
compare exp out || fail_ "--no-strip-accents"
printf 'Café\nHello\n' | tok -F tsv --cased > out
printf '2 1 3\n2 20 3\n' > exp
compare exp out || fail_ "--cased"
printf 'Café\n' | tok -F tsv --cased --strip-accents > out
printf '2 1 3\n' > exp
compare exp out || fail_ "--cased --strip-accents"

# Vocabulary lines lose trailing white space (CRLF files work), and a token
# listed twice is found at its later line, as in Hugging Face.
sed 's/$/\r/' vocab.txt > crlf-vocab.txt
echo 'Hello, World!' | prumux-tokenize -v crlf-vocab.txt -F tsv > out
printf '2 5 8 6 7 3\n' > exp
compare exp out || fail_ "CRLF vocabulary"
{ cat vocab.txt; echo 'hello  '; } > dup-vocab.txt
echo 'hello' | prumux-tokenize -v dup-vocab.txt -F tsv > out
printf '2 21 3\n' > exp
compare exp out || fail_ "duplicate token"

# --decode reads the tsv form back.
printf '2 5 8 6 7 3\n2 9 10 11 3\n' | tok --decode > out
printf '[CLS] hello , world ! [SEP]\n[CLS] un ##aff ##able [SEP]\n' > exp
compare exp out || fail_ "--decode of tsv"

# Truncation: [CLS] + 3 + [SEP].
echo 'the the the the the the' | tok -F tsv --max-length=5 > out
printf '2 16 16 16 3\n' > exp
compare exp out || fail_ "truncation"

# TSV with a header, a pair, labels by name, records of 2 rows.
printf 'id\ts1\ts2\tlabel\n0\thello\tworld\tpos\n1\tthe\ta\tneg\n2\tun\tcafe\tpos\r\n' > pairs.tsv
tok --fields=2,3 --label-field=4 --labels=neg,pos --skip-header --batch=2 \
  --max-length=6 -o pairs.pmxs pairs.tsv || fail_ "pairs to stream"
prumux-cat -f tsv pairs.pmxs > cat.tsv || fail_ "prumux-cat cannot read the stream"
cat > exp <<'E'
#prumux-stream	1.0
#meta	producer	prumux-tokenize 0.1.0
#meta	stage	tokens
#meta	max_length	6
#meta	vocab_size	21
#meta	lowercase	1
#meta	strip_accents	1
#meta	pad	max
#meta	tokenizer	1378f7a7700c402cd69eb7f2a9d8435d
#meta	labels	neg,pos
#record	0
#tensor	row	i64	2
0	1
#tensor	ids	i32	2x6
2	5	3	6	3	0
2	16	3	18	3	0
#tensor	type_ids	i32	2x6
0	0	0	1	1	0
0	0	0	1	1	0
#tensor	lengths	i32	2
5	5
#tensor	label	i32	2
1	0
#record	1
#tensor	row	i64	1
2
#tensor	ids	i32	1x6
2	9	3	12	3	0
#tensor	type_ids	i32	1x6
0	0	0	1	1	0
#tensor	lengths	i32	1
5
#tensor	label	i32	1
1
#end	2
E
sed 's/^#meta	producer	prumux-tokenize .*/#meta	producer	prumux-tokenize 0.1.0/' cat.tsv > cat2.tsv
compare exp cat2.tsv || fail_ "stream records"
tok --decode pairs.pmxs > out || fail_ "--decode of a stream"
printf '[CLS] hello [SEP] world [SEP]\n[CLS] the [SEP] a [SEP]\n[CLS] un [SEP] cafe [SEP]\n' > exp
compare exp out || fail_ "--decode of a stream"

# --pad=longest, integer labels, the last field with CRLF.
printf 'hello world\t1\r\nthe\t0\r\n' | tok -f 1 -l 2 -p longest | prumux-cat -f tsv > cat.tsv
grep -q '^#tensor	ids	i32	2x4$' cat.tsv || fail_ "--pad=longest shape"
printf '1\t0\n' > exp
sed -n '/^#tensor	label/{n;p;}' cat.tsv > out
compare exp out || fail_ "integer labels"

# An empty input gives a stream without records.
: | tok | prumux-cat -f tsv > cat.tsv || fail_ "empty input"
grep -q '^#end	0$' cat.tsv || fail_ "empty input: records"

# Errors: clear message, status 1, and no partial output file.
expect_fail 1 'no vocabulary' prumux-tokenize in.txt
expect_fail 1 'nosuch.txt' prumux-tokenize --vocab=nosuch.txt in.txt
printf 'a\nb\n' > nounk.txt
expect_fail 1 'no \[UNK\]' prumux-tokenize --vocab=nounk.txt in.txt
: > empty.txt
expect_fail 1 'empty vocabulary' prumux-tokenize --vocab=empty.txt in.txt
expect_fail 1 'invalid --fields' tok --fields=0 in.txt
expect_fail 1 'invalid --fields' tok --fields=1,x in.txt
expect_fail 1 'max-length' tok --max-length=1 in.txt
expect_fail 1 'at least 3 for pairs' tok --fields=1,2 --max-length=2 in.txt
expect_fail 1 'invalid --pad' tok --pad=min in.txt
expect_fail 1 'invalid --format' tok --format=json in.txt
expect_fail 1 'needs --fields' tok --label-field=2 in.txt
expect_fail 1 'needs --label-field' tok --labels=a,b in.txt
expect_fail 1 "given twice" tok -f 1 -l 2 --labels=a,a in.txt
expect_fail 1 'nosuch.txt' tok nosuch.txt
printf 'x\ty\nlonely\n' > short.tsv
expect_fail 1 'short.tsv:2: 1 field, but field 2 is needed' tok -f 1,2 short.tsv
printf 'x\tmaybe\n' > lab.tsv
expect_fail 1 "lab.tsv:1: label 'maybe' is not an integer" tok -f 1 -l 2 lab.tsv
expect_fail 1 "label 'maybe' is not one of --labels" tok -f 1 -l 2 -L yes,no lab.tsv
expect_fail 1 'id 99 is not in the vocabulary' sh -c 'echo "2 99 3" | prumux-tokenize -v vocab.txt -d'
expect_fail 1 'not a list of token ids' sh -c 'echo "2 x 3" | prumux-tokenize -v vocab.txt -d'
head -c 200 pairs.pmxs > cut.pmxs
expect_fail 1 'cut.pmxs' tok -d cut.pmxs
expect_fail 1 'short.tsv:2' tok -f 1,2 -o partial.pmxs short.tsv
[ -e partial.pmxs ] && fail_ "a failed run left its output file"
ls partial.pmxs.* 2>/dev/null && fail_ "a failed run left a temporary file"
tok --help | grep -q -- '--max-length' || fail_ "--help"
tok --version | grep -q 'prumux' || fail_ "--version"

# A 10 MB line (and a pair of 10 MB fields) is read in bounded memory and
# truncated after tokenization: same ids as its first 100 kB.
py=$(command -v python3) || skip_ "python3 missing (for the memory check)"
"$py" - <<'PY' || framework_failure_ "cannot write the long line"
w = b"lorem ipsum, dolor sit amet; the un affable "
n = 10 * 1024 * 1024 // len(w)
open("big.txt", "wb").write(w * n + b"\n")
open("prefix.txt", "wb").write(w * 2000 + b"\n")
open("bigpair.txt", "wb").write(w * n + b"\t" + w * (n - 1) + b"\n")
PY
# Peak resident memory (kB) of a run, from the kernel's accounting.
maxrss () {
  "$py" -c 'import resource, subprocess, sys
subprocess.run(sys.argv[1:], stdout=open("rss.out", "wb"), check=True)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)' "$@"
}
base=$(maxrss prumux-tokenize -v vocab.txt -F tsv prefix.txt) || fail_ "prefix line"
mv rss.out prefix.out
big=$(maxrss prumux-tokenize -v vocab.txt -F tsv big.txt) || fail_ "10 MB line"
compare prefix.out rss.out || fail_ "10 MB line: ids differ from its prefix's"
pair=$(maxrss prumux-tokenize -v vocab.txt -F tsv -f 1,2 bigpair.txt) || fail_ "10 MB pair"
# 128 ids: [CLS] 62 [SEP] 63 [SEP]... the longer first field gets 63.
"$py" -c 'import sys; ids = open("rss.out").read().split()
sys.exit(not (len(ids) == 128 and ids.count("3") == 2 and ids.index("3") == 64))' \
  || fail_ "10 MB pair: wrong truncation: $(cat rss.out)"
# A tab in a line without --fields: one warning (the label would be text),
# the output unchanged; --whole-line says the tabs are meant.
printf 'hello\n1\tthe cafe\n2\ta\n' > tabs.tsv; sed 1d tabs.tsv > tabs2.tsv
tok -F tsv tabs.tsv > tabs.out 2> tabs.err || fail_ "tabs without --fields"
grep -q '^prumux-tokenize: tabs.tsv:2: warning: .*--fields' tabs.err || fail_ "no warning: $(cat tabs.err)"
[ "$(wc -l < tabs.err)" = 1 ] || fail_ "more than one warning"
[ "$(wc -l < tabs.out)" = 3 ] || fail_ "tabs: output"
tok -F tsv --whole-line tabs.tsv > tabs2.out 2> tabs.err || fail_ "--whole-line"
[ -s tabs.err ] && fail_ "--whole-line warned"
compare tabs.out tabs2.out || fail_ "--whole-line changed the output"
tok -F tsv -f 2 tabs2.tsv > /dev/null 2> tabs.err; [ -s tabs.err ] && fail_ "--fields warned"
expect_fail 1 "only one of --fields and --whole-line" tok -f 2 --whole-line tabs.tsv
echo "peak RSS: prefix ${base} kB, 10 MB line ${big} kB, 10 MB pair ${pair} kB"
[ $((big - base)) -lt 4096 ] && [ $((pair - base)) -lt 4096 ] \
  || fail_ "memory grows with the line: ${base} kB -> ${big} kB, ${pair} kB"
exit 0
