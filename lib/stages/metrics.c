/* metrics.c -- evaluation metrics; see metrics.h.  */

#include <config.h>
#include "metrics.h"
#include "error.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

struct pmx_metrics
{
  int classes;
  int64_t *confusion;           // (classes, classes): [gold][pred]
  int64_t skipped;
  double *gold, *pred;          // (n) regression pairs
  int64_t n, cap;
};

pmx_metrics *
pmx_metrics_new (int classes)
{
  if (classes < 1 || classes > 4096)
    {
      pmx_error ("cannot score %d classes", classes);
      return NULL;
    }
  pmx_metrics *m = calloc (1, sizeof *m);
  if (m && classes > 1)
    {
      m->confusion = calloc ((size_t) classes * classes, sizeof *m->confusion);
      if (!m->confusion)
        {
          free (m);
          m = NULL;
        }
    }
  if (!m)
    {
      pmx_error_errno (errno, "out of memory");
      return NULL;
    }
  m->classes = classes;
  return m;
}

void
pmx_metrics_free (pmx_metrics *m)
{
  if (!m)
    return;
  free (m->confusion);
  free (m->gold);
  free (m->pred);
  free (m);
}

int
pmx_metrics_add (pmx_metrics *m, double gold, const float *scores)
{
  if (m->classes == 1)
    {
      if (isnan (gold))
        {
          m->skipped++;
          return 0;
        }
      if (!isfinite (scores[0]))
        return pmx_error ("score %g is not a number to compare",
                          (double) scores[0]);
      if (m->n == m->cap)
        {
          int64_t cap = m->cap ? 2 * m->cap : 1024;
          double *g = realloc (m->gold, (size_t) cap * sizeof *g);
          if (g)
            m->gold = g;
          double *p = g ? realloc (m->pred, (size_t) cap * sizeof *p) : NULL;
          if (!p)
            return pmx_error_errno (errno, "out of memory");
          m->pred = p;
          m->cap = cap;
        }
      m->gold[m->n] = gold;
      m->pred[m->n] = scores[0];
      m->n++;
      return 0;
    }
  if (gold < 0)
    {
      m->skipped++;
      return 0;
    }
  for (int c = 0; c < m->classes; c++)
    if (!isfinite (scores[c]))
      return pmx_error ("score %d is %g, not a number to rank", c,
                        (double) scores[c]);
  if (gold >= m->classes || gold != floor (gold))
    return pmx_error ("gold label %g is not a class index below %d", gold, m->classes);
  int best = 0;
  for (int c = 1; c < m->classes; c++)
    if (scores[c] > scores[best])
      best = c;
  m->confusion[(size_t) gold * m->classes + best]++;
  m->n++;
  return 0;
}

static double
pearson (const double *x, const double *y, int64_t n)
{
  if (n < 2)
    return NAN;
  double mx = 0, my = 0;
  for (int64_t i = 0; i < n; i++)
    mx += x[i], my += y[i];
  mx /= n;
  my /= n;
  double sxy = 0, sxx = 0, syy = 0;
  for (int64_t i = 0; i < n; i++)
    {
      sxy += (x[i] - mx) * (y[i] - my);
      sxx += (x[i] - mx) * (x[i] - mx);
      syy += (y[i] - my) * (y[i] - my);
    }
  return sxx > 0 && syy > 0 ? sxy / sqrt (sxx * syy) : NAN;
}

static const double *rank_keys;

static int
by_key (const void *a, const void *b)
{
  double x = rank_keys[*(const int64_t *) a], y = rank_keys[*(const int64_t *) b];
  return (x > y) - (x < y);
}

/* R (n) = the ranks of X, ties getting their average rank (as scipy).  */
static int
ranks (const double *x, int64_t n, double *r)
{
  int64_t *idx = malloc ((size_t) n * sizeof *idx);
  if (!idx)
    return -1;
  for (int64_t i = 0; i < n; i++)
    idx[i] = i;
  rank_keys = x;
  qsort (idx, (size_t) n, sizeof *idx, by_key);
  for (int64_t i = 0; i < n;)
    {
      int64_t j = i;
      while (j + 1 < n && x[idx[j + 1]] == x[idx[i]])
        j++;
      double avg = (i + j) / 2.0 + 1;
      for (int64_t k = i; k <= j; k++)
        r[idx[k]] = avg;
      i = j + 1;
    }
  free (idx);
  return 0;
}

void
pmx_metrics_class (const pmx_metrics *m, int k, pmx_class_values *v)
{
  int C = m->classes;
  memset (v, 0, sizeof *v);
  for (int j = 0; j < C; j++)
    {
      v->support += m->confusion[(size_t) k * C + j];
      v->predicted += m->confusion[(size_t) j * C + k];
    }
  double tp = (double) m->confusion[(size_t) k * C + k];
  if (v->predicted)
    v->precision = tp / (double) v->predicted;
  if (v->support)
    v->recall = tp / (double) v->support;
  /* 2 tp / (2 tp + fp + fn), the harmonic mean of the two.  */
  if (v->support + v->predicted)
    v->f1 = 2 * tp / (double) (v->support + v->predicted);
}

const int64_t *
pmx_metrics_confusion (const pmx_metrics *m)
{
  return m->confusion;
}

void
pmx_metrics_get (const pmx_metrics *m, pmx_metric_values *v)
{
  memset (v, 0, sizeof *v);
  v->count = m->n;
  v->skipped = m->skipped;
  v->f1 = v->accuracy = v->pearson = v->spearman = v->macro_f1 = NAN;
  if (m->classes == 1)
    {
      v->regression = 1;
      v->pearson = pearson (m->gold, m->pred, m->n);
      double *rg = malloc ((size_t) (m->n ? m->n : 1) * sizeof *rg);
      double *rp = malloc ((size_t) (m->n ? m->n : 1) * sizeof *rp);
      if (rg && rp && ranks (m->gold, m->n, rg) == 0 && ranks (m->pred, m->n, rp) == 0)
        v->spearman = pearson (rg, rp, m->n);
      free (rg);
      free (rp);
      return;
    }
  int C = m->classes;
  double s = (double) m->n, c = 0, sum_pt = 0, sum_pp = 0, sum_tt = 0;
  for (int k = 0; k < C; k++)
    {
      double t_k = 0, p_k = 0;
      for (int j = 0; j < C; j++)
        {
          t_k += (double) m->confusion[(size_t) k * C + j];
          p_k += (double) m->confusion[(size_t) j * C + k];
        }
      c += (double) m->confusion[(size_t) k * C + k];
      sum_pt += p_k * t_k;
      sum_pp += p_k * p_k;
      sum_tt += t_k * t_k;
    }
  if (m->n > 0)
    {
      v->accuracy = c / s;
      v->macro_f1 = 0;
      for (int k = 0; k < C; k++)
        {
          pmx_class_values cv;
          pmx_metrics_class (m, k, &cv);
          v->macro_f1 += cv.f1 / C;
        }
    }
  double den = (s * s - sum_pp) * (s * s - sum_tt);
  v->matthews = den > 0 ? (c * s - sum_pt) / sqrt (den) : 0;
  if (C == 2)
    {
      double tp = (double) m->confusion[3], fp = (double) m->confusion[1];
      double fn = (double) m->confusion[2];
      v->f1 = tp + fp + fn > 0 ? 2 * tp / (2 * tp + fp + fn) : NAN;
    }
}
