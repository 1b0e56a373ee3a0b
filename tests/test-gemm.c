/* test-gemm.c -- the packed-weight GEMM (lib/cpu/gemm.h) against a
   double-precision reference, for every kernel this CPU runs:

   - shapes around every edge: rows around the micro-panel heights (6, 14),
     columns around the panel width (16), depths around the block depth
     (768, 1536: two and three blocks), down to 1 x 1 x 1;
   - C = A W^T and C += A W^T; a column range [N0, N1) of C;
   - A's micro-panels read in place and packed (rows 4 KiB apart);
   - nothing outside the M x [N0, N1) block of C is written (canaries);
   - error bound: |C - ref| <= 2 K u sum_k |A_ik W_jk| + 1e-30 with u the
     float unit roundoff, the bound of recursive summation (in practice the
     error is far smaller);
   - a row's result does not depend on how many rows are computed with it
     (bit for bit), which makes the encoder's output independent of the
     thread count;
   - pmx_gemm_packed_rows on a packed W gives pmx_sgemm_rows's bits on W;
   - pmx_sgemm_pre with op(A) and/or op(B) packed once (pmx_sgemm_pack, in
     two panel ranges) gives pmx_sgemm_kind's bits, and so does
     pmx_sgemm_par, whose blocks share a packed operand, against the
     same blocks with nothing shared;
   - a bias added as the kernels store (pmx_sgemm_pre_bias,
     pmx_sgemm_par_bias) gives the bits of C filled with it, then added to;
   - asking for a kernel the CPU lacks fails with a message.

   Exit 77 (skipped) on CPUs with neither kernel, where the encoder uses
   OpenBLAS for everything.  */

#include <config.h>
#include "gemm.h"
#include "error.h"
#include "par.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

static unsigned long long rng = 0x9e3779b97f4a7c15ull;

static float
frand (void)                    /* uniform in [-1, 1) */
{
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (float) ((rng >> 40) * (1.0 / (1 << 23)) - 1.0);
}

static const float CANARY = 12345.0f;

/* One case: M x N x K with kind KIND, columns N0..N1, accumulating or not.  */
static void
check_case (pmx_gemm_kind kind, int M, int N, int K, int N0, int N1, int acc)
{
  int lda = K + 3, ldc = N + 5;       /* strides wider than the rows */
  float *A = malloc (sizeof (float) * (size_t) M * lda);
  float *W = malloc (sizeof (float) * (size_t) N * K);
  float *C = malloc (sizeof (float) * (size_t) (M + 1) * ldc);
  float *C0 = malloc (sizeof (float) * (size_t) (M + 1) * ldc);
  float *row = malloc (sizeof (float) * (size_t) ldc);
  float *scratch = NULL;
  if (!A || !W || !C || !C0 || !row
      || posix_memalign ((void **) &scratch, 64,
                         pmx_gemm_scratch (kind, M) * sizeof (float)) != 0)
    {
      fprintf (stderr, "out of memory\n");
      exit (99);
    }
  for (size_t i = 0; i < (size_t) M * lda; i++)
    A[i] = frand ();
  for (size_t i = 0; i < (size_t) N * K; i++)
    W[i] = frand ();
  for (size_t i = 0; i < (size_t) (M + 1) * ldc; i++)
    C0[i] = (i / ldc < (size_t) M && (int) (i % ldc) >= N0 && (int) (i % ldc) < N1)
      ? frand () : CANARY;
  memcpy (C, C0, sizeof (float) * (size_t) (M + 1) * ldc);

  pmx_packed p;
  CHECK (pmx_packed_init (&p, W, N, K, kind) == 0, "pack %s %dx%d: %s",
         pmx_gemm_kind_name (kind), N, K, pmx_errmsg ());
  pmx_gemm_packed (&p, A, lda, C, ldc, M, N0, N1, acc, scratch);

  double worst = 0;
  for (int i = 0; i <= M; i++)
    for (int j = 0; j < ldc; j++)
      {
        size_t at = (size_t) i * ldc + j;
        if (i == M || j < N0 || j >= N1)
          {
            if (C[at] != CANARY)
              {
                CHECK (0, "%s %dx%dx%d: wrote outside the block at (%d, %d)",
                       pmx_gemm_kind_name (kind), M, N, K, i, j);
                goto done;
              }
            continue;
          }
        double ref = acc ? C0[at] : 0.0, mag = acc ? fabs (C0[at]) : 0.0;
        for (int k = 0; k < K; k++)
          {
            double t = (double) A[(size_t) i * lda + k] * W[(size_t) j * K + k];
            ref += t;
            mag += fabs (t);
          }
        double err = fabs (C[at] - ref), bound = 2.0 * (K + 1) * FLT_EPSILON / 2 * mag + 1e-30;
        if (err / bound > worst)
          worst = err / bound;
      }
  CHECK (worst <= 1.0, "%s %dx%dx%d cols %d..%d acc %d: error %.3g of the bound",
         pmx_gemm_kind_name (kind), M, N, K, N0, N1, acc, worst);

  /* Each row alone gives the same bits as with the others.  */
  for (int i = 0; i < M; i += M > 20 ? 7 : 1)
    {
      memcpy (row, C0 + (size_t) i * ldc, sizeof (float) * (size_t) ldc);
      pmx_gemm_packed (&p, A + (size_t) i * lda, lda, row, ldc, 1, N0, N1, acc, scratch);
      CHECK (memcmp (row + N0, C + (size_t) i * ldc + N0,
                     sizeof (float) * (size_t) (N1 - N0)) == 0,
             "%s %dx%dx%d: row %d alone differs", pmx_gemm_kind_name (kind), M, N, K, i);
    }
done:
  pmx_packed_release (&p);
  free (A);
  free (W);
  free (C);
  free (C0);
  free (row);
  free (scratch);
}

