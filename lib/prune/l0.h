/* l0.h -- CoFi's hard-concrete masks (the L0Module of MUX-PLM-SPEC.md
   §6.1-§6.5): one log alpha per prunable structure, the masks z sampled
   from them in training, the deterministic masks at the end, the expected
   sparsity and the Lagrangian that pulls it to a target.

   The log alphas live in one flat array, in the order of the masks TSV
   (lib/prune/cofi-z.h):

     head          layer by layer, heads[l] each
     head_layer    L
     intermediate  layer by layer, ffn[l] each
     mlp           L
     hidden        H

   so an optimizer and a checkpoint treat them as one tensor; the masks
   themselves (z) and their gradients dL/dz travel as pmx_cofi_z, the form
   the masked forward reads.  Gradients accumulate (+=) into GRAD and
   LAMBDA_GRAD; the caller zeroes them (pmx_l0_zero_grad) after each
   optimizer step.

   Constants (§6.2): l = -0.1, r = 1.1, beta = 2/3, eps = 1e-6, the
   deterministic masks' 0.8; log alpha clamped to [log 1e-2, log 1e2].

   Precision: log alpha, z and the gradients are float; every sum and
   every nonlinearity is computed in double.

   Ownership: a pmx_l0 owns its arrays.  Errors: NULL / -1 with pmx_error
   set.  */

#ifndef PRUMUX_L0_H
#define PRUMUX_L0_H

#include <stddef.h>
#include <stdint.h>

#include "cofi-z.h"

#define PMX_L0_LIMIT_L (-0.1)
#define PMX_L0_LIMIT_R 1.1
#define PMX_L0_BETA (2.0 / 3.0)
#define PMX_L0_EPS 1e-6
#define PMX_L0_MAGIC 0.8

typedef struct pmx_l0
{
  /* The shape: that of the model being pruned (a layer may have fewer
     heads or FFN dimensions than another, or none).  */
  int layers, hidden;
  int heads[PMX_COFI_MAX_LAYERS], ffn[PMX_COFI_MAX_LAYERS];

  /* Where each kind starts in the flat arrays.  */
  size_t off_head[PMX_COFI_MAX_LAYERS];         /* heads[l] values */
  size_t off_head_layer;                        /* L values */
  size_t off_intermediate[PMX_COFI_MAX_LAYERS]; /* ffn[l] values */
  size_t off_mlp;                               /* L values */
  size_t off_hidden;                            /* H values */
  size_t n;                                     /* all of them */

  float *loga;          /* (n) log alpha: the trained parameters */
  float *grad;          /* (n) accumulated dL/dlog alpha */
  float *dz_dloga;      /* (n) of the last sample: dz/dlog alpha */
  float *u;             /* (n) the last sample's noise */
  void *scratch;        /* private: the deterministic masks' sort */

  /* The Lagrange multipliers (§6.5), trained by gradient ascent, and their
     accumulated gradients dL/dlambda.  */
  double lambda[2];
  double lambda_grad[2];

  /* The expected size's constants (§6.4): weights per (head, hidden
     dimension), 196864 / 768 for BERT-base (each FFN dimension counts 2
     per hidden dimension), and the prunable size.  */
  double head_weight;
  double prunable;

  /* The noise: sample K of a run draws from stream (SEED, DRAWS = K), so
     saving DRAWS in a checkpoint resumes the same noise.  */
  uint64_t seed;
  uint64_t draws;
} pmx_l0;

/* CoFi's weights per (head, hidden dimension) of an unpruned encoder of
   hidden size HIDDEN with HEADS heads per layer: params_per_head / H with
   params_per_head = (4 H^2 + 4 H) // HEADS (integer division, as CoFi).  */
double pmx_l0_head_weight (int hidden, int heads);

/* The masks of a model of SHAPE's shape (only the shape of SHAPE is read),
   log alpha drawn from normal(mean, 1e-2) with SEED: mean 10 for head,
   head_layer, mlp and hidden, 0 (droprate 0.5) for intermediate.
   HEAD_WEIGHT and PRUNABLE are the §6.4 constants of the unpruned model
   (pmx_l0_head_weight, pmx_cofi_prunable_size).  Lambdas start at 0.  */
