/* gemm.c -- packed-weight GEMM for the encoder's dense layers (gemm.h).

   The classic blocking of Goto and van de Geijn: a block of A (the rows
   one task owns), KC deep, is packed into micro-panels of MR rows and stays
   in L2; each KC x NR slice of a weight panel is reused for all of the
   block's micro-panels; the micro-kernel keeps an MR x NR tile of C in
   registers for the whole KC and touches C in memory once per KC.  Tiles:
   AVX-512 12 x 32 over two adjacent 16-wide panels (24 accumulators; 12 x
   16 for a lone last panel), AVX2 6 x 16 (12 accumulators); every panel is
   16 wide.  12 x 32 rather than 14 x 16: each k step loads 2 vectors of B
   and broadcasts 12 values of A for 24 FMAs (0.58 loads an FMA, against
   1.07 for 14 x 16), which a core with two 512-bit FMA units (Intel's) needs
   to keep both busy with its two load ports; a Zen 4 core runs one 512-bit
   FMA a cycle and either tile.  The tile changes no result: every element
   of C is the same dot product summed in the same order.  The kernels use
   intrinsics under target attributes, so the file needs no -march and the
   choice is made at run time.

   Measured on a 2-core AMD Zen 4 (bench/encoder-bench --gemm): BERT-base
   3 to 8 % more sequences per second than OpenBLAS 0.3.21 on the same
   encoder, 18 % at batch 1 (where the columns are split between threads);
   the 14 x 16 kernel alone ran at 97 % of the FMA peak with its data in
   cache; pmx_gemm_packed whole with the 12 x 32 tile, A's packing
   included, runs BERT's and MiniLM's shapes at 106-112 GFLOP/s on one
   core, 90 to 95 % of the peak (101-109 with 14 x 16).  */

#include <config.h>
#include "gemm.h"
#include "error.h"

#include <cblas.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#if defined __x86_64__ && (defined __GNUC__ || defined __clang__)
# include <immintrin.h>
# define HAVE_X86_KERNELS 1
#endif

/* Most depth of a packed block of A.  Deep blocks write each tile of C
   fewer times; 768 measured best for BERT's shapes on an AMD Zen 4 (the
   block of a few hundred rows still fits in L2).  */
enum { KC_MAX = 768 };

/* Width of every weight panel.  */
enum { NR = 16 };

/* Rows of a micro-panel of A.  */
static int
kind_mr (pmx_gemm_kind k)
{
  return k == PMX_GEMM_AVX512 ? 12 : 6;
}

pmx_gemm_kind
pmx_gemm_best (void)
{
#ifdef HAVE_X86_KERNELS
  __builtin_cpu_init ();
  if (__builtin_cpu_supports ("avx512f"))
    return PMX_GEMM_AVX512;
  if (__builtin_cpu_supports ("avx2") && __builtin_cpu_supports ("fma"))
    return PMX_GEMM_AVX2;
#endif
  return PMX_GEMM_NONE;
}

const char *
pmx_gemm_kind_name (pmx_gemm_kind kind)
{
  switch (kind)
    {
    case PMX_GEMM_AVX512:
      return "avx512";
    case PMX_GEMM_AVX2:
      return "avx2";
    case PMX_GEMM_NONE:
      return "blas";
    default:
      return "best";
    }
}

int
pmx_gemm_kind_parse (const char *name, pmx_gemm_kind *kind)
{
  for (pmx_gemm_kind k = PMX_GEMM_NONE; k <= PMX_GEMM_BEST; k++)
    if (!strcmp (name, pmx_gemm_kind_name (k)))
      {
        *kind = k;
        return 0;
      }
  return pmx_error ("unknown GEMM kernel '%s' (best, avx512, avx2 or blas)", name);
}

int
pmx_packed_init (pmx_packed *p, const float *W, int N, int K, pmx_gemm_kind kind)
{
  memset (p, 0, sizeof *p);
  pmx_gemm_kind best = pmx_gemm_best ();
  if (kind == PMX_GEMM_BEST)
    kind = best;
  if (kind > best)               /* the kinds are ordered: AVX-512 implies AVX2 */
    return pmx_error ("this CPU cannot run the %s GEMM kernel",
                      pmx_gemm_kind_name (kind));
  p->kind = kind;
  p->N = N;
  p->K = K;
  if (kind == PMX_GEMM_NONE || N <= 0 || K <= 0)
    return 0;
  int nr = p->nr = NR;
  size_t panels = ((size_t) N + nr - 1) / nr;
  void *mem = NULL;
  if (posix_memalign (&mem, 64, panels * K * nr * sizeof (float)) != 0)
    return pmx_error ("out of memory packing a %dx%d weight", N, K);
  p->panels = mem;
  /* Panel j holds rows j*nr.. of W as columns: panel[k * nr + c] = W[j*nr + c, k].
     Rows past N are zero, so every kernel call can run whole panels.  */
  for (size_t j = 0; j < panels; j++)
    {
      float *dst = p->panels + j * K * nr;
      for (int c = 0; c < nr; c++)
        {
          size_t n = j * nr + c;
          const float *src = W + n * K;
          if (n < (size_t) N)
            for (int k = 0; k < K; k++)
              dst[(size_t) k * nr + c] = src[k];
          else
            for (int k = 0; k < K; k++)
              dst[(size_t) k * nr + c] = 0.0f;
        }
    }
  return 0;
}

void
pmx_packed_release (pmx_packed *p)
{
  free (p->panels);
  p->panels = NULL;
}

size_t
pmx_gemm_scratch (pmx_gemm_kind kind, int M)
{
  int mr = kind_mr (kind);
  size_t rows = ((size_t) (M > 0 ? M : 1) + mr - 1) / mr * mr;
  return rows * KC_MAX;
}

