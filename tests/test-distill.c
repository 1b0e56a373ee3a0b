/* test-distill.c -- the distillation losses of lib/train/distill.h, written out
   for tests/ref-distill.py to recompute with PyTorch autograd.

   Usage: test-distill DIR
   Writes DIR/distill.pmxs: one record per case with the inputs (student
   and teacher logits and layer outputs, the layer_transformation, which
   student layers exist) and prumux's results (losses, alignment, and the
   gradients with respect to the student logits, every student layer, W
   and b).  */

#include <config.h>
#include "distill.h"
#include "error.h"
#include "par.h"
#include "stream.h"
#include "train-ops.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "train-fixture.h"

static uint64_t rng = 7;

static float
urand (void)                    /* uniform in [-1, 1) */
{
  rng = pmx_mix64 (rng);
  return (float) ((double) (rng >> 11) * 0x1p-53 * 2.0 - 1.0);
}

/* One case: LS student layers of width HS (H when 0), LT teacher layers,
   R rows of H, B rows of C logits.  */
static void
run_case (pmx_writer *w, int LS, int LT, int R, int H, int B, int C,
          const int *exists, int HS)
{
  if (!HS)
    HS = H;
  pmx_record rec;
  pmx_record_init (&rec);
  float *s = add (&rec, "s_logits", PMX_F32, 2, B, C);
  float *t = add (&rec, "t_logits", PMX_F32, 2, B, C);
  for (int i = 0; i < B * C; i++)
    {
      s[i] = 3 * urand ();
      t[i] = 3 * urand ();
    }
  size_t RH = (size_t) R * H, RS = (size_t) R * HS;
  float *sh = add (&rec, "s_hidden", PMX_F32, 2, LS, RS);
  float *th = add (&rec, "t_hidden", PMX_F32, 2, LT, RH);
  for (size_t i = 0; i < LS * RS; i++)
    sh[i] = urand ();
  /* Teacher layer l resembles student layer l * LS / LT (its first HS
     columns), with noise growing with l, so that the alignment has clear
     choices.  */
  for (int l = 0; l < LT; l++)
    for (int r = 0; r < R; r++)
      for (int j = 0; j < H; j++)
        th[l * RH + (size_t) r * H + j] = 0.1f * (1 + l) * urand ()
          + (j < HS ? sh[(l * LS / LT) * RS + (size_t) r * HS + j] : 0);
  float *W = add (&rec, "lt_weight", PMX_F32, 2, H, HS);
  float *b = add (&rec, "lt_bias", PMX_F32, 1, H, 0);
  for (int i = 0; i < H; i++)
    {
      for (int j = 0; j < HS; j++)
        W[i * HS + j] = (i == j) + 0.05f * urand ();
      b[i] = 0.05f * urand ();
    }
  int32_t *ex = add (&rec, "exists", PMX_I32, 1, LS, 0);
  for (int j = 0; j < LS; j++)
    ex[j] = exists[j];

  double *loss = add (&rec, "losses", PMX_F64, 1, 2, 0);
  float *ds = add (&rec, "grad_s_logits", PMX_F32, 2, B, C);
  loss[0] = pmx_distill_pred (s, t, B, C, 2.0, ds, 0.7);

  int tl[PMX_DISTILL_MAX_LAYERS], align[PMX_DISTILL_MAX_LAYERS];
  int NT = pmx_distill_teacher_layers (LT, tl);
  const float *sp[PMX_DISTILL_MAX_LAYERS], *tp[PMX_DISTILL_MAX_LAYERS];
  float *dsh = add (&rec, "grad_s_hidden", PMX_F32, 2, LS, RS);
  float *dsp[PMX_DISTILL_MAX_LAYERS];
  for (int j = 0; j < LS; j++)
    {
      sp[j] = sh + j * RS;
      dsp[j] = dsh + j * RS;
    }
  for (int k = 0; k < NT; k++)
    tp[k] = th + tl[k] * RH;
  float *dW = add (&rec, "grad_lt_weight", PMX_F32, 2, H, HS);
  float *db = add (&rec, "grad_lt_bias", PMX_F32, 1, H, 0);
  float *scratch = malloc ((LS + 1) * RH * sizeof (float));
  if (!scratch)
    check_fatal ("memory");
  /* On 2 threads first, then on one, whose results are written: the
     same bits.  */
  pmx_par *par = pmx_par_new (2);
  float *pdsh = calloc ((size_t) LS * RS, sizeof *pdsh);
  float *pdW = calloc ((size_t) H * HS, sizeof *pdW), *pdb = calloc (H, sizeof *pdb);
  float *pdsp[PMX_DISTILL_MAX_LAYERS];
  int palign[PMX_DISTILL_MAX_LAYERS];
  if (!par || !pdsh || !pdW || !pdb)
    check_fatal ("memory");
  for (int j = 0; j < LS; j++)
    pdsp[j] = pdsh + j * RS;
  double ploss = pmx_distill_layers (par, sp, LS, tp, NT, W, b, exists, R, HS, H,
                                     scratch, palign, pdsp, pdW, pdb, 0.3);
  loss[1] = pmx_distill_layers (NULL, sp, LS, tp, NT, W, b, exists, R, HS, H, scratch,
                                align, dsp, dW, db, 0.3);
  CHECK (ploss == loss[1] && !memcmp (palign, align, NT * sizeof *align)
         && !memcmp (pdsh, dsh, (size_t) LS * RS * sizeof *dsh)
         && !memcmp (pdW, dW, (size_t) H * HS * sizeof *dW)
         && !memcmp (pdb, db, H * sizeof *db),
         "case LS=%d LT=%d: 2 threads give other bits than one", LS, LT);
  pmx_par_free (par);
  free (pdsh);
  free (pdW);
  free (pdb);
  free (scratch);
  int32_t *al = add (&rec, "align", PMX_I32, 1, NT, 0);
  int32_t *tls = add (&rec, "teacher_layers", PMX_I32, 1, NT, 0);
  for (int k = 0; k < NT; k++)
    {
      al[k] = align[k];
      tls[k] = tl[k];
    }
  if (pmx_writer_write (w, &rec) < 0)
    check_fatal ("write");
  printf ("case LS=%d LT=%d: L_pred %.6f L_layer %.6f, align", LS, LT,
          loss[0], loss[1]);
  for (int k = 0; k < NT; k++)
    printf (" %d->%d", tl[k], align[k]);
  printf ("\n");
  pmx_record_free (&rec);
}

