#!/bin/sh
# gpu-pipeline.sh -- prumux-mux | prumux-infer | prumux-demux with the
# encoder on the GPU (cuda:0) gives the CPU's logits within 1e-4: a dense
# model (N = 1), MUX models with N = 2, 5 and 10 (index_pos) and N = 2
# (index), and a CoFi-pruned N = 5 model (fewer heads, a layer without
# attention, one without FFN, narrower FFN), 503 rows each, random weights
# from tests/ref-mux.py.  cuda:0:tf32's difference is printed, not judged
# (no tolerance is set for TF32 yet).  Skipped (77) in a build without CUDA
# or on a machine without a usable GPU.
. "$abs_top_srcdir/tests/init.sh"

grep -q '^#define HAVE_CUDA 1' "$abs_top_builddir/config.h" || skip_ "built without CUDA"
py=$(torch_python) || skip_ "no python3 with torch"

"$py" - "$srcdir/tests" <<'PYEOF' || framework_failure_ "cannot write the models"
import importlib.util, os, sys
sys.path.insert(0, sys.argv[1])
import pmxstream
spec = importlib.util.spec_from_file_location("refmux", os.path.join(sys.argv[1], "ref-mux.py"))
m = importlib.util.module_from_spec(spec)
spec.loader.exec_module(m)
for name, n, demux, shape in [("dense1", 1, "index_pos", {}), ("mux2", 2, "index_pos", {}),
                              ("mux5", 5, "index_pos", {}), ("mux10", 10, "index_pos", {}),
                              ("mux2index", 2, "index", {}),
                              ("pruned5", 5, "index_pos",
                               {"H": 24, "D": 32, "pruned": True, "layers": 3})]:
    W = m.make_model(17 + n, n, demux, labels=2, head_dim=8, **shape)
    pmxstream.write(name + ".pmxs", [{k: v.numpy() for k, v in W.items()}],
                    {"id": name, "hidden": shape.get("H", 32), "layers": shape.get("layers", 2),
                     "head_dim": 8, "mux_n": n,
                     "mux_variant": "gaussian_hadamard" if n > 1 else "none",
                     "demux_variant": demux if n > 1 else "none", "num_labels": 2,
                     "labels": "neg,pos", "max_length": 16, "attend_padding": int(n > 1),
                     "pooling": "cls"})
PYEOF

# No usable GPU: skip (tests/cuda-host.sh checks the message).
"$py" "$srcdir/tests/ref-mux.py" tokens t.tok 7 mux2 || framework_failure_ "tokens"
prumux-mux -w mux2.pmxs t.tok > t.emb || fail_ "prumux-mux"
if ! prumux-infer -w mux2.pmxs --device=cuda:0 t.emb > /dev/null 2> err; then
  grep -q "no usable CUDA GPU" err && skip_ "$(cat err)"
  cat err >&2
  fail_ "cuda:0 failed"
fi

# The max absolute difference of the numbers of two TSV files.
maxdiff () {
  paste "$1" "$2" | awk -F'\t' '{ n = NF / 2; for (i = 1; i <= n; i++) {
      d = $i - $(i + n); d = d < 0 ? -d : d; m = d > m ? d : m } }
    END { printf "%.3g\n", m + 0 }'
}
for m in dense1 mux2 mux5 mux10 mux2index pruned5; do
  "$py" "$srcdir/tests/ref-mux.py" tokens $m.tok 503 $m || framework_failure_ "tokens"
  for dev in cpu cuda:0 cuda:0:tf32; do
    prumux-mux -w $m.pmxs $m.tok | prumux-infer -w $m.pmxs --device=$dev \
      | prumux-demux -w $m.pmxs --output=logits > $m.$dev.tsv || fail_ "$m on $dev"
  done
  [ "$(wc -l < $m.cpu.tsv)" = 503 ] || fail_ "$m: not 503 rows"
  d=$(maxdiff $m.cpu.tsv $m.cuda:0.tsv)
  echo "$m: max |logits cuda:0 - cpu| = $d; cuda:0:tf32 - cpu = $(maxdiff $m.cpu.tsv $m.cuda:0:tf32.tsv)"
  awk -v d="$d" 'BEGIN { exit !(d <= 1e-4) }' || fail_ "$m: cuda:0 differs by $d > 1e-4"
done
exit 0
