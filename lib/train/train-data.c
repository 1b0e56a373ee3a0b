/* train-data.c -- examples in memory and batches (see train-data.h).  */

#include <config.h>
#include "train-data.h"
#include "error.h"
#include "stream.h"
#include "train-ops.h"
#include "vocab.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void
pmx_tdata_free (pmx_tdata *d)
{
  if (!d)
    return;
  free (d->off);
  free (d->ids);
  free (d->types);
  free (d->label);
  free (d);
}

/* Grow *P to hold N elements of SIZE bytes (doubling).  */
static int
reserve (void **p, size_t *cap, size_t n, size_t size)
{
  if (n <= *cap)
    return 0;
  size_t c = *cap ? *cap : 1024;
  while (c < n)
    c *= 2;
  void *q = realloc (*p, c * size);
  if (!q)
    return pmx_error ("out of memory");
  *p = q;
  *cap = c;
  return 0;
}

pmx_tdata *
pmx_tdata_read (FILE *f, const char *name)
{
  pmx_reader *r = pmx_reader_open (f, name);
  if (!r)
    return NULL;
  pmx_tdata *d = calloc (1, sizeof *d);
  pmx_record rec;
  pmx_record_init (&rec);
  size_t cap_rows = 0, cap_tok = 0, cap_typ = 0, cap_lab = 0, ntok = 0;
  int rc;
  if (!d)
    {
      pmx_error ("out of memory");
      goto fail;
    }
  d->has_label = 1;
  const char *stage = pmx_meta_get (pmx_reader_meta (r), "stage");
  const char *vs = pmx_meta_get (pmx_reader_meta (r), "vocab_size");
  if (stage && strcmp (stage, "tokens"))
    {
      pmx_error ("%s: a stream of stage '%s', not tokens (prumux-tokenize)",
                 name, stage);
      goto fail;
    }
  d->vocab_size = vs ? atoi (vs) : 0;
  if (reserve ((void **) &d->off, &cap_rows, 1, sizeof *d->off) < 0)
    goto fail;
  d->off[0] = 0;
  while ((rc = pmx_reader_read (r, &rec)) == 1)
    {
      const pmx_tensor *ids = pmx_record_expect (&rec, "ids", PMX_I32, 2);
      const pmx_tensor *len = ids ? pmx_record_expect (&rec, "lengths", PMX_I32, 1) : NULL;
      if (!ids || !len)
        goto bad;
      const pmx_tensor *typ = pmx_record_get (&rec, "type_ids");
      const pmx_tensor *lab = pmx_record_get (&rec, "label");
      int64_t B = ids->shape[0], T = ids->shape[1];
      if (len->shape[0] != B
          || (typ && (typ->dtype != PMX_I32 || typ->rank != 2
                      || typ->shape[0] != B || typ->shape[1] != T))
          || (lab && (lab->dtype != PMX_I32 || lab->rank != 1
                      || lab->shape[0] != B)))
        {
          pmx_error ("ids, lengths, type_ids and label disagree in shape");
          goto bad;
        }
      if (!lab)
        d->has_label = 0;
      const int32_t *I = ids->data, *L = len->data;
      const int32_t *S = typ ? typ->data : NULL, *Y = lab ? lab->data : NULL;
      for (int64_t b = 0; b < B; b++)
        {
          if (L[b] < 1 || L[b] > T)
            {
              pmx_error ("row %lld: length %d outside [1, %lld]",
                         (long long) b, L[b], (long long) T);
              goto bad;
            }
          size_t n = d->rows + 2;
          if (reserve ((void **) &d->off, &cap_rows, n, sizeof *d->off) < 0
              || reserve ((void **) &d->label, &cap_lab, n, sizeof *d->label) < 0
              || reserve ((void **) &d->ids, &cap_tok, ntok + L[b], 4) < 0
              || reserve ((void **) &d->types, &cap_typ, ntok + L[b], 4) < 0)
            goto fail;
          memcpy (d->ids + ntok, I + b * T, L[b] * 4);
          if (S)
            memcpy (d->types + ntok, S + b * T, L[b] * 4);
          else
            memset (d->types + ntok, 0, L[b] * 4);
          ntok += L[b];
          d->label[d->rows] = Y ? Y[b] : -1;
          d->max_len = L[b] > d->max_len ? L[b] : d->max_len;
          d->off[++d->rows] = (int64_t) ntok;
        }
    }
  if (rc < 0)
    goto fail;
  if (d->rows == 0)
    {
      pmx_error ("%s: no examples", name);
      goto fail;
    }
  pmx_record_free (&rec);
  pmx_reader_close (r);
  return d;
bad:
  pmx_error_prefix ("%s: record %llu", name,
                    (unsigned long long) pmx_reader_records (r) - 1);
fail:
  pmx_record_free (&rec);
  pmx_reader_close (r);
  pmx_tdata_free (d);
  return NULL;
}

