/* gemm.h -- C = A W^T with W packed once, the encoder's dense layers.

   A model's weights do not change between calls, so they are rearranged
   once, at load time, into the panel layout the micro-kernel reads (NR
   columns of W^T side by side, K deep, zero-padded to a whole panel).
   OpenBLAS instead repacks the whole of W on every call; with the encoder's
   row blocks of a few hundred tokens that copy was about a tenth of its
   time.  Only A's row block is packed per call, into scratch that the
   caller owns, or read in place where its rows allow (gemm.c, a_direct).

   Kernels: AVX-512 (12 x 32 tile) and AVX2+FMA (6 x 16), picked by what the
   CPU supports when W is packed.  Without either, pmx_packed_init makes a
   packing of kind PMX_GEMM_NONE (nothing allocated) and the caller uses
   BLAS on W itself.

   Results depend only on the shapes, never on how rows are split between
   threads: each element is one dot product summed in the same order.  */

#ifndef PRUMUX_GEMM_H
#define PRUMUX_GEMM_H

#include <stddef.h>

typedef enum pmx_gemm_kind
{
  PMX_GEMM_NONE,                /* no kernel for this CPU: use BLAS */
  PMX_GEMM_AVX2,
  PMX_GEMM_AVX512,
  PMX_GEMM_BEST                 /* as a request: the best the CPU has */
} pmx_gemm_kind;

/* W (N, K) row-major, packed.  Owns its panels; W itself is not kept.  */
typedef struct pmx_packed
{
  pmx_gemm_kind kind;
  int N, K;
  int nr;                       /* panel width */
  float *panels;                /* ceil (N / nr) panels of K * nr floats */
} pmx_packed;

/* The best kernel this CPU runs (PMX_GEMM_NONE if neither).  */
pmx_gemm_kind pmx_gemm_best (void);
/* "avx512", "avx2", "blas" (PMX_GEMM_NONE) or "best", and back: 0, or -1
   with an error for an unknown NAME.  */
const char *pmx_gemm_kind_name (pmx_gemm_kind kind);
int pmx_gemm_kind_parse (const char *name, pmx_gemm_kind *kind);

/* Pack W (N, K) for KIND (PMX_GEMM_BEST: pmx_gemm_best ()).  Returns 0, or
   -1 with an error (out of memory, KIND not supported by this CPU).  With
   kind PMX_GEMM_NONE nothing is allocated.  */
int pmx_packed_init (pmx_packed *p, const float *W, int N, int K, pmx_gemm_kind kind);
void pmx_packed_release (pmx_packed *p);

/* Floats of scratch pmx_gemm_packed needs for up to M rows with KIND.  */
size_t pmx_gemm_scratch (pmx_gemm_kind kind, int M);

/* C[0..M, N0..N1) (ldc) = A (M, K) (lda) W[N0..N1)^T, plus C's old value if
   ACCUMULATE.  N0 is a multiple of p->nr.  SCRATCH holds
   pmx_gemm_scratch (p->kind, M) floats, 64-byte aligned.  p->kind must not be
   PMX_GEMM_NONE.  */
void pmx_gemm_packed (const pmx_packed *p, const float *A, int lda, float *C, int ldc,
                      int M, int N0, int N1, int accumulate, float *scratch);

/* C (M, N) (ldc) = A (M, K) (lda) W^T, every column, M rows at a time in
   blocks of PMX_GEMM_ROWS (so SCRATCH, pmx_gemm_scratch (p->kind,
   PMX_GEMM_ROWS) floats 64-byte aligned, does not grow with M).  The same
   bits as pmx_sgemm_rows on W itself (same depth blocks, same kernel): for
   weights used on many small batches, packed once instead of per call.
   p->kind must not be PMX_GEMM_NONE.  */
enum { PMX_GEMM_ROWS = 252 };
void pmx_gemm_packed_rows (const pmx_packed *p, const float *A, int lda, float *C,
                           int ldc, int M, float *scratch);
/* C (M, N) (ldc) = A (M, K) (lda) W^T, W's rows LDW apart: on P, W packed
   once, where P is not NULL and of a kernel (pmx_gemm_packed_rows, SCRATCH
   as there), else pmx_sgemm_rows on W.  The same bits either way.  */
void pmx_sgemm_rows_packed (const pmx_packed *p, const float *W, int ldw, int N,
                            int K, const float *A, int lda, float *C, int ldc, int M,
                            float *scratch);

/* ---- General matrix products (attention, training) --------------------

   C (M, N) (ldc) = ALPHA op(A) op(B) + BETA C, row-major, op(X) = X or
   X^T as TRANSA / TRANSB say: cblas_sgemm's contract (CblasRowMajor), on
   this file's micro-kernels, except that products under 2^21 multiply-adds
   (attention's) run on OpenBLAS where it runs kernels native to this CPU
   (pmx_blas_native), so no hot path depends on OpenBLAS knowing the CPU
   (Debian's 0.3.21 falls back to generic SSE3 code, 9 times slower, on
   CPUs it does not know).  Blocked like the packed product: op(B)
   is packed per call, KC x NC at a time, op(A) MC x KC at a time.  On our
   kernels each element of C is summed in an order that depends only on K,
   so a row's result does not depend on M; OpenBLAS makes no such promise
   (its edge kernels differ), so products whose rows must not depend on
   the batch use pmx_sgemm_rows.  ALPHA scales op(A) as it is packed.
   Single-threaded: callers split the work.  On a CPU without our kernels
   (PMX_GEMM_NONE) it calls cblas_sgemm.

   WS is a workspace the caller owns and reuses between calls (it grows to
   the largest blocks seen; pmx_sgemm_ws_free releases it); NULL allocates
   and frees one per call.  It cannot fail: without memory for the packed
   blocks it calls cblas_sgemm.  */