/* ---- Micro-kernels ------------------------------------------------------

   C[0..mr, 0..nr) (ldc) = (ACC ? C : BIAS ? BIAS[j] : 0) + sum over k <
   KDEPTH of a[k * MR + i] * b[k * NR + j], for a packed A micro-panel and
   a packed weight slice.  mr <= MR and nr <= NR cut off a partial tile.
   BIAS (the tile's columns, or NULL) is what a C filled with it would
   add, with the same bits, without the pass that fills C.  */

#ifdef HAVE_X86_KERNELS

/* A partial tile (the edges of a matrix) goes through memory: T holds the
   whole tile, NR floats a row; only mr x nr of it is C's.  Every access to
   the accumulators uses a constant index, so they stay in registers.  */
static void
tile_out (const float *t, int nr_max, float *c, int ldc, int mr, int nr, int acc,
          const float *bias)
{
  for (int i = 0; i < mr; i++)
    {
      float *ci = c + (size_t) i * ldc;
      const float *ti = t + i * nr_max;
      for (int j = 0; j < nr; j++)
        ci[j] = acc ? ci[j] + ti[j] : bias ? bias[j] + ti[j] : ti[j];
    }
}

/* How a tile reads its micro-panel of A, a constant after inlining:
   packed (MR floats a k), twelve (six) rows of A itself LDA apart, or
   twelve (six) columns of A itself, LDA apart a k: op(A) = A^T, whose
   packed micro-panel would be a copy of those columns (sg_pack_a).  The
   same products in the same order each way.  */
enum a_read { A_PACKED, A_ROWS, A_COLS };

/* A 12 x 16 NP tile: NP (1 or 2, a constant after inlining) panels, B0
   for columns 0..15 and B1 for 16..31, each NR floats a k; nr <= 16 NP.
   A as READ says (mr is 12 unless packed).  Written once for both widths
   and every kind of A; the wrappers below are the kernels.  */
__attribute__ ((target ("avx512f"), always_inline))
static inline void
tile_avx512 (int np, enum a_read read, int lda, int kdepth, const float *a,
             const float *b0p, const float *b1p, float *c, int ldc, int mr, int nr,
             int acc, const float *bias)
{
  __m512 c0[12], c1[12];
#pragma GCC unroll 12
  for (int i = 0; i < 12; i++)
    c0[i] = c1[i] = _mm512_setzero_ps ();
  /* Fetch the tile of C now: it is needed only after the loop.  */
  for (int i = 0; i < mr; i++)
    for (int p = 0; p < np; p++)
      _mm_prefetch ((const char *) (c + (size_t) i * ldc + 16 * p), _MM_HINT_T0);
  for (int k = 0; k < kdepth; k++)
    {
      __m512 b0 = _mm512_load_ps (b0p);
      __m512 b1 = np == 2 ? _mm512_load_ps (b1p) : b0;
      _mm_prefetch ((const char *) (b0p + 16 * 16), _MM_HINT_T0);
      if (np == 2)
        _mm_prefetch ((const char *) (b1p + 16 * 16), _MM_HINT_T0);
#pragma GCC unroll 12
      for (int i = 0; i < 12; i++)
        {
          __m512 ai = _mm512_set1_ps (read == A_ROWS ? a[(size_t) i * lda] : a[i]);
          c0[i] = _mm512_fmadd_ps (ai, b0, c0[i]);
          if (np == 2)
            c1[i] = _mm512_fmadd_ps (ai, b1, c1[i]);
        }
      a += read == A_ROWS ? 1 : read == A_COLS ? (size_t) lda : 12;
      b0p += 16;
      b1p += 16 * (np == 2);
    }
  if (mr == 12 && nr == 16 * np)
    {
      int add_bias = !acc && bias;
      __m512 bias0 = _mm512_setzero_ps (), bias1 = bias0;
      if (add_bias)
        {
          bias0 = _mm512_loadu_ps (bias);
          if (np == 2)
            bias1 = _mm512_loadu_ps (bias + 16);
        }
#pragma GCC unroll 12
      for (int i = 0; i < 12; i++)
        {
          float *ci = c + (size_t) i * ldc;
          if (acc)
            c0[i] = _mm512_add_ps (c0[i], _mm512_loadu_ps (ci));
          else if (add_bias)
            c0[i] = _mm512_add_ps (c0[i], bias0);
          _mm512_storeu_ps (ci, c0[i]);
          if (np == 2)
            {
              if (acc)
                c1[i] = _mm512_add_ps (c1[i], _mm512_loadu_ps (ci + 16));
              else if (add_bias)
                c1[i] = _mm512_add_ps (c1[i], bias1);
              _mm512_storeu_ps (ci + 16, c1[i]);
            }
        }
      return;
    }
  float t[12 * 32] __attribute__ ((aligned (64)));
#pragma GCC unroll 12
  for (int i = 0; i < 12; i++)
    {
      _mm512_store_ps (t + i * 32, c0[i]);
      if (np == 2)
        _mm512_store_ps (t + i * 32 + 16, c1[i]);
    }
  tile_out (t, 32, c, ldc, mr, nr, acc, bias);
}

/* 12 x 16: one panel (a lone last panel).  */
__attribute__ ((target ("avx512f")))
static void
kernel_avx512 (int kdepth, const float *a, const float *b, float *c, int ldc, int mr,
               int nr, int acc, const float *bias)
{
  tile_avx512 (1, A_PACKED, 0, kdepth, a, b, b, c, ldc, mr, nr, acc, bias);
}

/* 12 x 32: two adjacent panels.  */
__attribute__ ((target ("avx512f")))
static void
kernel_avx512_wide (int kdepth, const float *a, const float *b0, const float *b1,
                    float *c, int ldc, int mr, int nr, int acc, const float *bias)
{
  tile_avx512 (2, A_PACKED, 0, kdepth, a, b0, b1, c, ldc, mr, nr, acc, bias);
}

