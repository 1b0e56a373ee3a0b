/* test-train-logits.c -- the training forward's logits for a token stream,
   one row per line, tab-separated (as prumux-demux --emit=logits), so
   tests/train-infer.sh can check that a trained checkpoint gives the same
   numbers through prumux-mux | prumux-infer | prumux-demux.

   Usage: test-train-logits MODEL.pmx TOKENS.pmxs  */

#include <config.h>
#include "error.h"
#include "model.h"
#include "train-data.h"
#include "train-io.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "check.h"


int
main (int argc, char **argv)
{
  check_program = "test-train-logits";
  if (argc != 3)
    {
      fprintf (stderr, "usage: test-train-logits MODEL TOKENS\n");
      return 2;
    }
  pmx_model *pm = pmx_model_open (argv[1]);
  if (!pm)
    check_fatal (argv[1]);
  int max_len = pmx_model_config_of (pm)->max_length;
  pmx_tmodel *m = pmx_tmodel_from_archive (pm, 0, 0, 1, NULL);
  if (!m)
    check_fatal (argv[1]);
  FILE *f = fopen (argv[2], "rb");
  pmx_tdata *d = f ? pmx_tdata_read (f, argv[2]) : NULL;
  if (!d)
    check_fatal (argv[2]);
  int N = m->cfg.mux_n, C = m->cfg.num_labels, B = 8 * N;
  int *rows = malloc (B * sizeof *rows);
  int32_t *ids = malloc ((size_t) B * max_len * 4);
  int32_t *types = malloc ((size_t) B * max_len * 4);
  int32_t *lengths = malloc (B * 4), *labels = malloc (B * 4);
  for (int start = 0; start < d->rows; start += B)
    {
      int n = d->rows - start < B ? d->rows - start : B;
      int padded = (n + N - 1) / N * N;
      for (int i = 0; i < padded; i++)
        rows[i] = i < n ? start + i : -1;
      int T = m->cfg.muxed ? max_len : pmx_tdata_longest (d, rows, n, max_len);
      pmx_tdata_batch (d, rows, padded, T, m->cfg.muxed ? 101 : 0, ids, types,
                       lengths, labels);
      pmx_tbatch b = { padded, T, ids, types, lengths, NULL, NULL, NULL, 0, 0, 0 };
      if (isnan (pmx_tmodel_forward (m, &b, 0, 0, 0)))
        check_fatal ("forward");
      const float *lg = pmx_tmodel_logits (m);
      for (int i = 0; i < n; i++)
        for (int j = 0; j < C; j++)
          printf ("%.7g%c", lg[i * C + j], j + 1 < C ? '\t' : '\n');
    }
  free (rows); free (ids); free (types); free (lengths); free (labels);
  pmx_tdata_free (d);
  fclose (f);
  pmx_tmodel_free (m);
  pmx_model_close (pm);
  return 0;
}
