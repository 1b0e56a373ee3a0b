/* test-l0.c -- the hard-concrete masks (lib/prune/l0.c).

   Usage: test-l0 [DUMP]
   Without arguments: the checks that need no reference (initialisation
   statistics, the noise stream and its resumption, constrain, the flat
   index map, BERT-base's constants).  With DUMP: also writes every value
   of two cases (a small model with a layer without heads and one without
   an FFN; BERT-base's shape) as lines "case name v v ...", which
   tests/ref-l0.py recomputes from MUX-PLM-SPEC.md §6 in PyTorch.  */

#include <config.h>
#include "l0.h"
#include "error.h"
#include "train-ops.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

static void
dump (FILE *f, const char *c, const char *name, const float *v, size_t n)
{
  fprintf (f, "%s %s", c, name);
  for (size_t i = 0; i < n; i++)
    fprintf (f, " %.9g", v[i]);
  fputc ('\n', f);
}

static void
dump_d (FILE *f, const char *c, const char *name, double v)
{
  fprintf (f, "%s %s %.17g\n", c, name, v);
}

/* Z in the flat order.  */
static void
dump_z (FILE *f, const char *c, const char *name, const pmx_l0 *l0,
        pmx_cofi_z *z)
{
  fprintf (f, "%s %s", c, name);
  for (size_t i = 0; i < l0->n; i++)
    fprintf (f, " %.9g", *pmx_l0_z_at (l0, z, i));
  fputc ('\n', f);
}

/* A uniform in [-1, 1) from KEY.  */
static double
uni (uint64_t key)
{
  return (double) (pmx_mix64 (key) >> 11) * 0x1p-52 - 1.0;
}

/* Everything the reference recomputes, for the masks of SHAPE: log alpha
   spread over [-6, 6] (around CENTER for the last case), lambdas, noise,
   a sample, its backward with a made-up dL/dz, the deterministic masks,
   the expected sparsity, the Lagrangian and their gradients.  */
static void
run_case (FILE *f, const char *c, const pmx_cofi_z *shape, double hw,
          double prunable, double spread, double center)
{
  pmx_l0 *l0 = pmx_l0_new (shape, hw, prunable, 7);
  CHECK (l0, "%s: new: %s", c, pmx_errmsg ());
  if (!l0)
    return;
  pmx_cofi_z *z = pmx_l0_z_new (l0), *dz = pmx_l0_z_new (l0);
  CHECK (z && dz, "%s: z_new", c);
  for (size_t i = 0; i < l0->n; i++)
    l0->loga[i] = (float) (center + spread * uni (1000 + i));
  l0->lambda[0] = 0.3;
  l0->lambda[1] = -0.7;
  fprintf (f, "%s shape %d %d %.17g %.17g", c, l0->layers, l0->hidden, hw,
           prunable);
  for (int l = 0; l < l0->layers; l++)
    fprintf (f, " %d %d", l0->heads[l], l0->ffn[l]);
  fputc ('\n', f);
  dump (f, c, "loga", l0->loga, l0->n);

  pmx_l0_sample (l0, z);
  dump (f, c, "u", l0->u, l0->n);
  dump_z (f, c, "z", l0, z);
  for (size_t i = 0; i < l0->n; i++)
    *pmx_l0_z_at (l0, dz, i) = (float) uni (5000 + i);
  dump_z (f, c, "dz", l0, dz);
  pmx_l0_backward (l0, dz, 0.5);
  dump (f, c, "grad_sample", l0->grad, l0->n);
  pmx_l0_zero_grad (l0);

  float *cdf = malloc (l0->n * sizeof *cdf);
  for (size_t i = 0; i < l0->n; i++)
    cdf[i] = (float) pmx_l0_cdf (0.0, l0->loga[i]);
  dump (f, c, "cdf0", cdf, l0->n);
  for (size_t i = 0; i < l0->n; i++)
    cdf[i] = (float) pmx_l0_cdf (0.3, l0->loga[i]);
  dump (f, c, "cdf3", cdf, l0->n);
  free (cdf);

  pmx_l0_deterministic (l0, z);
  dump_z (f, c, "det", l0, z);

  dump_d (f, c, "sparsity", pmx_l0_expected_sparsity (l0));
  pmx_l0_expected_sparsity_backward (l0, 2.0);
  dump (f, c, "grad_sparsity", l0->grad, l0->n);
  pmx_l0_zero_grad (l0);

  double s;
  double lag = pmx_l0_lagrangian (l0, 0.4, 1.0, &s);
  dump_d (f, c, "lagrangian", lag);
  dump (f, c, "grad_lagrangian", l0->grad, l0->n);
  dump_d (f, c, "grad_lambda1", l0->lambda_grad[0]);
  dump_d (f, c, "grad_lambda2", l0->lambda_grad[1]);
  CHECK (s == pmx_l0_expected_sparsity (l0), "%s: *sparsity", c);
  /* scale 0: the value only, no gradient.  */
  pmx_l0_zero_grad (l0);
  CHECK (pmx_l0_lagrangian (l0, 0.4, 0.0, NULL) == lag
         && l0->lambda_grad[0] == 0 && l0->grad[0] == 0,
         "%s: lagrangian without gradient", c);

  pmx_cofi_z_free (z);
  pmx_cofi_z_free (dz);
  pmx_l0_free (l0);
}

