#!/bin/sh
# model-weights.sh -- a model's weights must fit its configuration, and
# what does not is named for what it is: a multiplexed model with the mlp
# demultiplexer converts, verifies and runs with its weights, and without
# them is refused at convert and at open (it used to pass prumux-model
# info and fail only in prumux-demux); an integer classifier.bias is
# refused as not floating point (it used to be dropped as a buffer and then
# reported missing).  Checkpoints are written with tests/ref-model.py's
# helpers (numpy), with finite values.
. "$abs_top_srcdir/tests/init.sh"

py=
for p in /usr/bin/python3 python3; do
  "$p" -c 'import numpy' 2>/dev/null && { py=$p; break; }
done
[ -n "$py" ] || skip_ "no python3 with numpy"

"$py" - "$srcdir/tests/ref-model.py" <<'PY' || framework_failure_ "cannot write the checkpoints"
import importlib.util, json, os, sys
import numpy as np
spec = importlib.util.spec_from_file_location("ref_model", sys.argv[1])
rm = importlib.util.module_from_spec(spec)
spec.loader.exec_module(rm)
rng = np.random.default_rng(1129)
rm.values = lambda *shape: (0.2 * rng.standard_normal(shape)).astype(np.float32)
to_bytes = rm.to_bytes
rm.to_bytes = lambda a, dt: (a.astype("<i4").tobytes() if dt == "I32"
                             else to_bytes(a, dt))
H, N, D1 = rm.H0, 2, 16
rm.VOCAB = 128                  # prumux-mux forces [CLS], id 101

def mlp_model(name, drop=(), bias_dtype="F32"):
    t = rm.embeddings("bert.", H, 130) + rm.layer("bert.", 0, H, rm.HEADS, rm.FFN0)
    t += [("instance_embedding", rm.values(N, H), "F32")]
    for i in range(N):
        t += rm.linear(f"demultiplexer.demux_module.dense_{i}", D1, H)
        t += rm.norm(f"demultiplexer.demux_module.layer_norm_{i}", D1)
    t += rm.linear("demultiplexer.dense_before_out_proj", H, D1)
    t += rm.norm("demultiplexer.layernorm", H)
    t += [("classifier.weight", rm.values(2, H), "F32"),
          ("classifier.bias", np.array([3, -1], dtype=np.int32)
           if bias_dtype == "I32" else rm.values(2), bias_dtype)]
    t = [x for x in t if x[0] not in drop]
    cfg = rm.hf_config(1, maxpos=130,
                       architectures=["MuxedBertForSequenceClassification"],
                       muxing_variant="gaussian_hadamard",
                       demuxing_variant="mlp", num_instances=N)
    rm.write_dir(".", name, cfg, t, {})

mlp_model("mlp")
mlp_model("mlp-no-out", drop=("demultiplexer.dense_before_out_proj.weight",
                              "demultiplexer.dense_before_out_proj.bias"))
mlp_model("mlp-no-dense1", drop=("demultiplexer.demux_module.dense_1.weight",
                                 "demultiplexer.demux_module.dense_1.bias"))
mlp_model("int-bias", bias_dtype="I32")
PY

grep -q '"I32"' int-bias/model.safetensors \
  || framework_failure_ "the I32 tensor was not written as I32"
prumux-convert mlp -o mlp.pmx || fail_ "convert the mlp model"
prumux-model verify mlp.pmx > /dev/null || fail_ "verify the mlp model"
prumux-model info mlp.pmx | grep -q '^demux_variant: *mlp$' || fail_ "info mlp"

# It runs: two rows of token ids, one group.
{
  printf '#prumux-stream\t1.0\n#meta\tstage\ttokens\n#record\t0\n'
  printf '#tensor\trow\ti64\t2\n0\t1\n'
  printf '#tensor\tids\ti32\t2x4\n2\t7\t9\t3\n2\t11\t3\t0\n'
  printf '#tensor\tlengths\ti32\t2\n4\t3\n#end\t1\n'
} > tok.tsv
prumux-cat -e tok.tsv > tok.pmxs || framework_failure_ "prumux-cat -e"
prumux-mux -m mlp.pmx tok.pmxs | prumux-infer -m mlp.pmx | prumux-demux -m mlp.pmx > pred \
  || fail_ "the mlp model does not run"
[ "$(wc -l < pred)" = 2 ] || fail_ "the mlp model: $(wc -l < pred) rows, not 2"

expect_fail 1 "tensor 'demultiplexer.dense_before_out_proj.weight' is missing" \
  prumux-convert mlp-no-out -o t.pmx
expect_fail 1 "tensor 'demux_module.dense_1.weight' is missing" \
  prumux-convert mlp-no-dense1 -o t.pmx
expect_fail 1 "tensor 'classifier.bias': dtype I32, but a weight must be floating point" \
  prumux-convert int-bias -o t.pmx

# An archive whose configuration says mlp but whose weights are another
# demultiplexer's: refused at open.
mkdir m && (cd m && tar xf ../mlp.pmx) || framework_failure_ "tar x"
prumux-cat -f tsv m/tensors.pmxs > w.tsv || framework_failure_ "prumux-cat"
awk '/^#tensor/ { skip = ($2 ~ /^demultiplexer\.dense_before_out_proj\./) } !skip' w.tsv \
  | prumux-cat -e -o m/tensors.pmxs || framework_failure_ "prumux-cat -e"
(cd m && tar --format=ustar -cf ../t.pmx $(tar tf ../mlp.pmx)) || framework_failure_ "tar c"
expect_fail 1 "tensor 'demultiplexer.dense_before_out_proj.weight' is missing" \
  prumux-model info t.pmx
exit 0
