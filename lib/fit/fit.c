/* fit.c -- Auto-PruMUX: the accuracy and throughput models over the
   measured (N, s) grid, candidate ranking and evaluation; see fit.h.  */

#include <config.h>
#include "fit.h"
#include "tsvtable.h"
#include "error.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* Grid coordinates come from decimal text (0.6, 0.65) and from steps
   (0.6 + k * 0.05); treat values this close as the same point.  */
static int
same (double a, double b)
{
  double m = fmax (1.0, fmax (fabs (a), fabs (b)));
  return fabs (a - b) <= 1e-9 * m;
}

static int
cmp_double (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return (x > y) - (x < y);
}

/* Sort V[0..N-1] and drop near-duplicates; returns the new length.  */
static size_t
sort_unique (double *v, size_t n)
{
  if (n == 0)
    return 0;
  qsort (v, n, sizeof *v, cmp_double);
  size_t m = 1;
  for (size_t i = 1; i < n; i++)
    if (!same (v[i], v[m - 1]))
      v[m++] = v[i];
  return m;
}

/* Index of Q in ascending V (within `same`), or -1.  */
static long
find_value (const double *v, size_t n, double q)
{
  size_t lo = 0, hi = n;
  while (lo < hi)
    {
      size_t mid = (lo + hi) / 2;
      if (same (v[mid], q))
        return (long) mid;
      if (v[mid] < q)
        lo = mid + 1;
      else
        hi = mid;
    }
  return -1;
}

/* ---- Reading the table ------------------------------------------------ */

/* A missing measurement: empty cell, "NA" or "-".  */
static int
is_missing (const char *s)
{
  return *s == '\0' || strcmp (s, "NA") == 0 || strcmp (s, "-") == 0;
}

/* Parse the whole of S as a finite number.  */
static int
parse_number (const char *s, double *v)
{
  char *end;
  if (*s == '\0' || *s == ' ')
    return -1;
  *v = strtod (s, &end);
  return *end == '\0' && isfinite (*v) ? 0 : -1;
}

static int
add_warning (pmx_fit_table *t, const char *fmt, ...) PMX_PRINTF (2, 3);

static int
add_warning (pmx_fit_table *t, const char *fmt, ...)
{
  char **w = realloc (t->warnings, (t->nwarnings + 1) * sizeof *w);
  if (!w)
    return pmx_error ("%s: memory exhausted", t->name);
  t->warnings = w;
  va_list ap, aq;
  va_start (ap, fmt);
  va_copy (aq, ap);
  int len = vsnprintf (NULL, 0, fmt, ap);
  char *msg = len >= 0 ? malloc ((size_t) len + 1) : NULL;
  if (msg)
    vsnprintf (msg, (size_t) len + 1, fmt, aq);
  va_end (aq);
  va_end (ap);
  if (!msg)
    return pmx_error ("%s: memory exhausted", t->name);
  w[t->nwarnings++] = msg;
  return 0;
}

/* One parsed data row.  */
typedef struct row
{
  size_t task, line;
  double N, s, acc, thr;        /* acc, thr: NaN when missing */
} row;

