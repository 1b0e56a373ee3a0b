/* demux-head.h -- the index_pos demultiplexer's classification head, one
   forward for inference (demux.c) and training (train-model.c), and
   training's backward beside it.

   MUX-PLM's index_pos head reads, for instance i of group g, the group's
   position-0 vector h_g and the instance embedding e_i:
     z = gelu (dense_1 [e_i ; h_g]);  z += gelu (dense_k z), k = 2..L-1;
     out = z + LN (gelu (pre_decoder z)).
   dense_1 [e_i ; h] = W[:, :H] e_i + W[:, H:] h + b is computed in split
   form: the e_i half once per model (or per training step) for the N
   instances, the h half once per group, so a group of N costs one product
   of width H, not N of width 2H.

   Rows of the outputs are B = G*N, row g*N + i.  Nothing here allocates
   or fails; the caller owns every buffer.  */

#ifndef PRUMUX_DEMUX_HEAD_H
#define PRUMUX_DEMUX_HEAD_H

#define PMX_DEMUX_HEAD_MAX_DENSE 16

struct pmx_packed;              /* gemm.h, internal */

/* The head's weights (borrowed), or, for the backward, their gradients in
   the same layout.  */
typedef struct pmx_demux_head
{
  int N, H, D;                  /* instances, encoder width, head width */
  int ndense;                   /* dense_1 .. dense_ndense */
  const float *inst;            // (N, H) demux_instance_embedding
  const float *w[PMX_DEMUX_HEAD_MAX_DENSE];   // dense_1 (D, 2H), then (D, D)
  const float *b[PMX_DEMUX_HEAD_MAX_DENSE];   // (D)
  const float *pre_w, *pre_b;   // pre_decoder (D, D), (D)
  const float *ln_w, *ln_b;     // pre_decoder_layer_norm (D)
  float eps;
  /* Inference's (NULL in training, whose weights change every step): the
     forward's products' weights packed once, dense_1's h half W[:, H:],
     dense_k for k >= 2 (index k - 1) and pre_decoder, and SCRATCH for
     pmx_gemm_packed_rows.  The same bits as without them.  */
  const struct pmx_packed *pw_h, *pw[PMX_DEMUX_HEAD_MAX_DENSE], *pre_pw;
  float *scratch;
} pmx_demux_head;

/* The gradients of a pmx_demux_head's weights, the same layout; INST may
   be NULL (the instance embedding is then not trained).  */
typedef struct pmx_demux_head_grad
{
  float *inst;
  float *w[PMX_DEMUX_HEAD_MAX_DENSE], *b[PMX_DEMUX_HEAD_MAX_DENSE];
  float *pre_w, *pre_b, *ln_w, *ln_b;
} pmx_demux_head_grad;

/* What training's backward reads, each (B, D) unless said; the caller
   owns the buffers.  */
typedef struct pmx_demux_head_act
{
  float *pre[PMX_DEMUX_HEAD_MAX_DENSE]; /* dense_k's output, before GELU */
  float *z[PMX_DEMUX_HEAD_MAX_DENSE];   /* the stream after dense_k */
  float *p, *pg, *pl;           /* pre_decoder, its GELU, LN of that */
  float *mean, *rstd;           // (B) the LN's statistics
} pmx_demux_head_act;

/* C (N, D) = W1[:, :H] e_i + b_1: dense_1's instance half.  */
void pmx_demux_head_inst (const pmx_demux_head *hd, float *C);

/* OUT (G*N, D): the head over G groups whose h_0 are the rows of X (G, H;
   rows LDX floats apart), with C from pmx_demux_head_inst.  U is scratch
   of max (G, G*N) * D floats.  ACT NULL (inference) computes in place in
   OUT and U; otherwise ACT receives the activations of the backward (and
   the results are the same bits).  */
void pmx_demux_head_fwd (const pmx_demux_head *hd, const float *C,
                         const float *X, int ldx, int G, float *U,
                         float *out, const pmx_demux_head_act *act);

/* The backward of pmx_demux_head_fwd for DOUT (G*N, D): adds the weights'
   gradients to GRAD's buffers and the h_0
   rows' to DX (G, H; rows LDX apart).  DACT is scratch shaped as ACT
   (pre[k] and z[k] for k < ndense, p, pg; (B, D) each), DC (N, D) and DU
   (G, D) too.  dense_1's weight gradient is its two halves' side by side:
   the instance half from DC, the h half from DU.  */
void pmx_demux_head_bwd (const pmx_demux_head *hd,
                         const pmx_demux_head_grad *grad,
                         const pmx_demux_head_act *act,
                         const pmx_demux_head_act *dact, const float *X,
                         int ldx, int G, const float *dout, float *dX,
                         float *dC, float *dU);

#endif
