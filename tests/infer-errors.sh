#!/bin/sh
# prumux-infer: usage errors and bad inputs fail with a clear message (exit 1,
# never a crash); a good run writes stage=hidden.
. "$abs_top_srcdir/tests/init.sh"

py=$(torch_python) || py=/usr/bin/python3
"$py" -c 'import numpy' 2>/dev/null || skip_ "no python3 with numpy"

# Tiny weights (H 8, one layer of 2 heads of 4, FFN 16) and inputs.
"$py" - "$srcdir/tests" <<'PYEOF' || framework_failure_ "cannot write the test streams"
import sys
sys.path.insert(0, sys.argv[1])
import numpy as np
import pmxstream
import tiny_encoder
r = np.random.default_rng(0)
def f(*s): return r.standard_normal(s).astype(np.float32)
p = tiny_encoder.PREFIX
w = tiny_encoder.weights(r)
meta = tiny_encoder.META
pmxstream.write("w.pmxs", [w], meta)
bad = dict(w); bad[p + "output.dense.weight"] = f(8, 15)
pmxstream.write("wbad.pmxs", [bad], meta)
nokey = dict(w); del nokey[p + "attention.self.key.weight"]
pmxstream.write("wnokey.pmxs", [nokey], meta)
pmxstream.write("wnometa.pmxs", [w], {"id": "feedface", "layers": 1})
em = {"embeds": f(2, 5, 8), "lengths": np.array([5, 3], np.int32)}
pmxstream.write("in.pmxs", [em], {"model": "feedface", "stage": "embeds"})
pmxstream.write("other.pmxs", [em], {"model": "deadbeef", "stage": "embeds"})
pmxstream.write("noid.pmxs", [em], {"stage": "embeds"})
pmxstream.write("stage.pmxs", [em], {"model": "feedface", "stage": "tokens"})
pmxstream.write("wide.pmxs", [{"embeds": f(2, 5, 9), "lengths": em["lengths"]}],
                {"model": "feedface", "stage": "embeds"})
pmxstream.write("nolen.pmxs", [{"embeds": em["embeds"]}],
                {"model": "feedface", "stage": "embeds"})
pmxstream.write("badlen.pmxs", [{"embeds": em["embeds"], "lengths": np.array([5, 0], np.int32)}],
                {"model": "feedface", "stage": "embeds"})
pmxstream.write("i64.pmxs", [{"embeds": em["embeds"].astype(np.float64), "lengths": em["lengths"]}],
                {"model": "feedface", "stage": "embeds"})
PYEOF

prumux-infer --weights w.pmxs in.pmxs > out.pmxs || fail_ "a good run failed"
prumux-infer -w w.pmxs -t 2 -p all -o out2.pmxs in.pmxs || fail_ "a good run to a file failed"
prumux-infer --help | grep -q -- '--positions' || fail_ "--help"
prumux-infer --version | grep -q prumux || fail_ "--version"

expect_fail 1 'exactly one of' prumux-infer in.pmxs
expect_fail 1 'exactly one of' prumux-infer -m x.pmx -w w.pmxs in.pmxs
expect_fail 1 'Try' prumux-infer --bogus
expect_fail 1 'threads' prumux-infer -w w.pmxs --threads=0 in.pmxs
expect_fail 1 "device 'cpu:sse': unknown CPU kernel 'sse'" prumux-infer -w w.pmxs --gemm=sse in.pmxs
expect_fail 1 "unknown device 'gpu' (devices: cpu, cpu:avx512" prumux-infer -w w.pmxs --device=gpu in.pmxs
# (cuda:0 itself: tests/cuda-host.sh.)
expect_fail 1 "device 'cuda:bogus': " prumux-infer -w w.pmxs --device=cuda:bogus in.pmxs
# --verbose names the kernels that run.
prumux-infer -w w.pmxs --device=cpu:blas --verbose in.pmxs 2> verbose > /dev/null &&
  grep -q '^prumux-infer: cpu:blas: OpenBLAS dense layers' verbose ||
  fail_ "--verbose: $(cat verbose)"
# More positions than tokens (a repeated list) once overflowed the scores.
prumux-infer -w w.pmxs -p 0,0,0,0,0,0,0,0,0,0,0,0 in.pmxs > rep.pmxs ||
  fail_ "12 positions of 5 tokens failed"
