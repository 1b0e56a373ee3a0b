/* train-io.h -- a trainable model to and from model archives (.pmx), and
   the training state beside a checkpoint.

   A checkpoint is an ordinary archive that prumux-mux, prumux-infer and
   prumux-demux run.  The state needed to resume training bit for bit (the
   latest parameters, AdamW moments and step counters; the data order and
   dropout masks follow from the seed and the step) goes to a separate
   tensor stream, CHECKPOINT.state, since archives hold only the model.

   Ownership: the caller owns what it passes; results are new objects.
   Errors: NULL / -1 with pmx_error set.  */

#ifndef PRUMUX_TRAIN_IO_H
#define PRUMUX_TRAIN_IO_H

#include "model.h"
#include "optim.h"
#include "stream.h"
#include "train-model.h"

/* A trainable copy of the archive model PM.  Tensors the training model
   has but PM lacks (a retrieval head when WANT_RETRIEVAL, the demux
   LayerNorms) are initialised from SEED; tensors PM has that training
   does not use (pooler, dense_3, ...) are copied into EXTRA (initialised by
   the caller) to be saved unchanged.  */
pmx_tmodel *pmx_tmodel_from_archive (const pmx_model *pm, int want_retrieval,
                                     float dropout, uint64_t seed,
                                     pmx_record *extra);

/* Start M from a pretrained encoder: every embeddings.* and encoder.*
   parameter of M is copied from the tensor of the same name in PM (a BERT
   archive of the same shape, such as an imported Hugging Face checkpoint);
   the rest of M (classifier, multiplexer, demultiplexer) keeps the
   initialisation it has.  -1 with an error naming the tensor that is
   missing or has another shape.  */
int pmx_tmodel_load_encoder (pmx_tmodel *m, const pmx_model *pm);
/* Whether P is one of those (embeddings.*, encoder.*): a caller that
   loads them need not initialise them first.  */
int pmx_tparam_in_encoder (const pmx_tparam *p);

/* The archive configuration of M: shapes from M, names and the rest
   (labels, task, max_length, casing) kept from CFG, which is updated.  */
void pmx_tmodel_archive_config (const pmx_tmodel *m, pmx_model_config *cfg);

/* Save M (and EXTRA, may be NULL) as an archive at PATH, atomically.  */
int pmx_tmodel_save (const pmx_tmodel *m, const char *path,
                     pmx_model_config *cfg, const pmx_record *extra,
                     const char *vocab, size_t vocab_len);

/* Training state: META (copied into the stream: step, seed, ...), the
   parameters and the optimizer moments.  Written atomically.  */
int pmx_train_state_save (const char *path, const pmx_meta *meta,
                          const pmx_tmodel *m, const pmx_adamw *o);
/* Read a state into M and O (same shapes), its META into META
   (initialised by the caller).  */
int pmx_train_state_load (const char *path, pmx_meta *meta, pmx_tmodel *m,
                          pmx_adamw *o);

/* The same with more tensors in the state: EXTRA's (names other than
   params, adam_m, adam_v) saved beside the model's, and loaded into EXTRA
   (initialised by the caller).  EXTRA may be NULL.  */
int pmx_train_state_save_x (const char *path, const pmx_meta *meta,
                            const pmx_tmodel *m, const pmx_adamw *o,
                            const pmx_record *extra);
int pmx_train_state_load_x (const char *path, pmx_meta *meta, pmx_tmodel *m,
                            pmx_adamw *o, pmx_record *extra);

#endif
