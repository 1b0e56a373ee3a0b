/* kernels.h -- the encoder's fused elementwise CPU kernels.

   Each kernel makes a single pass over rows that were just produced by a
   GEMM (and are still in cache): bias + GELU, bias + residual + LayerNorm,
   bias alone, and a row softmax.  They are compiled for several x86 ISA
   levels (AVX-512, AVX2+FMA, baseline) and the best one is picked at load
   time, so distribution builds need no -march.

   GELU is the exact erf form 0.5 x (1 + erf (x / sqrt 2)) with a rational
   erf approximation (absolute error about 1e-7, see tests/test-encoder.c);
   exp in the softmax is a range-reduced polynomial (about 2 ulp).  The
   pmx_ref_* functions are plain double-precision references for tests.

   All matrices are row-major; LD is the distance between rows, in floats.
   Nothing here allocates or fails.  */

#ifndef PRUMUX_KERNELS_H
#define PRUMUX_KERNELS_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

/* GELU with libm's erff, 0.5 x (1 + erf (x / sqrt 2)), as
   transformers.activations.gelu: the one exact GELU of the
   demultiplexers (demux.c) and of training's heads (train-ops.c,
   pmx_gelu_fwd), so that both compute the demux head's activations
   alike.  The encoder's FFN uses the vectorised pmx_bias_gelu below.  */
static inline float
pmx_gelu_erf (float x)
{
  return 0.5f * x * (1.0f + erff (x * (float) M_SQRT1_2));
}

/* X[r, j] += BIAS[j] for ROWS rows of N.  */
void pmx_add_bias (float *x, int ld, const float *bias, int rows, int n);
/* X[r, j] = gelu (X[r, j] + BIAS[j]).  */
void pmx_bias_gelu (float *x, int ld, const float *bias, int rows, int n);
/* The same, keeping GELU's input: PRE[r, j] = X[r, j] + BIAS[j] (PRE's
   rows LD apart too), X[r, j] = gelu (PRE[r, j]) with pmx_bias_gelu's
   bits; one pass for training's FFN, whose backward reads PRE.  */
void pmx_bias_gelu_keep (float *x, float *pre, int ld, const float *bias, int rows,
                         int n);
/* X[r] = LayerNorm (X[r] + Y[r] + BIAS) * GAMMA + BETA over N elements, the
   post-LN residual of BERT (X is the residual stream, updated in place;
   rows of X are N apart).  Y or BIAS may be NULL (left out).  The encoder
   passes Y = NULL: its GEMM has already added into X (beta = 1).  */
void pmx_bias_residual_layernorm (float *x, const float *y, int ldy,
                                  const float *bias, const float *gamma,
                                  const float *beta, int rows, int n, float eps);
/* OUT[r] = LayerNorm (INP[r]) * GAMMA + BETA for ROWS rows of N (OUT may
   be INP), by the code of pmx_bias_residual_layernorm and so with its
   bits; MEAN[r] and RSTD[r] = 1 / sqrt (var + EPS) receive each row's
   statistics, for training's backward (train-ops.c).  */
void pmx_layernorm_stats (float *out, float *mean, float *rstd,
                          const float *inp, const float *gamma,
                          const float *beta, int rows, int n, float eps);
/* Softmax of SCALE times each row of X (SCALE > 0), in place: attention's
   1/sqrt(dh) applied here rather than to Q or the scores (no pass of its
   own; with SCALE 1 the plain softmax).  */
void pmx_softmax_rows (float *x, int ld, int rows, int n, float scale);
/* What pmx_softmax_rows runs on CPUs without AVX-512 (where they have
   it, its own AVX-512 code: the same maths, other roundings), for tests
   to check both.  */
void pmx_softmax_rows_portable (float *x, int ld, int rows, int n, float scale);

/* How many of the N floats at X are NaN or infinite (weights are checked
   with it at load, activations after each stage).  */
size_t pmx_count_nonfinite (const float *x, size_t n);

