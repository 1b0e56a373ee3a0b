#!/bin/sh
# truncate-hf.sh -- pair truncation ('longest_first') agrees with Hugging
# Face tokenizers for every pair of lengths up to 14 and every budget up
# to 14 (tests/test-truncate.c).
. "$abs_top_srcdir/tests/init.sh"

python3 -c 'import tokenizers' 2>/dev/null \
  || skip_ "Python package tokenizers missing (python3 -m pip install tokenizers)"
python3 - > cases.txt <<'PY' || framework_failure_ "python"
from tokenizers import Tokenizer, models, pre_tokenizers
t = Tokenizer(models.WordLevel({"a": 0, "[UNK]": 1}, unk_token="[UNK]"))
t.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
for m in range(1, 15):
    t.enable_truncation(m, strategy="longest_first")
    for n1 in range(0, 15):
        for n2 in range(0, 15):
            e = t.encode(" ".join(["a"] * n1), " ".join(["a"] * n2))
            k2 = sum(e.type_ids)
            print(n1, n2, m, len(e.ids) - k2, k2)
PY
"$abs_top_builddir/tests/test-truncate" cases.txt || fail_ "differs from tokenizers"
exit 0