static int
parse_rows (const pmx_tsv *tsv, pmx_fit_table *t, row *rows)
{
  const char *name = tsv->name;
  int c_task = pmx_tsv_column (tsv, "task");
  int c_N = pmx_tsv_column (tsv, "N");
  int c_s = pmx_tsv_column (tsv, "s");
  int c_acc = pmx_tsv_column (tsv, "accuracy");
  int c_thr = pmx_tsv_column (tsv, "throughput");
  t->thr_column = "throughput";
  if (c_thr < 0)
    {
      c_thr = pmx_tsv_column (tsv, "speedup");
      t->thr_column = "speedup";
    }
  const char *need[] = { "task", "N", "s", "accuracy" };
  int have[] = { c_task, c_N, c_s, c_acc };
  for (int i = 0; i < 4; i++)
    if (have[i] < 0)
      return pmx_error ("%s:%zu: no '%s' column in the header",
                        name, tsv->header_line, need[i]);
  if (c_thr < 0)
    return pmx_error ("%s:%zu: no 'throughput' or 'speedup' column in the header",
                      name, tsv->header_line);
  if (tsv->nrows == 0)
    return pmx_error ("%s: no data rows", name);

  for (size_t r = 0; r < tsv->nrows; r++)
    {
      char **f = tsv->rows[r];
      size_t line = tsv->line[r];
      row *w = &rows[r];
      w->line = line;
      const char *task = f[c_task];
      if (*task == '\0')
        return pmx_error ("%s:%zu: task: empty task name", name, line);
      int k = pmx_fit_find_task (t, task);
      if (k < 0)
        {
          pmx_fit_task *nt = realloc (t->tasks, (t->ntasks + 1) * sizeof *nt);
          if (!nt)
            return pmx_error ("%s: memory exhausted", name);
          t->tasks = nt;
          memset (&nt[t->ntasks], 0, sizeof *nt);
          nt[t->ntasks].name = strdup (task);
          if (!nt[t->ntasks].name)
            return pmx_error ("%s: memory exhausted", name);
          k = (int) t->ntasks++;
        }
      w->task = (size_t) k;

      const char *cols[] = { "N", "s", "accuracy", t->thr_column };
      const char *cell[] = { f[c_N], f[c_s], f[c_acc], f[c_thr] };
      double v[4];
      for (int i = 0; i < 4; i++)
        {
          if (i >= 2 && is_missing (cell[i]))
            {
              v[i] = NAN;
              continue;
            }
          if (parse_number (cell[i], &v[i]) != 0)
            return pmx_error ("%s:%zu: %s: '%s' is not a number",
                              name, line, cols[i], cell[i]);
        }
      if (v[0] < 1 || v[0] != floor (v[0]) || v[0] > 1e6)
        return pmx_error ("%s:%zu: N: '%s' is not a multiplexing width"
                          " (a whole number >= 1)", name, line, cell[0]);
      if (v[1] < 0 || v[1] >= 1)
        return pmx_error ("%s:%zu: s: '%s' is not a sparsity in [0, 1)",
                          name, line, cell[1]);
      if (v[2] < 0 || v[2] > 100)
        return pmx_error ("%s:%zu: accuracy: '%s' is out of range"
                          " (a fraction 0..1 or a percentage 0..100)",
                          name, line, cell[2]);
      if (v[3] <= 0)
        return pmx_error ("%s:%zu: %s: '%s' must be positive",
                          name, line, t->thr_column, cell[3]);
      w->N = v[0];
      w->s = v[1];
      w->acc = v[2];
      w->thr = v[3];
    }

  /* Fractions or percentages: percentages unless every accuracy is <= 1.
     A table mixing both is refused rather than silently misread.  */
  double amax = -1;
  for (size_t r = 0; r < tsv->nrows; r++)
    if (!isnan (rows[r].acc))
      amax = fmax (amax, rows[r].acc);
  t->acc_percent = amax > 1;
  for (size_t r = 0; r < tsv->nrows; r++)
    {
      if (isnan (rows[r].acc))
        continue;
      if (t->acc_percent && rows[r].acc > 0 && rows[r].acc <= 1)
        return pmx_error ("%s:%zu: accuracy: %g looks like a fraction, but"
                          " other rows give percentages (up to %g)",
                          name, rows[r].line, rows[r].acc, amax);
      if (!t->acc_percent)
        rows[r].acc *= 100;
    }
  return 0;
}

