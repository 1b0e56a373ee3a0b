/* demux.h -- the demultiplexer and the heads: encoder-output records in,
   one result per input row out.

   Multiplexed models (N > 1), for group g and instance i (row g*N + i),
   as the published code computes them (MUX-PLM-SPEC.md §4), h_t being the
   encoder output of group g at position t:
     index_pos  z1 = gelu(dense_1([e_i ; h_0]))              e_i: demux_instance_embedding
                z_k = gelu(dense_k(z_{k-1})) + z_{k-1}       k = 2 .. demux_layers-1
                z = LN_pd(gelu(pre_decoder(z))) + z          (no layer_norm_1/2: the code
                                                              applies dropout_k there)
     index      z = LN(gelu(dense([h_i ; h_N])))             positions 0..N of the prefix
     mlp        z = LN'(gelu(dense_before_out_proj(LN_i(gelu(dense_i(h_0))))))
   then logits = classifier(z).  A pruned model (hidden d' < 768) needs no
   special case: dense_1 is (768, 2d'), the widths come from the weights.
   Ordinary models (N = 1): pooling of the encoder output, then
     pooler     z = tanh(pooler.dense(h_0))                  BertForSequenceClassification;
                pooler.dense is (P, H): P = H, or in a CoFi model whose hidden
                dimensions are cut, the unpruned width the classifier reads
     cls        z = h_0
     mean       z = mean of h_t over the row's real tokens (t < lengths[b])
   optionally L2-normalised, then logits = classifier(z) if the model has one
   (when the classifier reads P != H values, only with the pooler).

   Input record: hidden (G, P, H) f32, positions (P) i32 (absent: 0..P-1),
   row (G*N) i64, optional label (G*N) and lengths.  Output record: row,
   label (if any), logits (B, C) and/or embeddings (B, D), where the filler
   rows (row = -1) of a ragged last group are dropped, so B counts only real
   rows, in input order.

   Errors: -1 (or NULL) with pmx_error set.  */

#ifndef PRUMUX_DEMUX_H
#define PRUMUX_DEMUX_H

#include "embed.h"

typedef struct pmx_demuxer pmx_demuxer;

/* A demultiplexer with the heads of the model CFG, whose weights GET (CTX)
   finds (they must outlive it).  NULL with an error for an unsupported
   variant or a missing or misshapen weight.  */
pmx_demuxer *pmx_demuxer_new (const pmx_model_config *cfg, pmx_tensor_lookup get,
                              const void *ctx);
void pmx_demuxer_free (pmx_demuxer *dx);

enum
{
  PMX_DEMUX_LOGITS = 1,         /* 'logits' (B, C) */
  PMX_DEMUX_EMBEDDINGS = 2      /* 'embeddings' (B, D): the classifier's input */
};
/* Which tensors pmx_demux_stage writes (default: logits if the model has a
   classifier, else embeddings).  -1 if logits are asked of a model without
   a classifier.  */
int pmx_demuxer_set_outputs (pmx_demuxer *dx, int what);
/* N = 1 models: override the model's pooling ("cls", "mean", "pooler") and
   normalisation (-1 keeps the model's).  -1 with an error for an unknown
   pooling, for "pooler" without pooler weights, or for a muxed model.  */
int pmx_demuxer_set_pool (pmx_demuxer *dx, const char *pool, int normalize);

int pmx_demuxer_classes (const pmx_demuxer *dx);        /* C; 0: none */
int pmx_demuxer_embedding_width (const pmx_demuxer *dx); /* D */
int pmx_demuxer_instances (const pmx_demuxer *dx);      /* N */
int pmx_demuxer_hidden (const pmx_demuxer *dx);         /* H expected */

/* The encoder output positions the stage reads: writes them to POS (room
   for MAX) and returns their count, or returns 0 when it needs every
   position (mean pooling).  prumux-infer asks for these only.  */
int pmx_demuxer_positions (const pmx_demuxer *dx, int32_t *pos, int max);
/* The same from a model's configuration alone (its own pooling); -1 with an
   error for an unknown pooling.  */
int pmx_head_positions (const pmx_model_config *cfg, int32_t *pos, int max);

/* Demultiplex one hidden record IN into OUT (reset first).  Returns 1 with
   a record (which may hold 0 rows if IN held only filler rows), -1 on
   error.  */
int pmx_demux_stage (pmx_demuxer *dx, const pmx_record *in, pmx_record *out);

#endif