static float *
aligned_floats (size_t n)
{
  void *p = NULL;
  if (posix_memalign (&p, 64, (n ? n : 1) * sizeof (float)) != 0)
    exit (99);
  return p;
}

/* C (from C0) by pmx_sgemm_pre with op(A), op(B) or both packed by
   pmx_sgemm_pack, each in two panel ranges: the bits of WANT.  */
static void
check_prepacked (pmx_gemm_kind kind, int ta, int tb, int M, int N, int K, float alpha,
                 float beta, const float *A, int lda, const float *B, int ldb,
                 const float *C0, const float *want, int ldc)
{
  if (M <= 0 || N <= 0)
    return;
  int qa = pmx_sgemm_panels (kind, 'A', M), qb = pmx_sgemm_panels (kind, 'B', N);
  float *pa = aligned_floats (pmx_sgemm_packed_size (kind, 'A', M, K));
  float *pb = aligned_floats (pmx_sgemm_packed_size (kind, 'B', N, K));
  float *C = malloc (sizeof (float) * (size_t) (M + 1) * ldc);
  if (!C)
    exit (99);
  pmx_sgemm_pack (kind, 'A', ta, M, K, alpha, A, lda, qa / 2, qa, pa);
  pmx_sgemm_pack (kind, 'A', ta, M, K, alpha, A, lda, 0, qa / 2, pa);
  pmx_sgemm_pack (kind, 'B', tb, N, K, 1.0f, B, ldb, 0, qb / 2, pb);
  pmx_sgemm_pack (kind, 'B', tb, N, K, 1.0f, B, ldb, qb / 2, qb, pb);
  for (int v = 1; v <= 3; v++)
    {
      memcpy (C, C0, sizeof (float) * (size_t) (M + 1) * ldc);
      pmx_sgemm_pre (kind, ta, tb, M, N, K, alpha, A, lda, v & 1 ? pa : NULL, B, ldb,
                     v & 2 ? pb : NULL, beta, C, ldc, NULL);
      CHECK (memcmp (C, want, sizeof (float) * (size_t) (M + 1) * ldc) == 0,
             "sgemm %s trans %d%d %dx%dx%d: packed once (%s) differs",
             pmx_gemm_kind_name (kind), ta, tb, M, N, K,
             v == 1 ? "A" : v == 2 ? "B" : "A and B");
    }
  free (pa);
  free (pb);
  free (C);
}

/* pmx_sgemm_par on 2 threads, whose blocks share op(B) (blocks of rows) or
   op(A) (of columns, where A is packed), against the same blocks on no
   pool, nothing shared: the same bits; and against a double-precision
   product within the bound of check_case, which a block missed or run
   twice would break (both runs share the cutting).  */