/* Build each task's grid from the parsed rows; average duplicates.  */
static int
build_grids (pmx_fit_table *t, const row *rows, size_t nrows)
{
  double *tmpN = malloc (nrows * sizeof *tmpN);
  double *tmps = malloc (nrows * sizeof *tmps);
  if (!tmpN || !tmps)
    {
      free (tmpN);
      free (tmps);
      return pmx_error ("%s: memory exhausted", t->name);
    }
  int rc = 0;
  for (size_t k = 0; k < t->ntasks && rc == 0; k++)
    {
      pmx_fit_task *tk = &t->tasks[k];
      size_t n = 0;
      for (size_t r = 0; r < nrows; r++)
        if (rows[r].task == k)
          {
            tmpN[n] = rows[r].N;
            tmps[n++] = rows[r].s;
          }
      tk->nN = sort_unique (tmpN, n);
      tk->ns = sort_unique (tmps, n);
      size_t cells = tk->nN * tk->ns;
      tk->Nv = malloc (tk->nN * sizeof *tk->Nv);
      tk->sv = malloc (tk->ns * sizeof *tk->sv);
      tk->acc = malloc (cells * sizeof *tk->acc);
      tk->thr = malloc (cells * sizeof *tk->thr);
      tk->macc = malloc (cells * sizeof *tk->macc);
      tk->mthr = malloc (cells * sizeof *tk->mthr);
      size_t *first = calloc (cells, sizeof *first);
      double *nacc = calloc (cells, sizeof *nacc);
      double *nthr = calloc (cells, sizeof *nthr);
      if (!tk->Nv || !tk->sv || !tk->acc || !tk->thr || !tk->macc || !tk->mthr
          || !first || !nacc || !nthr)
        rc = pmx_error ("%s: memory exhausted", t->name);
      else
        {
          memcpy (tk->Nv, tmpN, tk->nN * sizeof *tmpN);
          memcpy (tk->sv, tmps, tk->ns * sizeof *tmps);
          for (size_t c = 0; c < cells; c++)
            tk->acc[c] = tk->thr[c] = 0;
          for (size_t r = 0; r < nrows && rc == 0; r++)
            {
              const row *w = &rows[r];
              if (w->task != k)
                continue;
              size_t c = (size_t) find_value (tk->Nv, tk->nN, w->N) * tk->ns
                + (size_t) find_value (tk->sv, tk->ns, w->s);
              if (first[c])
                rc = add_warning (t, "%s:%zu: duplicate of line %zu (task %s,"
                                  " N=%g, s=%g): values averaged",
                                  t->name, w->line, first[c], tk->name,
                                  w->N, w->s);
              else
                {
                  first[c] = w->line;
                  tk->npoints++;
                }
              if (!isnan (w->acc))
                {
                  tk->acc[c] += w->acc;
                  nacc[c]++;
                }
              if (!isnan (w->thr))
                {
                  tk->thr[c] += w->thr;
                  nthr[c]++;
                }
            }
          for (size_t c = 0; c < cells; c++)
            {
              tk->acc[c] = nacc[c] ? tk->acc[c] / nacc[c] : NAN;
              tk->thr[c] = nthr[c] ? tk->thr[c] / nthr[c] : NAN;
              tk->macc[c] = tk->acc[c];
              tk->mthr[c] = tk->thr[c];
            }
          long i1 = find_value (tk->Nv, tk->nN, 1.0);
          long j0 = find_value (tk->sv, tk->ns, 0.0);
          tk->base_acc = i1 >= 0 && j0 >= 0
            ? tk->acc[(size_t) i1 * tk->ns + (size_t) j0] : NAN;
        }
      free (first);
      free (nacc);
      free (nthr);
    }
  free (tmpN);
  free (tmps);
  return rc;
}

pmx_fit_table *
pmx_fit_read (FILE *f, const char *name)
{
  pmx_tsv *tsv = pmx_tsv_read (f, name);
  if (!tsv)
    return NULL;
  pmx_fit_table *t = calloc (1, sizeof *t);
  row *rows = calloc (tsv->nrows ? tsv->nrows : 1, sizeof *rows);
  if (!t || !rows || !(t->name = strdup (name)))
    {
      pmx_error ("%s: memory exhausted", name);
      goto fail;
    }
  t->nrows = tsv->nrows;
  if (parse_rows (tsv, t, rows) != 0 || build_grids (t, rows, tsv->nrows) != 0)
    goto fail;
  free (rows);
  pmx_tsv_free (tsv);
  return t;

fail:
  free (rows);
  pmx_tsv_free (tsv);
  pmx_fit_free (t);
  return NULL;
}

