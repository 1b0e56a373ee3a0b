/* l0.c -- CoFi's hard-concrete masks (MUX-PLM-SPEC.md §6.1-§6.5).  */

#include <config.h>

#include "l0.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "train-ops.h"

double
pmx_l0_head_weight (int hidden, int heads)
{
  if (hidden < 1 || heads < 1)
    return 0.0;
  double h = hidden;
  return floor ((4 * h * h + 4 * h) / heads) / h;
}

void
pmx_l0_free (pmx_l0 *l0)
{
  if (!l0)
    return;
  free (l0->loga);
  free (l0->grad);
  free (l0->dz_dloga);
  free (l0->u);
  free (l0->scratch);
  free (l0);
}

/* One value of the deterministic masks' sort.  */
typedef struct
{
  float v;
  size_t i;
} ranked;

/* A uniform in (0, 1) from 53 random bits.  */
static double
uniform53 (uint64_t bits)
{
  return ((double) (bits >> 11) + 0.5) * 0x1p-53;
}

pmx_l0 *
pmx_l0_new (const pmx_cofi_z *shape, double head_weight, double prunable,
            uint64_t seed)
{
  if (!shape || shape->layers < 1 || shape->layers > PMX_COFI_MAX_LAYERS
      || shape->hidden < 1)
    {
      pmx_error ("masks: not a valid shape");
      return NULL;
    }
  pmx_l0 *l0 = calloc (1, sizeof *l0);
  if (!l0)
    goto nomem;
  int L = shape->layers;
  l0->layers = L;
  l0->hidden = shape->hidden;
  l0->head_weight = head_weight;
  l0->prunable = prunable;
  l0->seed = seed;
  size_t n = 0;
  for (int l = 0; l < L; l++)
    {
      l0->heads[l] = shape->heads[l];
      l0->ffn[l] = shape->ffn[l];
      l0->off_head[l] = n;
      n += (size_t) shape->heads[l];
    }
  l0->off_head_layer = n;
  n += (size_t) L;
  for (int l = 0; l < L; l++)
    {
      l0->off_intermediate[l] = n;
      n += (size_t) shape->ffn[l];
    }
  l0->off_mlp = n;
  n += (size_t) L;
  l0->off_hidden = n;
  n += (size_t) shape->hidden;
  l0->n = n;
  if (!(l0->loga = malloc (n * sizeof *l0->loga))
      || !(l0->grad = calloc (n, sizeof *l0->grad))
      || !(l0->dz_dloga = calloc (n, sizeof *l0->dz_dloga))
      || !(l0->u = calloc (n, sizeof *l0->u)))
    goto nomem;

  /* The deterministic masks sort the largest group of one kind.  */
  size_t most = (size_t) l0->hidden;
  for (int l = 0; l < L; l++)
    {
      if ((size_t) l0->heads[l] > most)
        most = (size_t) l0->heads[l];
      if ((size_t) l0->ffn[l] > most)
        most = (size_t) l0->ffn[l];
    }
  if (!(l0->scratch = malloc (most * sizeof (ranked))))
    goto nomem;

  /* normal_(mean, 1e-2) by Box-Muller on the seed's own stream (not the
     noise's: DRAWS counts samples only).  Intermediate's mean is
     log (1 - p) - log (p) with droprate p = 0.5, i.e. 0.  */
  uint64_t base = pmx_mix64 (seed ^ 0x6c6f67616c706861ull);
  size_t int_lo = l0->off_intermediate[0], int_hi = l0->off_mlp;
  for (size_t i = 0; i < n; i++)
    {
      double u1 = uniform53 (pmx_mix64 (base + 2 * i));
      double u2 = uniform53 (pmx_mix64 (base + 2 * i + 1));
      double g = sqrt (-2.0 * log (u1)) * cos (2.0 * M_PI * u2);
      double mean = i >= int_lo && i < int_hi ? 0.0 : 10.0;
      l0->loga[i] = (float) (mean + 1e-2 * g);
    }
  return l0;
nomem:
  pmx_l0_free (l0);
  pmx_error_errno (ENOMEM, "masks");
  return NULL;
}

pmx_cofi_z *
pmx_l0_z_new (const pmx_l0 *l0)
{
  return pmx_cofi_z_new (l0->layers, l0->hidden, l0->heads, l0->ffn);
}

float *
pmx_l0_z_at (const pmx_l0 *l0, pmx_cofi_z *z, size_t i)
{
  if (i >= l0->off_hidden)
    return &z->hidden_z[i - l0->off_hidden];
  if (i >= l0->off_mlp)
    return &z->mlp[i - l0->off_mlp];
  if (i >= l0->off_head_layer + (size_t) l0->layers)
    {
      int l = l0->layers - 1;
      while (i < l0->off_intermediate[l])
        l--;
      return &z->intermediate[l][i - l0->off_intermediate[l]];
    }
  if (i >= l0->off_head_layer)
    return &z->head_layer[i - l0->off_head_layer];
  int l = l0->layers - 1;
  while (i < l0->off_head[l] || !l0->heads[l])
    l--;
  return &z->head[l][i - l0->off_head[l]];
}