/* The same two on 12 rows of A itself, LDA > 0 apart.  */
__attribute__ ((target ("avx512f")))
static void
kernel_avx512_direct (int kdepth, const float *a, int lda, const float *b, float *c,
                      int ldc, int nr, int acc, const float *bias)
{
  tile_avx512 (1, A_ROWS, lda, kdepth, a, b, b, c, ldc, 12, nr, acc, bias);
}

__attribute__ ((target ("avx512f")))
static void
kernel_avx512_wide_direct (int kdepth, const float *a, int lda, const float *b0,
                           const float *b1, float *c, int ldc, int nr, int acc,
                           const float *bias)
{
  tile_avx512 (2, A_ROWS, lda, kdepth, a, b0, b1, c, ldc, 12, nr, acc, bias);
}

/* And on 12 columns of A itself, op(A) = A^T.  */
__attribute__ ((target ("avx512f")))
static void
kernel_avx512_cols (int kdepth, const float *a, int lda, const float *b, float *c,
                    int ldc, int nr, int acc, const float *bias)
{
  tile_avx512 (1, A_COLS, lda, kdepth, a, b, b, c, ldc, 12, nr, acc, bias);
}

__attribute__ ((target ("avx512f")))
static void
kernel_avx512_wide_cols (int kdepth, const float *a, int lda, const float *b0,
                         const float *b1, float *c, int ldc, int nr, int acc,
                         const float *bias)
{
  tile_avx512 (2, A_COLS, lda, kdepth, a, b0, b1, c, ldc, 12, nr, acc, bias);
}

/* 6 x 16, A as READ says (as tile_avx512's, mr 6 unless packed).  */
__attribute__ ((target ("avx2,fma"), always_inline))
static inline void
tile_avx2 (enum a_read read, int lda, int kdepth, const float *a, const float *b, float *c,
           int ldc, int mr, int nr, int acc, const float *bias)
{
  __m256 c0[6], c1[6];
#pragma GCC unroll 6
  for (int i = 0; i < 6; i++)
    c0[i] = c1[i] = _mm256_setzero_ps ();
  for (int i = 0; i < mr; i++)
    _mm_prefetch ((const char *) (c + (size_t) i * ldc), _MM_HINT_T0);
  for (int k = 0; k < kdepth; k++)
    {
      __m256 b0 = _mm256_load_ps (b), b1 = _mm256_load_ps (b + 8);
      _mm_prefetch ((const char *) (b + 8 * 16), _MM_HINT_T0);
#pragma GCC unroll 6
      for (int i = 0; i < 6; i++)
        {
          __m256 ai = _mm256_broadcast_ss (read == A_ROWS ? a + (size_t) i * lda : a + i);
          c0[i] = _mm256_fmadd_ps (ai, b0, c0[i]);
          c1[i] = _mm256_fmadd_ps (ai, b1, c1[i]);
        }
      a += read == A_ROWS ? 1 : read == A_COLS ? (size_t) lda : 6;
      b += 16;
    }
  if (mr == 6 && nr == 16)
    {
      int add_bias = !acc && bias;
      __m256 bias0 = _mm256_setzero_ps (), bias1 = bias0;
      if (add_bias)
        {
          bias0 = _mm256_loadu_ps (bias);
          bias1 = _mm256_loadu_ps (bias + 8);
        }
#pragma GCC unroll 6
      for (int i = 0; i < 6; i++)
        {
          float *ci = c + (size_t) i * ldc;
          if (acc)
            {
              c0[i] = _mm256_add_ps (c0[i], _mm256_loadu_ps (ci));
              c1[i] = _mm256_add_ps (c1[i], _mm256_loadu_ps (ci + 8));
            }
          else if (add_bias)
            {
              c0[i] = _mm256_add_ps (c0[i], bias0);
              c1[i] = _mm256_add_ps (c1[i], bias1);
            }
          _mm256_storeu_ps (ci, c0[i]);
          _mm256_storeu_ps (ci + 8, c1[i]);
        }
      return;
    }
  float t[6 * 16] __attribute__ ((aligned (32)));
#pragma GCC unroll 6
  for (int i = 0; i < 6; i++)
    {
      _mm256_store_ps (t + i * 16, c0[i]);
      _mm256_store_ps (t + i * 16 + 8, c1[i]);
    }
  tile_out (t, 16, c, ldc, mr, nr, acc, bias);
}

__attribute__ ((target ("avx2,fma")))
static void
kernel_avx2 (int kdepth, const float *a, const float *b, float *c, int ldc, int mr,
             int nr, int acc, const float *bias)
{
  tile_avx2 (A_PACKED, 0, kdepth, a, b, c, ldc, mr, nr, acc, bias);
}

__attribute__ ((target ("avx2,fma")))
static void
kernel_avx2_direct (int kdepth, const float *a, int lda, const float *b, float *c,
                    int ldc, int nr, int acc, const float *bias)
{
  tile_avx2 (A_ROWS, lda, kdepth, a, b, c, ldc, 6, nr, acc, bias);
}

__attribute__ ((target ("avx2,fma")))
static void
kernel_avx2_cols (int kdepth, const float *a, int lda, const float *b, float *c,
                  int ldc, int nr, int acc, const float *bias)
{
  tile_avx2 (A_COLS, lda, kdepth, a, b, c, ldc, 6, nr, acc, bias);
}

/* One row of a tile, for the few rows of a last micro-panel (padded to a
   whole one they would cost MR rows' work): the same sums in the same
   order as the tile's kernel, so a row's result is the same bits either
   way.  A's k-th value is a[k * AS]; NP panels as tile_avx512's.  */