void
pmx_fit_free (pmx_fit_table *t)
{
  if (!t)
    return;
  for (size_t k = 0; k < t->ntasks; k++)
    {
      pmx_fit_task *tk = &t->tasks[k];
      free (tk->name);
      free (tk->Nv);
      free (tk->sv);
      free (tk->acc);
      free (tk->thr);
      free (tk->macc);
      free (tk->mthr);
    }
  free (t->tasks);
  for (size_t i = 0; i < t->nwarnings; i++)
    free (t->warnings[i]);
  free (t->warnings);
  free (t->name);
  free (t);
}

int
pmx_fit_find_task (const pmx_fit_table *t, const char *name)
{
  for (size_t k = 0; k < t->ntasks; k++)
    if (strcmp (t->tasks[k].name, name) == 0)
      return (int) k;
  return -1;
}

/* Measured throughputs of TK.  */
static size_t
count_throughputs (const pmx_fit_task *tk)
{
  size_t n = 0;
  for (size_t c = 0; c < tk->nN * tk->ns; c++)
    n += !isnan (tk->thr[c]);
  return n;
}

size_t
pmx_fit_default_reference (const pmx_fit_table *t)
{
  size_t best = 0, most = count_throughputs (&t->tasks[0]);
  for (size_t k = 1; k < t->ntasks; k++)
    {
      size_t n = count_throughputs (&t->tasks[k]);
      if (n > most)
        best = k, most = n;
    }
  return best;
}

void
pmx_fit_hold_out_s (pmx_fit_table *t, const double *s, size_t n)
{
  for (size_t k = 0; k < t->ntasks; k++)
    {
      pmx_fit_task *tk = &t->tasks[k];
      for (size_t j = 0; j < tk->ns; j++)
        {
          int keep = same (tk->sv[j], 0.0);
          for (size_t q = 0; q < n && !keep; q++)
            keep = same (tk->sv[j], s[q]);
          if (keep)
            continue;
          for (size_t i = 0; i < tk->nN; i++)
            tk->macc[i * tk->ns + j] = tk->mthr[i * tk->ns + j] = NAN;
        }
    }
}

/* ---- Interpolation ---------------------------------------------------- */

/* Bracket Q in the ascending values X[0..N-1]: the value at Q is
   (1 - *T) * v[*I0] + *T * v[*I1].  An exact hit gives I0 = I1, T = 0.
   Outside [x0, x(n-1)] fails unless EXTRAPOLATE (then the edge interval,
   with T outside [0, 1]).  */
static int
bracket (const double *x, size_t n, double q, int extrapolate,
         size_t *i0, size_t *i1, double *t)
{
  long e = find_value (x, n, q);
  if (e >= 0)
    {
      *i0 = *i1 = (size_t) e;
      *t = 0;
      return 0;
    }
  size_t k;
  if (q < x[0] || q > x[n - 1])
    {
      if (!extrapolate || n < 2)
        return -1;
      k = q < x[0] ? 0 : n - 2;
    }
  else
    for (k = 0; !(x[k] < q && q < x[k + 1]); k++)
      ;
  *i0 = k;
  *i1 = k + 1;
  *t = (q - x[k]) / (x[k + 1] - x[k]);
  return 0;
}

/* Linear interpolation at Q along one grid line: coordinates X[0..N-1],
   values V[i * STRIDE] (NaN = missing), using the nearest measured points
   on either side of Q.  With EXTRAPOLATE, the two nearest measured points
   on one side continue the line.  */
static int
line_interp (const double *x, const double *v, size_t n, size_t stride,
             double q, int extrapolate, double *out)
{
  long lo = -1, lo2 = -1, hi = -1, hi2 = -1;
  for (size_t i = 0; i < n; i++)
    {
      double y = v[i * stride];
      if (isnan (y))
        continue;
      if (same (x[i], q))
        {
          *out = y;
          return 0;
        }
      if (x[i] < q)
        {
          lo2 = lo;
          lo = (long) i;
        }
      else if (hi < 0)
        hi = (long) i;
      else if (hi2 < 0)
        hi2 = (long) i;
    }
  long a, b;
  if (lo >= 0 && hi >= 0)
    a = lo, b = hi;
  else if (extrapolate && lo2 >= 0)
    a = lo2, b = lo;
  else if (extrapolate && hi2 >= 0)
    a = hi, b = hi2;
  else
    return -1;
  double ya = v[a * (long) stride], yb = v[b * (long) stride];
  double t = (q - x[a]) / (x[b] - x[a]);
  *out = (1 - t) * ya + t * yb;
  return 0;
}

