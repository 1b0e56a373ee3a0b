#!/bin/sh
# export-errors.sh -- prumux-export's usage and failure modes: GNU messages
# and status 1, never a crash; an existing non-empty directory is refused
# and left alone; an empty one is filled; a failure leaves nothing behind.
# A model trained by prumux-train comes back byte for byte.
. "$abs_top_srcdir/tests/init.sh"

# The shipped model, written by prumux-train (not by prumux-convert): its
# export converts back to the same bytes, identity included.
cp "$srcdir/share/prumux/wordnet-lexfile-n2.pmx" m.pmx || framework_failure_ "cp"

expect_fail 1 'prumux-export: missing --output=DIR' prumux-export m.pmx
expect_fail 1 'missing model archive FILE' prumux-export -o x
expect_fail 1 'only one model archive' prumux-export -o x m.pmx m.pmx
expect_fail 1 'standard output' prumux-export -o - m.pmx
expect_fail 1 "Try 'prumux-export --help'" prumux-export --bogus m.pmx
expect_fail 1 'prumux-export: nope.pmx: ' prumux-export nope.pmx -o x
printf 'not an archive' > bad.pmx
expect_fail 1 'prumux-export: bad.pmx: ' prumux-export bad.pmx -o x
[ -e x ] && fail_ "a failed export left x"

mkdir full && echo keep > full/file
expect_fail 1 'prumux-export: full: exists and is not empty' prumux-export m.pmx -o full
[ "$(cat full/file)" = keep ] || fail_ "the existing directory was touched"
: > plain
expect_fail 1 'plain: exists and is not a directory' prumux-export m.pmx -o plain
mkdir -p ro && chmod 555 ro
if ! touch ro/probe 2>/dev/null; then
  expect_fail 1 'prumux-export: ro/out: cannot create a temporary directory' \
    prumux-export m.pmx -o ro/out
fi
rm -f ro/probe; chmod 755 ro

mkdir empty
prumux-export m.pmx -o empty/ || fail_ "export into an empty directory"
[ -f empty/model.safetensors ] || fail_ "no model.safetensors"
ls -a | grep -q '^empty\.' && fail_ "a temporary directory was left behind"
prumux-convert empty -o again.pmx && cmp m.pmx again.pmx || fail_ "round trip"
prumux-export --help | grep -q '^Usage: prumux-export' || fail_ "--help"
prumux-export --version | grep -q '^prumux-export (prumux)' || fail_ "--version"
exit 0
