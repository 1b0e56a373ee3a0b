/* fit.h -- Auto-PruMUX: predict accuracy and throughput of a PruMUX model
   with multiplexing width N and sparsity s from measured models, and choose
   (N, s) for an accuracy budget (PruMUX paper, section "Auto-PruMUX").

   Input: a TSV table, one row per trained model, with the columns `task`,
   `N` (1 = no multiplexing), `s` (0 = unpruned), `accuracy` and `throughput`
   (or `speedup`; `throughput` wins when both exist).  Other columns are
   ignored.  N = 1 rows are CoFi-only models, s = 0 rows DataMUX-only, and
   (1, 0) is the base model.  An empty accuracy/throughput cell, "NA" or "-"
   means "not measured".  Rows may come in any order; rows with the same
   (task, N, s) are averaged and a warning is recorded.

   Accuracy is stored in percentage points whatever the input used: a table
   whose accuracies are all <= 1 is read as fractions (x100), otherwise as
   percentages.  Budgets and tolerances are in percentage points.

   Model (per task): the distinct measured N and s values form a grid;
   inside a grid cell whose four corners are measured the prediction is the
   bilinear interpolant of the corners (the paper's A_ij(N, s)), which is
   linear along the cell's edges and exact at measured points.  A cell with
   a missing corner is "filled" (default): interpolate linearly along s on
   each of the two bracketing N lines between the nearest measured points
   of that line, then linearly in N; if a line lacks points on one side, the
   same along N on the two bracketing s columns, then in s; if neither works
   the point is not predictable.  (With `extrapolate`, a line may also be
   continued past its last measured point, but only when neither order
   works by interpolation.)  With `refuse_missing` such cells are not
   predictable.  Outside the measured range nothing is predicted unless
   `extrapolate` (then the edge cell's bilinear form, or the edge segment of
   a line, is continued linearly).

   Throughput model: by default the throughput grid of one reference task
   is used for every task (the paper's f_T = Throughput_task0); with
   `per_task_throughput` each task uses its own.  It is interpolated the same
   way as accuracy.

   Errors: functions returning a pointer return NULL, and those returning
   int return -1, after pmx_error.  Prediction functions return one of the
   pmx_fit_status codes below and never set an error.  */

#ifndef PRUMUX_FIT_H
#define PRUMUX_FIT_H

#include <stddef.h>
#include <stdio.h>

typedef struct pmx_fit_task
{
  char *name;
  size_t npoints;               /* distinct measured (N, s) after merging */
  size_t nN, ns;
  double *Nv;                   /* (nN) ascending distinct N values */
  double *sv;                   /* (ns) ascending distinct s values */
  /* Measured values (truth), NaN where not measured.  */
  double *acc;                  /* (nN, ns) accuracy, percentage points */
  double *thr;                  /* (nN, ns) throughput or speedup */
  /* The values the model is fitted on: the measured ones, less any held
     out (pmx_fit_hold_out_s; pmx_fit_loo removes one at a time).  */
  double *macc;                 /* (nN, ns) */
  double *mthr;                 /* (nN, ns) */
  double base_acc;              /* measured accuracy at (1, 0), or NaN */
} pmx_fit_task;

typedef struct pmx_fit_table
{
  char *name;                   /* input name, for messages */
  int acc_percent;              /* 1: the input gave percentages; 0: fractions */
  const char *thr_column;       /* "throughput" or "speedup" (static) */
  size_t nrows;                 /* data rows read (before merging) */
  size_t ntasks;
  pmx_fit_task *tasks;          /* in order of first appearance */
  size_t nwarnings;
  char **warnings;              /* complete messages, e.g. duplicate rows */
} pmx_fit_table;

/* Read and check a measurement table.  Errors name the line, e.g.
   "grid.tsv:7: accuracy: 'abc' is not a number".  */
pmx_fit_table *pmx_fit_read (FILE *f, const char *name);
void pmx_fit_free (pmx_fit_table *t);

/* Index of task NAME or -1 (no error set).  */
int pmx_fit_find_task (const pmx_fit_table *t, const char *name);
/* The task with the most measured throughputs (the first such in the
   input).  */
size_t pmx_fit_default_reference (const pmx_fit_table *t);

/* Leave out of the model every point whose s is not in S[0..N-1] (s = 0,
   the base and DataMUX-only models, is always kept).  The measured values
   stay as truth for evaluation.  */
void pmx_fit_hold_out_s (pmx_fit_table *t, const double *s, size_t n);