static double
sigmoid (double x)
{
  return 1.0 / (1.0 + exp (-x));
}

void
pmx_l0_noise (const pmx_l0 *l0, float *u)
{
  uint64_t base = pmx_mix64 (l0->seed ^ pmx_mix64 (l0->draws));
  for (size_t i = 0; i < l0->n; i++)
    {
      /* uniform_(eps, 1 - eps) as torch draws it: eps + (1 - 2 eps) U.  */
      double r = (double) (pmx_mix64 (base + i) >> 40) * 0x1p-24;
      u[i] = (float) (PMX_L0_EPS + (1.0 - 2.0 * PMX_L0_EPS) * r);
    }
}

void
pmx_l0_sample_noise (pmx_l0 *l0, const float *u, pmx_cofi_z *z)
{
  const double span = PMX_L0_LIMIT_R - PMX_L0_LIMIT_L;
  for (size_t i = 0; i < l0->n; i++)
    {
      double x = u[i];
      double y = sigmoid ((log (x) - log (1.0 - x) + l0->loga[i])
                          / PMX_L0_BETA);
      double s = y * span + PMX_L0_LIMIT_L;
      double zi = s < 0.0 ? 0.0 : s > 1.0 ? 1.0 : s;
      *pmx_l0_z_at (l0, z, i) = (float) zi;
      /* hardtanh's gradient passes strictly inside (0, 1).  */
      l0->dz_dloga[i] = s > 0.0 && s < 1.0
        ? (float) (span * y * (1.0 - y) / PMX_L0_BETA) : 0.0f;
    }
}

void
pmx_l0_sample (pmx_l0 *l0, pmx_cofi_z *z)
{
  pmx_l0_noise (l0, l0->u);
  pmx_l0_sample_noise (l0, l0->u, z);
  l0->draws++;
}

void
pmx_l0_backward (pmx_l0 *l0, const pmx_cofi_z *dz, double scale)
{
  for (size_t i = 0; i < l0->n; i++)
    {
      double g = *pmx_l0_z_at (l0, (pmx_cofi_z *) dz, i);
      l0->grad[i] += (float) (scale * g * l0->dz_dloga[i]);
    }
}

/* cdf_qz with its derivative d/dloga (0 where the clamp holds).  */
static double
cdf_d (double x, double loga, double *d)
{
  double xn = (x - PMX_L0_LIMIT_L) / (PMX_L0_LIMIT_R - PMX_L0_LIMIT_L);
  double logits = log (xn) - log (1.0 - xn);
  double c = sigmoid (logits * PMX_L0_BETA - loga);
  if (c < PMX_L0_EPS || c > 1.0 - PMX_L0_EPS)
    {
      if (d)
        *d = 0.0;
      return c < PMX_L0_EPS ? PMX_L0_EPS : 1.0 - PMX_L0_EPS;
    }
  if (d)
    *d = -c * (1.0 - c);
  return c;
}

double
pmx_l0_cdf (double x, double loga)
{
  return cdf_d (x, loga, NULL);
}

/* P(z != 0) = 1 - cdf_qz (0, log alpha), with its derivative.  */
static double
keep_prob (double loga, double *d)
{
  double dc;
  double p = 1.0 - cdf_d (0.0, loga, &dc);
  if (d)
    *d = -dc;
  return p;
}

static int
ranked_cmp (const void *a, const void *b)
{
  const ranked *x = a, *y = b;
  if (x->v != y->v)
    return x->v < y->v ? -1 : 1;
  return x->i < y->i ? -1 : x->i > y->i;
}

/* _deterministic_z over the SIZE values from flat index OFF.  */
static void
deterministic (const pmx_l0 *l0, pmx_cofi_z *z, size_t off, size_t size,
               ranked *scratch)
{
  double expected_nonzeros = 0;
  for (size_t k = 0; k < size; k++)
    expected_nonzeros += keep_prob (l0->loga[off + k], NULL);
  /* Python's round: half to even, as rint in the default rounding.  */
  double num_zeros = rint ((double) size - expected_nonzeros);
  for (size_t k = 0; k < size; k++)
    {
      float soft = (float) sigmoid (l0->loga[off + k] / PMX_L0_BETA
                                    * PMX_L0_MAGIC);
      *pmx_l0_z_at (l0, z, off + k) = soft;
      scratch[k].v = soft;
      scratch[k].i = k;
    }
  if (num_zeros <= 0)
    return;
  qsort (scratch, size, sizeof *scratch, ranked_cmp);
  for (size_t k = 0; k < size && k < (size_t) num_zeros; k++)
    *pmx_l0_z_at (l0, z, off + scratch[k].i) = 0.0f;
}

void
pmx_l0_deterministic (const pmx_l0 *l0, pmx_cofi_z *z)
{
  ranked *scratch = l0->scratch;
  for (int l = 0; l < l0->layers; l++)
    {
      deterministic (l0, z, l0->off_head[l], (size_t) l0->heads[l], scratch);
      deterministic (l0, z, l0->off_head_layer + (size_t) l, 1, scratch);
      deterministic (l0, z, l0->off_intermediate[l], (size_t) l0->ffn[l],
                     scratch);
      deterministic (l0, z, l0->off_mlp + (size_t) l, 1, scratch);
    }
  deterministic (l0, z, l0->off_hidden, (size_t) l0->hidden, scratch);
}

