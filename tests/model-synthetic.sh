#!/bin/sh
# model-synthetic.sh -- prumux-convert on small hand-written Hugging Face
# checkpoints (tests/ref-model.py): pruned shapes, missing sublayers, MUX
# heads and demux aliases, F16/BF16, gamma/beta and prefixes.  Every tensor
# of each archive must equal its source bit for bit.
. "$abs_top_srcdir/tests/init.sh"

py=
for p in /usr/bin/python3 python3; do
  "$p" -c 'import numpy' 2>/dev/null && { py=$p; break; }
done
[ -n "$py" ] || skip_ "no python3 with numpy"
# The pytorch_model.bin case needs torch; the others numpy alone.
tpy=$(torch_python) && py=$tpy

"$py" "$srcdir/tests/ref-model.py" make models || framework_failure_ "ref-model.py make"
n=0
for d in models/*/; do
  d=${d%/}
  if [ -f "$d/pytorch_model.bin" ]; then
    # Without model.safetensors the importer says what to do.
    expect_fail 1 'bin2safetensors' prumux-convert "$d" -o "$d.pmx"
    "$py" "$srcdir/share/prumux/bin2safetensors.py" "$d/pytorch_model.bin" >/dev/null \
      || fail_ "bin2safetensors.py $d"
  fi
  # shellcheck disable=SC2046
  prumux-convert $(cat "$d/args") "$d" -o "$d.pmx" || fail_ "prumux-convert $d"
  "$py" "$srcdir/tests/ref-model.py" check "$d" "$d.pmx" || fail_ "check $d"
  prumux-model verify "$d.pmx" >/dev/null || fail_ "verify $d"
  n=$((n + 1))
done
[ "$n" -ge 4 ] || fail_ "only $n models were made"

# prumux-model shows the inferred structure.
prumux-model info models/pruned.pmx > info || fail_ "info"
grep -q '^hidden: *24$' info || fail_ "pruned hidden"
grep -q '^layer 1 *heads 0, ffn 17, hidden 24$' info || fail_ "layer 1 of the pruned model"
grep -q '^layer 3 *heads 0, ffn 0, hidden 24$' info || fail_ "layer 3 of the pruned model"
grep -q '^labels: *neg,pos$' info || fail_ "labels"
prumux-model info models/mux.pmx > info || fail_ "info mux"
grep -q '^mux_n: *2$' info && grep -q '^demux_variant: *index_pos$' info \
  && grep -q '^attend_padding: *yes$' info || fail_ "mux configuration"
prumux-model --format=json info models/st.pmx > info.json || fail_ "info json"
"$py" -c 'import json,sys; c=json.load(open("info.json")); sys.exit(not (c["pooling"]=="mean" and c["normalize"] and c["hidden"]==32))' \
  || fail_ "json info of the sentence-transformers model"
prumux-model tensors models/mux.pmx > tensors || fail_ "tensors"
grep -q '^demux_module.dense_1.weight	f32	32x48	1536$' tensors || fail_ "tensor table"
prumux-model -f json tensors models/pruned.pmx > tensors.json || fail_ "json tensors"
"$py" -c 'import json,sys; t={x["name"]: x for x in json.load(open("tensors.json"))}
w=t["encoder.layer.1.intermediate.dense.weight"]
sys.exit(not (w["shape"]==[17,24] and w["dtype"]=="f32" and w["elements"]==408
              and "encoder.layer.1.attention.output.LayerNorm.weight" not in t))' \
  || fail_ "json tensor table of the pruned model"
prumux-model vocab models/st.pmx | cmp - models/st/vocab.txt || fail_ "vocab"

# Compressed archives hold the same tensors and identity.
for z in gzip xz zstd; do
  prumux-convert --compress=$z models/st -o st.$z.pmx 2> err || {
    grep -q 'zstd' err && [ $z = zstd ] && continue; cat err >&2; fail_ "--compress=$z"; }
  prumux-model info st.$z.pmx > info.$z || fail_ "info $z"
  grep -q '^storage: *memory$' info.$z || fail_ "$z storage"
  a=$(grep '^id:' info.$z); b=$(prumux-model info models/st.pmx | grep '^id:')
  [ "$a" = "$b" ] || fail_ "$z: identity $a != $b"
  prumux-model verify st.$z.pmx >/dev/null || fail_ "verify $z"
done

# A vocabulary from elsewhere (MUX-PLM repositories ship none).
mv models/mux/vocab.txt mux-vocab.txt
expect_fail 1 'models/mux/vocab.txt: No such file' prumux-convert models/mux -o x.pmx
prumux-convert --vocab=mux-vocab.txt models/mux -o mux2.pmx || fail_ "--vocab"
prumux-model vocab mux2.pmx | cmp - mux-vocab.txt || fail_ "--vocab content"
seq 60 > big-vocab.txt
expect_fail 1 'big-vocab.txt: 60 tokens, more than vocab_size 50' \
  prumux-convert --vocab=big-vocab.txt models/mux -o x.pmx
mv mux-vocab.txt models/mux/vocab.txt

# Options are checked against the model.
expect_fail 1 'labels' prumux-convert --labels=a,b,c models/pruned -o x.pmx
expect_fail 1 'no classifier' prumux-convert --labels=a models/st -o x.pmx
expect_fail 1 'max-length' prumux-convert --max-length=41 models/st -o x.pmx
expect_fail 1 'pooling' prumux-convert --pooling=max models/st -o x.pmx
[ -e x.pmx ] && fail_ "a failed conversion left its output"

# A full disk (here: a file size limit) is an error, and leaves nothing.
(trap '' XFSZ; ulimit -f 20; exec prumux-convert models/mux -o full.pmx) 2> err \
  && fail_ "a write past the file size limit succeeded"
grep -q '^prumux-convert: full.pmx: .*write error: File too large' err \
  || { cat err >&2; fail_ "full disk message"; }
ls | grep -q '^full.pmx' && fail_ "a failed write left a file"
exit 0
