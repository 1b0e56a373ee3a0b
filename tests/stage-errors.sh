#!/bin/sh
# stage-errors.sh -- the stage programs (prumux-mux, -infer, -demux) check
# their input with one function (lib/core/pipeline.c), whose errors name the
# fix; a failure early in a pipe is said once, not once per later stage;
# token streams go to any model with the same tokenizer (a pruned copy).
. "$abs_top_srcdir/tests/init.sh"

m=$srcdir/share/prumux/wordnet-lexfile-n2.pmx
text=$srcdir/share/prumux/sample-glosses.tsv
prumux-tokenize -m "$m" --fields=2 --label-field=1 "$text" > tok.pmxs || fail_ "tokenize"
prumux-mux -m "$m" tok.pmxs > emb.pmxs || fail_ "mux"
prumux-infer -m "$m" emb.pmxs > hid.pmxs || fail_ "infer"

# The stream names its model's file and task, for the messages of later stages.
prumux-cat -H tok.pmxs > meta.txt || fail_ "prumux-cat"
grep -q 'model_file=wordnet-lexfile-n2.pmx' meta.txt || fail_ "no model_file= in $(cat meta.txt)"
grep -q 'model_task=wordnet-lexfile' meta.txt || fail_ "no model_task= in $(cat meta.txt)"

# Text, and streams of the wrong stage: say what to run.
expect_fail 1 "^prumux-mux: $text: text, not a prumux stream: prumux-mux reads token ids (stage tokens); run prumux-tokenize first\$" \
  prumux-mux -m "$m" "$text"
expect_fail 1 "text, not a prumux stream: .* run prumux-tokenize and prumux-mux first" \
  prumux-infer -m "$m" "$text"
expect_fail 1 "tok.pmxs: token ids (stage tokens, from prumux-tokenize), but prumux-infer reads encoder inputs (stage embeds): run prumux-mux first, or run prumux-infer --from-ids" \
  prumux-infer -m "$m" tok.pmxs
expect_fail 1 "emb.pmxs: encoder inputs (stage embeds, from prumux-mux), but prumux-infer --from-ids reads token ids (stage tokens): leave out --from-ids" \
  prumux-infer -m "$m" --from-ids emb.pmxs
expect_fail 1 "tok.pmxs: token ids .*: run prumux-mux and prumux-infer first" \
  prumux-demux -m "$m" tok.pmxs
expect_fail 1 "hid.pmxs: hidden states (stage hidden, from prumux-infer) are past prumux-mux: give them to prumux-demux" \
  prumux-mux -m "$m" hid.pmxs
prumux-demux -m "$m" --format=stream hid.pmxs > logits.pmxs || fail_ "demux --format=stream"
expect_fail 1 "logits (stage logits, from prumux-demux) are the pipeline's final output" \
  prumux-infer -m "$m" logits.pmxs
: > empty.pmxs
expect_fail 1 "empty.pmxs: empty file, not a prumux stream" prumux-mux -m "$m" empty.pmxs
printf '\211PMX\r\n' > short.pmxs
expect_fail 1 "short.pmxs: not a prumux stream (too short)" prumux-mux -m "$m" short.pmxs
printf '\000\001' > junk.pmxs
expect_fail 1 "junk.pmxs: not a prumux stream (bad magic): prumux-mux reads token ids" \
  prumux-mux -m "$m" junk.pmxs

# A pruned copy (another model, the same tokenizer) takes the original's
# token streams (tokenizer= in the header), not its later stages (they
# depend on the weights); a model with another tokenizer takes neither.
grep -q '^meta tokenizer=[0-9a-f]\{32\}$' meta.txt || fail_ "no tokenizer= in $(cat meta.txt)"
prumux-model masks "$m" > masks.tsv || fail_ "masks"
awk -F '\t' -v OFS='\t' '$2 == "hidden" && $3 == 5 { $4 = 0 } { print }' masks.tsv > cut.tsv
prumux-model shrink --masks=cut.tsv -o small.pmx "$m" || fail_ "shrink"
prumux-tokenize -m small.pmx --fields=2 --label-field=1 "$text" > tok-small.pmxs \
  || fail_ "tokenize for the pruned model"
prumux-mux -m small.pmx tok.pmxs > emb-small.pmxs || fail_ "the pruned model refused the tokens"
prumux-cat -H emb-small.pmxs | grep -q 'model_file=small.pmx' \
  || fail_ "the pruned model's embeddings do not name it"
# Byte for byte what its own token stream gives (model= is the pruned one).
prumux-mux -m small.pmx tok-small.pmxs | cmp - emb-small.pmxs \
  || fail_ "the original's tokens give other encoder inputs"
prumux-infer -m small.pmx emb-small.pmxs | prumux-demux -m small.pmx > pred.tsv \
  || fail_ "pipeline from the original's tokens"
prumux-tokenize -m "$m" -n 16 --fields=2 "$text" > tok16.pmxs || fail_ "tokenize -n 16"
expect_fail 1 "tok16.pmxs: made for model .*, but small.pmx is model .*: use one model" \
  prumux-mux -m small.pmx tok16.pmxs
prumux-tokenize -m "$m" --cased --fields=2 "$text" > tokc.pmxs || fail_ "tokenize --cased"
expect_fail 1 "tokc.pmxs: made for model .*: use one model" prumux-mux -m small.pmx tokc.pmxs
expect_fail 1 "emb.pmxs: made for model .*, but small.pmx is model .*: use one model" \
  prumux-infer -m small.pmx emb.pmxs
expect_fail 1 "hid.pmxs: made for model .*, but small.pmx is model .*: use one model" \
  prumux-demux -m small.pmx hid.pmxs

# A stage that fails early: its own message, then one line from the next
# stage, and nothing from the stages after that.
{ prumux-tokenize -m nonexistent.pmx "$text" | prumux-mux -m "$m" \
    | prumux-infer -m "$m" | prumux-demux -m "$m" > out.tsv; } 2> err.txt
[ "$(wc -l < err.txt)" = 2 ] || { cat err.txt >&2; fail_ "a failed tokenize: not 2 lines"; }
sed -n 1p err.txt | grep -q '^prumux-tokenize: nonexistent.pmx' || fail_ "line 1: $(cat err.txt)"
sed -n 2p err.txt | grep -q '^prumux-mux: -: empty input (did the stage before fail?)$' ||
  fail_ "line 2: $(cat err.txt)"
[ -s out.tsv ] && fail_ "output from a failed pipe"
# A stage cut short in the middle: only the cause.
{ head -c 3000 emb.pmxs | prumux-infer -m "$m" | prumux-demux -m "$m" > out.tsv; } 2> err.txt
[ -s err.txt ] && { cat err.txt >&2; fail_ "a stream cut short in a pipe: not quiet"; }
# The same stream as a file gets its full message.
head -c 3000 emb.pmxs > cut.pmxs
expect_fail 1 'cut.pmxs: record 0: .*unexpected end of stream at byte 3000 (truncated)' \
  prumux-infer -m "$m" cut.pmxs
exit 0
