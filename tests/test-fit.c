/* test-fit.c -- unit tests of the Auto-PruMUX model (lib/fit/fit.c).
   Exact cases are compared to 1e-9; every expected number below is worked
   out by hand in the comment next to it.  */

#include <config.h>
#include "fit.h"
#include "error.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

static pmx_fit_table *
read_string (const char *text)
{
  FILE *f = fmemopen ((void *) text, strlen (text), "r");
  if (!f)
    {
      perror ("fmemopen");
      exit (99);
    }
  pmx_fit_table *t = pmx_fit_read (f, "mem.tsv");
  fclose (f);
  return t;
}

/* Interpolate at (N, s); NAN when not predictable.  */
static double
at (const double *Nv, size_t nN, const double *sv, size_t ns,
    const double *val, double N, double s, int extrap, int refuse)
{
  double v;
  int r = pmx_fit_interp (Nv, nN, sv, ns, val, N, s, extrap, refuse, &v);
  return r == PMX_FIT_OK ? v : NAN;
}

static double
bilin (double N, double s)
{
  return 70 - 0.8 * N + 12.5 * s - 1.3 * N * s;
}

/* Data from a bilinear function are reproduced exactly, through the TSV
   reader, at grid points, inside cells, on cell edges, and (with "fill")
   around a missing grid point.  */
static void
test_bilinear_exact (void)
{
  static const double Ns[] = { 1, 2, 5, 10 };
  static const double ss[] = { 0, 0.6, 0.7, 0.8, 0.9, 0.95 };
  char *text = NULL;
  size_t len = 0;
  FILE *f = open_memstream (&text, &len);
  fprintf (f, "task\tN\ts\taccuracy\tthroughput\n");
  /* Rows in reverse order: the reader must sort.  (5, 0.8) is missing.  */
  for (int i = 3; i >= 0; i--)
    for (int j = 5; j >= 0; j--)
      if (!(Ns[i] == 5 && ss[j] == 0.8))
        fprintf (f, "t\t%g\t%g\t%.17g\t%.17g\n", Ns[i], ss[j],
                 bilin (Ns[i], ss[j]), 100 + Ns[i] * (1 + 3 * ss[j]));
  fclose (f);
  pmx_fit_table *t = read_string (text);
  free (text);
  CHECK (t != NULL);
  if (!t)
    return;
  CHECK (t->acc_percent == 1);
  CHECK (strcmp (t->thr_column, "throughput") == 0);
  CHECK (t->ntasks == 1 && t->tasks[0].nN == 4 && t->tasks[0].ns == 6);
  CHECK (t->tasks[0].npoints == 23);
  CHECK_NEAR (t->tasks[0].base_acc, bilin (1, 0), 1e-12);
  pmx_fit_opts o = { 0 };
  static const double qN[] = { 1, 1.5, 2, 3.7, 5, 7.25, 10 };
  static const double qs[] = { 0, 0.3, 0.6, 0.65, 0.8, 0.875, 0.95 };
  for (size_t i = 0; i < 7; i++)
    for (size_t j = 0; j < 7; j++)
      {
        double a, th;
        int r = pmx_fit_accuracy (t, 0, &o, qN[i], qs[j], &a);
        CHECK (r == PMX_FIT_OK);
        if (r == PMX_FIT_OK)
          CHECK_NEAR (a, bilin (qN[i], qs[j]), 1e-9);
        r = pmx_fit_throughput (t, 0, &o, qN[i], qs[j], &th);
        CHECK (r == PMX_FIT_OK);
        if (r == PMX_FIT_OK)
          CHECK_NEAR (th, 100 + qN[i] * (1 + 3 * qs[j]), 1e-9);
      }
  /* Outside the grid: refused, unless extrapolating (then exact too, as
     the function is bilinear everywhere).  */
  double a;
  CHECK (pmx_fit_accuracy (t, 0, &o, 12, 0.5, &a) == PMX_FIT_OUTSIDE);
  CHECK (pmx_fit_accuracy (t, 0, &o, 2, 0.97, &a) == PMX_FIT_OUTSIDE);
  o.extrapolate = 1;
  CHECK (pmx_fit_accuracy (t, 0, &o, 12, 0.97, &a) == PMX_FIT_OK);
  CHECK_NEAR (a, bilin (12, 0.97), 1e-9);
  /* Refusing cells with a missing corner: the four cells around (5, 0.8).  */
  o.extrapolate = 0;
  o.refuse_missing = 1;
  CHECK (pmx_fit_accuracy (t, 0, &o, 4, 0.75, &a) == PMX_FIT_MISSING);
  CHECK (pmx_fit_accuracy (t, 0, &o, 6, 0.85, &a) == PMX_FIT_MISSING);
  CHECK (pmx_fit_accuracy (t, 0, &o, 5, 0.8, &a) == PMX_FIT_MISSING);
  CHECK (pmx_fit_accuracy (t, 0, &o, 4, 0.65, &a) == PMX_FIT_OK);
  CHECK_NEAR (a, bilin (4, 0.65), 1e-9);
  pmx_fit_free (t);
}

