/* embed.c -- the BERT embedding stage; see embed.h.  */

#include <config.h>
#include "embed.h"
#include "error.h"
#include "kernels.h"

#include <string.h>

const pmx_tensor *
pmx_embed_weight (pmx_tensor_lookup get, const void *ctx, const char *name,
                  int rank, int64_t d0, int64_t d1)
{
  const pmx_tensor *t = get (ctx, name);
  char buf[8 * 24];
  if (!t)
    {
      pmx_error ("weight '%s' is missing", name);
      return NULL;
    }
  if (t->dtype != PMX_F32)
    {
      pmx_error ("weight '%s': dtype %s, expected f32", name,
                 pmx_dtype_name (t->dtype));
      return NULL;
    }
  if (t->rank != rank || (d0 >= 0 && t->shape[0] != d0)
      || (rank > 1 && d1 >= 0 && t->shape[1] != d1))
    {
      pmx_error ("weight '%s': shape %s, expected rank %d (%lld x %lld; -1 = any)",
                 name, pmx_shape_str (t, buf, sizeof buf), rank, (long long) d0,
                 (long long) d1);
      return NULL;
    }
  return t;
}

int
pmx_embed_init (pmx_embed *e, const pmx_model_config *cfg,
                pmx_tensor_lookup get, const void *ctx)
{
  memset (e, 0, sizeof *e);
  const pmx_tensor *w = pmx_embed_weight (get, ctx, "embeddings.word_embeddings.weight",
                                          2, -1, -1);
  if (!w)
    return -1;
  int H = (int) w->shape[1];
  if (cfg->hidden > 0 && H != cfg->hidden)
    return pmx_error ("weight 'embeddings.word_embeddings.weight': width %d, "
                      "but the model's hidden size is %d", H, cfg->hidden);
  const pmx_tensor *p = pmx_embed_weight (get, ctx, "embeddings.position_embeddings.weight",
                                          2, -1, H);
  const pmx_tensor *t = p ? pmx_embed_weight (get, ctx, "embeddings.token_type_embeddings.weight",
                                              2, -1, H) : NULL;
  const pmx_tensor *lw = t ? pmx_embed_weight (get, ctx, "embeddings.LayerNorm.weight",
                                               1, H, -1) : NULL;
  const pmx_tensor *lb = lw ? pmx_embed_weight (get, ctx, "embeddings.LayerNorm.bias",
                                                1, H, -1) : NULL;
  if (!lb)
    return -1;
  e->hidden = H;
  e->vocab = (int) w->shape[0];
  e->max_pos = (int) p->shape[0];
  e->type_vocab = (int) t->shape[0];
  e->eps = cfg->ln_eps > 0 ? (float) cfg->ln_eps : 1e-12f;
  e->word = w->data;
  e->pos = p->data;
  e->type = t->data;
  e->ln_w = lw->data;
  e->ln_b = lb->data;
  return 0;
}

void
pmx_embed_layer_norm (float *x, const float *w, const float *b, int n, float eps)
{
  pmx_bias_residual_layernorm (x, NULL, 0, NULL, w, b, 1, n, eps);
}

int
pmx_embed_check (const pmx_embed *e, const int32_t *ids, const int32_t *types, int T)
{
  if (T > e->max_pos)
    return pmx_error ("%d tokens, but the model has only %d positions", T,
                      e->max_pos);
  for (int t = 0; t < T; t++)
    {
      int id = ids[t], ty = types ? types[t] : 0;
      if (id < 0 || id >= e->vocab)
        return pmx_error ("token id %d at position %d is outside the "
                          "vocabulary (%d)", id, t, e->vocab);
      if (ty < 0 || ty >= e->type_vocab)
        return pmx_error ("type id %d at position %d is outside [0, %d)",
                          ty, t, e->type_vocab);
    }
  return 0;
}

void
pmx_embed_token (const pmx_embed *e, int id, int ty, int t, float *out)
{
  int H = e->hidden;
  const float *wr = e->word + (size_t) id * H;
  const float *pr = e->pos + (size_t) t * H;
  const float *tr = e->type + (size_t) ty * H;
  for (int h = 0; h < H; h++)
    out[h] = wr[h] + tr[h] + pr[h];
  pmx_embed_layer_norm (out, e->ln_w, e->ln_b, H, e->eps);
}

int
pmx_embed_tokens (const pmx_embed *e, const int32_t *ids, const int32_t *types,
                  int T, float *out)
{
  if (pmx_embed_check (e, ids, types, T) < 0)
    return -1;
  for (int t = 0; t < T; t++)
    pmx_embed_token (e, ids[t], types ? types[t] : 0, t, out + (size_t) t * e->hidden);
  return 0;
}

void
pmx_embed_vectors (const pmx_embed *e, const float *in, int T, float *out)
{
  int H = e->hidden;
  for (int t = 0; t < T; t++)
    {
      const float *x = in + (size_t) t * H;
      const float *pr = e->pos + (size_t) t * H;
      const float *tr = e->type;          /* type id 0 */
      float *o = out + (size_t) t * H;
      for (int h = 0; h < H; h++)
        o[h] = x[h] + tr[h] + pr[h];
      pmx_embed_layer_norm (o, e->ln_w, e->ln_b, H, e->eps);
    }
}