static void
check_par (pmx_par *par, int ta, int tb, int M, int N, int K, float alpha)
{
  int ar = ta ? K : M, ac = ta ? M : K, br = tb ? N : K, bc = tb ? K : N;
  float *A = malloc (sizeof (float) * (size_t) ar * ac);
  float *B = malloc (sizeof (float) * (size_t) br * bc);
  float *C = malloc (sizeof (float) * (size_t) M * N);
  float *R = malloc (sizeof (float) * (size_t) M * N);
  if (!A || !B || !C || !R)
    exit (99);
  for (size_t i = 0; i < (size_t) ar * ac; i++)
    A[i] = frand ();
  for (size_t i = 0; i < (size_t) br * bc; i++)
    B[i] = frand ();
  for (size_t i = 0; i < (size_t) M * N; i++)
    C[i] = R[i] = frand ();
  pmx_sgemm_par (par, ta, tb, M, N, K, alpha, A, ac, B, bc, 1.0f, C, N);
  int bad = 0;
  for (int i = 0; i < M && !bad; i++)
    for (int j = 0; j < N && !bad; j++)
      {
        double sum = R[(size_t) i * N + j], mag = fabs (sum);
        for (int k = 0; k < K; k++)
          {
            double p = (double) alpha * (ta ? A[(size_t) k * ac + i] : A[(size_t) i * ac + k])
              * (tb ? B[(size_t) j * bc + k] : B[(size_t) k * bc + j]);
            sum += p;
            mag += fabs (p);
          }
        double err = fabs (C[(size_t) i * N + j] - sum);
        if (err > 2.0 * (K + 1) * (FLT_EPSILON / 2) * mag + 1e-30)
          {
            CHECK (0, "pmx_sgemm_par trans %d%d %dx%dx%d: C[%d][%d] = %g, not %g",
                   ta, tb, M, N, K, i, j, C[(size_t) i * N + j], sum);
            bad = 1;
          }
      }
  pmx_sgemm_par (NULL, ta, tb, M, N, K, alpha, A, ac, B, bc, 1.0f, R, N);
  CHECK (memcmp (C, R, sizeof (float) * (size_t) M * N) == 0,
         "pmx_sgemm_par trans %d%d %dx%dx%d: shared packing differs", ta, tb, M, N, K);
  free (A);
  free (B);
  free (C);
  free (R);
}

/* pmx_sgemm_pre_bias (BETA 0) against filling C with the bias and
   pmx_sgemm_kind with BETA 1: the same bits, C's canaries untouched; with
   BETA 1 the bias is ignored.  Then pmx_sgemm_par_bias on 2 threads
   (blocks of rows or of columns, as the shape says) against the fill and
   pmx_sgemm_par with no pool.  */
static void
check_bias (pmx_par *par, pmx_gemm_kind kind, int ta, int tb, int M, int N, int K)
{
  int ar = ta ? K : M, ac = ta ? M : K, br = tb ? N : K, bc = tb ? K : N;
  int ldc = N + 3;
  size_t nc = (size_t) (M + 1) * ldc;
  float *A = malloc (sizeof (float) * ((size_t) ar * ac + 1));
  float *B = malloc (sizeof (float) * ((size_t) br * bc + 1));
  float *bias = malloc (sizeof (float) * ((size_t) N + 1));
  float *C = malloc (sizeof (float) * nc), *R = malloc (sizeof (float) * nc);
  if (!A || !B || !bias || !C || !R)
    exit (99);
  for (size_t i = 0; i < (size_t) ar * ac; i++)
    A[i] = frand ();
  for (size_t i = 0; i < (size_t) br * bc; i++)
    B[i] = frand ();
  for (int j = 0; j < N; j++)
    bias[j] = 4 * frand ();
  const char *kn = pmx_gemm_kind_name (kind);
  for (int beta = 0; beta <= 1; beta++)
    {
      for (size_t i = 0; i < nc; i++)
        C[i] = R[i] = (i / ldc < (size_t) M && (int) (i % ldc) < N) ? frand () : CANARY;
      for (int i = 0; i < M && !beta; i++)
        memcpy (R + (size_t) i * ldc, bias, sizeof (float) * (size_t) N);
      pmx_sgemm_pre_bias (kind, ta, tb, M, N, K, 1.0f, A, ac, NULL, B, bc, NULL,
                          (float) beta, C, ldc, NULL, bias);
      CHECK (pmx_sgemm_kind (kind, ta, tb, M, N, K, 1.0f, A, ac, B, bc, 1.0f, R, ldc,
                             NULL) == 0, "sgemm %s: %s", kn, pmx_errmsg ());
      CHECK (memcmp (C, R, sizeof (float) * nc) == 0,
             "pmx_sgemm_pre_bias %s trans %d%d %dx%dx%d beta %d: not the bits of a "
             "C filled with the bias", kn, ta, tb, M, N, K, beta);
    }
  if (par)
    {
      for (size_t i = 0; i < nc; i++)
        C[i] = R[i] = frand ();
      for (int i = 0; i < M; i++)
        memcpy (R + (size_t) i * N, bias, sizeof (float) * (size_t) N);
      pmx_sgemm_par_bias (par, ta, tb, M, N, K, 1.0f, A, ac, B, bc, C, N, bias);
      pmx_sgemm_par (NULL, ta, tb, M, N, K, 1.0f, A, ac, B, bc, 1.0f, R, N);
      CHECK (memcmp (C, R, sizeof (float) * (size_t) M * N) == 0,
             "pmx_sgemm_par_bias trans %d%d %dx%dx%d: not the bits of a C filled "
             "with the bias", ta, tb, M, N, K);
    }
  free (A);
  free (B);
  free (bias);
  free (C);
  free (R);
}

