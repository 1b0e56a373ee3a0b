/* train-data.h -- training and evaluation examples in memory: the token
   streams of prumux-tokenize (tensors ids, type_ids, lengths and, for the
   task objective, label), and the batches cut from them.

   Ownership: a pmx_tdata owns its arrays.  Errors: NULL / -1 with
   pmx_error set ("PATH: record 3: ...").  */

#ifndef PRUMUX_TRAIN_DATA_H
#define PRUMUX_TRAIN_DATA_H

#include <stdint.h>
#include <stdio.h>
#include "cofi-z.h"
#include "train-model.h"

typedef struct pmx_tdata
{
  int rows;
  int has_label;                /* every record had 'label' */
  int max_len;                  /* longest row, tokens */
  int64_t *off;                 /* (rows + 1) start of each row in ids */
  int32_t *ids, *types;         /* real tokens of all rows, concatenated */
  int32_t *label;               /* (rows), -1 where absent */
  int vocab_size;               /* the stream's META vocab_size, 0 if absent */
} pmx_tdata;

/* Read every record of the token stream F (NAME for messages).  A stream
   whose META stage is not "tokens" is refused.  */
pmx_tdata *pmx_tdata_read (FILE *f, const char *name);
void pmx_tdata_free (pmx_tdata *d);

/* Fill a batch of the N rows ROWS[0..n-1]: ids and types (n, T) padded
   with 0, lengths (n), labels (n).  Rows longer than T are cut to T
   tokens.  With FORCE_CLS > 0 every row starts with that id (the muxed
   models' [CLS], as the published code and prumux-mux do).  A row index
   < 0 gives a copy of ROWS[0] whose label is -1 (filler).  */
void pmx_tdata_batch (const pmx_tdata *d, const int *rows, int n, int T,
                      int32_t force_cls, int32_t *ids, int32_t *types,
                      int32_t *lengths, int32_t *labels);
/* The longest of the N rows, capped at CAP.  */
int pmx_tdata_longest (const pmx_tdata *d, const int *rows, int n, int cap);

/* The batches of a training run, drawn the same way by every program that
   trains (prumux-train, prumux-prune), so that the same seed gives the
   same batches: micro-batch U of training takes its rows from a
   permutation of the examples drawn afresh each epoch from (SEED, epoch);
   the retrieval instances and MLM masking come from (SEED, U).  */
typedef struct pmx_batcher
{
  const pmx_tdata *d;
  int B, N, T_fixed, muxed;     /* T_fixed: 0 = longest in the batch */
  int max_len;
  uint64_t seed;
  int64_t epoch;                /* of perm */
  int *perm, *rows;             /* (rows of d), (B) */
  int32_t *ids, *types, *lengths, *labels, *inst, *mlm;
  int32_t cls_id;               /* forced first token (muxed models) */
  int32_t mask_id, vocab;       /* for MLM */
} pmx_batcher;

/* The ids of [CLS] and [MASK] in VOCAB (vocab.txt text, LEN bytes; -1
   for one it lacks), which the batcher needs.  Without a vocabulary (NULL)
   BERT's ids, 101 and 103.  0, or -1 with an error when VOCAB cannot be
   read as a vocabulary.  */
int pmx_tdata_special_ids (const char *vocab, size_t len, int32_t *cls_id,
                           int32_t *mask_id);

/* Batches of B rows of D for the model configuration C (muxed models pad
   every row to MAX_LEN and start it with CLS_ID; plain ones cut the batch
   to its longest row), MLM replacing with MASK_ID (< 0: no MLM).  */
int pmx_batcher_init (pmx_batcher *b, const pmx_tdata *d, int B,
                      const pmx_train_config *c, int max_len, uint64_t seed,
                      int32_t cls_id, int32_t mask_id);
void pmx_batcher_free (pmx_batcher *b);

/* Put the rows of training micro-batch U in b->rows.  */
void pmx_batcher_train_rows (pmx_batcher *b, uint64_t u);

/* Fill the batch of the first N of b->rows (-1: filler) and the retrieval
   instances and MLM masks of micro-batch U, with the objective weights TW,
   RW, MW.  The batch points into B.  Labels are given when TW > 0 or not
   TRAINING.  */
pmx_tbatch pmx_batcher_fill (pmx_batcher *b, int n, uint64_t u, float tw,
                             float rw, float mw, int training);

/* Evaluation over all of b's examples in order (the last batch padded with
   fillers to a multiple of N), under the masks Z (NULL: none).  */
typedef struct pmx_eval
{
  double loss, accuracy, ret_accuracy, mlm_accuracy;
  int have_task, have_ret, have_mlm;
} pmx_eval;
int pmx_evaluate (pmx_tmodel *m, pmx_batcher *b, const pmx_cofi_z *z,
                  float tw, float rw, float mw, pmx_eval *r);

#endif
