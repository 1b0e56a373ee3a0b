/* hfimport.h -- turn a Hugging Face model directory into a model archive's
   parts: configuration, f32 tensors under prumux names, vocabulary.

   Reads DIR/config.json, DIR/model.safetensors (or the shards that
   DIR/model.safetensors.index.json lists), DIR/vocab.txt, and when
   present DIR/tokenizer_config.json (do_lower_case, strip_accents,
   model_max_length), the sentence-transformers files modules.json,
   sentence_bert_config.json and the Pooling module's config.json (mean or
   CLS pooling, a Normalize module); in older sentence-transformers models
   the Hugging Face files are in the Transformer module's folder (0_BERT/).

   Handles plain BERT encoders and classifiers, MUX-PLM / PruMUX
   multiplexed checkpoints and CoFi-style structurally pruned checkpoints,
   whose per-layer head counts, FFN widths, hidden size and missing
   sublayers are read from the weight shapes.  The full-size weights plus
   zs.pt form of CoFi is not read (it needs torch).  */

#ifndef PRUMUX_HFIMPORT_H
#define PRUMUX_HFIMPORT_H

#include <stddef.h>
#include "model.h"

typedef struct pmx_hf_options
{
  const char *labels;           /* "neg,pos": label names, or NULL */
  const char *pooling;          /* "cls", "mean", "pooler", or NULL */
  const char *task;             /* or NULL: config.json finetuning_task */
  int max_length;               /* 0: from the checkpoint */
  const char *vocab;            /* vocab.txt to use instead of DIR's, or NULL
                                   (MUX-PLM repositories ship none) */
} pmx_hf_options;

typedef struct pmx_hf_report
{
  char architecture[64];        /* config.json architectures[0], or "" */
  int kept;                     /* tensors written */
  int dropped;                  /* buffers (position_ids, ...), distillation
                                   layers, LayerNorms of pruned sublayers */
  int aliases;                  /* shared-module copies folded into one */
  int converted;                /* F16/BF16/F64 tensors converted to f32 */
} pmx_hf_report;

/* The imported tensors, in records of at most PMX_MAX_TENSORS each.  */
typedef struct pmx_hf_tensors
{
  int nrecs;
  pmx_record *recs;
} pmx_hf_tensors;

void pmx_hf_tensors_free (pmx_hf_tensors *ts);

/* The prumux name of the Hugging Face tensor SRC into DST: prefixes
   "model." and "bert." removed, gamma/beta renamed weight/bias, demux
   module aliases folded into "demux_module.".  Returns 1 to keep, 0 for a
   tensor prumux drops (position_ids and token_type_ids buffers,
   layer_transformation.*), -1 if the result does not fit.  */
int pmx_hf_map_name (const char *src, char *dst, size_t size);

/* The archive names that Hugging Face saves under "bert." (the BertModel
   inside a task model), and the prefixes under which MUX-PLM saves its
   shared demux module besides "demux_module.": the tables of both
   directions of the mapping (NULL-terminated).  */
extern const char *const pmx_hf_bert_groups[];
extern const char *const pmx_hf_demux_aliases[];

/* A model.safetensors whose "__metadata__" has PMX_HF_ORDER_KEY:
   PMX_HF_ORDER_ARCHIVE (prumux-export writes it) is imported in file
   order; any other in the canonical order (embeddings, layers by number,
   pooler, multiplexer, demultiplexer, heads).  */
#define PMX_HF_ORDER_KEY "prumux_order"
#define PMX_HF_ORDER_ARCHIVE "archive"

/* The inverse of pmx_hf_map_name for the canonical name NAME of an
   archive tensor: its state-dict name ("bert." + NAME for the groups
   above) into DST.  The demux aliases are the caller's (the names of one
   module under pmx_hf_demux_aliases).  -1 with an error if DST is too
   small.  */
int pmx_hf_source_name (const char *name, char *dst, size_t size);

/* Import DIR.  CFG is initialised here (free with pmx_model_config_free),
   TENSORS receives the f32 tensors (free with pmx_hf_tensors_free, also
   after a failure), *VOCAB a malloc'd NUL-terminated vocab.txt.  REPORT may
   be NULL.  -1 with an error ("DIR: config.json: hidden_size: ...") on
   failure.  */
int pmx_hf_import (const char *dir, const pmx_hf_options *opt,
                   pmx_model_config *cfg, pmx_hf_tensors *tensors,
                   char **vocab, size_t *vocab_len, pmx_hf_report *report);

#endif