enum pmx_fit_status
{
  PMX_FIT_OK = 0,
  PMX_FIT_OUTSIDE = 1,          /* outside the measured range (no --extrapolate) */
  PMX_FIT_MISSING = 2           /* not enough measured neighbours */
};

typedef struct pmx_fit_opts
{
  int extrapolate;
  int refuse_missing;
  int per_task_throughput;
  size_t reference;             /* throughput reference task index */
} pmx_fit_opts;

/* Interpolate the grid VAL (nN, ns; NaN = missing) at (N, s) as described
   above.  Returns a pmx_fit_status; *OUT is set only on PMX_FIT_OK.  */
int pmx_fit_interp (const double *Nv, size_t nN, const double *sv, size_t ns,
                    const double *val, double N, double s,
                    int extrapolate, int refuse_missing, double *out);

int pmx_fit_accuracy (const pmx_fit_table *t, size_t task,
                      const pmx_fit_opts *o, double N, double s, double *out);
int pmx_fit_throughput (const pmx_fit_table *t, size_t task,
                        const pmx_fit_opts *o, double N, double s, double *out);

/* One (N, s) with its predicted (or measured) accuracy and throughput.  */
typedef struct pmx_fit_pick
{
  double N, s, acc, thr;
} pmx_fit_pick;

/* Rank the candidates Ns x Ss of TASK: among those whose predicted
   accuracy is >= THRESHOLD (percentage points), the K with the highest
   predicted throughput (ties: higher accuracy, then smaller N, smaller s)
   go to TOP, best first.  Returns how many were written (<= K).
   *UNPREDICTABLE (if not NULL) counts candidates the model cannot predict.
   Returns (size_t) -1 on memory exhaustion, after pmx_error.  */
size_t pmx_fit_rank (const pmx_fit_table *t, size_t task, const pmx_fit_opts *o,
                     const double *Ns, size_t nNs, const double *Ss, size_t nSs,
                     double threshold, pmx_fit_pick *top, size_t k,
                     size_t *unpredictable);

/* The two halves of pmx_fit_rank, for ranking the same candidates under
   many thresholds: predict every candidate of Ns x Ss into OUT (room for
   nNs * nSs), returning how many were predictable; then the best K of
   P[0..N-1] reaching THRESHOLD into TOP, returning how many.  */
size_t pmx_fit_predict_all (const pmx_fit_table *t, size_t task,
                            const pmx_fit_opts *o, const double *Ns, size_t nNs,
                            const double *Ss, size_t nSs, pmx_fit_pick *out);
size_t pmx_fit_top (const pmx_fit_pick *p, size_t n, double threshold,
                    pmx_fit_pick *top, size_t k);

/* The default candidates of TASK: its measured N values, and s from its
   smallest to its largest measured s in steps of STEP (the largest always
   included).  The arrays are malloc'd; caller frees.  -1 on error.  */
int pmx_fit_default_candidates (const pmx_fit_table *t, size_t task, double step,
                                double **Ns, size_t *nNs, double **Ss, size_t *nSs);

/* The measured (N, s) of TASK with the highest measured throughput among
   those whose measured accuracy is >= THRESHOLD.  The task's own throughput
   is used; where it was not measured, the throughput model's value.
   Returns 1 and fills *BEST, or 0 if no measured point qualifies.  */
int pmx_fit_true_best (const pmx_fit_table *t, size_t task,
                       const pmx_fit_opts *o, double threshold,
                       pmx_fit_pick *best);

/* Leave-one-out evaluation of TASK.  Every measured accuracy is predicted
   from the model without it (points held out by pmx_fit_hold_out_s are
   simply predicted) and counted within when |pred - true| <= ACC_TOL
   points.  Every measured throughput of TASK is predicted by the
   throughput model with that point removed from the grid the model uses
   (the reference task's grid only when TASK is the reference), and counted
   within when |pred - true| <= THR_TOL * true.  T is restored before
   returning.  */
typedef struct pmx_fit_loo
{
  size_t acc_points, acc_predicted, acc_within;
  size_t thr_points, thr_predicted, thr_within;
} pmx_fit_loo;
void pmx_fit_loo_task (pmx_fit_table *t, size_t task, const pmx_fit_opts *o,
                       double acc_tol, double thr_tol, pmx_fit_loo *res);

/* Indices of the Pareto-optimal points among N (ACC[i], THR[i]): no other
   point has accuracy and throughput both >= and one >.  Written to IDX
   (room for N) in increasing throughput; returns how many.  NaN points are
   skipped.  */
size_t pmx_fit_pareto (const double *acc, const double *thr, size_t n, size_t *idx);

#endif
