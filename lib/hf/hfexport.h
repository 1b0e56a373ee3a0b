/* hfexport.h -- write a model archive back out as a Hugging Face model
   directory: the inverse of hfimport.h.

   DIR receives config.json (BertConfig fields; the MUX-PLM fields for a
   multiplexed model; pruned_heads for a structurally pruned one, as
   transformers' prune_heads and CoFi record them), model.safetensors (f32,
   state-dict names: "bert." before the encoder's tensors, the shared demux
   module under each of its names), vocab.txt, tokenizer_config.json and
   special_tokens_map.json, and for a model that pools by mean or
   normalises, the sentence-transformers files (modules.json,
   sentence_bert_config.json, 1_Pooling/config.json, 2_Normalize/).
   pmx_hf_import of the result gives the archive's configuration and
   tensors back, and so the same identity.  */

#ifndef PRUMUX_HFEXPORT_H
#define PRUMUX_HFEXPORT_H

#include "model.h"

typedef struct pmx_hf_export_report
{
  char architecture[64];        /* config.json architectures[0] */
  int tensors;                  /* entries in model.safetensors */
  int aliases;                  /* of which extra names of a shared module */
  int sentence_transformers;    /* 1: the sentence-transformers files too */
  int files;                    /* files written */
} pmx_hf_export_report;

/* Export M to the directory DIR, atomically: everything is written into a
   new temporary directory beside DIR, which is renamed to DIR when
   complete.  DIR must not exist, or be an empty directory.  REPORT may be
   NULL.  -1 with an error ("DIR: ...") on failure, and nothing is left
   behind.  */
int pmx_hf_export (const pmx_model *m, const char *dir,
                   pmx_hf_export_report *report);

#endif