__attribute__ ((target ("avx512f"), always_inline))
static inline void
row_avx512 (int np, int kdepth, const float *a, int as, const float *b0p,
            const float *b1p, float *c, int nr, int acc, const float *bias)
{
  __m512 c0 = _mm512_setzero_ps (), c1 = _mm512_setzero_ps ();
  for (int k = 0; k < kdepth; k++)
    {
      __m512 ak = _mm512_set1_ps (a[(size_t) k * as]);
      c0 = _mm512_fmadd_ps (ak, _mm512_load_ps (b0p + 16 * k), c0);
      if (np == 2)
        c1 = _mm512_fmadd_ps (ak, _mm512_load_ps (b1p + 16 * k), c1);
    }
  float t[32] __attribute__ ((aligned (64)));
  _mm512_store_ps (t, c0);
  _mm512_store_ps (t + 16, c1);
  tile_out (t, 32, c, 0, 1, nr, acc, bias);
}

__attribute__ ((target ("avx512f")))
static void
row_avx512_1 (int kdepth, const float *a, int as, const float *b, float *c, int nr,
              int acc, const float *bias)
{
  row_avx512 (1, kdepth, a, as, b, b, c, nr, acc, bias);
}

__attribute__ ((target ("avx512f")))
static void
row_avx512_2 (int kdepth, const float *a, int as, const float *b0, const float *b1,
              float *c, int nr, int acc, const float *bias)
{
  row_avx512 (2, kdepth, a, as, b0, b1, c, nr, acc, bias);
}

__attribute__ ((target ("avx2,fma")))
static void
row_avx2 (int kdepth, const float *a, int as, const float *b, float *c, int nr, int acc,
          const float *bias)
{
  __m256 c0 = _mm256_setzero_ps (), c1 = _mm256_setzero_ps ();
  for (int k = 0; k < kdepth; k++)
    {
      __m256 ak = _mm256_set1_ps (a[(size_t) k * as]);
      c0 = _mm256_fmadd_ps (ak, _mm256_load_ps (b + 16 * k), c0);
      c1 = _mm256_fmadd_ps (ak, _mm256_load_ps (b + 16 * k + 8), c1);
    }
  float t[16] __attribute__ ((aligned (32)));
  _mm256_store_ps (t, c0);
  _mm256_store_ps (t + 8, c1);
  tile_out (t, 16, c, 0, 1, nr, acc, bias);
}

/* Every micro-panel of A (M rows, MR a panel, KD deep) times the panels
   from B (NCOLS columns, PSTRIDE floats from one 16-wide panel to the
   next, each NR floats a k) into C: two panels at a time where the kernel
   has a wide tile.  The micro-panels come packed from A0, except that with
   AD not NULL the whole ones (MR rows) are read from AD itself, as READ
   says (A_ROWS: AD is op(A), row-major with LDA; A_COLS: AD is A =
   op(A)^T, LDA a k), and A0 holds the rest packed.  A last micro-panel
   of at most a quarter of MR rows goes a row at a time.  ACC and BIAS
   (C's columns) as the kernels take them.  */
static void
run_panels (pmx_gemm_kind kind, int kd, const float *ad, enum a_read read, int lda,
            const float *a0, int M, const float *b, size_t pstride, float *C, int ldc,
            int ncols, int acc, const float *bias)
{
  int mr = kind_mr (kind), wide = kind == PMX_GEMM_AVX512;
  int direct = ad ? M / mr * mr : 0;
  for (int c0 = 0; c0 < ncols; )
    {
      int np = wide && ncols - c0 > NR ? 2 : 1;
      int nr = ncols - c0 < np * NR ? ncols - c0 : np * NR;
      const float *a = a0, *b1 = b + pstride, *bc = bias ? bias + c0 : NULL;
      for (int r0 = 0; r0 < M; r0 += mr)
        {
          float *c = C + (size_t) r0 * ldc + c0;
          int rows = M - r0 < mr ? M - r0 : mr;
          if (r0 < direct)
            {
              int cols = read == A_COLS;
              const float *ar = cols ? ad + r0 : ad + (size_t) r0 * lda;
              if (np == 2)
                (cols ? kernel_avx512_wide_cols : kernel_avx512_wide_direct)
                  (kd, ar, lda, b, b1, c, ldc, nr, acc, bc);
              else if (wide)
                (cols ? kernel_avx512_cols : kernel_avx512_direct)
                  (kd, ar, lda, b, c, ldc, nr, acc, bc);
              else
                (cols ? kernel_avx2_cols : kernel_avx2_direct)
                  (kd, ar, lda, b, c, ldc, nr, acc, bc);
              continue;
            }
          if (4 * rows <= mr)
            for (int i = 0; i < rows; i++)
              if (np == 2)
                row_avx512_2 (kd, a + i, mr, b, b1, c + (size_t) i * ldc, nr, acc, bc);
              else
                (wide ? row_avx512_1 : row_avx2) (kd, a + i, mr, b, c + (size_t) i * ldc,
                                                  nr, acc, bc);
          else if (np == 2)
            kernel_avx512_wide (kd, a, b, b1, c, ldc, rows, nr, acc, bc);
          else
            (wide ? kernel_avx512 : kernel_avx2) (kd, a, b, c, ldc, rows, nr, acc, bc);
          a += (size_t) kd * mr;
        }
      c0 += np * NR;
      b += np * pstride;
    }
}

/* The depth of blocks for K: K cut into equal parts of at most KC_MAX.  */
static int
block_depth (int K)
{
  int parts = (K + KC_MAX - 1) / KC_MAX;
  return (K + parts - 1) / parts;
}

/* Pack rows 0..M of A, columns K0..K0+KD, into micro-panels of MR rows:
   dst[(i / MR) * KD * MR + k * MR + i % MR]; rows past M are zero.  The
   columns go 64 at a time, so the part of the micro-panel being written
   stays in L1 (1.7 times faster than whole rows at a time).  */
