#!/bin/sh
# The byte layout documented in prumux-stream(5), built by hand with printf,
# must be read by prumux-cat; and what prumux-cat --encode writes must be
# exactly those bytes.
. "$abs_top_srcdir/tests/init.sh"

z () { head -c "$1" /dev/zero; }          # N zero bytes
# u64 little-endian from a number below 2^16
u64 () { printf "\\$(printf %03o $(($1 & 255)))\\$(printf %03o $(($1 >> 8)))"; z 6; }

{
  # Preamble: magic, version 1.0, byte-order mark, 48 reserved bytes.
  printf '\211PMX\r\n\032\n\001\000\000\000\004\003\002\001'; z 48
  # META: "producer=hand\n" (14 bytes) in a 48-byte payload.
  printf 'META'; z 4; u64 48; printf 'producer=hand\n'; z 34
  # RECD 0 with 1 tensor.
  printf 'RECD'; z 4; u64 48; u64 0; printf '\001\000\000\000'; z 36
  # TENS "ids": i32 (code 8), rank 2, name length 3, data at 64, 24 bytes.
  printf 'TENS'; z 4; u64 112
  printf '\010\002\003\000'; z 4; u64 64; u64 24; u64 2; u64 3; printf 'ids'; z 5
  for v in 1 2 3 4 5 6; do printf "\\$(printf %03o $v)"; z 3; done; z 40
  # END with 1 record.
  printf 'END '; z 4; u64 48; u64 1; z 40
} > hand.pmxs || framework_failure_ "printf"

[ "$(wc -c < hand.pmxs)" -eq 384 ] || framework_failure_ "hand-built stream has the wrong size"

prumux-cat -f tsv hand.pmxs > out.tsv || fail_ "prumux-cat rejected the documented layout"
cat > exp.tsv <<'TSV'
#prumux-stream	1.0
#meta	producer	hand
#record	0
#tensor	ids	i32	2x3
1	2	3
4	5	6
#end	1
TSV
compare exp.tsv out.tsv || fail_ "documented layout read wrongly"

# The writer produces exactly the documented bytes.
prumux-cat -e out.tsv > written.pmxs || fail_ "prumux-cat -e failed"
cmp hand.pmxs written.pmxs || {
  od -A d -t x1 written.pmxs >&2; fail_ "writer output differs from the documented layout"; }

# The smallest stream of the man page's EXAMPLE: 192 bytes.
printf '#prumux-stream\t1.0\n#end\t0\n' | prumux-cat -e > empty.pmxs || fail_ "empty stream"
[ "$(wc -c < empty.pmxs)" -eq 192 ] || fail_ "empty stream is not 192 bytes"
od -A n -t x1 -j 128 -N 16 empty.pmxs | tr -d ' \n' > end.hex
[ "$(cat end.hex)" = 454e4420000000003000000000000000 ] || fail_ "END frame header: $(cat end.hex)"

# A big-endian byte-order mark and a mangled magic are named as such.
{ printf '\211PMX\r\n\032\n\001\000\000\000\001\002\003\004'; z 48; } > be.pmxs
expect_fail 1 'big-endian' prumux-cat be.pmxs
{ printf '\211PMX\n\032\n\001\000'; z 56; } > crlf.pmxs
expect_fail 1 'bad magic' prumux-cat crlf.pmxs
printf 'hello, world\n' > text.txt
expect_fail 1 'text.txt: bad magic' prumux-cat text.txt
exit 0
