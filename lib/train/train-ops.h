/* train-ops.h -- forward and backward passes of the operations a BERT /
   MUX-BERT training step is made of, in the style of llm.c.

   Every forward writes its output (and whatever its backward needs, such as
   LayerNorm statistics or attention probabilities) into caller-owned
   buffers.  Every backward ACCUMULATES (+=) into the input and parameter
   gradients, so a tensor used twice (the embedding tables and LayerNorm of
   the multiplexer's two passes, a residual stream) simply receives both
   contributions; callers zero the gradients once per step.  The _to forms
   WRITE the input's gradient instead (0 + the contribution: the values of
   zeroing it and accumulating, without the pass over it), for a buffer's
   first contribution; their parameter gradients still accumulate.  Matrices are
   row-major; weights have the nn.Linear layout (out, in).  Nothing here
   allocates, prints or fails.  The matrix products, LayerNorm, the
   linear layers' bias and GELU epilogues and gradients, GELU's backward and
   attention's (sequence, head) pairs run on PAR's threads (par.h: the same
   bits whatever their number, each column's sum in row order as on one
   thread; NULL: the caller's thread alone).  Gradient tests:
   tests/test-train-ops.c.  */

#ifndef PRUMUX_TRAIN_OPS_H
#define PRUMUX_TRAIN_OPS_H

#include <stdint.h>

/* A training step's threads (par.h, internal to libprumux).  */
typedef struct pmx_par pmx_par;

/* The multiplexer's forward and backward (pmx_mux_fwd, pmx_mux_bwd) are
   in mux.h, with the stage that runs them.  */

/* out (R, H) = word[ids[r]] + pos[r % T] + type[types ? types[r] : 0]:
   R = B*T token rows.  The ids must be in range (checked by the caller).  */
void pmx_embed_sum_fwd (const pmx_par *par, float *out, const int32_t *ids,
                        const int32_t *types, const float *word, const float *pos,
                        const float *type, int R, int T, int H);
/* Scatter-add dout into the tables (any may be NULL: frozen), each
   table row's additions in row order whatever the threads.  */
void pmx_embed_sum_bwd (const pmx_par *par, float *dword, float *dpos, float *dtype,
                        const float *dout, const int32_t *ids,
                        const int32_t *types, int R, int T, int H);

/* out (R, C) = (inp - mean) * rstd * w + b over each row (biased variance,
   as torch.nn.LayerNorm); mean and rstd (R) are kept for the backward.
   The forward is inference's kernel (pmx_layernorm_stats).  */
void pmx_layernorm_fwd (const pmx_par *par, float *out, float *mean, float *rstd,
                        const float *inp, const float *w, const float *b, int R,
                        int C, float eps);
void pmx_layernorm_bwd (const pmx_par *par, float *dinp, float *dw, float *db,
                        const float *dout, const float *inp, const float *w,
                        const float *mean, const float *rstd, int R, int C);
void pmx_layernorm_bwd_to (const pmx_par *par, float *dinp, float *dw, float *db,
                           const float *dout, const float *inp, const float *w,
                           const float *mean, const float *rstd, int R, int C);

/* CoFi's LayerNorm under a hidden mask z (C): normalise each row over the
   columns whose z is nonzero only (their count in place of C); the other
   columns are copied from inp (and their gradient passes through).  Z
   NULL (or no zero in z) keeps every column: inference's kernel, and
   pmx_layernorm_fwd and _bwd are that case.  */
void pmx_layernorm_z_fwd (const pmx_par *par, float *out, float *mean, float *rstd,
                          const float *inp, const float *w, const float *b,
                          const float *z, int R, int C, float eps);
void pmx_layernorm_z_bwd (const pmx_par *par, float *dinp, float *dw, float *db,
                          const float *dout, const float *inp, const float *w,
                          const float *z, const float *mean, const float *rstd,
                          int R, int C);
void pmx_layernorm_z_bwd_to (const pmx_par *par, float *dinp, float *dw, float *db,
                             const float *dout, const float *inp, const float *w,
                             const float *z, const float *mean, const float *rstd,
                             int R, int C);

/* out (R, O) = inp (R, In) W^T + bias; bias may be NULL.  */
void pmx_linear_fwd (const pmx_par *par, float *out, const float *inp,
                     const float *w, const float *bias, int R, int In, int O);
/* dinp += dout W; dw += dout^T inp; dbias += column sums of dout.  Any of
   dinp, dw, dbias may be NULL (not needed).  */
void pmx_linear_bwd (const pmx_par *par, float *dinp, float *dw, float *dbias,
                     const float *dout, const float *inp, const float *w, int R,
                     int In, int O);
