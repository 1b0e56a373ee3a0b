/* train-model.h -- a trainable BERT / MUX-BERT: flat parameter and gradient
   buffers, a table of named tensors, and a forward pass that keeps every
   activation its backward needs (llm.c style).

   Two shapes of model:
     plain  (mux_n = 1, no muxing): E = LN(word[x] + pos[t] + type[s]),
            the encoder with the padding mask (unless attend_padding), and
            logits = classifier(h_0) ("cls" pooling, no pooler);
     muxed  (gaussian_hadamard + index_pos, MUX-PLM-SPEC.md §2.3, §4.1,
            §4.2): E1 = LN(word[x] + pos[t] + type[0]) per instance,
            M = (1/N) sum_i E1_i * instance_embedding[i] (fixed keys;
            pmx_mux_fwd, mux.h, as the multiplexer stage),
            E2 = LN(M + pos[t] + type[0]) with the same tables and LN, the
            encoder without a mask, then the classification demux
              z1 = gelu(dense_1([e_i ; h_0])), z2 = gelu(dense_2(z1)) + z1,
              z3 = LN_pd(gelu(pre_decoder(z2))) + z2, logits = classifier(z3)
            and the retrieval head for token retrieval and for MLM
            (every masked position of every instance, §4.5)
              LN_2(gelu(dense_2(LN_1(gelu(dense_1([e_i ; h_t])))))
              -> LN_rpd(gelu(retrieval_head.pre_decoder)) -> decoder.
   Layers may have any head count (0: no attention sublayer) and FFN width
   (0: no FFN sublayer), as CoFi-pruned models do.  Tensor names are those
   of lib/core/model.h.

   Dropout (probability cfg.dropout, during training only) is applied to the
   embedding output and to the attention-output and FFN-output projections
   before their residual sums, as BERT does; attention probabilities and the
   demultiplexer are not dropped out.

   CoFi structure masks (lib/prune/cofi-z.h, MUX-PLM-SPEC.md §6.1) are an
   option of the forward: pmx_tmodel_forward_z multiplies them where CoFi's
   modeling_bert.py does (each head's context by head_z, the
   attention-output dense by head_layer_z, the GELU output by
   intermediate_z, the FFN-output dense by mlp_z; hidden_z multiplies the
   embedding sum and every sublayer output before and after its LayerNorm,
   and that LayerNorm normalises over the dimensions with nonzero hidden_z
   only).  A sublayer whose head_layer_z or mlp_z is exactly 0 is an
   identity, its LayerNorm skipped, as CoFi's training code does.  One
   departure: for a muxed model the first, per-instance embedding pass is
   masked too (PruMUX's training leaves it unmasked, over all H dims), so
   that the masked model computes what the shrunk model does (§6.9).
   pmx_tmodel_backward_z gives the loss's gradient with respect to every
   mask value besides the weights'.

   Ownership: the model owns its buffers.  Errors: NULL / -1 with
   pmx_error set.  Not thread-safe on one model.  */

#ifndef PRUMUX_TRAIN_MODEL_H
#define PRUMUX_TRAIN_MODEL_H

#include <stddef.h>
#include <stdint.h>
#include "cofi-z.h"
#include "model.h"

#define PMX_TRAIN_MAX_LAYERS 64
#define PMX_TRAIN_NAME_MAX 96

typedef struct pmx_train_config
{
  int vocab, hidden, layers, head_dim, max_pos, type_vocab;
  int heads[PMX_TRAIN_MAX_LAYERS];      /* per layer; 0: attention pruned */
  int ffn[PMX_TRAIN_MAX_LAYERS];        /* per layer; 0: FFN pruned */
  int mux_n;                    /* N; 1 = plain model */
  int muxed;                    /* gaussian_hadamard + index_pos */
  int demux_hidden;             /* D: width after dense_1 (768 for pruned) */
  int num_labels;               /* 0: no classifier */
  int retrieval;                /* has the retrieval head (muxed only) */
  int attend_padding;           /* 1: no attention mask */
  int layer_transformation;     /* has CoFi's layer_transformation
                                   (lt_out, H) for layer distillation
                                   (aux: not saved in archives) */
  int lt_out;                   /* its output width, the teacher's hidden
                                   size (0: H) */
  float ln_eps;
  float dropout;
} pmx_train_config;

/* The one description of a model's shape is its archive configuration
   (pmx_model_config) with the per-layer shapes its tensors have; training
   derives its configuration from them here, and pmx_tmodel_archive_config
   (train-io.h) writes it back.  HEADS and FFN give the heads and FFN width
   of each of MC->layers layers (NULL: MC->heads and MC->intermediate in
   every layer, an unpruned model); DEMUX_HIDDEN is the width after the
   demultiplexer's dense_1 (0: MC->hidden).  RETRIEVAL asks for the
   retrieval head (multiplexed models only).  -1 with an error for a model
   training does not support (more than PMX_TRAIN_MAX_LAYERS layers;
   multiplexing other than gaussian_hadamard with index_pos and 3 demux
   layers; pooling other than cls).  The rest is checked by
   pmx_tmodel_new.  */
