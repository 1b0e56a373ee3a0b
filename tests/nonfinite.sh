#!/bin/sh
# nonfinite.sh -- NaN and infinity never pass silently: prumux-convert
# refuses NaN or infinite weights (F32 NaN and inf, BF16 NaN, F64 1e300,
# which is inf in f32), opening an archive refuses them, prumux-infer and
# prumux-demux stop on non-finite activations (so --eval never counts a
# NaN row as class 0), and the softmax's exp keeps NaN without undefined
# behaviour (the UBSan run of this test).
. "$abs_top_srcdir/tests/init.sh"

py=$(torch_python) || py=/usr/bin/python3
"$py" -c 'import numpy' 2>/dev/null || skip_ "no python3 with numpy"
tm=$abs_top_builddir/tests/test-model

# Convert: one weight of a Hugging Face checkpoint made non-finite.
"$py" "$srcdir/tests/ref-model.py" make models > /dev/null || framework_failure_ "ref-model.py make"
prumux-convert models/st -o st.pmx || framework_failure_ "convert models/st"
# poison DTYPE VALUE: models/st with its word embeddings as DTYPE, element 0
# set to VALUE, in bad/.
poison () {
  rm -rf bad && cp -r models/st bad || framework_failure_ "cp"
  "$py" - "$srcdir/tests" "$1" "$2" <<'PYEOF' || framework_failure_ "poison $1 $2"
import importlib.util, sys
spec = importlib.util.spec_from_file_location("ref_model", sys.argv[1] + "/ref-model.py")
rm = importlib.util.module_from_spec(spec)
spec.loader.exec_module(rm)
import numpy as np
t = rm.read_safetensors("bad/model.safetensors")
out = []
for name, (dt, a) in t.items():
    if a is None:                       # integer buffers: not weights
        continue
    if name.endswith("word_embeddings.weight"):
        dt = sys.argv[2]
        a = a.astype(np.float64)
        a.reshape(-1)[0] = float(sys.argv[3])
    out.append((name, a, dt))
rm.write_safetensors("bad/model.safetensors", out)
PYEOF
}
for case in "F32 nan" "F32 inf" "F32 -inf" "BF16 nan" "F64 1e300"; do
  # shellcheck disable=SC2086
  poison $case
  expect_fail 1 "bad.pmx: tensor '.*word_embeddings.weight': element 0 is .*(weights must be finite)" \
    prumux-convert bad -o bad.pmx
  [ -e bad.pmx ] && fail_ "$case: an output was left"
done
poison F64 1e30
prumux-convert bad -o big.pmx || fail_ "F64 1e30 (finite in f32) was refused"

# Open: an archive whose tensors.pmxs holds an infinity.
"$tm" --write-tiny tiny.pmx || framework_failure_ "test-model --write-tiny"
mkdir m && (cd m && tar xf ../tiny.pmx) || framework_failure_ "tar x"
"$py" - "$srcdir/tests" <<'PYEOF' || framework_failure_ "cannot write the test streams"
import sys
sys.path.insert(0, sys.argv[1])
import numpy as np
import pmxstream
meta, recs = pmxstream.read("m/tensors.pmxs")
for r in recs:
    for k in r:
        if k == "classifier.weight":
            r[k] = r[k].copy()
            r[k].reshape(-1)[3] = np.inf
pmxstream.write("m/tensors.pmxs", recs, meta)
PYEOF
(cd m && tar --format=ustar -cf ../inf.pmx prumux-model config.json vocab.txt tensors.pmxs) \
  || framework_failure_ "tar c"
expect_fail 1 "inf.pmx: tensors.pmxs: tensor 'classifier.weight': element 3 is inf" \
  prumux-model info inf.pmx

# Activations: NaN or inf in the encoder's input or the demultiplexer's.
id=$(prumux-model info tiny.pmx | sed -n 's/^id: *//p')
"$py" - "$srcdir/tests" "$id" <<'PYEOF' || framework_failure_ "cannot write the test streams"
import sys
sys.path.insert(0, sys.argv[1])
import numpy as np
import pmxstream
mid = sys.argv[2]
r = np.random.default_rng(0)
def f(*s): return r.standard_normal(s).astype(np.float32)
row = np.arange(3, dtype=np.int64)
lab = np.array([0, 1, 0], np.int32)
e = f(3, 4, 8)
e[1, 2, 5] = np.inf
pmxstream.write("embeds.pmxs", [{"row": row, "embeds": e, "label": lab,
                                 "lengths": np.array([4, 4, 4], np.int32)}],
                {"model": mid, "stage": "embeds"})
h = f(3, 1, 8)
pmxstream.write("hidden.pmxs", [{"row": row, "hidden": h, "label": lab}],
                {"model": mid, "stage": "hidden"})
h[2, 0, 0] = np.nan
pmxstream.write("hidden-nan.pmxs", [{"row": row, "hidden": h, "label": lab}],
                {"model": mid, "stage": "hidden"})
PYEOF
expect_fail 1 "sequence 1: the encoder's output is not finite" \
  prumux-infer -m tiny.pmx embeds.pmxs
prumux-demux -m tiny.pmx --eval=eval.txt hidden.pmxs > /dev/null \
  || fail_ "demux of finite features"
expect_fail 1 "row 2: the features are not finite" \
  prumux-demux -m tiny.pmx --eval=eval.txt hidden-nan.pmxs
expect_fail 1 "row 2: the features are not finite" \
  prumux-demux -m tiny.pmx hidden-nan.pmxs
exit 0
