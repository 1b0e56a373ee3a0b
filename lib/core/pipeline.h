/* pipeline.h -- the stages of the prumux pipeline, and the one check of an
   input stream that every stage program runs.

     text --prumux-tokenize--> tokens --prumux-mux--> embeds
          --prumux-infer--> hidden --prumux-demux--> logits (or TSV)

   A stream's META says which stage wrote it (stage=) and for which model
   (model=, the archive's identity; model_file= and model_task= name it for
   messages).  A program that reads stage S for model M opens its input
   with pmx_stage_open, which refuses anything else with an error that
   names the fix: which program to run first, or where the stream goes
   instead, or which model files disagree.

   A token stream also names its tokenizer (tokenizer=, pmx_tokenizer_id:
   the vocabulary, the case and accent folding, the row length), and what
   it holds depends on nothing else: a reader of stage tokens accepts a
   stream made for another model when the tokenizers are the same (a
   model and its pruned or fine-tuned copies).  Later stages depend on
   the weights, and must come from the reader's model itself.  */

#ifndef PRUMUX_PIPELINE_H
#define PRUMUX_PIPELINE_H

#include <stdio.h>
#include "model.h"
#include "stream.h"
#include "vocab.h"

/* What a stage program reads.  */
typedef struct pmx_stage_input
{
  const char *program;          /* the reader, for messages: "prumux-infer" */
  const char *stage;            /* the stage it reads: "tokens", "embeds", "hidden" */
  /* Another way to go on from the stage before STAGE, or NULL; said when
     the stream is one stage early: "or run prumux-infer --from-ids".  */
  const char *alternative;
  /* The option that made the program read STAGE rather than the stage it
     usually reads, or NULL: "--from-ids".  */
  const char *option;
  const pmx_model_config *cfg;  /* the reader's model; NULL: no model check */
  const char *model_file;       /* the file CFG came from, for messages */
  int require_model;            /* refuse a stream that names no model */
  /* Stage tokens: the reader's model archive, whose tokenizer
     (pmx_model_tokenizer_id, worked out only for a stream made for another
     model) may match the stream's; NULL: a stream for another model is
     refused.  */
  const pmx_model *tokenizer_model;
} pmx_stage_input;

/* Open a reader over F, named NAME ("-" for standard input), and check
   that it is a prumux stream of stage IN->stage made for IN->cfg.  NULL
   with an error that names the fix:
     "-: empty input (did the stage before fail?)"   (nothing at all: the
         usual sign that the program before this one in a pipe failed, and
         has said why)
     "-: text, not a prumux stream: run prumux-tokenize first"
     "-: hidden states (stage hidden, from prumux-infer) are past
         prumux-mux: give them to prumux-demux"
     "-: made for model 3f2a... (sst2.pmx, task sst2), but mnli.pmx is
         model 9bc1... (task mnli): use one model for every stage" (stage
         tokens: unless IN->tokenizer_model's tokenizer is the stream's
         tokenizer=)
   A stream without stage= is accepted (a hand-made one), and so is one
   with error= (what a stage that failed leaves in a pipe, cut short:
   reading it fails as truncated).  The reader is
   the caller's (pmx_reader_close); F stays open.  *EMPTY (when not NULL)
   is set to 1 when the input held nothing at all, else 0.  */
pmx_reader *pmx_stage_open (FILE *f, const char *name, const pmx_stage_input *in,
                            int *empty);

/* Set model=, model_file= (the base name of MODEL_FILE) and model_task=
   (when CFG has a task) in M, as every stage that uses a model does.  0,
   or -1 with an error.  */
int pmx_stage_set_model (pmx_meta *m, const pmx_model_config *cfg,
                         const char *model_file);

/* The row length prumux-tokenize -m uses for a model of CFG: its
   max_length, else its positions when fewer than DFLT, else DFLT.  */
int pmx_model_token_length (const pmx_model_config *cfg, int dflt);

/* The identity of a tokenizer: a hash of V's tokens in id order,
   LOWERCASE, STRIP_ACCENTS and MAX_LENGTH, as 32 hex digits and a NUL in
   OUT (what prumux-tokenize writes as tokenizer=).  0, or -1 without
   memory.  */
int pmx_tokenizer_id (const pmx_vocab *v, int lowercase, int strip_accents,
                      int max_length, char out[33]);

/* The identity of the tokenizer prumux-tokenize -m M runs (M's
   vocabulary and settings, pmx_model_token_length (cfg, 128)).  0, or
   -1 with an error (no vocabulary in M, no memory).  */
int pmx_model_tokenizer_id (const pmx_model *m, char out[33]);

#endif
