/* distill.c -- CoFi's distillation losses (see distill.h).  */

#include <config.h>
#include "distill.h"
#include "par.h"
#include "train-ops.h"

#include <math.h>
#include <string.h>

double
pmx_distill_pred (const float *s, const float *t, int B, int C, double temp,
                  float *ds, double scale)
{
  double loss = 0;
  for (int r = 0; r < B; r++)
    {
      const float *sr = s + (size_t) r * C, *tr = t + (size_t) r * C;
      /* log-softmax of both at temperature TEMP, in double.  */
      double ms = -INFINITY, mt = -INFINITY, zs = 0, zt = 0;
      for (int c = 0; c < C; c++)
        {
          ms = fmax (ms, sr[c] / temp);
          mt = fmax (mt, tr[c] / temp);
        }
      for (int c = 0; c < C; c++)
        {
          zs += exp (sr[c] / temp - ms);
          zt += exp (tr[c] / temp - mt);
        }
      double ls = ms + log (zs), lt = mt + log (zt);
      for (int c = 0; c < C; c++)
        {
          double lps = sr[c] / temp - ls, lpt = tr[c] / temp - lt;
          double pt = exp (lpt);
          loss += pt > 0 ? pt * (lpt - lps) : 0;   /* xlogy: 0 log 0 = 0 */
          /* d/ds_c of T^2/B sum pt (lpt - lps) = T/B (ps_c - pt_c).  */
          if (ds)
            ds[(size_t) r * C + c] += (float) (scale * temp / B
                                               * (exp (lps) - pt));
        }
    }
  return loss * temp * temp / B;
}

int
pmx_distill_teacher_layers (int layers, int *out)
{
  int n = 0;
  for (int l = layers - 1; l >= 0 && n < PMX_DISTILL_MAX_LAYERS; l -= 3)
    n++;
  for (int k = 0; k < n; k++)
    out[k] = layers - 1 - 3 * (n - 1 - k);
  return n;
}

/* The mean squared errors of pairs (teacher layer k, student layer j),
   a pair a task, each summed in order: the bits of one thread.  */
typedef struct mse_job
{
  const float *const *t;
  const float *y, *tk;
  float *dy;
  size_t RH;
  int LS;
  double scale;
  double (*mse)[PMX_DISTILL_MAX_LAYERS];
} mse_job;

static void
mse_pairs (void *arg, size_t p0, size_t p1, int thread)
{
  const mse_job *m = arg;
  (void) thread;
  for (size_t p = p0; p < p1; p++)
    {
      size_t k = p / m->LS, j = p % m->LS, RH = m->RH;
      const float *yj = m->y + j * RH, *tk = m->t[k];
      double sum = 0;
      for (size_t i = 0; i < RH; i++)
        sum += ((double) tk[i] - yj[i]) * ((double) tk[i] - yj[i]);
      m->mse[k][j] = sum / RH;
    }
}

/* d MSE / d y_j = 2 (y_j - t_k) / (R H), times SCALE, for elements
   I0..I1.  */
static void
mse_grad (void *arg, size_t i0, size_t i1, int thread)
{
  const mse_job *m = arg;
  (void) thread;
  for (size_t i = i0; i < i1; i++)
    m->dy[i] = (float) (m->scale * 2.0 * ((double) m->y[i] - m->tk[i]) / m->RH);
}

double
pmx_distill_layers (const pmx_par *par, const float *const *s, int LS,
                    const float *const *t, int NT, const float *W, const float *b,
                    const int *exists, size_t R, int HS, int HT, float *scratch,
                    int *align, float *const *ds, float *dW, float *db, double scale)
{
  size_t RH = R * HT;
  float *y = scratch;                   /* (LS, R, H) transformed */
  float *dy = scratch + LS * RH;        /* (R, H) */
  double mse[PMX_DISTILL_MAX_LAYERS][PMX_DISTILL_MAX_LAYERS];
  int choice[PMX_DISTILL_MAX_LAYERS];
  if (LS < 1 || NT < 1)
    return 0;
  for (int j = 0; j < LS; j++)
    pmx_linear_fwd (par, y + j * RH, s[j], W, b, (int) R, HS, HT);
  mse_job mj = { .t = t, .y = y, .dy = dy, .RH = RH, .LS = LS, .scale = scale,
                 .mse = mse };
  pmx_par_for (par, (size_t) NT * LS, 1, mse_pairs, &mj);
  /* Greedy alignment from the last teacher layer backwards.  */
  int last = LS;
  for (int k = NT - 1; k >= 0; k--)
    {
      int best = -1;
      for (int j = 0; j < last; j++)
        if ((!exists || exists[j]) && (best < 0 || mse[k][j] < mse[k][best]))
          best = j;
      if (best < 0)
        best = last < LS ? last : LS - 1;
      choice[k] = best;
      last = best;
    }
  double loss = 0;
  for (int k = 0; k < NT; k++)
    {
      int j = choice[k];
      loss += mse[k][j];
      if (align)
        align[k] = j;
      if (scale == 0)
        continue;
      mj.y = y + j * RH;
      mj.tk = t[k];
      pmx_par_for (par, RH, 1 << 14, mse_grad, &mj);
      pmx_linear_bwd (par, ds && ds[j] ? ds[j] : NULL, dW, db, dy, s[j], W,
                      (int) R, HS, HT);
    }
  return loss;
}
