/* train-data.h -- training and evaluation examples in memory: the token
   streams of prumux-tokenize (tensors ids, type_ids, lengths and, for the
   task objective, label), and the batches cut from them.

   Ownership: a pmx_tdata owns its arrays.  Errors: NULL / -1 with
   pmx_error set ("PATH: record 3: ...").  */

#ifndef PRUMUX_TRAIN_DATA_H
#define PRUMUX_TRAIN_DATA_H

#include <stdint.h>
#include <stdio.h>

typedef struct pmx_tdata
{
  int rows;
  int has_label;                /* every record had 'label' */
  int max_len;                  /* longest row, tokens */
  int64_t *off;                 /* (rows + 1) start of each row in ids */
  int32_t *ids, *types;         /* real tokens of all rows, concatenated */
  int32_t *label;               /* (rows), -1 where absent */
} pmx_tdata;

/* Read every record of the token stream F (NAME for messages).  */
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

#endif