int
main (int argc, char **argv)
{
  check_program = "test-distill";
  if (argc != 2)
    {
      fprintf (stderr, "usage: test-distill DIR\n");
      return 2;
    }
  char path[4096];
  snprintf (path, sizeof path, "%s/distill.pmxs", argv[1]);
  FILE *f = fopen (path, "wb");
  if (!f)
    {
      perror (path);
      return 1;
    }
  pmx_writer *w = pmx_writer_open (f, path, NULL);
  if (!w)
    check_fatal (path);
  static const int all12[12] = { 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1 };
  static const int some12[12] = { 1, 0, 1, 1, 0, 0, 1, 0, 1, 1, 0, 1 };
  static const int some4[4] = { 0, 1, 1, 1 };
  static const int last_gone[3] = { 1, 1, 0 };
  run_case (w, 12, 12, 6, 8, 6, 3, all12, 0);
  run_case (w, 12, 12, 6, 8, 4, 2, some12, 0);
  run_case (w, 4, 6, 10, 8, 6, 3, some4, 0);
  run_case (w, 3, 2, 5, 4, 2, 3, last_gone, 0);
  run_case (w, 4, 6, 10, 8, 6, 3, some4, 5);     /* pruned student width */
  if (pmx_writer_finish (w) < 0)
    check_fatal (path);
  pmx_writer_close (w);
  if (fclose (f) != 0)
    {
      perror (path);
      return 1;
    }
  return 0;
}