static void
pack_a (const float *A, int lda, int M, int k0, int kd, int mr, float *dst)
{
  enum { KB = 64 };
  for (int r0 = 0; r0 < M; r0 += mr)
    {
      int rows = M - r0 < mr ? M - r0 : mr;
      for (int kb = 0; kb < kd; kb += KB)
        {
          int ke = kd - kb < KB ? kd : kb + KB;
          for (int i = 0; i < rows; i++)
            {
              const float *src = A + (size_t) (r0 + i) * lda + k0;
              for (int k = kb; k < ke; k++)
                dst[(size_t) k * mr + i] = src[k];
            }
          for (int i = rows; i < mr; i++)
            for (int k = kb; k < ke; k++)
              dst[(size_t) k * mr + i] = 0.0f;
        }
      dst += (size_t) kd * mr;
    }
}

/* Whether pmx_gemm_packed's kernels read A's whole micro-panels in place
   rather than packed: their 12 (6) rows stream through L1 beside the
   panels of B, which saves pack_a's pass over A (on a Zen 4 core 2 to 6 %
   on MiniLM's and BERT's shapes with rows 384, 768 or 1536 floats long;
   MiniLM-L6's encoder 2 to 3 % more sequences per CPU-second, BERT-base's
   and the pruned one's about 1 %).  Not where the rows lie a multiple of
   4 KiB apart: all 12 then share one set of the L1 cache (64 sets of 64
   bytes), more than its ways, and the AVX-512 kernel ran 10 to 30 %
   slower (rows of 1024, 2048, 3072 floats: BERT's FFN output).  So too
   for op(A) = A^T read in place (A_COLS, a row of A a k): products of
   op(A) 384 or 1536 x 1280 (a training step's weight gradients) 2 to 4 %
   faster on 2 threads than with A^T packed, but 5 to 13 % slower at 1024
   floats a row.  The results are the same bits either way.  */
static int
a_direct (int lda)
{
  return ((size_t) lda * sizeof (float)) % 4096 != 0;
}

#endif /* HAVE_X86_KERNELS */

void
pmx_gemm_packed (const pmx_packed *p, const float *A, int lda, float *C, int ldc,
                 int M, int N0, int N1, int accumulate, float *scratch)
{
#ifdef HAVE_X86_KERNELS
  int mr = kind_mr (p->kind), nr = p->nr, K = p->K;
  if (M <= 0 || N1 <= N0)
    return;
  if (K <= 0)                   /* an empty sum: C = 0, or C unchanged */
    {
      for (int i = 0; i < M && !accumulate; i++)
        memset (C + (size_t) i * ldc + N0, 0, (size_t) (N1 - N0) * sizeof *C);
      return;
    }
  int kc = block_depth (K);
  for (int k0 = 0; k0 < K; k0 += kc)
    {
      int kd = K - k0 < kc ? K - k0 : kc;
      int acc = accumulate || k0 > 0;
      int direct = a_direct (lda) ? M / mr * mr : 0;
      pack_a (A + (size_t) direct * lda, lda, M - direct, k0, kd, mr, scratch);
      run_panels (p->kind, kd, direct ? A + k0 : NULL, A_ROWS, lda, scratch, M,
                  p->panels + (size_t) (N0 / nr) * K * nr + (size_t) k0 * nr,
                  (size_t) K * nr, C + N0, ldc, N1 - N0, acc, NULL);
    }
#else
  (void) p, (void) A, (void) lda, (void) C, (void) ldc, (void) M, (void) N0;
  (void) N1, (void) accumulate, (void) scratch;
#endif
}

void
pmx_gemm_packed_rows (const pmx_packed *p, const float *A, int lda, float *C, int ldc,
                      int M, float *scratch)
{
  for (int r = 0; r < M; r += PMX_GEMM_ROWS)
    pmx_gemm_packed (p, A + (size_t) r * lda, lda, C + (size_t) r * ldc, ldc,
                     M - r < PMX_GEMM_ROWS ? M - r : PMX_GEMM_ROWS, 0, p->N, 0, scratch);
}

void
pmx_sgemm_rows_packed (const pmx_packed *p, const float *W, int ldw, int N, int K,
                       const float *A, int lda, float *C, int ldc, int M, float *scratch)
{
  if (p && p->kind != PMX_GEMM_NONE)
    pmx_gemm_packed_rows (p, A, lda, C, ldc, M, scratch);
  else
    pmx_sgemm_rows (0, 1, M, N, K, 1.0f, A, lda, W, ldw, 0.0f, C, ldc, NULL);
}

/* ---- pmx_sgemm ----------------------------------------------------------

   Goto's loops around the same micro-kernels: for each NC-wide block of
   columns and each KC-deep block of the depth, op(B)'s block is packed into
   NR-wide panels (kept in L3), then for each MC-high block of rows op(A)'s
   block is packed into micro-panels (kept in L2) and every (micro-panel,
   panel) pair is one kernel call.  */

enum { SG_MC = 252 /* a multiple of both tiles' heights, 12 and 6 */, SG_NC = 1024 };

#ifdef HAVE_X86_KERNELS

/* D[c, r] = S[r, c] for an 8 x 8 block, rows LDS and LDD floats apart:
   the transposing packs below, a quarter of their time with scalar moves
   (in a profile of training on our kernels, the packs were 18 % of the
   step).  Every CPU with our kernels has AVX2.  */
__attribute__ ((target ("avx2")))
static void
transpose8 (const float *s, size_t lds, float *d, size_t ldd)
{
  __m256 r[8], t[8], u[8];
  for (int i = 0; i < 8; i++)
    r[i] = _mm256_loadu_ps (s + i * lds);
  for (int i = 0; i < 8; i += 2)
    {
      t[i] = _mm256_unpacklo_ps (r[i], r[i + 1]);       /* a0 b0 a1 b1 | a4 b4 a5 b5 */
      t[i + 1] = _mm256_unpackhi_ps (r[i], r[i + 1]);   /* a2 b2 a3 b3 | a6 b6 a7 b7 */
    }
  for (int i = 0; i < 8; i += 4)
    {
      u[i] = _mm256_shuffle_ps (t[i], t[i + 2], 0x44);          /* a0 b0 c0 d0 | ..4 */
      u[i + 1] = _mm256_shuffle_ps (t[i], t[i + 2], 0xEE);      /* ..1 | ..5 */
      u[i + 2] = _mm256_shuffle_ps (t[i + 1], t[i + 3], 0x44);  /* ..2 | ..6 */
      u[i + 3] = _mm256_shuffle_ps (t[i + 1], t[i + 3], 0xEE);  /* ..3 | ..7 */
    }
  for (int i = 0; i < 4; i++)
    {
      _mm256_storeu_ps (d + i * ldd, _mm256_permute2f128_ps (u[i], u[i + 4], 0x20));
      _mm256_storeu_ps (d + (i + 4) * ldd, _mm256_permute2f128_ps (u[i], u[i + 4], 0x31));
    }
}

