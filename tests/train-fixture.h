/* train-fixture.h -- what the C sides of the training reference tests
   (test-train-ref, test-prune-ref, test-distill) share: writing a record
   to DIR/FILE as a stream for the Python reference, adding a tensor to a
   record, and dumping a model's parameters (or gradients) by name.  Every
   failure ends the test through check_fatal (check.h).  */

#ifndef PRUMUX_TESTS_TRAIN_FIXTURE_H
#define PRUMUX_TESTS_TRAIN_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "stream.h"
#include "train-model.h"

static void __attribute__ ((unused))
write_stream (const char *dir, const char *file, const pmx_meta *meta,
              const pmx_record *rec)
{
  char path[4096];
  snprintf (path, sizeof path, "%s/%s", dir, file);
  FILE *f = fopen (path, "wb");
  if (!f)
    {
      perror (path);
      exit (1);
    }
  pmx_writer *w = pmx_writer_open (f, path, meta);
  if (!w || pmx_writer_write (w, rec) < 0 || pmx_writer_finish (w) < 0)
    check_fatal (path);
  pmx_writer_close (w);
  if (fclose (f) != 0)
    {
      perror (path);
      exit (1);
    }
}

/* A zeroed tensor NAME of DTYPE, rank 1 (D0) or 2 (D0, D1), added to R.  */
static void * __attribute__ ((unused))
add (pmx_record *r, const char *name, int dtype, int rank, int64_t d0,
     int64_t d1)
{
  int64_t shape[2] = { d0, d1 };
  pmx_tensor *t = pmx_record_add (r, name, dtype, rank, shape);
  if (!t)
    check_fatal (name);
  memset (t->data, 0, t->nbytes);
  return t->data;
}

/* Every parameter of M, by name, from BASE (m->params or m->grads).  */
static void __attribute__ ((unused))
dump_params (pmx_record *rec, const pmx_tmodel *m, const float *base)
{
  for (int k = 0; k < m->nparams; k++)
    {
      const pmx_tparam *p = &m->param[k];
      float *d = add (rec, p->name, PMX_F32, p->rank, p->shape[0], p->shape[1]);
      memcpy (d, base + p->offset, p->size * sizeof *d);
    }
}

#endif