int
pmx_tdata_longest (const pmx_tdata *d, const int *rows, int n, int cap)
{
  int T = 1;
  for (int i = 0; i < n; i++)
    if (rows[i] >= 0)
      {
        int len = (int) (d->off[rows[i] + 1] - d->off[rows[i]]);
        T = len > T ? len : T;
      }
  return T < cap ? T : cap;
}

void
pmx_tdata_batch (const pmx_tdata *d, const int *rows, int n, int T,
                 int32_t force_cls, int32_t *ids, int32_t *types,
                 int32_t *lengths, int32_t *labels)
{
  memset (ids, 0, (size_t) n * T * 4);
  memset (types, 0, (size_t) n * T * 4);
  for (int i = 0; i < n; i++)
    {
      int r = rows[i] >= 0 ? rows[i] : rows[0];
      int len = (int) (d->off[r + 1] - d->off[r]);
      len = len < T ? len : T;
      memcpy (ids + (size_t) i * T, d->ids + d->off[r], len * 4);
      memcpy (types + (size_t) i * T, d->types + d->off[r], len * 4);
      if (force_cls > 0)
        ids[(size_t) i * T] = force_cls;
      lengths[i] = len;
      labels[i] = rows[i] >= 0 ? d->label[r] : -1;
    }
}

/* ---- Batches ------------------------------------------------------------ */

int
pmx_batcher_init (pmx_batcher *b, const pmx_tdata *d, int B,
                  const pmx_train_config *c, int max_len, uint64_t seed,
                  int32_t cls_id, int32_t mask_id)
{
  memset (b, 0, sizeof *b);
  b->d = d;
  b->B = B;
  b->N = c->mux_n;
  b->muxed = c->muxed;
  b->max_len = max_len;
  b->T_fixed = c->muxed ? max_len : 0;
  b->seed = seed;
  b->epoch = -1;
  b->cls_id = cls_id;
  size_t bt = (size_t) B * max_len;
  b->perm = malloc ((d->rows ? d->rows : 1) * sizeof (int));
  b->rows = malloc (B * sizeof (int));
  b->ids = malloc (bt * 4);
  b->types = malloc (bt * 4);
  b->lengths = malloc (B * 4);
  b->labels = malloc (B * 4);
  b->inst = malloc (bt * 4);
  b->mlm = malloc (bt * 4);
  b->mask_id = mask_id;
  b->vocab = c->vocab;
  if (!b->perm || !b->rows || !b->ids || !b->types || !b->lengths
      || !b->labels || !b->inst || !b->mlm)
    {
      pmx_batcher_free (b);
      return pmx_error ("batches: out of memory");
    }
  return 0;
}

void
pmx_batcher_free (pmx_batcher *b)
{
  free (b->perm); free (b->rows); free (b->ids); free (b->types);
  free (b->lengths); free (b->labels); free (b->inst); free (b->mlm);
  memset (b, 0, sizeof *b);
}

pmx_tbatch
pmx_batcher_fill (pmx_batcher *b, int n, uint64_t u, float tw, float rw,
                  float mw, int training)
{
  int T = b->T_fixed ? b->T_fixed : pmx_tdata_longest (b->d, b->rows, n, b->max_len);
  pmx_tdata_batch (b->d, b->rows, n, T, b->muxed ? b->cls_id : 0, b->ids,
                   b->types, b->lengths, b->labels);
  int G = n / b->N;
  uint64_t key = pmx_mix64 (b->seed ^ pmx_mix64 (u ^ (training ? 0 : 0xe7a1ull << 40)));
  for (int i = 0; i < G * T; i++)
    b->inst[i] = (int32_t) (pmx_mix64 (key + (uint64_t) i) % (uint64_t) b->N);
  if (mw > 0)
    {
      /* BERT's masking, per instance: 15% of the tokens between [CLS]
         and the last [SEP]; of those 80% [MASK], 10% a random id, 10%
         unchanged.  */
      uint64_t mk = pmx_mix64 (key ^ 0x6d6c6dull);
      for (int r = 0; r < n; r++)
        for (int t = 0; t < T; t++)
          {
            size_t i = (size_t) r * T + t;
            b->mlm[i] = -1;
            if (t == 0 || t >= b->lengths[r] - 1)
              continue;
            uint64_t h = pmx_mix64 (mk + i);
            if ((h >> 40) % 10000 >= 1500)
              continue;
            b->mlm[i] = b->ids[i];
            uint64_t k = (h >> 8) % 10;
            if (k < 8)
              b->ids[i] = b->mask_id;
            else if (k == 8)
              b->ids[i] = (int32_t) (pmx_mix64 (h) % (uint64_t) b->vocab);
          }
    }
  pmx_tbatch t = { n, T, b->ids, b->types, b->lengths,
                   tw > 0 || !training ? b->labels : NULL,
                   rw > 0 ? b->inst : NULL, mw > 0 ? b->mlm : NULL,
                   tw, rw, mw };
  return t;
}