/* Checks that need no reference.  */
static void
self_checks (void)
{
  int heads[12], ffn[12];
  for (int l = 0; l < 12; l++)
    heads[l] = 12, ffn[l] = 3072;
  pmx_cofi_z *shape = pmx_cofi_z_new (12, 768, heads, ffn);
  double hw = pmx_l0_head_weight (768, 12);
  double p = pmx_cofi_prunable_size (12, 768, 12, 3072);
  CHECK (hw * 768 == 196864.0, "params per head %.17g", hw * 768);
  CHECK (p == 85017600.0, "prunable %.17g", p);
  pmx_l0 *l0 = pmx_l0_new (shape, hw, p, 42);
  CHECK (l0 && l0->n == 144 + 12 + 36864 + 12 + 768, "n");
  if (!l0)
    return;

  /* Initialisation: normal (10, 1e-2), intermediate normal (0, 1e-2).  */
  double sum[2] = { 0 }, sq[2] = { 0 }, cnt[2] = { 0 };
  for (size_t i = 0; i < l0->n; i++)
    {
      int k = i >= l0->off_intermediate[0] && i < l0->off_mlp;
      double d = l0->loga[i] - (k ? 0.0 : 10.0);
      sum[k] += d, sq[k] += d * d, cnt[k]++;
    }
  for (int k = 0; k < 2; k++)
    {
      double mean = sum[k] / cnt[k], sd = sqrt (sq[k] / cnt[k] - mean * mean);
      CHECK (fabs (mean) < 5 * 1e-2 / sqrt (cnt[k]) && fabs (sd - 1e-2) < 1e-3,
             "init %d: mean offset %g, sd %g", k, mean, sd);
    }
  /* At init everything but the FFN dimensions is kept (P(z != 0) ~ 1);
     those are kept with P = 1 - sigmoid (beta log (1/11)) = 0.8319, so
     s = 1 - (28,311,552 + 0.8319 * 56,623,104) / 85,017,600 = 0.1126.  */
  double s = pmx_l0_expected_sparsity (l0);
  CHECK (fabs (s - 0.1126) < 5e-4, "initial expected sparsity %g", s);

  /* The flat index map visits every value of a mask set once.  */
  pmx_cofi_z *z = pmx_l0_z_new (l0);
  for (size_t i = 0; i < l0->n; i++)
    *pmx_l0_z_at (l0, z, i) = (float) i;
  CHECK (z->head[3][5] == (float) (3 * 12 + 5), "map head");
  CHECK (z->head_layer[11] == 144 + 11, "map head_layer");
  CHECK (z->intermediate[2][7] == 156 + 2 * 3072 + 7, "map intermediate");
  CHECK (z->mlp[0] == 156 + 36864, "map mlp");
  CHECK (z->hidden_z[767] == (float) (l0->n - 1), "map hidden");

  /* The noise: in (eps, 1 - eps), about uniform, new each draw, the same
     again from the same DRAWS (a resumed run).  */
  float *u1 = malloc (l0->n * sizeof *u1), *u2 = malloc (l0->n * sizeof *u2);
  pmx_l0_sample (l0, z);
  memcpy (u1, l0->u, l0->n * sizeof *u1);
  pmx_l0_sample (l0, z);
  CHECK (l0->draws == 2, "draws");
  double mean = 0;
  int same = 0;
  for (size_t i = 0; i < l0->n; i++)
    {
      CHECK (u1[i] > 1e-6f && u1[i] < 1 - 1e-6f, "u %g", u1[i]);
      mean += u1[i];
      same += u1[i] == l0->u[i];
    }
  mean /= l0->n;
  CHECK (fabs (mean - 0.5) < 0.01 && same < 10, "noise mean %g, %d repeated",
         mean, same);
  l0->draws = 0;
  pmx_l0_noise (l0, u2);
  CHECK (!memcmp (u1, u2, l0->n * sizeof *u1), "noise does not resume");

  /* Constrain.  */
  l0->loga[0] = 10, l0->loga[1] = -7, l0->loga[2] = 1.5f;
  pmx_l0_constrain (l0);
  CHECK (l0->loga[0] == (float) log (100.0)
         && l0->loga[1] == (float) log (0.01) && l0->loga[2] == 1.5f,
         "constrain %g %g %g", l0->loga[0], l0->loga[1], l0->loga[2]);

  /* Target warm-up.  */
  CHECK (pmx_l0_target (0.6, 0, 5, 10) == 0.3
         && pmx_l0_target (0.6, 0, 20, 10) == 0.6
         && pmx_l0_target (0.6, 0.1, 0, 0) == 0.6, "target");

  free (u1);
  free (u2);
  pmx_cofi_z_free (z);
  pmx_l0_free (l0);
  pmx_cofi_z_free (shape);
}

int
main (int argc, char **argv)
{
  self_checks ();
  if (argc > 1)
    {
      FILE *f = fopen (argv[1], "w");
      if (!f)
        return 99;
      int heads[3] = { 4, 0, 3 }, ffn[3] = { 6, 5, 0 };
      pmx_cofi_z *small = pmx_cofi_z_new (3, 10, heads, ffn);
      run_case (f, "small", small, pmx_l0_head_weight (10, 4),
                pmx_cofi_prunable_size (3, 10, 4, 6), 6.0, 0.0);
      pmx_cofi_z_free (small);
      int bh[12], bf[12];
      for (int l = 0; l < 12; l++)
        bh[l] = 12, bf[l] = 3072;
      pmx_cofi_z *base = pmx_cofi_z_new (12, 768, bh, bf);
      run_case (f, "base", base, pmx_l0_head_weight (768, 12),
                pmx_cofi_prunable_size (12, 768, 12, 3072), 4.6, 0.5);
      pmx_cofi_z_free (base);
      if (fclose (f))
        return 99;
    }
  return failures ? 1 : 0;
}