/* op(A)[i0.., k0..] of a block, MR-row micro-panels, times ALPHA; rows past
   M zero.  Row-major A: op(A)[i, k] = TRANSA ? A[k lda + i] : A[i lda + k].
   Untransposed is pack_a's job (then each value times ALPHA, the same
   product as when packing); transposed, each row of A holds one k for
   every i, copied MR at a time into the micro-panels.  */
__attribute__ ((target ("avx2")))
static void
sg_pack_a (int transa, const float *A, int lda, int i0, int mc, int k0, int kd,
           int mr, float alpha, float *dst)
{
  int panels = (mc + mr - 1) / mr;
  size_t n = (size_t) panels * kd * mr;
  if (!transa)
    pack_a (A + (size_t) i0 * lda, lda, mc, k0, kd, mr, dst);
  else
    for (int k = 0; k < kd; k++)
      {
        const float *src = A + (size_t) (k0 + k) * lda + i0;
        for (int p = 0; p < panels; p++)
          {
            float *d = dst + (size_t) p * kd * mr + (size_t) k * mr;
            const float *s = src + p * mr;
            int rows = mc - p * mr < mr ? mc - p * mr : mr;
            if (rows == mr && mr == 12)
              {
                _mm256_storeu_ps (d, _mm256_loadu_ps (s));
                _mm_storeu_ps (d + 8, _mm_loadu_ps (s + 8));
              }
            else if (rows == mr && mr == 6)
              {
                _mm_storeu_ps (d, _mm_loadu_ps (s));
                d[4] = s[4];
                d[5] = s[5];
              }
            else
              for (int i = 0; i < mr; i++)
                d[i] = i < rows ? s[i] : 0.0f;
          }
      }
  if (alpha != 1.0f)
    {
      __m256 va = _mm256_set1_ps (alpha);
      size_t i = 0;
      for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps (dst + i, _mm256_mul_ps (va, _mm256_loadu_ps (dst + i)));
      for (; i < n; i++)
        dst[i] *= alpha;
    }
}

/* op(B)[k0.., j0..] of a block into NR-wide panels, columns past NC zero.
   op(B)[k, j] = TRANSB ? B[j ldb + k] : B[k ldb + j]: a row of B is 16
   floats of a panel's k, or, transposed, 16 rows of B make a panel,
   turned 8 x 8 at a time.  */
__attribute__ ((target ("avx2")))
static void
sg_pack_b (int transb, const float *B, int ldb, int k0, int kd, int j0, int nc,
           float *dst)
{
  for (int c0 = 0; c0 < nc; c0 += NR, dst += (size_t) kd * NR)
    {
      int cols = nc - c0 < NR ? nc - c0 : NR;
      if (!transb)
        {
          for (int k = 0; k < kd; k++)
            {
              const float *src = B + (size_t) (k0 + k) * ldb + j0 + c0;
              float *d = dst + (size_t) k * NR;
              if (cols == NR)
                memcpy (d, src, NR * sizeof *d);        /* inlined: a constant size */
              else
                {
                  memcpy (d, src, cols * sizeof *d);
                  memset (d + cols, 0, (NR - cols) * sizeof *d);
                }
            }
          continue;
        }
      const float *src = B + (size_t) (j0 + c0) * ldb + k0;
      int k = 0;
      if (cols == NR)
        for (; k + 8 <= kd; k += 8)
          {
            transpose8 (src + k, ldb, dst + (size_t) k * NR, NR);
            transpose8 (src + (size_t) 8 * ldb + k, ldb, dst + (size_t) k * NR + 8, NR);
          }
      for (; k < kd; k++)
        for (int c = 0; c < NR; c++)
          dst[(size_t) k * NR + c] = c < cols ? src[(size_t) c * ldb + k] : 0.0f;
    }
}

#endif /* HAVE_X86_KERNELS */

int
pmx_sgemm_ws_reserve (pmx_sgemm_ws *ws, size_t floats)
{
  if (ws->cap >= floats)
    return 0;
  void *mem = NULL;
  if (posix_memalign (&mem, 64, (floats ? floats : 1) * sizeof (float)) != 0)
    return -1;
  free (ws->buf);
  ws->buf = mem;
  ws->cap = floats;
  return 0;
}

void
pmx_sgemm_ws_free (pmx_sgemm_ws *ws)
{
  if (ws)
    {
      free (ws->buf);
      ws->buf = NULL;
      ws->cap = 0;
    }
}

/* OpenBLAS picks its kernels by CPU model when it loads; on a model it does
   not know (Debian's 0.3.21 on newer cores) it falls back to generic SSE3
   code, 9 times slower than its AVX-512 kernels on a Zen 4 core.  A core
   name counts as native when it was written for the widest vectors this
   CPU has.  */
const char *
pmx_blas_corename (void)
{
#ifdef HAVE_OPENBLAS_GET_CORENAME
  const char *name = openblas_get_corename ();
  return name ? name : "unknown";
#else
  return "unknown";
#endif
}

