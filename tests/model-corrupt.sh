#!/bin/sh
# model-corrupt.sh -- damaged, truncated and hostile inputs give a clear
# error and exit status 1, never a crash: model archives (truncated at many
# offsets, bytes flipped, members edited or missing, bad config.json) and
# Hugging Face directories (hostile safetensors headers, bad config.json).
. "$abs_top_srcdir/tests/init.sh"

tm=$abs_top_builddir/tests/test-model
"$tm" --write-tiny tiny.pmx || framework_failure_ "test-model --write-tiny"
"$tm" --write-tiny tinyz.pmx gzip || framework_failure_ "test-model --write-tiny gzip"
prumux-model info tiny.pmx > /dev/null || fail_ "the intact archive does not load"

# ran CMD...: run CMD, fail on a crash; leave the status in $rc.
ran () {
  "$@" > out_ 2> err_
  rc=$?
  [ $rc -ge 128 ] && { cat err_ >&2; fail_ "'$*' crashed (status $rc)"; }
  [ $rc = 0 ] || [ $rc = 1 ] || { cat err_ >&2; fail_ "'$*' exited $rc"; }
  [ $rc = 0 ] || grep -q "^prumux-model: " err_ || fail_ "'$*': no error message"
}

# Truncated at many offsets: an error whenever member data is cut (the
# last 1536 bytes are tar padding and end blocks).
size=$(wc -c < tiny.pmx)
off=0
while [ $off -lt "$size" ]; do
  head -c $off tiny.pmx > t.pmx
  ran prumux-model info t.pmx
  if [ $off -le $((size - 1536)) ]; then
    [ $rc = 1 ] || fail_ "truncated at $off of $size: accepted"
    grep -q "^prumux-model: t.pmx: " err_ || { cat err_ >&2; fail_ "truncated at $off: message"; }
  fi
  off=$((off + 97))
done
zsize=$(wc -c < tinyz.pmx)
for off in 0 10 50 100 200 400 800 $((zsize / 2)) $((zsize - 20)); do
  [ $off -lt "$zsize" ] || continue
  head -c $off tinyz.pmx > t.pmx
  ran prumux-model info t.pmx
  [ $rc = 1 ] || fail_ "compressed archive truncated at $off: accepted"
done

# Bytes flipped anywhere: no crash (most flips are caught; a flip inside a
# tensor payload is only caught by verify).
i=0
while [ $i -lt 120 ]; do
  pos=$(( (i * 7919 + 13) % size ))
  cp tiny.pmx t.pmx
  printf '\377' | dd of=t.pmx bs=1 seek=$pos conv=notrunc 2>/dev/null
  ran prumux-model info t.pmx
  ran prumux-model verify t.pmx
  i=$((i + 1))
done

# Members edited with tar.
mkdir m && (cd m && tar xf ../tiny.pmx) || framework_failure_ "tar x"
members='prumux-model config.json vocab.txt tensors.pmxs'
rebuild () { (cd m && tar --format=ustar -cf ../t.pmx "$@") || framework_failure_ "tar c"; }
# edit SED-SCRIPT PATTERN: config.json edited must fail with PATTERN.
edit () {
  cp m/config.json cfg.orig
  sed "$1" cfg.orig > m/config.json
  cmp -s cfg.orig m/config.json && framework_failure_ "sed '$1' changed nothing"
  rebuild $members
  expect_fail 1 "$2" prumux-model info t.pmx
  cp cfg.orig m/config.json
}
edit 's/"hidden": 8/"hidden": "eight"/' 't.pmx: config.json: hidden: not a whole number'
edit 's/"hidden": 8/"hidden": 9/' "config.json and tensors disagree: tensor 'embeddings.word_embeddings.weight' has shape 10x8, expected 10x9"
edit 's/"vocab_size": 10/"vocab_size": 11/' "word_embeddings.weight' has shape"
edit 's/"vocab_size": 10/"vocab_size": 5/' 'vocab.txt: 6 tokens but vocab_size is 5'
edit 's/"num_labels": 2/"num_labels": 3/' 'labels: not an array of num_labels'
edit 's/"pos"/"neg"/' "labels: 'neg' appears twice"
edit 's/"layers": 3/"layers": 2/' 'layer_heads: not an array of 2'
edit 's/"max_length": 16/"max_length": 100000/' 'max_length: 100000 is outside'
edit 's/"format_version": 1/"format_version": 2/' 'format_version: 2 is not supported'
edit 's/"id": "[0-9a-f]*"/"id": "xyz"/' "id: 'xyz' is not 32"
edit 's/"pooling": "pooler"/"pooling": "max"/' "pooling: 'max' is not one of"
edit 's/"mux_n": 1/"mux_n": 2/' 'mux_n: 2 instances without a mux_variant'
edit 's/"lowercase": true/"lowercase": 1/' 'lowercase: not true or false'
edit '/"arch"/d' 'arch: missing'
edit '$d' 'config.json: invalid JSON'
cp m/config.json cfg.orig
tr '\n' ' ' < cfg.orig | sed 's/"layer_ffn": \[ *5,/"layer_ffn": [ 6,/' > m/config.json
cmp -s cfg.orig m/config.json && framework_failure_ "layer_ffn edit"
rebuild $members
expect_fail 1 'layer 0: layer_heads/layer_ffn say 1/6 but the tensors have 1/5' prumux-model info t.pmx
cp cfg.orig m/config.json