int
pmx_fit_interp (const double *Nv, size_t nN, const double *sv, size_t ns,
                const double *val, double N, double s,
                int extrapolate, int refuse_missing, double *out)
{
  if (nN == 0 || ns == 0)
    return PMX_FIT_MISSING;
  size_t a0, a1, b0, b1;
  double tn, ts;
  if (bracket (Nv, nN, N, extrapolate, &a0, &a1, &tn) != 0
      || bracket (sv, ns, s, extrapolate, &b0, &b1, &ts) != 0)
    return PMX_FIT_OUTSIDE;

  /* The paper's A_ij: the bilinear interpolant of the cell's corners.  */
  double v00 = val[a0 * ns + b0], v01 = val[a0 * ns + b1];
  double v10 = val[a1 * ns + b0], v11 = val[a1 * ns + b1];
  if (!isnan (v00) && !isnan (v01) && !isnan (v10) && !isnan (v11))
    {
      *out = (1 - tn) * ((1 - ts) * v00 + ts * v01)
        + tn * ((1 - ts) * v10 + ts * v11);
      return PMX_FIT_OK;
    }
  if (refuse_missing)
    return PMX_FIT_MISSING;

  /* A corner is missing: along s on the two N lines, then along N; or
     along N on the two s columns, then along s.  Interpolating either way
     is preferred to extrapolating either way.  */
  for (int ex = 0; ex <= extrapolate; ex++)
    {
      double u0, u1;
      if (line_interp (sv, val + a0 * ns, ns, 1, s, ex, &u0) == 0
          && line_interp (sv, val + a1 * ns, ns, 1, s, ex, &u1) == 0)
        {
          *out = (1 - tn) * u0 + tn * u1;
          return PMX_FIT_OK;
        }
      if (line_interp (Nv, val + b0, nN, ns, N, ex, &u0) == 0
          && line_interp (Nv, val + b1, nN, ns, N, ex, &u1) == 0)
        {
          *out = (1 - ts) * u0 + ts * u1;
          return PMX_FIT_OK;
        }
    }
  return PMX_FIT_MISSING;
}

int
pmx_fit_accuracy (const pmx_fit_table *t, size_t task, const pmx_fit_opts *o,
                  double N, double s, double *out)
{
  const pmx_fit_task *tk = &t->tasks[task];
  return pmx_fit_interp (tk->Nv, tk->nN, tk->sv, tk->ns, tk->macc, N, s,
                         o->extrapolate, o->refuse_missing, out);
}

int
pmx_fit_throughput (const pmx_fit_table *t, size_t task, const pmx_fit_opts *o,
                    double N, double s, double *out)
{
  const pmx_fit_task *tk = &t->tasks[o->per_task_throughput ? task : o->reference];
  return pmx_fit_interp (tk->Nv, tk->nN, tk->sv, tk->ns, tk->mthr, N, s,
                         o->extrapolate, o->refuse_missing, out);
}

/* ---- Ranking ------------------------------------------------------------ */

/* Does A rank before B?  Higher throughput, then higher accuracy, then
   smaller N, then smaller s (cheaper models first).  */
static int
better (const pmx_fit_pick *a, const pmx_fit_pick *b)
{
  if (a->thr != b->thr)
    return a->thr > b->thr;
  if (a->acc != b->acc)
    return a->acc > b->acc;
  if (a->N != b->N)
    return a->N < b->N;
  return a->s < b->s;
}