int
pmx_blas_native (void)
{
  static const char *const avx512[] =
    { "skylakex", "cooperlake", "sapphirerapids", NULL };
  static const char *const avx2[] =
    { "haswell", "zen", "skylakex", "cooperlake", "sapphirerapids", NULL };
  pmx_gemm_kind best = pmx_gemm_best ();
  const char *const *ok = best == PMX_GEMM_AVX512 ? avx512
    : best == PMX_GEMM_AVX2 ? avx2 : NULL;
  if (!ok)
    return 1;                   /* nothing of ours to prefer */
  const char *name = pmx_blas_corename ();
  for (; *ok; ok++)
    if (!strcasecmp (name, *ok))
      return 1;
  return 0;
}

/* pmx_sgemm's choice for small products, made once: OpenBLAS where it
   runs native kernels (it is faster than ours on attention's, up to about
   a million multiply-adds), else ours.  Products of SG_OURS_MIN
   multiply-adds or more run on ours wherever we have a kernel: a training
   step's, cut into at most 8 blocks (par.c), are tens of millions, and on
   a Zen 4 core our kernels ran them 0 to 8 % faster than OpenBLAS's
   (Cooperlake) whatever the transposition; a MiniLM-size model trained
   at 85.9-88.2 examples/s against 80.2-83.6 with OpenBLAS for all.  */
enum { SG_OURS_MIN = 1 << 21 };

static pmx_gemm_kind
sgemm_choice (void)
{
  static volatile int choice = -1;     /* a benign race: same value */
  if (choice < 0)
    choice = pmx_blas_native () ? (int) PMX_GEMM_NONE : (int) pmx_gemm_best ();
  return (pmx_gemm_kind) choice;
}

const char *
pmx_sgemm_name (void)
{
  static char name[64];
  pmx_gemm_kind k = sgemm_choice ();
  if (k == PMX_GEMM_NONE && pmx_gemm_best () != PMX_GEMM_NONE)
    snprintf (name, sizeof name, "openblas (%s) for small products, %s for large",
              pmx_blas_corename (), pmx_gemm_kind_name (pmx_gemm_best ()));
  else if (k == PMX_GEMM_NONE)
    snprintf (name, sizeof name, "openblas (%s)", pmx_blas_corename ());
  else
    snprintf (name, sizeof name, "%s", pmx_gemm_kind_name (k));
  return name;
}

void
pmx_sgemm (int transa, int transb, int M, int N, int K, float alpha,
           const float *A, int lda, const float *B, int ldb, float beta,
           float *C, int ldc, pmx_sgemm_ws *ws)
{
  pmx_gemm_kind kind = pmx_sgemm_kind_for ((double) M * N * K);
  pmx_sgemm_kind (kind, transa, transb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc,
                  ws);
}

void
pmx_sgemm_rows (int transa, int transb, int M, int N, int K, float alpha,
                const float *A, int lda, const float *B, int ldb, float beta,
                float *C, int ldc, pmx_sgemm_ws *ws)
{
  pmx_sgemm_kind (PMX_GEMM_BEST, transa, transb, M, N, K, alpha,
                  A, lda, B, ldb, beta, C, ldc, ws);
}

int
pmx_sgemm_kind (pmx_gemm_kind kind, int transa, int transb, int M, int N, int K,
                float alpha, const float *A, int lda, const float *B, int ldb,
                float beta, float *C, int ldc, pmx_sgemm_ws *ws)
{
  if (M <= 0 || N <= 0)
    return 0;
  if (kind == PMX_GEMM_BEST)
    kind = pmx_gemm_best ();
  if (kind > pmx_gemm_best ())
    return pmx_error ("this CPU cannot run the %s GEMM kernel",
                      pmx_gemm_kind_name (kind));
  pmx_sgemm_pre (kind, transa, transb, M, N, K, alpha, A, lda, NULL, B, ldb, NULL,
                 beta, C, ldc, ws);
  return 0;
}

pmx_gemm_kind
pmx_sgemm_kind_for (double macs)
{
  return macs >= SG_OURS_MIN ? pmx_gemm_best () : sgemm_choice ();
}

/* ---- Operands packed once ------------------------------------------------

   The layout pmx_sgemm's loops read, for the whole of K at once: the depth
   blocks (block_depth) one after another, each holding every micro-panel
   (op(A), MR rows, zero-padded) or panel (op(B), NR columns) of that
   block, KD deep.  */

static size_t
round_up (int n, int m)
{
  return ((size_t) (n > 0 ? n : 0) + m - 1) / m * m;
}

/* Rows (A) or columns (B) of one panel of OPERAND.  */
static int
panel_width (pmx_gemm_kind kind, int operand)
{
  return operand == 'A' ? kind_mr (kind) : NR;
}

int
pmx_sgemm_panels (pmx_gemm_kind kind, int operand, int len)
{
  int w = panel_width (kind, operand);
  return (int) (round_up (len, w) / w);
}

size_t
pmx_sgemm_packed_size (pmx_gemm_kind kind, int operand, int len, int K)
{
  return round_up (len, panel_width (kind, operand)) * (size_t) (K > 0 ? K : 0);
}

int
pmx_sgemm_a_direct (int transa, float alpha, int lda)
{
#ifdef HAVE_X86_KERNELS
  (void) transa;                /* A's rows or columns: the same bound */
  return alpha == 1.0f && a_direct (lda);
#else
  (void) transa, (void) alpha, (void) lda;
  return 0;
#endif
}

void
pmx_sgemm_pack (pmx_gemm_kind kind, int operand, int trans, int len, int K, float alpha,
                const float *X, int ldx, int p0, int p1, float *dst)
{
#ifdef HAVE_X86_KERNELS
  int w = panel_width (kind, operand);
  int x0 = p0 * w, x1 = p1 * w < len ? p1 * w : len;
  if (x1 <= x0 || K <= 0)
    return;
  int kc = block_depth (K);
  size_t padded = round_up (len, w);
  for (int k0 = 0; k0 < K; k0 += kc)
    {
      int kd = K - k0 < kc ? K - k0 : kc;
      float *d = dst + (size_t) k0 * padded + (size_t) p0 * kd * w;
      if (operand == 'A')
        sg_pack_a (trans, X, ldx, x0, x1 - x0, k0, kd, w, alpha, d);
      else
        sg_pack_b (trans, X, ldx, k0, kd, x0, x1 - x0, d);
    }
#else
  (void) kind, (void) operand, (void) trans, (void) len, (void) K, (void) alpha;
  (void) X, (void) ldx, (void) p0, (void) p1, (void) dst;
#endif
}

