/* fuzz-tsv.c -- libFuzzer harness for the TSV table reader (pmx_tsv_read,
   lib/core/tsvtable.c): every field of an accepted table is read, and columns
   are looked up by name.  Build and run with `make fuzz`.  */

#include <config.h>
#include "tsvtable.h"
#include "error.h"

#include <string.h>

int LLVMFuzzerTestOneInput (const unsigned char *data, size_t size);

int
LLVMFuzzerTestOneInput (const unsigned char *data, size_t size)
{
  FILE *f = fmemopen ((void *) data, size, "rb");
  if (!f)
    return 0;
  pmx_tsv *t = pmx_tsv_read (f, "fuzz");
  fclose (f);
  if (!t)
    return 0;
  volatile size_t sink = 0;
  for (size_t c = 0; c < t->ncols; c++)
    sink += (size_t) pmx_tsv_column (t, t->header[c]) + strlen (t->header[c]);
  for (size_t r = 0; r < t->nrows; r++)
    for (size_t c = 0; c < t->ncols; c++)
      sink += strlen (t->rows[r][c]) + t->line[r];
  (void) sink;
  pmx_tsv_free (t);
  return 0;
}