int pmx_train_config_from_model (pmx_train_config *c,
                                 const pmx_model_config *mc, const int *heads,
                                 const int *ffn, int demux_hidden,
                                 int retrieval, float dropout);

typedef struct pmx_tparam
{
  char name[PMX_TRAIN_NAME_MAX];
  int rank;
  int64_t shape[2];
  size_t offset, size;          /* in floats, into params and grads */
  int decay;                    /* weight decay applies (not biases, LN) */
  int frozen;                   /* never updated (instance_embedding) */
  int embedding;                /* embeddings.* (frozen with --freeze-embeddings) */
  int aux;                      /* a training aid, not part of the model:
                                   left out of archives */
} pmx_tparam;

/* Pointers into a flat buffer (parameters or their gradients); NULL for a
   tensor the model does not have.  */
typedef struct pmx_tlayer_w
{
  float *q_w, *q_b, *k_w, *k_b, *v_w, *v_b;     // (A, H), (A)
  float *ao_w, *ao_b, *ln1_w, *ln1_b;           // (H, A), (H)
  float *fi_w, *fi_b, *fo_w, *fo_b;             // (F, H), (F), (H, F), (H)
  float *ln2_w, *ln2_b;                         // (H)
} pmx_tlayer_w;

typedef struct pmx_tweights
{
  float *word, *pos, *type, *eln_w, *eln_b;     // (V,H) (P,H) (2,H) (H)
  pmx_tlayer_w layer[PMX_TRAIN_MAX_LAYERS];
  float *keys;                                  // (N, H) instance_embedding
  float *demux_e;                               // (N, H)
  float *d1_w, *d1_b, *d2_w, *d2_b;             // (D, 2H), (D, D)
  float *dln1_w, *dln1_b, *dln2_w, *dln2_b;     // (D)
  float *pd_w, *pd_b, *pdln_w, *pdln_b;         // demultiplexer (D, D)
  float *rpd_w, *rpd_b, *rpdln_w, *rpdln_b;     // retrieval_head (D, D)
  float *dec_w, *dec_b;                         // (V, D), (V)
  float *cls_w, *cls_b;                         // (C, D or H)
  float *lt_w, *lt_b;                           // (lt_out, H), (lt_out)
} pmx_tweights;

/* One batch: B rows of T tokens (B a multiple of N).  */
typedef struct pmx_tbatch
{
  int B, T;
  const int32_t *ids;           // (B, T)
  const int32_t *type_ids;      // (B, T) or NULL (plain model only)
  const int32_t *lengths;       // (B) real tokens, for the mask
  const int32_t *labels;        // (B) class, or -1 to ignore; NULL: no task
  const int32_t *ret_inst;      // (B/N, T) instance to retrieve at each
                                //   muxed position; NULL: no retrieval
  const int32_t *mlm_labels;    // (B, T) original token at each masked
                                //   position, -1 elsewhere (ids hold the
                                //   corrupted input); NULL: no MLM
  float task_weight, retrieval_weight, mlm_weight;
} pmx_tbatch;

typedef struct pmx_tmodel pmx_tmodel;
struct pmx_tmodel
{
  pmx_train_config cfg;
  int nparams;
  pmx_tparam *param;            /* the table, in archive order */
  size_t total;                 /* floats in params (= grads) */
  float *params, *grads;
  pmx_tweights w, g;            /* views of params and grads */
  int open;                     /* set: forwards keep gradient buffers for a
                                   loss computed outside (pmx_tacts) */
  int head_rows_only;           /* set: nothing but the task head reads the
                                   last layer's output, so an unmasked
                                   forward whose only loss is the task's (no
                                   retrieval or MLM inputs, not open) runs
                                   that layer for position 0 of each
                                   sequence alone, the row the head reads:
                                   the same results, a step's products cut
                                   by up to 1/layers.  Its hidden state in
                                   pmx_tacts is then NULL.  */
  void *act;                    /* private: activations of the last forward */
  struct pmx_par *par;          /* private: the threads (pmx_tmodel_set_threads) */
  int grads_zero;               /* private: every gradient is 0 (set by
                                   pmx_tmodel_zero_grad and
                                   pmx_tmodel_grads_zeroed, cleared by a
                                   forward, after which they may be written) */
};

/* What the last forward computed that a loss outside the model (such as
   distillation) reads, and where that loss puts its gradient before
   pmx_tmodel_backward.  For a muxed model the hidden states are the G = B/N
   multiplexed sequences.  Valid until the next forward.  */
typedef struct pmx_tacts
{
  int B, T, G, H, C, layers;
  const float *hidden[PMX_TRAIN_MAX_LAYERS + 1];
                                // (G, T, H): [0] the encoder's input (the
                                //   embeddings), [l + 1] layer l's output
                                //   (the last NULL under head_rows_only)
  const float *logits;          // (B, C) task logits, or NULL
  float *dhidden[PMX_TRAIN_MAX_LAYERS + 1];
                                // (G, T, H) dL/dhidden[l], zeroed by the
                                //   forward; NULL unless m->open
  float *dlogits;               // (B, C) dL/dlogits, likewise
} pmx_tacts;