/* The keep probabilities' sums of the expected size.  */
typedef struct
{
  double hidden;                        /* S = sum_d hs_d */
  double heads;                         /* A = sum_l hl_l sum_h hd_lh */
  double ffn;                           /* B = sum_l ml_l sum_j in_lj */
} sums;

static double
expected_size (const pmx_l0 *l0, sums *s)
{
  const float *a = l0->loga;
  s->hidden = s->heads = s->ffn = 0;
  for (int d = 0; d < l0->hidden; d++)
    s->hidden += keep_prob (a[l0->off_hidden + (size_t) d], NULL);
  for (int l = 0; l < l0->layers; l++)
    {
      double h = 0, f = 0;
      for (int k = 0; k < l0->heads[l]; k++)
        h += keep_prob (a[l0->off_head[l] + (size_t) k], NULL);
      for (int k = 0; k < l0->ffn[l]; k++)
        f += keep_prob (a[l0->off_intermediate[l] + (size_t) k], NULL);
      s->heads += keep_prob (a[l0->off_head_layer + (size_t) l], NULL) * h;
      s->ffn += keep_prob (a[l0->off_mlp + (size_t) l], NULL) * f;
    }
  return l0->head_weight * s->hidden * s->heads + 2.0 * s->hidden * s->ffn;
}

double
pmx_l0_expected_sparsity (const pmx_l0 *l0)
{
  sums s;
  return 1.0 - expected_size (l0, &s) / l0->prunable;
}

void
pmx_l0_expected_sparsity_backward (pmx_l0 *l0, double scale)
{
  sums s;
  expected_size (l0, &s);
  const float *a = l0->loga;
  float *g = l0->grad;
  double hw = l0->head_weight;
  /* d sparsity = -d E[size] / prunable; E[size] = hw S A + 2 S B.  */
  double c = -scale / l0->prunable, d;
  for (int k = 0; k < l0->hidden; k++)
    {
      size_t i = l0->off_hidden + (size_t) k;
      keep_prob (a[i], &d);
      g[i] += (float) (c * (hw * s.heads + 2.0 * s.ffn) * d);
    }
  for (int l = 0; l < l0->layers; l++)
    {
      double h = 0, f = 0, dl;
      for (int k = 0; k < l0->heads[l]; k++)
        h += keep_prob (a[l0->off_head[l] + (size_t) k], NULL);
      for (int k = 0; k < l0->ffn[l]; k++)
        f += keep_prob (a[l0->off_intermediate[l] + (size_t) k], NULL);
      size_t il = l0->off_head_layer + (size_t) l;
      double hl = keep_prob (a[il], &dl);
      g[il] += (float) (c * hw * s.hidden * h * dl);
      for (int k = 0; k < l0->heads[l]; k++)
        {
          size_t i = l0->off_head[l] + (size_t) k;
          keep_prob (a[i], &d);
          g[i] += (float) (c * hw * s.hidden * hl * d);
        }
      size_t im = l0->off_mlp + (size_t) l;
      double ml = keep_prob (a[im], &dl);
      g[im] += (float) (c * 2.0 * s.hidden * f * dl);
      for (int k = 0; k < l0->ffn[l]; k++)
        {
          size_t i = l0->off_intermediate[l] + (size_t) k;
          keep_prob (a[i], &d);
          g[i] += (float) (c * 2.0 * s.hidden * ml * d);
        }
    }
}

double
pmx_l0_target (double target, double start, int64_t pruned_steps,
               int64_t warmup)
{
  if (warmup <= 0)
    return target;
  double f = (double) pruned_steps / (double) warmup;
  return (target - start) * (f < 1.0 ? f : 1.0) + start;
}

double
pmx_l0_lagrangian (pmx_l0 *l0, double target, double scale,
                   double *sparsity)
{
  double s = pmx_l0_expected_sparsity (l0);
  double gap = s - target;
  if (sparsity)
    *sparsity = s;
  if (scale != 0)
    {
      /* dLag/ds = lambda1 + 2 lambda2 (s - t).  */
      pmx_l0_expected_sparsity_backward
        (l0, scale * (l0->lambda[0] + 2.0 * l0->lambda[1] * gap));
      l0->lambda_grad[0] += scale * gap;
      l0->lambda_grad[1] += scale * gap * gap;
    }
  return l0->lambda[0] * gap + l0->lambda[1] * gap * gap;
}

void
pmx_l0_constrain (pmx_l0 *l0)
{
  const float lo = (float) log (1e-2), hi = (float) log (1e2);
  for (size_t i = 0; i < l0->n; i++)
    l0->loga[i] = l0->loga[i] < lo ? lo : l0->loga[i] > hi ? hi : l0->loga[i];
}

void
pmx_l0_zero_grad (pmx_l0 *l0)
{
  memset (l0->grad, 0, l0->n * sizeof *l0->grad);
  l0->lambda_grad[0] = l0->lambda_grad[1] = 0;
}