void
pmx_sgemm_pre (pmx_gemm_kind kind, int transa, int transb, int M, int N, int K,
               float alpha, const float *A, int lda, const float *pa, const float *B,
               int ldb, const float *pb, float beta, float *C, int ldc,
               pmx_sgemm_ws *ws)
{
  pmx_sgemm_pre_bias (kind, transa, transb, M, N, K, alpha, A, lda, pa, B, ldb, pb,
                      beta, C, ldc, ws, NULL);
}

/* cblas_sgemm's product, with BIAS (not NULL: C filled with it first,
   BETA then 1).  */
static void
blas_bias (int transa, int transb, int M, int N, int K, float alpha, const float *A,
           int lda, const float *B, int ldb, float beta, float *C, int ldc,
           const float *bias)
{
  if (bias)
    {
      for (int i = 0; i < M; i++)
        memcpy (C + (size_t) i * ldc, bias, (size_t) N * sizeof *C);
      beta = 1.0f;
    }
  cblas_sgemm (CblasRowMajor, transa ? CblasTrans : CblasNoTrans,
               transb ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda,
               B, ldb, beta, C, ldc);
}

void
pmx_sgemm_pre_bias (pmx_gemm_kind kind, int transa, int transb, int M, int N, int K,
                    float alpha, const float *A, int lda, const float *pa,
                    const float *B, int ldb, const float *pb, float beta, float *C,
                    int ldc, pmx_sgemm_ws *ws, const float *bias)
{
  if (M <= 0 || N <= 0)
    return;
  if (beta != 0.0f)
    bias = NULL;
  if (kind == PMX_GEMM_NONE)
    {
      blas_bias (transa, transb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, bias);
      return;
    }
#ifdef HAVE_X86_KERNELS
  /* C = BETA C first, unless the first depth block overwrites it (BETA 0)
     or adds to it (BETA 1).  K = 0 leaves BETA C, or the bias.  */
  int acc0 = beta != 0.0f;
  if ((beta != 0.0f && beta != 1.0f) || (K <= 0 && beta == 0.0f))
    {
      for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++)
          C[(size_t) i * ldc + j] = beta == 0.0f ? (bias ? bias[j] : 0.0f)
            : beta * C[(size_t) i * ldc + j];
    }
  if (K <= 0)
    return;
  int mr = kind_mr (kind), kc = block_depth (K);
  int mc = M < SG_MC ? (M + mr - 1) / mr * mr : SG_MC;
  int nc = N < SG_NC ? (N + NR - 1) / NR * NR : SG_NC;
  size_t mpad = round_up (M, mr), npad = round_up (N, NR);
  size_t need = (pa ? 0 : (size_t) mc * kc) + (pb ? 0 : (size_t) kc * nc) + 16;
  pmx_sgemm_ws own = { NULL, 0 };
  if (!ws)
    ws = &own;
  if (pmx_sgemm_ws_reserve (ws, need) != 0)
    {
      /* No room to pack: OpenBLAS's product, slower where its kernels are
         not native, never wrong.  BETA has been applied.  Packed operands
         come with their A and B (pmx_sgemm_par).  */
      blas_bias (transa, transb, M, N, K, alpha, A, lda, B, ldb, acc0 ? 1.0f : 0.0f, C,
                 ldc, bias);
      return;
    }
  float *wa = ws->buf, *wb = ws->buf + (pa ? 0 : ((size_t) mc * kc + 15) / 16 * 16);
  for (int j0 = 0; j0 < N; j0 += SG_NC)
    {
      int ncb = N - j0 < SG_NC ? N - j0 : SG_NC;
      for (int k0 = 0; k0 < K; k0 += kc)
        {
          int kd = K - k0 < kc ? K - k0 : kc;
          int acc = acc0 || k0 > 0;
          const float *b = wb;
          if (pb)
            b = pb + (size_t) k0 * npad + (size_t) (j0 / NR) * kd * NR;
          else
            sg_pack_b (transb, B, ldb, k0, kd, j0, ncb, wb);
          for (int i0 = 0; i0 < M; i0 += SG_MC)
            {
              int mcb = M - i0 < SG_MC ? M - i0 : SG_MC;
              /* Whole micro-panels of op(A) in place (rows of A, or its
                 columns where op(A) = A^T) where a_direct allows; the
                 rest packed.  */
              int direct = !pa && pmx_sgemm_a_direct (transa, alpha, lda)
                ? mcb / mr * mr : 0;
              const float *a = wa;
              if (pa)
                a = pa + (size_t) k0 * mpad + (size_t) (i0 / mr) * kd * mr;
              else if (mcb > direct)
                sg_pack_a (transa, A, lda, i0 + direct, mcb - direct, k0, kd, mr, alpha,
                           wa);
              const float *ad = !direct ? NULL
                : transa ? A + (size_t) k0 * lda + i0 : A + (size_t) i0 * lda + k0;
              /* The bias goes in with the first depth block, where a C
                 filled with it would be read.  */
              run_panels (kind, kd, ad, transa ? A_COLS : A_ROWS, lda, a,
                          mcb, b, (size_t) kd * NR, C + (size_t) i0 * ldc + j0, ldc,
                          ncb, acc, bias && k0 == 0 ? bias + j0 : NULL);
            }
        }
    }
  if (ws == &own)
    free (own.buf);
#else
  (void) pa, (void) pb, (void) ws;
#endif
}