/* Insert P into the sorted TOP[0..*N-1] of capacity K.  */
static void
keep_top (pmx_fit_pick *top, size_t *n, size_t k, const pmx_fit_pick *p)
{
  if (k == 0 || (*n == k && !better (p, &top[k - 1])))
    return;
  size_t i = *n < k ? (*n)++ : k - 1;
  for (; i > 0 && better (p, &top[i - 1]); i--)
    top[i] = top[i - 1];
  top[i] = *p;
}

size_t
pmx_fit_predict_all (const pmx_fit_table *t, size_t task, const pmx_fit_opts *o,
                     const double *Ns, size_t nNs, const double *Ss, size_t nSs,
                     pmx_fit_pick *out)
{
  size_t n = 0;
  for (size_t i = 0; i < nNs; i++)
    for (size_t j = 0; j < nSs; j++)
      {
        pmx_fit_pick p = { Ns[i], Ss[j], 0, 0 };
        if (pmx_fit_accuracy (t, task, o, p.N, p.s, &p.acc) == PMX_FIT_OK
            && pmx_fit_throughput (t, task, o, p.N, p.s, &p.thr) == PMX_FIT_OK)
          out[n++] = p;
      }
  return n;
}

size_t
pmx_fit_top (const pmx_fit_pick *p, size_t n, double threshold,
             pmx_fit_pick *top, size_t k)
{
  size_t m = 0;
  for (size_t i = 0; i < n; i++)
    /* Tolerate rounding in the interpolation: a budget that a measured
       model meets exactly must keep that model.  */
    if (p[i].acc >= threshold - 1e-9)
      keep_top (top, &m, k, &p[i]);
  return m;
}

size_t
pmx_fit_rank (const pmx_fit_table *t, size_t task, const pmx_fit_opts *o,
              const double *Ns, size_t nNs, const double *Ss, size_t nSs,
              double threshold, pmx_fit_pick *top, size_t k,
              size_t *unpredictable)
{
  pmx_fit_pick *all = malloc ((nNs * nSs + 1) * sizeof *all);
  if (!all)
    {
      pmx_error ("memory exhausted");
      return (size_t) -1;
    }
  size_t n = pmx_fit_predict_all (t, task, o, Ns, nNs, Ss, nSs, all);
  if (unpredictable)
    *unpredictable = nNs * nSs - n;
  size_t m = pmx_fit_top (all, n, threshold, top, k);
  free (all);
  return m;
}

int
pmx_fit_default_candidates (const pmx_fit_table *t, size_t task, double step,
                            double **Ns, size_t *nNs, double **Ss, size_t *nSs)
{
  const pmx_fit_task *tk = &t->tasks[task];
  if (!(step > 0))
    return pmx_error ("candidate step must be positive");
  double lo = tk->sv[0], hi = tk->sv[tk->ns - 1];
  size_t steps = (size_t) floor ((hi - lo) / step + 1e-9);
  if (steps > 1000000)
    return pmx_error ("too many candidate s values");
  *Ns = malloc (tk->nN * sizeof **Ns);
  *Ss = malloc ((steps + 2) * sizeof **Ss);
  if (!*Ns || !*Ss)
    {
      free (*Ns);
      free (*Ss);
      *Ns = *Ss = NULL;
      return pmx_error ("memory exhausted");
    }
  memcpy (*Ns, tk->Nv, tk->nN * sizeof **Ns);
  *nNs = tk->nN;
  size_t n = 0;
  for (size_t i = 0; i <= steps; i++)
    /* Round to 1e-9 so printed values look like the steps they are.  */
    (*Ss)[n++] = round ((lo + (double) i * step) * 1e9) / 1e9;
  if (!same ((*Ss)[n - 1], hi))
    (*Ss)[n++] = hi;
  *nSs = n;
  return 0;
}