/* One cell, corners v(N0,s0)=1, v(N0,s1)=2, v(N1,s0)=4, v(N1,s1)=8 with
   N in {2, 6}, s in {0.5, 0.9}: every corner, every edge midpoint, the
   centre, and outside.  */
static void
test_cell_edges_corners (void)
{
  static const double Nv[] = { 2, 6 }, sv[] = { 0.5, 0.9 };
  static const double v[] = { 1, 2, 4, 8 };
  /* Corners are exact.  */
  CHECK_NEAR (at (Nv, 2, sv, 2, v, 2, 0.5, 0, 0), 1, 1e-12);
  CHECK_NEAR (at (Nv, 2, sv, 2, v, 2, 0.9, 0, 0), 2, 1e-12);
  CHECK_NEAR (at (Nv, 2, sv, 2, v, 6, 0.5, 0, 0), 4, 1e-12);
  CHECK_NEAR (at (Nv, 2, sv, 2, v, 6, 0.9, 0, 0), 8, 1e-12);
  /* Edges are linear: N=2 edge at s=0.6 is 1 + (2-1)*0.25 = 1.25; N=6 edge
     at s=0.8 is 4 + 4*0.75 = 7; s=0.5 edge at N=3 is 1 + 3*0.25 = 1.75;
     s=0.9 edge at N=5 is 2 + 6*0.75 = 6.5.  */
  CHECK_NEAR (at (Nv, 2, sv, 2, v, 2, 0.6, 0, 0), 1.25, 1e-12);
  CHECK_NEAR (at (Nv, 2, sv, 2, v, 6, 0.8, 0, 0), 7, 1e-12);
  CHECK_NEAR (at (Nv, 2, sv, 2, v, 3, 0.5, 0, 0), 1.75, 1e-12);
  CHECK_NEAR (at (Nv, 2, sv, 2, v, 5, 0.9, 0, 0), 6.5, 1e-12);
  /* Centre: mean of the corners, 15/4.  (N=3, s=0.8): tn=.25, ts=.75:
     .75*(.25*1+.75*2) + .25*(.25*4+.75*8) = 1.3125 + 1.75 = 3.0625.  */
  CHECK_NEAR (at (Nv, 2, sv, 2, v, 4, 0.7, 0, 0), 3.75, 1e-12);
  CHECK_NEAR (at (Nv, 2, sv, 2, v, 3, 0.8, 0, 0), 3.0625, 1e-12);
  /* Outside: not predicted; extrapolated linearly from the cell: at
     (10, 0.5) 4 + (4-1) = 7; at (6, 1.0)... s=1.0 is ts=1.25: 4 + 1.25*4 = 9.  */
  CHECK (isnan (at (Nv, 2, sv, 2, v, 10, 0.5, 0, 0)));
  CHECK (isnan (at (Nv, 2, sv, 2, v, 2, 0.4, 0, 0)));
  CHECK (isnan (at (Nv, 2, sv, 2, v, 1, 0.4, 0, 0)));
  CHECK_NEAR (at (Nv, 2, sv, 2, v, 10, 0.5, 1, 0), 7, 1e-12);
  CHECK_NEAR (at (Nv, 2, sv, 2, v, 6, 1.0, 1, 0), 9, 1e-12);

  /* A missing corner v(N1, s1): the N0 edge and the s0 edge stay
     predictable; the corner itself and the interior are not.  */
  double w[] = { 1, 2, 4, NAN };
  CHECK_NEAR (at (Nv, 2, sv, 2, w, 2, 0.7, 0, 0), 1.5, 1e-12);
  CHECK_NEAR (at (Nv, 2, sv, 2, w, 4, 0.5, 0, 0), 2.5, 1e-12);
  CHECK (isnan (at (Nv, 2, sv, 2, w, 6, 0.9, 0, 0)));
  CHECK (isnan (at (Nv, 2, sv, 2, w, 4, 0.7, 0, 0)));
  CHECK (isnan (at (Nv, 2, sv, 2, w, 6, 0.7, 0, 0)));

  /* 3x3 grid with the centre missing: "fill" interpolates along s on the
     N=2 line between its measured ends: (2, 0.5) from (2, 0) = 10 and
     (2, 1)... s grid {0, 0.5, 0.8}: (2,0)=10, (2,0.8)=18 -> at 0.5: 15.
     Off the line, (1.5, 0.5): N=1 line gives 5 (measured), N=2 line 15,
     so 10.  "refuse" gives nothing in the four cells.  */
  static const double N3[] = { 1, 2, 3 }, s3[] = { 0, 0.5, 0.8 };
  double g[] = { 0, 5, 8, 10, NAN, 18, 20, 25, 28 };
  CHECK_NEAR (at (N3, 3, s3, 3, g, 2, 0.5, 0, 0), 15, 1e-12);
  CHECK_NEAR (at (N3, 3, s3, 3, g, 1.5, 0.5, 0, 0), 10, 1e-12);
  CHECK (isnan (at (N3, 3, s3, 3, g, 2, 0.5, 0, 1)));
  CHECK (isnan (at (N3, 3, s3, 3, g, 1.5, 0.25, 0, 1)));
  /* A cell away from the hole is unaffected by "refuse".  */
  CHECK_NEAR (at (N3, 3, s3, 3, g, 1, 0.25, 0, 1), 2.5, 1e-12);
  /* A single point grid: exact there, nothing elsewhere.  */
  static const double one[] = { 7 }, N1[] = { 1 }, s1[] = { 0 };
  CHECK_NEAR (at (N1, 1, s1, 1, one, 1, 0, 0, 0), 7, 0);
  CHECK (isnan (at (N1, 1, s1, 1, one, 2, 0, 1, 0)));
}