prumux-cat -n rep.pmxs | grep -q 'hidden f32 2x12x8' || fail_ "12 positions: bad shape"

# Every kernel: the same hidden states as the default, within 1e-5; the
# older --gemm=K is --device=cpu:K.
prumux-infer -w w.pmxs -p all in.pmxs > all.pmxs || fail_ "-p all failed"
for k in blas avx2 avx512; do
  prumux-infer -w w.pmxs -p all --device=cpu:$k in.pmxs > out-$k.pmxs 2> err-$k || {
    grep -q "cannot run the $k GEMM kernel" err-$k || fail_ "--device=cpu:$k: $(cat err-$k)"
    continue
  }
  prumux-infer -w w.pmxs -p all --gemm=$k in.pmxs | cmp -s - out-$k.pmxs ||
    fail_ "--gemm=$k is not --device=cpu:$k"
  prumux-cat -t hidden --max-values=0 all.pmxs > a.txt &&
    prumux-cat -t hidden --max-values=0 out-$k.pmxs > b.txt ||
    fail_ "prumux-cat failed"
  awk -v k=$k 'NR == FNR { a[FNR] = $0; next }
    { s = a[FNR]; gsub (/[][]/, " ", s); gsub (/[][]/, " ")
      n = split (s, x, /[ \t]+/); split ($0, y, /[ \t]+/)
      for (i = 1; i <= n; i++)
        if (x[i] != y[i] && (x[i] - y[i] > 1e-5 || y[i] - x[i] > 1e-5)) {
          print "--gemm=" k ": line " FNR ": " x[i] " vs " y[i]; bad = 1; exit } }
    END { exit bad }' a.txt b.txt || fail_ "--gemm=$k differs"
done
expect_fail 1 'invalid --positions' prumux-infer -w w.pmxs --positions=1,x in.pmxs
expect_fail 1 'trailing comma' prumux-infer -w w.pmxs --positions=1, in.pmxs
expect_fail 1 'extra operand' prumux-infer -w w.pmxs in.pmxs in.pmxs
expect_fail 1 'nonexistent' prumux-infer -w nonexistent.pmxs in.pmxs
expect_fail 1 'output.dense.weight: shape 8x15, expected 8x16' prumux-infer -w wbad.pmxs in.pmxs
expect_fail 1 'attention.self.key.weight: missing' prumux-infer -w wnokey.pmxs in.pmxs
expect_fail 1 "no 'hidden'" prumux-infer -w wnometa.pmxs in.pmxs
expect_fail 1 'other.pmxs: made for model deadbeef, but w.pmxs is model feedface: use one model' prumux-infer -w w.pmxs other.pmxs
expect_fail 1 'noid.pmxs: the stream names no model' prumux-infer -w w.pmxs noid.pmxs
expect_fail 1 "stage.pmxs: token ids (stage tokens, from prumux-tokenize), but prumux-infer reads encoder inputs (stage embeds): run prumux-mux first, or run prumux-infer --from-ids" prumux-infer -w w.pmxs stage.pmxs
expect_fail 1 'record 0: .*hidden size 9' prumux-infer -w w.pmxs wide.pmxs
expect_fail 1 "record 0: the model masks padding: no tensor 'lengths'" prumux-infer -w w.pmxs nolen.pmxs
expect_fail 1 'record 0: sequence 1: length 0' prumux-infer -w w.pmxs badlen.pmxs
expect_fail 1 "record 0: tensor 'embeds' is f64" prumux-infer -w w.pmxs i64.pmxs
expect_fail 1 'position 5 is out of range 0..4' prumux-infer -w w.pmxs --positions=5 in.pmxs
head -c 700 in.pmxs > cut.pmxs
expect_fail 1 'cut.pmxs' prumux-infer -w w.pmxs cut.pmxs
printf 'not a stream' > junk.pmxs
expect_fail 1 'junk.pmxs' prumux-infer -w w.pmxs junk.pmxs
# A failed run leaves no output file behind.
expect_fail 1 'deadbeef' prumux-infer -w w.pmxs -o never.pmxs other.pmxs
[ -e never.pmxs ] && fail_ "a failed run left its output file"
ls never.pmxs.* 2>/dev/null && fail_ "a failed run left a temporary file"
exit 0