static int
bias_cases (pmx_par *par, pmx_gemm_kind kind)
{
  /* Whole and partial tiles, rows a few at a time (the row kernels), one
     and two depth blocks, no depth; blocks of rows and of columns.  */
  static const int shapes[][3] = {
    { 1, 1, 1 }, { 3, 17, 40 }, { 12, 32, 64 }, { 13, 33, 5 }, { 25, 100, 769 },
    { 7, 20, 0 }, { 600, 200, 64 }, { 40, 1100, 300 },
  };
  int n = 0;
  for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
    for (int t = 0; t < 4; t++, n++)
      check_bias (par, kind, t & 1, t >> 1, shapes[s][0], shapes[s][1], shapes[s][2]);
  return n;
}

/* pmx_sgemm: C = ALPHA op(A) op(B) + BETA C for one transposition case,
   strides wider than the rows, canaries around C, the same error bound, and
   row independence (bit for bit).  */
static void
check_sgemm (pmx_gemm_kind kind, int ta, int tb, int M, int N, int K,
             float alpha, float beta, pmx_sgemm_ws *ws)
{
  int ar = ta ? K : M, ac = ta ? M : K, br = tb ? N : K, bc = tb ? K : N;
  int lda = ac + 3, ldb = bc + 2, ldc = N + 5;
  float *A = malloc (sizeof (float) * ((size_t) ar * lda + 1));
  float *B = malloc (sizeof (float) * ((size_t) br * ldb + 1));
  float *C = malloc (sizeof (float) * (size_t) (M + 1) * ldc);
  float *C0 = malloc (sizeof (float) * (size_t) (M + 1) * ldc);
  float *row = malloc (sizeof (float) * (size_t) ldc);
  if (!A || !B || !C || !C0 || !row)
    exit (99);
  for (size_t i = 0; i < (size_t) ar * lda + 1; i++)
    A[i] = frand ();
  for (size_t i = 0; i < (size_t) br * ldb + 1; i++)
    B[i] = frand ();
  for (size_t i = 0; i < (size_t) (M + 1) * ldc; i++)
    C0[i] = (i / ldc < (size_t) M && (int) (i % ldc) < N) ? frand () : CANARY;
  memcpy (C, C0, sizeof (float) * (size_t) (M + 1) * ldc);
  const char *kn = pmx_gemm_kind_name (kind);
  CHECK (pmx_sgemm_kind (kind, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc,
                         ws) == 0, "sgemm %s: %s", kn, pmx_errmsg ());
  double worst = 0;
  for (int i = 0; i <= M; i++)
    for (int j = 0; j < ldc; j++)
      {
        size_t at = (size_t) i * ldc + j;
        if (i == M || j >= N)
          {
            CHECK (C[at] == CANARY, "sgemm %s %d%d %dx%dx%d: wrote outside C at "
                   "(%d, %d)", kn, ta, tb, M, N, K, i, j);
            if (C[at] != CANARY)
              goto done;
            continue;
          }
        double ref = beta == 0 ? 0.0 : (double) beta * C0[at];
        double mag = fabs (ref);
        for (int k = 0; k < K; k++)
          {
            double a = ta ? A[(size_t) k * lda + i] : A[(size_t) i * lda + k];
            double b = tb ? B[(size_t) j * ldb + k] : B[(size_t) k * ldb + j];
            ref += alpha * a * b;
            mag += fabs (alpha * a * b);
          }
        double err = fabs (C[at] - ref), bound = 2.0 * (K + 3) * FLT_EPSILON / 2 * mag + 1e-30;
        if (err / bound > worst)
          worst = err / bound;
      }
  CHECK (worst <= 1.0, "sgemm %s trans %d%d %dx%dx%d alpha %g beta %g: error %.3g "
         "of the bound", kn, ta, tb, M, N, K, alpha, beta, worst);
  if (kind != PMX_GEMM_NONE)
    check_prepacked (kind, ta, tb, M, N, K, alpha, beta, A, lda, B, ldb, C0, C, ldc);
  /* OpenBLAS (PMX_GEMM_NONE) makes no such promise.  */
  for (int i = 0; i < M && kind != PMX_GEMM_NONE; i += M > 20 ? 11 : 1)
    {
      memcpy (row, C0 + (size_t) i * ldc, sizeof (float) * (size_t) ldc);
      const float *Ai = ta ? A + i : A + (size_t) i * lda;
      pmx_sgemm_kind (kind, ta, tb, 1, N, K, alpha, Ai, lda, B, ldb, beta, row, ldc, ws);
      CHECK (memcmp (row, C + (size_t) i * ldc, sizeof (float) * (size_t) N) == 0,
             "sgemm %s trans %d%d %dx%dx%d: row %d alone differs", kn, ta, tb, M, N,
             K, i);
    }
done:
  free (A);
  free (B);
  free (C);
  free (C0);
  free (row);
}

