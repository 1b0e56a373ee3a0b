#!/bin/sh
# frontend.sh -- the prumux front-end: 'prumux CMD ARGS' runs prumux-CMD
# with its own name in messages and its exit status; --help lists every
# program built (and a prumux-NAME found on PATH); 'prumux help CMD' runs
# man prumux-CMD; bad command names are refused with GNU messages.
. "$abs_top_srcdir/tests/init.sh"

bin=$abs_top_builddir/bin
prumux --help > help || fail_ "prumux --help"
grep -q '^Usage: prumux COMMAND' help || fail_ "--help has no usage line"
for p in "$bin"/prumux-*; do
  [ -x "$p" ] && [ -f "$p" ] || continue
  name=${p##*/prumux-}
  grep -q "^  $name " help || fail_ "prumux --help does not list '$name'"
  prumux --commands | grep -qx "$name" || fail_ "--commands lacks '$name'"
done
prumux --version | grep -q '^prumux (prumux) ' || fail_ "--version"

# prumux CMD is prumux-CMD: the same output, its name, its status.
model=$srcdir/share/prumux/wordnet-lexfile-n2.pmx
printf 'a small test\nanother line\n' > in.txt
prumux tokenize -m "$model" in.txt > a.pmxs || fail_ "prumux tokenize"
prumux-tokenize -m "$model" in.txt > b.pmxs || fail_ "prumux-tokenize"
cmp a.pmxs b.pmxs || fail_ "prumux tokenize differs from prumux-tokenize"
prumux cat --version | head -1 | grep -q '^prumux-cat (prumux) ' \
  || fail_ "the program does not carry its own name"
expect_fail 1 '^prumux-cat: nope.pmxs: ' prumux cat nope.pmxs
prumux model info "$model" | grep -q '^layers: *2$' || fail_ "prumux model info"

expect_fail 1 "^prumux: 'bogus' is not a prumux command" prumux bogus
expect_fail 1 "is not a prumux command" prumux ../bin/prumux-cat
expect_fail 1 "is not a prumux command" prumux -x
expect_fail 1 '^prumux: missing COMMAND' prumux
expect_fail 1 "Try 'prumux --help'" prumux help a b

# A program of the user's on PATH is a command too.
mkdir extra
printf '#!/bin/sh\necho "hello $*"\n' > extra/prumux-hello
chmod +x extra/prumux-hello
[ "$(PATH=$PWD/extra:$PATH prumux hello world)" = "hello world" ] \
  || fail_ "prumux hello did not run extra/prumux-hello"
PATH=$PWD/extra:$PATH prumux --help | grep -q '^  hello .*found on PATH' \
  || fail_ "--help does not list a program found on PATH"

# prumux help CMD: man prumux-CMD (a stand-in man records its arguments).
printf '#!/bin/sh\necho "man $*"\n' > extra/man
chmod +x extra/man
[ "$(PATH=$PWD/extra:$PATH prumux help export)" = "man prumux-export" ] \
  || fail_ "prumux help export does not run man prumux-export"
prumux help | grep -q '^Usage: prumux' || fail_ "prumux help without a command"
exit 0