/* Leave-one-out on a 3x3 grid (N {1,2,3}, s {0, 0.5, 0.9}) of a bilinear
   accuracy with the centre raised by 2 points: the 4 corners cannot be
   predicted without extrapolation; the 4 edge points are predicted from
   their line's ends (exact, within 1.5); the centre is predicted as the
   unperturbed value, 2 points off.  So 9 points, 5 predicted, 4 within.
   Throughput bilinear too, with (1, 0.5) x1.5: its prediction is 1/1.5 of
   the truth (off by 33% > 20%); the others are exact: 5 predicted, 4
   within.  Task u has task t's throughputs: with t as the reference, all 9
   of u's points are "predicted" by t's measurements and within.  */
static void
test_loo (void)
{
  char *text = NULL;
  size_t len = 0;
  FILE *f = open_memstream (&text, &len);
  fprintf (f, "# comment line\ntask\tN\ts\taccuracy\tthroughput\textra\n");
  for (int task = 0; task < 2; task++)
    for (int i = 1; i <= 3; i++)
      for (int j = 0; j < 3; j++)
        {
          double s = j == 0 ? 0 : j == 1 ? 0.5 : 0.9;
          double acc = bilin (i, s) + (i == 2 && j == 1 ? 2 : 0);
          double thr = 10 * i * (1 + s) * (i == 1 && j == 1 ? 1.5 : 1);
          fprintf (f, "%s\t%d\t%g\t%.17g\t%.17g\tignored\n",
                   task ? "u" : "t", i, s, acc, thr);
        }
  fclose (f);
  pmx_fit_table *t = read_string (text);
  free (text);
  CHECK (t != NULL);
  if (!t)
    return;
  pmx_fit_opts o = { 0 };
  o.per_task_throughput = 1;
  pmx_fit_loo r;
  pmx_fit_loo_task (t, 0, &o, 1.5, 0.2, &r);
  CHECK (r.acc_points == 9 && r.acc_predicted == 5 && r.acc_within == 4);
  CHECK (r.thr_points == 9 && r.thr_predicted == 5 && r.thr_within == 4);
  /* A tolerance of 2 points takes the centre in.  */
  pmx_fit_loo_task (t, 0, &o, 2.0, 0.2, &r);
  CHECK (r.acc_within == 5);
  /* Extrapolating predicts the corners too (exact for a bilinear
     function, so within; 9 predicted, 8 within).  */
  o.extrapolate = 1;
  pmx_fit_loo_task (t, 0, &o, 1.5, 0.2, &r);
  CHECK (r.acc_predicted == 9 && r.acc_within == 8);
  o.extrapolate = 0;
  /* Reference throughput: u's throughputs come from t's grid.  */
  o.per_task_throughput = 0;
  o.reference = 0;
  pmx_fit_loo_task (t, 1, &o, 1.5, 0.2, &r);
  CHECK (r.thr_points == 9 && r.thr_predicted == 9 && r.thr_within == 9);
  /* The model is restored after LOO.  */
  double a;
  CHECK (pmx_fit_accuracy (t, 0, &o, 2, 0.5, &a) == PMX_FIT_OK);
  CHECK_NEAR (a, bilin (2, 0.5) + 2, 1e-9);
  /* Holding out s=0.5: its measured values become predictions.  */
  static const double keep[] = { 0.9 };
  pmx_fit_hold_out_s (t, keep, 1);
  CHECK (pmx_fit_accuracy (t, 0, &o, 2, 0.5, &a) == PMX_FIT_OK);
  CHECK_NEAR (a, bilin (2, 0.5), 1e-9);
  CHECK_NEAR (t->tasks[0].acc[1 * 3 + 1], bilin (2, 0.5) + 2, 1e-9);
  pmx_fit_free (t);
}

