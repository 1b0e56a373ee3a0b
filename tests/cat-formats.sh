#!/bin/sh
# prumux-cat's text, TSV and JSON forms: TSV round-trips every dtype exactly,
# JSON parses, selection and shape-only views work, and malformed TSV is
# reported with its line number.
. "$abs_top_srcdir/tests/init.sh"

cat > all.tsv <<'TSV'
#prumux-stream	1.0
#meta	producer	cat-formats test
#meta	mux_n	5
#record	0
#tensor	f32	f32	2x2
0.100000001	-3.40282347e+38
1.40129846e-45	inf
#tensor	f16	f16	3
0.5	-65504	5.96046448e-08
#tensor	bf16	bf16	1x2
1	-3.38953139e+38
#tensor	f64	f64	2
0.10000000000000001	-1e-300
#tensor	i8	i8	2
-128	127
#tensor	u8	u8	2
0	255
#tensor	i16	i16	2
-32768	32767
#tensor	i32	i32	2x1x2
-2147483648	2147483647
0	1
#tensor	i64	i64	2
-9223372036854775808	9223372036854775807
#tensor	s	f32	scalar
42
#tensor	empty	i32	0x3
#record	1
#tensor	row	i64	3
0	1	2
#end	2
TSV
prumux-cat -e all.tsv > all.pmxs || fail_ "encode"
prumux-cat -f tsv all.pmxs > back.tsv || fail_ "decode"
compare all.tsv back.tsv || fail_ "TSV round trip is not exact"

# Atomic output to a file, and the same bytes as standard output.
prumux-cat -e -o out.pmxs all.tsv || fail_ "encode -o"
cmp all.pmxs out.pmxs || fail_ "-o wrote different bytes"
ls out.pmxs.* 2>/dev/null && fail_ "temporary file left behind"

# Text view, selection, header only, shapes only.
prumux-cat -t i32,row all.pmxs > sel.txt || fail_ "select"
cat > exp.txt <<'TXT'
prumux stream 1.0
meta producer=cat-formats test
meta mux_n=5
record 0
  i32 i32 2x1x2 [-2147483648 2147483647 0 1]
record 1
  row i64 3 [0 1 2]
end (2 records)
TXT
compare exp.txt sel.txt || fail_ "text view with --tensor"
prumux-cat -H all.pmxs > head.txt || fail_ "--header"
[ "$(wc -l < head.txt)" = 3 ] || fail_ "--header printed records"
prumux-cat -n -f tsv -t i64 all.pmxs | grep -q "^#tensor	i64	i64	2$" || fail_ "--no-data"
prumux-cat --max-values=2 -t f16 all.pmxs | grep -q '\[0.5 -65504 \.\.\. (3 values)\]' || fail_ "--max-values"

# JSON Lines: every line parses, values and shapes survive.
prumux-cat -f json all.pmxs > all.json || fail_ "json"
python3 - all.json <<'PY' || fail_ "JSON output is wrong"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
assert lines[0] == {"meta": {"producer": "cat-formats test", "mux_n": "5"}}, lines[0]
t = {x["name"]: x for x in lines[1]["tensors"]}
assert t["i32"]["shape"] == [2, 1, 2] and t["i32"]["data"] == [-2147483648, 2147483647, 0, 1]
assert t["f32"]["data"][3] is None            # inf has no JSON form
assert t["s"]["shape"] == [] and t["s"]["data"] == [42]
assert lines[2]["record"] == 1 and lines[2]["tensors"][0]["data"] == [0, 1, 2]
PY

# Malformed TSV: line numbers in messages, exit 1.
printf '#prumux-stream\t1.0\n#record\t0\n#tensor\tx\ti8\t2\n1\t300\n#end\t1\n' > bad1.tsv
expect_fail 1 'bad1.tsv:4: value out of range' prumux-cat -e bad1.tsv
printf '#prumux-stream\t1.0\n#record\t0\n#tensor\tx\tf32\t2\n1\tabc\n#end\t1\n' > bad2.tsv
expect_fail 1 'bad2.tsv:4: not a number: abc' prumux-cat -e bad2.tsv
printf '#prumux-stream\t1.0\n#record\t0\n#tensor\tx\tf99\t2\n' > bad3.tsv
expect_fail 1 'bad3.tsv:3: unknown dtype' prumux-cat -e bad3.tsv
printf '#prumux-stream\t1.0\n#record\t0\n#tensor\tx\ti32\t2x2\n1\t2\n' > bad4.tsv
expect_fail 1 'input ends inside tensor' prumux-cat -e bad4.tsv
printf '#prumux-stream\t1.0\n#record\t0\n' > bad5.tsv
expect_fail 1 'truncated input' prumux-cat -e bad5.tsv
printf '#prumux-stream\t1.0\n#record\t0\n#tensor\tx\ti32\t2x-1\n' > bad6.tsv
expect_fail 1 'invalid shape' prumux-cat -e bad6.tsv
printf '#prumux-stream\t1.0\n#record\t0\n#tensor\tx\ti32\t1\n1\n#tensor\tx\ti32\t1\n2\n#end\t1\n' > bad7.tsv
expect_fail 1 'duplicate tensor' prumux-cat -e bad7.tsv
exit 0