/* pmx_gemm_packed_rows gives pmx_sgemm_rows's bits (the demultiplexer
   packs its weights once and relies on it): M x N x K, A's rows LDA apart,
   across the row blocks of PMX_GEMM_ROWS.  */
static void
check_packed_rows (int M, int N, int K, int lda)
{
  float *A = malloc (sizeof (float) * ((size_t) M * lda + 1));
  float *W = malloc (sizeof (float) * ((size_t) N * K + 1));
  float *C = malloc (sizeof (float) * ((size_t) M * N + 1));
  float *R = malloc (sizeof (float) * ((size_t) M * N + 1));
  float *scratch = NULL;
  pmx_packed p;
  CHECK (A && W && C && R
         && posix_memalign ((void **) &scratch, 64,
                            pmx_gemm_scratch (pmx_gemm_best (), PMX_GEMM_ROWS)
                            * sizeof (float)) == 0, "out of memory");
  for (size_t i = 0; i < (size_t) M * lda; i++)
    A[i] = frand ();
  for (size_t i = 0; i < (size_t) N * K; i++)
    W[i] = frand ();
  CHECK (pmx_packed_init (&p, W, N, K, PMX_GEMM_BEST) == 0, "pack %dx%d", N, K);
  pmx_gemm_packed_rows (&p, A, lda, C, N, M, scratch);
  pmx_sgemm_rows (0, 1, M, N, K, 1.0f, A, lda, W, K, 0.0f, R, N, NULL);
  CHECK (memcmp (C, R, sizeof (float) * (size_t) M * N) == 0,
         "pmx_gemm_packed_rows %dx%dx%d (lda %d) differs from pmx_sgemm_rows", M, N, K,
         lda);
  pmx_packed_release (&p);
  free (scratch);
  free (A);
  free (W);
  free (C);
  free (R);
}

static int
sgemm_cases (pmx_gemm_kind kind)
{
  /* Around the tile heights (6, 14), the row block (252), the panel width
     (16), the column block (1024) and the depth blocks (768).  */
  static const int shapes[][3] = {
    { 1, 1, 1 }, { 5, 15, 7 }, { 6, 16, 64 }, { 7, 17, 65 }, { 13, 33, 32 },
    { 14, 16, 128 }, { 15, 31, 1 }, { 128, 128, 64 }, { 64, 128, 128 },
    { 253, 40, 20 }, { 20, 1025, 9 }, { 9, 20, 1537 }, { 0, 5, 5 }, { 5, 5, 0 },
  };
  static const float ab[][2] = { { 1, 0 }, { 1, 1 }, { 0.125f, 0.5f } };
  pmx_sgemm_ws ws = { NULL, 0 };
  int n = 0;
  for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
    for (int t = 0; t < 4; t++)
      {
        const float *x = ab[(s + t) % 3];
        check_sgemm (kind, t & 1, t >> 1, shapes[s][0], shapes[s][1], shapes[s][2],
                     x[0], x[1], s % 2 ? &ws : NULL);
        n++;
      }
  pmx_sgemm_ws_free (&ws);
  return n;
}