typedef struct pmx_sgemm_ws
{
  float *buf;
  size_t cap;                   /* floats */
} pmx_sgemm_ws;

void pmx_sgemm (int transa, int transb, int M, int N, int K, float alpha,
                const float *A, int lda, const float *B, int ldb, float beta,
                float *C, int ldc, pmx_sgemm_ws *ws);
/* The same on our kernels wherever this CPU has them, even where
   OpenBLAS's are native: row i of C depends on row i of op(A) and on op(B)
   only, never on M, so that inference gives a row the same bits whichever
   rows share its batch (a run split by parallel --pipe gives the single
   run's bytes).  */
void pmx_sgemm_rows (int transa, int transb, int M, int N, int K, float alpha,
                     const float *A, int lda, const float *B, int ldb,
                     float beta, float *C, int ldc, pmx_sgemm_ws *ws);
/* What pmx_sgemm runs: our kernel's name, "openblas (CORE)", or "openblas
   (CORE) for small products, KERNEL for large".  */
const char *pmx_sgemm_name (void);
/* OpenBLAS's core name ("unknown" if it does not say), and whether it is
   native to this CPU (written for its widest vectors; 1 on CPUs where we
   have no kernel of our own).  */
const char *pmx_blas_corename (void);
int pmx_blas_native (void);

/* The same with a given kernel, PMX_GEMM_NONE for OpenBLAS (tests,
   benchmarks); 0, or -1 with an error for a kernel this CPU cannot run.  */
int pmx_sgemm_kind (pmx_gemm_kind kind, int transa, int transb, int M, int N,
                    int K, float alpha, const float *A, int lda, const float *B,
                    int ldb, float beta, float *C, int ldc, pmx_sgemm_ws *ws);
void pmx_sgemm_ws_free (pmx_sgemm_ws *ws);
/* Make WS hold at least FLOATS floats, 64-byte aligned (its contents are
   not kept): 0, or -1 without memory (WS unchanged; no error set).  */
int pmx_sgemm_ws_reserve (pmx_sgemm_ws *ws, size_t floats);
/* The kernel pmx_sgemm runs for a product of MACS multiply-adds.  */
pmx_gemm_kind pmx_sgemm_kind_for (double macs);

/* ---- Operands packed once, for a product cut into blocks ---------------

   Blocks of rows of one product all read the whole of op(B), blocks of
   columns the whole of op(A): packed once and shared, instead of once a
   block (par.c).  A packed operand covers all of K in pmx_sgemm's depth
   blocks, each holding the operand's panels: OPERAND 'A', micro-panels of
   the kernel's MR rows of op(A) (times ALPHA); 'B', 16-wide panels of
   op(B).  The result is the same bits as pmx_sgemm_kind's.  */

/* Panels of an operand LEN rows (A) or columns (B) long, and the floats
   of its packing K deep.  */
int pmx_sgemm_panels (pmx_gemm_kind kind, int operand, int len);
size_t pmx_sgemm_packed_size (pmx_gemm_kind kind, int operand, int len, int K);
/* Whether pmx_sgemm reads op(A)'s whole micro-panels in place (no packing
   to share).  */
int pmx_sgemm_a_direct (int transa, float alpha, int lda);
/* Pack panels P0..P1 of op(X) (LEN long, K deep; X row-major, LDX, TRANS
   as TRANSA or TRANSB; ALPHA for A only) into their places in DST, which
   holds pmx_sgemm_packed_size floats, 64-byte aligned: disjoint panel
   ranges may be packed by different threads.  KIND is one of ours.  */
void pmx_sgemm_pack (pmx_gemm_kind kind, int operand, int trans, int len, int K,
                     float alpha, const float *X, int ldx, int p0, int p1, float *dst);
/* pmx_sgemm_kind's product, with op(A) (all M rows) taken from PA and/or
   op(B) (all N columns) from PB where not NULL, packed for KIND by
   pmx_sgemm_pack.  A and B must still be given: KIND PMX_GEMM_NONE, or no
   memory for the rest of the packing, runs cblas_sgemm on them.  */
void pmx_sgemm_pre (pmx_gemm_kind kind, int transa, int transb, int M, int N, int K,
                    float alpha, const float *A, int lda, const float *pa,
                    const float *B, int ldb, const float *pb, float beta, float *C,
                    int ldc, pmx_sgemm_ws *ws);

/* The same with a bias: with BETA 0 and BIAS not NULL (N floats, by
   column), C = BIAS + ALPHA op(A) op(B), the bits of filling C with BIAS
   and taking BETA 1, without that pass over C (the kernels add BIAS where
   they would add C's old value).  BIAS is ignored with BETA not 0.  */
void pmx_sgemm_pre_bias (pmx_gemm_kind kind, int transa, int transb, int M, int N,
                         int K, float alpha, const float *A, int lda, const float *pa,
                         const float *B, int ldb, const float *pb, float beta, float *C,
                         int ldc, pmx_sgemm_ws *ws, const float *bias);

#endif
