/* embed.h -- the BERT embedding stage: LN(word[x] + pos[t] + type[s]).

   Shared by the multiplexer (which runs it twice, as the published MUX-PLM
   code does) and by ordinary N = 1 models.  The tables may be pruned: the
   hidden width H is taken from the word table and must match the config.

   Ownership: a pmx_embed only points at tensors owned by whoever answers
   the lookup (a pmx_model, or a record of weights); they must outlive it.  */

#ifndef PRUMUX_EMBED_H
#define PRUMUX_EMBED_H

#include <stdint.h>
#include "stream.h"
#include "model.h"

typedef struct pmx_embed
{
  int hidden;                   /* H (pruned width) */
  int vocab, max_pos, type_vocab;
  float eps;
  const float *word;            /* (vocab, H) */
  const float *pos;             /* (max_pos, H) */
  const float *type;            /* (type_vocab, H) */
  const float *ln_w, *ln_b;     /* (H) */
} pmx_embed;

/* The f32 tensor NAME of rank RANK with dims D0, D1 where >= 0; NULL with
   an error ("weight 'x': ...") otherwise.  Shared by the embedding,
   mux and demux stages.  */
const pmx_tensor *pmx_embed_weight (pmx_tensor_lookup get, const void *ctx,
                                    const char *name, int rank, int64_t d0,
                                    int64_t d1);

/* Find the embedding tables.  -1 with an error if one is missing or has
   the wrong shape.  */
int pmx_embed_init (pmx_embed *e, const pmx_model_config *cfg,
                    pmx_tensor_lookup get, const void *ctx);

/* OUT (T, H) = LN(word[ids[t]] + pos[t] + type[types[t]]) for one row of T
   tokens; TYPES may be NULL (all 0).  -1 with an error for an id or a type
   id out of range, or T > max_pos.  */
int pmx_embed_tokens (const pmx_embed *e, const int32_t *ids,
                      const int32_t *types, int T, float *out);

/* pmx_embed_tokens in two halves, for callers that check a whole record
   first and then embed its tokens in any order (the multiplexer, on
   several threads): the checks (0, or -1 with the same error), and one
   token, unchecked: OUT (H) = LN(word[ID] + pos[T] + type[TY]).  */
int pmx_embed_check (const pmx_embed *e, const int32_t *ids, const int32_t *types,
                     int T);
void pmx_embed_token (const pmx_embed *e, int id, int ty, int t, float *out);

/* OUT (T, H) = LN(IN + pos[t] + type[0]): the second embedding pass the
   MUX-PLM code runs on the multiplexed vectors.  IN may equal OUT.  */
void pmx_embed_vectors (const pmx_embed *e, const float *in, int T, float *out);

/* X (N) = LN(X) * W + B, as torch.nn.LayerNorm (biased variance): the
   encoder's LayerNorm kernel (kernels.h) on one row, so that the
   embedding stage, the demultiplexers and the encoder share one
   implementation.  */
void pmx_embed_layer_norm (float *x, const float *w, const float *b, int n,
                           float eps);

#endif