/* Top-k on a hand-worked example.  Grid N {1,2}, s {0, 0.5}:
     acc (1,0)=90 (1,.5)=88 (2,0)=87 (2,.5)=84; thr 1, 2, 1.8, 3.5.
   Candidates N {1,2} x s {0, .25, .5} predict
     (1,0) 90/1  (1,.25) 89/1.5  (1,.5) 88/2
     (2,0) 87/1.8  (2,.25) 85.5/2.65  (2,.5) 84/3.5.
   Budget 3 (threshold 87): (1,.5) 2, (2,0) 1.8, (1,.25) 1.5.
   Threshold 85.5: (2,.25) 2.65, (1,.5) 2, (2,0) 1.8.
   Threshold 91: nothing.  Truly best measured at 87: (1,.5).  */
static void
test_topk (void)
{
  pmx_fit_table *t = read_string (
    "task\ts\tN\taccuracy\tthroughput\n"
    "x\t0.5\t2\t0.84\t3.5\n"
    "x\t0\t1\t0.90\t1\n"
    "x\t0.5\t1\t0.88\t2\n"
    "x\t0\t2\t0.87\t1.8\n");
  CHECK (t != NULL);
  if (!t)
    return;
  CHECK (t->acc_percent == 0);
  CHECK_NEAR (t->tasks[0].base_acc, 90, 1e-9);
  pmx_fit_opts o = { 0 };
  static const double Ns[] = { 1, 2 }, Ss[] = { 0, 0.25, 0.5 };
  pmx_fit_pick top[3];
  size_t n = pmx_fit_rank (t, 0, &o, Ns, 2, Ss, 3, t->tasks[0].base_acc - 3,
                           top, 3, NULL);
  CHECK (n == 3);
  if (n == 3)
    {
      CHECK (top[0].N == 1 && top[0].s == 0.5);
      CHECK_NEAR (top[0].acc, 88, 1e-9);
      CHECK_NEAR (top[0].thr, 2, 1e-9);
      CHECK (top[1].N == 2 && top[1].s == 0);
      CHECK_NEAR (top[1].thr, 1.8, 1e-9);
      CHECK (top[2].N == 1 && top[2].s == 0.25);
      CHECK_NEAR (top[2].acc, 89, 1e-9);
      CHECK_NEAR (top[2].thr, 1.5, 1e-9);
    }
  size_t bad = 99;
  n = pmx_fit_rank (t, 0, &o, Ns, 2, Ss, 3, 85.5, top, 3, &bad);
  CHECK (n == 3 && bad == 0);
  if (n == 3)
    {
      CHECK (top[0].N == 2 && top[0].s == 0.25);
      CHECK_NEAR (top[0].acc, 85.5, 1e-9);
      CHECK_NEAR (top[0].thr, 2.65, 1e-9);
      CHECK (top[1].N == 1 && top[1].s == 0.5);
      CHECK (top[2].N == 2 && top[2].s == 0);
    }
  CHECK (pmx_fit_rank (t, 0, &o, Ns, 2, Ss, 3, 91, top, 3, NULL) == 0);
  /* k = 1, and a candidate outside the grid is counted, not ranked.  */
  static const double Nx[] = { 1, 2, 5 };
  n = pmx_fit_rank (t, 0, &o, Nx, 3, Ss, 3, 80, top, 1, &bad);
  CHECK (n == 1 && bad == 3);
  CHECK (top[0].N == 2 && top[0].s == 0.5);
  pmx_fit_pick best;
  CHECK (pmx_fit_true_best (t, 0, &o, 87, &best) == 1);
  CHECK (best.N == 1 && best.s == 0.5);
  CHECK (pmx_fit_true_best (t, 0, &o, 90.5, &best) == 0);
  /* Default candidates: N {1, 2}; s 0, 0.05, ..., 0.5 (11 values).  */
  double *dN, *ds;
  size_t nN, ns;
  CHECK (pmx_fit_default_candidates (t, 0, 0.05, &dN, &nN, &ds, &ns) == 0);
  CHECK (nN == 2 && ns == 11);
  CHECK_NEAR (ds[10], 0.5, 1e-12);
  CHECK_NEAR (ds[3], 0.15, 1e-12);
  free (dN);
  free (ds);
  pmx_fit_free (t);
}

