/* train-data.c -- examples in memory and batches (see train-data.h).  */

#include <config.h>
#include "train-data.h"
#include "error.h"
#include "stream.h"

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