/* Training's elementwise steps, vectorised like the encoder's kernels.
   AdamW on N parameters X with gradients G times GSCALE (exact for 1)
   and moments M, V: x = x DECAY - STEP_SIZE m / (sqrt (v) / BC2_SQRT +
   EPS) after the moment updates (optim.c says why); then, with ZERO_G, G
   = 0 (the next step's zeroing, while G is in cache).  GELU's backward
   from the saved input PRE and output OUT = gelu (PRE): DINP += DOUT
   gelu' (PRE), or with ACC 0 DINP = 0 + DOUT gelu' (PRE) (the bits of
   zeroing DINP first, without the pass).  Y += X.  X *= A.  The sum of squares of X in double, in an
   order that does not depend on the clone.  Y[C0..C1) += the sums of
   those columns of X (ROWS rows, LD apart), each column in row order (a
   bias's gradient).  The arrays of one call must not overlap.  */
void pmx_adamw_update (float *x, float *g, float *m, float *v, size_t n, float decay,
                       float beta1, float beta2, float step_size, float bc2_sqrt,
                       float eps, float gscale, int zero_g);
void pmx_gelu_bwd_vec (float *dinp, const float *pre, const float *out,
                       const float *dout, size_t n, int acc);
void pmx_vadd (float *y, const float *x, size_t n);
void pmx_vscale (float *x, float a, size_t n);
double pmx_sum_squares (const float *x, size_t n);
void pmx_colsum_acc (float *y, const float *x, int ld, int rows, int c0, int c1);
/* CoFi's masks: ACC[C0..C1) += the sums of X Y (elementwise, in double)
   over those columns of ROWS rows (both LD apart), each column in row
   order; Y = X * S * HZ[j] column-wise for ROWS rows of N (Y may be X).  */
void pmx_colsum_prod (double *acc, const float *x, const float *y, int ld, int rows,
                      int c0, int c1);
void pmx_mul_cols (float *y, const float *x, const float *hz, float s, int rows, int n);
/* LayerNorm's backward over every column, for ROWS rows of N from the
   input X, the output's gradient D, the weight W and the forward's MEAN
   and RSTD: DX += rstd (d w - mean (d w) - x^ mean (d w x^)), x^ =
   (x - mean) rstd, the two means summed in double (in lanes), or with ACC
   0 DX = 0 + that (as gelu's backward above); and the
   weight's and bias's gradients for columns C0..C1: DW += d x^, DB += d,
   each column summed over the rows in order.  */
void pmx_layernorm_bwd_rows (float *dx, const float *d, const float *x, const float *w,
                             const float *mean, const float *rstd, int rows, int n,
                             int acc);
void pmx_layernorm_grad_cols (float *dw, float *db, const float *d, const float *x,
                              const float *mean, const float *rstd, int rows, int n,
                              int c0, int c1);

/* splitmix64's finaliser of X + the golden gamma: the library's random
   source (pmx_mix64, train-ops.h), inline for the dropout kernel.  */
static inline uint64_t
pmx_splitmix64 (uint64_t x)
{
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

/* Inverted dropout's mask for elements FIRST.. FIRST+N of the stream BASE
   (pmx_dropout_mask's draw: element i is 0 where the top 24 bits of
   pmx_splitmix64 (BASE + FIRST + i), as a fraction, fall under P, else
   KEEP), into MASK, and X *= MASK, in one pass; X may be NULL (the mask
   alone).  X *= MASK over N values.  */
void pmx_dropout_kernel (float *x, float *mask, size_t n, float p, float keep,
                         uint64_t base, uint64_t first);
void pmx_vmul (float *x, const float *mask, size_t n);

/* Scalar GELU and exp used by the kernels, for tests.  */
float pmx_gelu_fast (float x);
float pmx_exp_fast (float x);

/* Double-precision references with the same contracts.  */
void pmx_ref_bias_gelu (float *x, int ld, const float *bias, int rows, int n);
void pmx_ref_bias_residual_layernorm (float *x, const float *y, int ldy,
                                      const float *bias, const float *gamma,
                                      const float *beta, int rows, int n,
                                      float eps);
void pmx_ref_softmax_rows (float *x, int ld, int rows, int n, float scale);

#endif