/* A model with all parameters zero, or NULL with an error for an invalid
   configuration.  */
pmx_tmodel *pmx_tmodel_new (const pmx_train_config *cfg);
void pmx_tmodel_free (pmx_tmodel *m);
/* Run M's forwards, backwards and optimizer steps on THREADS threads (a
   model starts with one): the same results whatever the number (par.h).
   0, or -1 with an error (a thread that cannot start).  */
int pmx_tmodel_set_threads (pmx_tmodel *m, int threads);
/* What runs M's steps, for --verbose, into BUF (SIZE bytes): its threads
   and the kernels of the matrix products ("2 threads, matrix products on
   avx512").  */
void pmx_tmodel_describe (const pmx_tmodel *m, char *buf, size_t size);

/* BERT initialisation from SEED: weights N(0, 0.02), biases 0, LayerNorm
   1/0, instance keys N(0,1) rows normalised to norm 1, demux instance
   embeddings N(0, 1), the layer_transformation the identity.  */
void pmx_tmodel_init (pmx_tmodel *m, uint64_t seed);
/* The same for M's K-th parameter alone (the values pmx_tmodel_init
   gives it: each parameter's draw is its own).  */
void pmx_tmodel_init_param (pmx_tmodel *m, int k, uint64_t seed);
/* Each parameter of M from SRC where SRC has one of its name and shape,
   else initialised from SEED: pmx_tmodel_init and then pmx_tmodel_copy,
   without drawing what the copy replaces (on a MiniLM-size model the
   draws took some 0.4 s).  */
void pmx_tmodel_init_from (pmx_tmodel *m, uint64_t seed, const pmx_tmodel *src);

/* Copy every tensor of SRC that DST has under the same name and shape
   into DST; returns how many.  */
int pmx_tmodel_copy (pmx_tmodel *dst, const pmx_tmodel *src);

/* The table entry called NAME, or NULL.  */
const pmx_tparam *pmx_tmodel_find (const pmx_tmodel *m, const char *name);

/* Forward the batch and return the loss
     task_weight * mean CE(logits, labels)
       + retrieval_weight * mean CE(retrieval logits, retrieved tokens)
       + mlm_weight * mean CE(MLM logits, masked tokens)
   (a term is left out when its weight is 0 or its inputs are NULL, and
   is 0 when no row counts; a head with weight 0 but inputs still runs, for
   pmx_tmodel_stats).  TRAINING turns dropout on, with masks drawn from
   (SEED, STEP).  The activations are kept for pmx_tmodel_backward.
   Returns NaN with an error for a bad batch (id out of range, B not a
   multiple of N, T > max_pos, missing head) or no memory.  */
double pmx_tmodel_forward (pmx_tmodel *m, const pmx_tbatch *b, int training,
                           uint64_t seed, uint64_t step);

/* The same forward under the masks Z (NULL: unmasked, the same results as
   pmx_tmodel_forward).  Z must have the model's shape and stay unchanged
   until the backward.  */
double pmx_tmodel_forward_z (pmx_tmodel *m, const pmx_tbatch *b,
                             const pmx_cofi_z *z, int training, uint64_t seed,
                             uint64_t step);

/* The activations of the last forward, or NULL if there was none.  */
pmx_tacts *pmx_tmodel_acts (pmx_tmodel *m);

/* Per-row results of the last forward: logits (B, C) of the task head,
   or NULL.  Valid until the next forward.  */
const float *pmx_tmodel_logits (const pmx_tmodel *m);
/* What the last forward measured, whatever the weights: the summed loss,
   rows counted and rows whose argmax is the target, for the task head
   (when labels were given) and the retrieval head (when ret_inst was
   given).  */
typedef struct pmx_tstats
{
  double task_loss, ret_loss, mlm_loss;
  int task_count, task_correct, ret_count, ret_correct, mlm_count, mlm_correct;
} pmx_tstats;
void pmx_tmodel_stats (const pmx_tmodel *m, pmx_tstats *s);

/* Add the gradient of the last forward's loss to m->grads (call
   pmx_tmodel_zero_grad first to start afresh).  -1 if there was no
   forward.  */
int pmx_tmodel_backward (pmx_tmodel *m);
/* The same, for a forward under masks, also ADDING the gradient with
   respect to every mask value to DZ (same shape; may be NULL).  The loss
   differentiated includes whatever the caller put into the pmx_tacts
   gradient buffers.  */
int pmx_tmodel_backward_z (pmx_tmodel *m, pmx_cofi_z *dz);
/* Zero m->grads, unless they are known to be 0 already.  */
void pmx_tmodel_zero_grad (pmx_tmodel *m);
/* Tell M its gradients are all 0 (pmx_adamw_clip_step zeroes them as it
   reads them), until its next forward.  */
void pmx_tmodel_grads_zeroed (pmx_tmodel *m);

#endif