int
pmx_fit_true_best (const pmx_fit_table *t, size_t task, const pmx_fit_opts *o,
                   double threshold, pmx_fit_pick *best)
{
  const pmx_fit_task *tk = &t->tasks[task];
  size_t n = 0;
  for (size_t i = 0; i < tk->nN; i++)
    for (size_t j = 0; j < tk->ns; j++)
      {
        double a = tk->acc[i * tk->ns + j];
        if (isnan (a) || a < threshold - 1e-9)
          continue;
        pmx_fit_pick p = { tk->Nv[i], tk->sv[j], a, tk->thr[i * tk->ns + j] };
        if (isnan (p.thr)
            && pmx_fit_throughput (t, task, o, p.N, p.s, &p.thr) != PMX_FIT_OK)
          continue;
        keep_top (best, &n, 1, &p);
      }
  return n > 0;
}

/* ---- Leave-one-out ------------------------------------------------------- */

void
pmx_fit_loo_task (pmx_fit_table *t, size_t task, const pmx_fit_opts *o,
                  double acc_tol, double thr_tol, pmx_fit_loo *res)
{
  memset (res, 0, sizeof *res);
  pmx_fit_task *tk = &t->tasks[task];
  pmx_fit_task *ref = &t->tasks[o->per_task_throughput ? task : o->reference];
  for (size_t i = 0; i < tk->nN; i++)
    for (size_t j = 0; j < tk->ns; j++)
      {
        size_t c = i * tk->ns + j;
        double N = tk->Nv[i], s = tk->sv[j], pred;
        if (!isnan (tk->acc[c]))
          {
            double keep = tk->macc[c];
            tk->macc[c] = NAN;
            res->acc_points++;
            if (pmx_fit_accuracy (t, task, o, N, s, &pred) == PMX_FIT_OK)
              {
                res->acc_predicted++;
                res->acc_within += fabs (pred - tk->acc[c]) <= acc_tol + 1e-9;
              }
            tk->macc[c] = keep;
          }
        if (!isnan (tk->thr[c]))
          {
            /* Remove this point from the grid the throughput model reads:
               the task's own, or the reference's when TASK is it.  */
            double *slot = ref == tk ? &tk->mthr[c] : NULL;
            double keep = slot ? *slot : 0;
            if (slot)
              *slot = NAN;
            res->thr_points++;
            if (pmx_fit_throughput (t, task, o, N, s, &pred) == PMX_FIT_OK)
              {
                res->thr_predicted++;
                res->thr_within += fabs (pred - tk->thr[c])
                  <= thr_tol * tk->thr[c] * (1 + 1e-12);
              }
            if (slot)
              *slot = keep;
          }
      }
}

/* ---- Pareto frontier ------------------------------------------------------ */

/* Sort key for the frontier sweep: throughput descending, then accuracy
   descending.  qsort has no context argument, hence the file-scope
   pointers; they are set and used only inside pmx_fit_pareto.  */
static const double *pareto_acc, *pareto_thr;

static int
cmp_pareto (const void *a, const void *b)
{
  size_t i = *(const size_t *) a, j = *(const size_t *) b;
  if (pareto_thr[i] != pareto_thr[j])
    return pareto_thr[i] < pareto_thr[j] ? 1 : -1;
  if (pareto_acc[i] != pareto_acc[j])
    return pareto_acc[i] < pareto_acc[j] ? 1 : -1;
  return (i > j) - (i < j);
}

/* O(n log n): walking down in throughput, a point is on the frontier when
   it is more accurate than every faster point.  */
size_t
pmx_fit_pareto (const double *acc, const double *thr, size_t n, size_t *idx)
{
  size_t m = 0;
  for (size_t i = 0; i < n; i++)
    if (!isnan (acc[i]) && !isnan (thr[i]))
      idx[m++] = i;
  pareto_acc = acc;
  pareto_thr = thr;
  qsort (idx, m, sizeof *idx, cmp_pareto);
  size_t k = 0;
  double best = -INFINITY;
  for (size_t q = 0; q < m; q++)
    if (acc[idx[q]] > best)
      {
        best = acc[idx[q]];
        idx[k++] = idx[q];
      }
  /* Increasing throughput.  */
  for (size_t a = 0, b = k; a + 1 < b; a++, b--)
    {
      size_t tmp = idx[a];
      idx[a] = idx[b - 1];
      idx[b - 1] = tmp;
    }
  return k;
}