pmx_l0 *pmx_l0_new (const pmx_cofi_z *shape, double head_weight,
                    double prunable, uint64_t seed);
void pmx_l0_free (pmx_l0 *l0);

/* Masks of all ones of L0's shape (for Z arguments).  */
pmx_cofi_z *pmx_l0_z_new (const pmx_l0 *l0);

/* The value at flat index I of Z (a pmx_cofi_z of L0's shape): a pointer
   into Z, so loops over the flat arrays can read and write masks.  */
float *pmx_l0_z_at (const pmx_l0 *l0, pmx_cofi_z *z, size_t i);

/* A training sample (§6.2): for every structure a fresh
   u ~ U(eps, 1 - eps), z = hardtanh (quantile_concrete (u, log alpha),
   0, 1), written into Z (L0's shape).  Remembers dz/dlog alpha for
   pmx_l0_backward and advances DRAWS.  */
void pmx_l0_sample (pmx_l0 *l0, pmx_cofi_z *z);

/* The same with the noise given: U (n values, flat order) in (0, 1).
   Does not advance DRAWS.  For tests against a reference.  */
void pmx_l0_sample_noise (pmx_l0 *l0, const float *u, pmx_cofi_z *z);

/* The noise pmx_l0_sample would draw now, into U (n values).  */
void pmx_l0_noise (const pmx_l0 *l0, float *u);

/* Backward of the last sample: GRAD += SCALE * DZ * dz/dlog alpha, with DZ
   = dL/dz (L0's shape); hardtanh passes the gradient only strictly inside
   (0, 1).  */
void pmx_l0_backward (pmx_l0 *l0, const pmx_cofi_z *dz, double scale);

/* cdf_qz (X, log alpha) of §6.2: P(s <= X), clamped to [eps, 1 - eps].  */
double pmx_l0_cdf (double x, double loga);

/* CoFi's deterministic masks (§6.3) into Z: per layer and kind (hidden as
   one vector), num_zeros = round (size - sum (1 - cdf_qz (0, log alpha)))
   (half to even, as Python), the num_zeros smallest of sigmoid (log alpha
   / beta * 0.8) set to 0 (ties: the lower index first), the others kept
   at that soft value.  */
void pmx_l0_deterministic (const pmx_l0 *l0, pmx_cofi_z *z);

/* The expected sparsity (§6.4): 1 - E[size] / prunable with
     E[size] = head_weight * sum_d hs_d * sum_{l,h} hl_l hd_{l,h}
             + 2 * sum_d hs_d * sum_{l,j} ml_l in_{l,j}
   where each factor is 1 - cdf_qz (0, log alpha) of its mask.  */
double pmx_l0_expected_sparsity (const pmx_l0 *l0);

/* GRAD += SCALE * d(expected sparsity)/d(log alpha).  */
void pmx_l0_expected_sparsity_backward (pmx_l0 *l0, double scale);

/* The target sparsity at PRUNED_STEPS optimizer steps of pruning (§6.5):
   START + (TARGET - START) * min (1, PRUNED_STEPS / WARMUP); TARGET when
   WARMUP <= 0.  */
double pmx_l0_target (double target, double start, int64_t pruned_steps,
                      int64_t warmup);

/* The Lagrangian lambda1 (s - t) + lambda2 (s - t)^2 with s the expected
   sparsity (stored in *SPARSITY when not NULL) and t = TARGET; returns
   it.  With SCALE != 0, also GRAD += SCALE * dLag/dlog alpha (through s)
   and LAMBDA_GRAD += SCALE * (s - t, (s - t)^2).  */
double pmx_l0_lagrangian (pmx_l0 *l0, double target, double scale,
                          double *sparsity);

/* Clamp every log alpha to [log 1e-2, log 1e2] (after each step).  */
void pmx_l0_constrain (pmx_l0 *l0);

/* Zero GRAD and LAMBDA_GRAD.  */
void pmx_l0_zero_grad (pmx_l0 *l0);

#endif