int
main (void)
{
  pmx_gemm_kind best = pmx_gemm_best ();
  if (best == PMX_GEMM_NONE)
    {
      printf ("SKIP: no GEMM kernel for this CPU (OpenBLAS is used)\n");
      return 77;
    }
  static const int Ms[] = { 1, 5, 6, 7, 13, 14, 15, 29, 100 };
  static const int Ns[] = { 1, 15, 16, 17, 40, 100 };
  static const int Ks[] = { 1, 2, 7, 64, 767, 768, 769, 1600, 2305 };
  int cases = 0;
  for (pmx_gemm_kind kind = PMX_GEMM_AVX2; kind <= best; kind++)
    {
      for (size_t m = 0; m < sizeof Ms / sizeof *Ms; m++)
        for (size_t n = 0; n < sizeof Ns / sizeof *Ns; n++)
          for (size_t k = 0; k < sizeof Ks / sizeof *Ks; k++)
            {
              /* The deep cases only with a few shapes: they are slow.  */
              if (Ks[k] > 100 && (Ms[m] % 7 != 1 || Ns[n] % 16 == 0))
                continue;
              check_case (kind, Ms[m], Ns[n], Ks[k], 0, Ns[n], (int) (m + k) % 2);
              cases++;
            }
      /* Column ranges, as the encoder cuts them between threads.  */
      check_case (kind, 30, 100, 50, 16, 64, 0);
      check_case (kind, 30, 100, 50, 64, 100, 1);
      check_case (kind, 3, 2304, 768, 768, 2304, 0);
      /* Rows of A 4 KiB apart (lda = K + 3 = 1024), which are packed; all
         the others are read in place but for the last micro-panel.  */
      check_case (kind, 29, 40, 1021, 0, 40, 1);
      /* No depth: C = 0, or C unchanged.  */
      check_case (kind, 7, 20, 0, 0, 20, 0);
      check_case (kind, 7, 20, 0, 0, 20, 1);
      cases += 6;
      cases += sgemm_cases (kind);
      cases += bias_cases (NULL, kind);
      printf ("%s: %d cases\n", pmx_gemm_kind_name (kind), cases);
      cases = 0;
    }

  check_packed_rows (1, 5, 7, 7);
  check_packed_rows (253, 40, 20, 25);
  check_packed_rows (600, 768, 768, 1536);
  check_packed_rows (505, 17, 1537, 1540);
  printf ("pmx_gemm_packed_rows: 4 cases, the bits of pmx_sgemm_rows\n");

  /* Products cut into blocks (of rows, of columns; every transposition;
     depths of one and two blocks; a last block under pmx_sgemm's
     threshold for our kernels).  */
  pmx_par *par = pmx_par_new (2);
  CHECK (par != NULL, "pmx_par_new: %s", pmx_errmsg ());
  for (int t = 0; t < 4 && par; t++)
    {
      check_par (par, t & 1, t >> 1, 600, 384, 100, 1.0f);
      check_par (par, t & 1, t >> 1, 40, 1100, 700, t ? 0.5f : 1.0f);
      check_par (par, t & 1, t >> 1, 1300, 64, 1000, 1.0f);
      check_par (par, t & 1, t >> 1, 3000, 48, 20, 1.0f);
      /* Blocks of unequal numbers of whole units (rows: 54 units of 24,
         the last one short; columns: 42 of 32) */
      check_par (par, t & 1, t >> 1, 1280, 384, 384, 1.0f);
      check_par (par, t & 1, t >> 1, 100, 1315, 64, 1.0f);
    }
  int nb = par ? bias_cases (par, PMX_GEMM_NONE) : 0;
  pmx_par_free (par);
  printf ("pmx_sgemm_par: 24 cases, the bits of unshared blocks and the double "
          "product; with a bias, %d cases\n", nb);

  /* pmx_sgemm's OpenBLAS path takes the same arguments.  */
  printf ("blas (%s): %d cases; pmx_sgemm runs %s\n", pmx_blas_corename (),
          sgemm_cases (PMX_GEMM_NONE), pmx_sgemm_name ());

  /* A kernel this CPU does not run is refused.  */
  if (best < PMX_GEMM_AVX512)
    {
      pmx_packed p;
      float w = 1;
      CHECK (pmx_packed_init (&p, &w, 1, 1, PMX_GEMM_AVX512) < 0
             && strstr (pmx_errmsg (), "cannot run the avx512"),
             "unsupported kernel accepted: '%s'", pmx_errmsg ());
    }
  if (failures)
    fprintf (stderr, "%d checks failed\n", failures);
  return failures ? 1 : 0;
}