rebuild config.json vocab.txt tensors.pmxs
expect_fail 1 "t.pmx: not a model archive (first member is 'config.json'" prumux-model info t.pmx
rebuild prumux-model vocab.txt tensors.pmxs
expect_fail 1 'config.json: missing' prumux-model info t.pmx
rebuild prumux-model config.json vocab.txt
expect_fail 1 'tensors.pmxs: missing' prumux-model info t.pmx
echo x > m/extra
rebuild prumux-model config.json extra tensors.pmxs
expect_fail 1 "unexpected member 'extra'" prumux-model info t.pmx
printf 'prumux model archive, format 7\n' > m/prumux-model
rebuild $members
expect_fail 1 'archive format 7 is not supported' prumux-model info t.pmx
(cd m && tar xf ../tiny.pmx prumux-model)
cp m/tensors.pmxs tensors.orig
printf 'X' | dd of=m/tensors.pmxs bs=1 seek=1 conv=notrunc 2>/dev/null
rebuild $members
expect_fail 1 't.pmx: tensors.pmxs: ' prumux-model info t.pmx
# A changed weight loads, but verify sees it.
cp tensors.orig m/tensors.pmxs
sz=$(wc -c < m/tensors.pmxs)
printf '\001' | dd of=m/tensors.pmxs bs=1 seek=$((sz - 100)) conv=notrunc 2>/dev/null
rebuild $members
prumux-model info t.pmx > /dev/null || fail_ "an altered weight no longer loads"
expect_fail 1 'identity mismatch' prumux-model verify t.pmx
: > t.pmx
expect_fail 1 't.pmx: empty file' prumux-model info t.pmx
echo 'not an archive' > t.pmx
expect_fail 1 't.pmx: not a model archive' prumux-model info t.pmx
expect_fail 1 'nonexistent.pmx: No such file' prumux-model info nonexistent.pmx
expect_fail 1 'unknown command' prumux-model frobnicate tiny.pmx

# Hugging Face directories with hostile safetensors files.
mkdir hf
printf 'a\nb\n' > hf/vocab.txt
cat > hf/config.json <<'JSON'
{"model_type": "bert", "hidden_size": 8, "num_attention_heads": 2,
 "intermediate_size": 16, "num_hidden_layers": 1, "vocab_size": 2}
JSON
# st HEADER [DATA-BYTES]: write hf/model.safetensors.
st () {
  n=${#1}
  printf "\\$(printf %03o $((n % 256)))\\$(printf %03o $((n / 256)))\\000\\000\\000\\000\\000\\000" > hf/model.safetensors
  printf '%s' "$1" >> hf/model.safetensors
  head -c "${2:-0}" /dev/zero >> hf/model.safetensors
}
conv () { expect_fail 1 "$1" prumux-convert hf -o out.pmx; [ -e out.pmx ] && fail_ "output left"; :; }
printf '\377\377\377\377\377\377\377\177{}' > hf/model.safetensors
conv 'hf/model.safetensors: header length 9223372036854775807 exceeds'
printf '\144\000\000\000\000\000\000\000{}' > hf/model.safetensors
conv 'runs past the end of the file'
printf '\001\000' > hf/model.safetensors
conv 'file too short'
st '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}' 12
conv "tensor 'b' overlaps"
st '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}' 4
conv "tensor 'a': data_offsets: \[0, 8\] is outside the 4-byte data buffer"
st '{"a":{"dtype":"F32","shape":[1000000000000,1000000000000],"data_offsets":[0,8]}}' 8
conv "shape: too large\|shape needs"
st '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}' 8
conv 'invalid JSON'
st '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}' 4
conv 'no 2-d embeddings.word_embeddings.weight'
st '{"a":{"dtype":"BOOL","shape":[1],"data_offsets":[0,1]}}' 1
conv 'dtype BOOL is not supported'
st '{"embeddings.word_embeddings.weight":{"dtype":"F32","shape":[2,8],"data_offsets":[0,64]}}' 64
conv "out.pmx: tensor 'embeddings.position_embeddings.weight' is missing"
mv hf/model.safetensors hf/shard.safetensors
echo '{"weight_map": {"embeddings.word_embeddings.weight": "../shard.safetensors"}}' \
  > hf/model.safetensors.index.json
conv "weight_map: 'embeddings.word_embeddings.weight' is not a file name"
echo '{"weight_map": {"x": "shard.safetensors"}}' > hf/model.safetensors.index.json
conv "hf/shard.safetensors: no tensor 'x' (weight_map)"
echo '{"weight_map": {"x": "none.safetensors"}}' > hf/model.safetensors.index.json
conv "hf/none.safetensors: No such file"
rm hf/model.safetensors.index.json
mv hf/shard.safetensors hf/model.safetensors
echo '[{"path": "../x", "type": "sentence_transformers.models.Transformer"}]' > hf/modules.json
conv "modules.json: module path '../x' leaves the model directory"
echo '{' > hf/modules.json
conv 'hf: modules.json: not a JSON array'
rm hf/modules.json
sed 's/"bert"/"roberta"/' hf/config.json > c && mv c hf/config.json
conv "model_type: 'roberta' is not supported"
echo '{"model_type": "bert", "vocab_size": 2, "hidden_size": "x"}' > hf/config.json
conv 'config.json: hidden_size: must be a whole number'
echo '{' > hf/config.json
conv 'hf/config.json: invalid JSON'
rm hf/config.json
conv 'hf/config.json: No such file'
expect_fail 1 'missing --output' prumux-convert hf
exit 0