/* Duplicates are averaged with a warning; missing cells; Pareto.  */
static void
test_read_misc (void)
{
  pmx_fit_table *t = read_string (
    "task\tN\ts\taccuracy\tspeedup\n"
    "a\t1\t0\t80\t1\n"
    "a\t1\t0\t82\tNA\n"
    "a\t2\t0\t\t1.9\r\n"
    "\n"
    "b\t1\t0.5\t70\t2\n");
  CHECK (t != NULL);
  if (!t)
    return;
  CHECK (strcmp (t->thr_column, "speedup") == 0);
  CHECK (t->nwarnings == 1);
  if (t->nwarnings == 1)
    CHECK (strstr (t->warnings[0], "mem.tsv:3: duplicate of line 2") != NULL);
  CHECK (t->ntasks == 2 && t->tasks[0].npoints == 2);
  CHECK_NEAR (t->tasks[0].acc[0], 81, 1e-12);
  CHECK_NEAR (t->tasks[0].thr[0], 1, 1e-12);
  CHECK (isnan (t->tasks[0].acc[1]));
  CHECK (isnan (t->tasks[1].base_acc));
  CHECK (pmx_fit_default_reference (t) == 0);
  CHECK (pmx_fit_find_task (t, "b") == 1 && pmx_fit_find_task (t, "c") == -1);
  pmx_fit_free (t);

  /* Errors name the line.  */
  CHECK (read_string ("task\tN\ts\taccuracy\tspeedup\nA\t1\t0\tabc\t1\n") == NULL);
  CHECK (strcmp (pmx_errmsg (), "mem.tsv:2: accuracy: 'abc' is not a number") == 0);
  CHECK (read_string ("task\tN\ts\taccuracy\nA\t1\t0\t80\n") == NULL);
  CHECK (strstr (pmx_errmsg (), "no 'throughput' or 'speedup' column") != NULL);

  /* Pareto: (acc, thr) = (90,1) (88,2) (89,1.5) (85,1.8) (80,3) (88,1.9):
     (85,1.8) and (88,1.9) are dominated by (88,2).  */
  static const double acc[] = { 90, 88, 89, 85, 80, 88, NAN };
  static const double thr[] = { 1, 2, 1.5, 1.8, 3, 1.9, 9 };
  size_t idx[7];
  size_t m = pmx_fit_pareto (acc, thr, 7, idx);
  CHECK (m == 4);
  if (m == 4)
    CHECK (idx[0] == 0 && idx[1] == 2 && idx[2] == 1 && idx[3] == 4);
}

int
main (void)
{
  test_bilinear_exact ();
  test_cell_edges_corners ();
  test_loo ();
  test_topk ();
  test_read_misc ();
  if (failures)
    fprintf (stderr, "test-fit: %d check(s) failed\n", failures);
  else
    printf ("test-fit: all checks passed\n");
  return failures ? 1 : 0;
}