void pmx_linear_bwd_to (const pmx_par *par, float *dinp, float *dw, float *dbias,
                        const float *dout, const float *inp, const float *w, int R,
                        int In, int O);

/* out = gelu (inp) = inp/2 (1 + erf (inp/sqrt 2)), exact, over N values.  */
void pmx_gelu_fwd (float *out, const float *inp, int n);
void pmx_gelu_bwd (float *dinp, const float *inp, const float *dout, int n);

/* The FFN's fused form: pre (R, O) = inp W^T + bias, out = gelu (pre),
   GELU by the encoder's vectorised kernel (lib/cpu/kernels.h, erf to about
   1e-7).  */
void pmx_linear_gelu_fwd (const pmx_par *par, float *pre, float *out,
                          const float *inp, const float *w, const float *bias,
                          int R, int In, int O);
/* Its backward, with Phi (pre) taken as out / pre (no erf): dinp += dout *
   (Phi (pre) + pre phi (pre)).  */
void pmx_gelu_bwd_out (const pmx_par *par, float *dinp, const float *pre,
                       const float *out, const float *dout, int n);
void pmx_gelu_bwd_out_to (const pmx_par *par, float *dinp, const float *pre,
                          const float *out, const float *dout, int n);

/* Multi-head self-attention of B sequences of T tokens, NH heads of HD,
   queried by each sequence's first TQ positions (T: all of them; 1:
   position 0 alone, the only row a classifier reads of the last layer):
   k, v (B*T, NH*HD); q, out (B*TQ, NH*HD); att (B, NH, TQ, T) holds the
   probabilities.  Scores are scaled by 1/sqrt(HD).  LENGTHS (B), if not
   NULL, masks the keys at t >= lengths[b] (BERT's padding mask); NULL
   attends to all.  */
void pmx_attention_fwd (const pmx_par *par, float *out, float *att,
                        const float *q, const float *k, const float *v,
                        const int32_t *lengths, int B, int T, int TQ, int NH,
                        int HD);
/* SCRATCH holds TQ*T floats for each of PAR's threads.  */
void pmx_attention_bwd (const pmx_par *par, float *dq, float *dk, float *dv,
                        float *scratch, const float *dout, const float *att,
                        const float *q, const float *k, const float *v, int B,
                        int T, int TQ, int NH, int HD);
void pmx_attention_bwd_to (const pmx_par *par, float *dq, float *dk, float *dv,
                           float *scratch, const float *dout, const float *att,
                           const float *q, const float *k, const float *v, int B,
                           int T, int TQ, int NH, int HD);

/* Softmax cross-entropy of R rows of C logits against TARGET (R); rows
   whose target is < 0 are ignored.  probs (R, C) keeps the softmax.
   Returns the SUM of the per-row losses; *COUNT gets the rows counted.  */
double pmx_softmax_xent_fwd (float *probs, const float *logits,
                             const int32_t *target, int R, int C, int *count);
/* dlogits += scale * (probs - onehot (target)); ignored rows get nothing.  */
void pmx_softmax_xent_bwd (float *dlogits, const float *probs,
                           const int32_t *target, int R, int C, float scale);

/* The index_pos demultiplexer input: out[r] = [e[inst[r]] ; h[src[r]]]
   (R, 2H) from the instance embeddings e (N, H) and vectors h (*, H).  */
void pmx_concat_fwd (float *out, const float *e, const int32_t *inst,
                     const float *h, const int32_t *src, int R, int H);
void pmx_concat_bwd (float *de, float *dh, const float *dout,
                     const int32_t *inst, const int32_t *src, int R, int H);

/* Inverted dropout: mask[i] = 0 with probability P, else 1/(1-P), drawn
   from the counter-based generator (SEED, STREAM) as element FIRST + i of
   the stream, so a step is the same whatever the thread count and a part
   of a tensor gets the mask that the whole would; then x *= mask.  */
void pmx_dropout_mask (float *mask, int64_t n, float p, uint64_t seed,
                       uint64_t stream, int64_t first);
void pmx_mul (float *x, const float *mask, int64_t n);
/* The same draw and product in one pass on PAR's threads (the mask of an
   element depends on its index alone, so the same bits), and the
   backward's dx *= mask on them.  */
void pmx_dropout_fwd (const pmx_par *par, float *x, float *mask, int64_t n, float p,
                      uint64_t seed, uint64_t stream, int64_t first);
void pmx_dropout_bwd (const pmx_par *par, float *dx, const float *mask, int64_t n);

/* y += x over N values.  */
void pmx_add (float *y, const float *x, int64_t n);

/* A reproducible 64-bit hash (splitmix64), the library's random source.  */
uint64_t pmx_mix64 (uint64_t x);

#endif