void
pmx_batcher_train_rows (pmx_batcher *b, uint64_t u)
{
  int per_epoch = b->d->rows / b->B;
  int64_t e = (int64_t) (u / per_epoch);
  if (e != b->epoch)
    {
      uint64_t key = pmx_mix64 (b->seed ^ pmx_mix64 (0x0e90c4ull + e));
      for (int i = 0; i < b->d->rows; i++)
        b->perm[i] = i;
      for (int i = b->d->rows - 1; i > 0; i--)
        {
          int j = (int) (pmx_mix64 (key + i) % (uint64_t) (i + 1));
          int t = b->perm[i];
          b->perm[i] = b->perm[j];
          b->perm[j] = t;
        }
      b->epoch = e;
    }
  memcpy (b->rows, b->perm + (u % per_epoch) * b->B, b->B * sizeof (int));
}

/* ---- Evaluation --------------------------------------------------------- */

int
pmx_evaluate (pmx_tmodel *m, pmx_batcher *b, const pmx_cofi_z *z, float tw,
              float rw, float mw, pmx_eval *r)
{
  pmx_tstats sum = { 0 }, s;
  int rows = b->d->rows, N = b->N;
  for (int start = 0, u = 0; start < rows; start += b->B, u++)
    {
      int n = rows - start < b->B ? rows - start : b->B;
      for (int i = 0; i < n; i++)
        b->rows[i] = start + i;
      int padded = (n + N - 1) / N * N;
      for (int i = n; i < padded; i++)
        b->rows[i] = -1;
      pmx_tbatch t = pmx_batcher_fill (b, padded, u, tw, rw, mw, 0);
      if (isnan (pmx_tmodel_forward_z (m, &t, z, 0, 0, 0)))
        return -1;
      pmx_tmodel_stats (m, &s);
      sum.task_loss += s.task_loss;
      sum.task_count += s.task_count;
      sum.task_correct += s.task_correct;
      sum.ret_loss += s.ret_loss;
      sum.ret_count += s.ret_count;
      sum.ret_correct += s.ret_correct;
      sum.mlm_loss += s.mlm_loss;
      sum.mlm_count += s.mlm_count;
      sum.mlm_correct += s.mlm_correct;
    }
  memset (r, 0, sizeof *r);
  if (sum.task_count)
    {
      r->have_task = 1;
      r->accuracy = (double) sum.task_correct / sum.task_count;
      r->loss += tw * sum.task_loss / sum.task_count;
    }
  if (sum.ret_count)
    {
      r->have_ret = 1;
      r->ret_accuracy = (double) sum.ret_correct / sum.ret_count;
      r->loss += rw * sum.ret_loss / sum.ret_count;
    }
  if (sum.mlm_count)
    {
      r->have_mlm = 1;
      r->mlm_accuracy = (double) sum.mlm_correct / sum.mlm_count;
      r->loss += mw * sum.mlm_loss / sum.mlm_count;
    }
  return 0;
}

int
pmx_tdata_special_ids (const char *vocab, size_t len, int32_t *cls_id,
                       int32_t *mask_id)
{
  *cls_id = 101;                /* BERT's [CLS] and [MASK] */
  *mask_id = 103;
  if (!vocab)
    return 0;
  pmx_vocab *v = pmx_vocab_load_mem (vocab, len, "vocabulary");
  if (!v)
    return -1;
  *cls_id = pmx_vocab_find (v, "[CLS]", 5);
  *mask_id = pmx_vocab_find (v, "[MASK]", 6);
  pmx_vocab_free (v);
  return 0;
}
