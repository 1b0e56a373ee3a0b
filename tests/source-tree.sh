#!/bin/sh
# source-tree.sh -- build outputs stay out of git: no tracked file is one
# that .gitignore ignores (make demo and make demo-similar write
# demo-predictions.tsv, demo-minilm.pmx and demo-embeddings.tsv into the
# build directory; a 91 MB archive was once committed), and the demo rules
# write nothing into $(srcdir).  Skipped unless the source directory is the
# top of a git checkout.
. "$abs_top_srcdir/tests/init.sh"

command -v git > /dev/null 2>&1 || skip_ "git missing"
top=$(git -C "$srcdir" rev-parse --show-toplevel 2>/dev/null) && [ "$top" -ef "$srcdir" ] \
  || skip_ "$srcdir is not a git checkout (a tarball, make distcheck)"
git -C "$srcdir" ls-files -ci --exclude-standard > tracked-ignored \
  || framework_failure_ "git ls-files failed"
[ -s tracked-ignored ] && { cat tracked-ignored >&2; fail_ "tracked files that .gitignore ignores (build outputs?)"; }
for f in demo-minilm.pmx demo-embeddings.tsv demo-predictions.tsv; do
  git -C "$srcdir" ls-files --error-unmatch "$f" > /dev/null 2>&1 \
    && fail_ "$f is tracked"
  git -C "$srcdir" check-ignore -q --no-index "$f" || fail_ "$f is not ignored"
done
# The demo rules name their outputs relative to the build directory.
grep -E '(\$\(srcdir\)|\$\(top_srcdir\))/demo-' "$srcdir/mk/demo.am" \
  && fail_ "mk/demo.am writes into the source tree"
exit 0
