/* shrink.c -- CoFi's update_params and prune_model_with_z on a model
   archive (MUX-PLM-SPEC.md §6.9).  */

#include <config.h>

#include "shrink.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

pmx_cofi_z *
pmx_model_cofi_z (const pmx_model *m)
{
  const pmx_model_config *c = pmx_model_config_of (m);
  int heads[PMX_COFI_MAX_LAYERS], ffn[PMX_COFI_MAX_LAYERS];
  if (c->layers > PMX_COFI_MAX_LAYERS)
    {
      pmx_error ("%d layers: masks hold at most %d", c->layers,
                 PMX_COFI_MAX_LAYERS);
      return NULL;
    }
  for (int l = 0; l < c->layers; l++)
    pmx_model_layer_shape (m, l, &heads[l], &ffn[l]);
  return pmx_cofi_z_new (c->layers, c->hidden, heads, ffn);
}

double
pmx_model_prunable (const pmx_model *m)
{
  const pmx_model_config *c = pmx_model_config_of (m);
  return pmx_cofi_prunable_size (c->layers, c->heads * c->head_dim, c->heads,
                                 c->intermediate);
}

/* ---- One tensor ---------------------------------------------------------- */

/* One step of update_params on a matrix: every row (BY_ROW) or column
   multiplied by V[index / REPEAT] (REPEAT > 1: a head's value per
   head_dim rows), or, with HALF > 0, column j by V[j % HALF] (the demux's
   [hidden_z ; hidden_z]).  */
typedef struct
{
  const float *v;
  int by_row, repeat, half;
} scale_op;

/* The kept indices of a dimension: N of them, in order (NULL: all).  */
typedef struct
{
  const int *idx;
  int n;
} keep;

/* SRC (R, C), or (R) for a vector (C = 1), scaled by OPS in order (each a
   float product, as torch's mul) and sliced to ROWS x COLS, into a new
   tensor of OUT.  */
static int
shrink_tensor (const pmx_tensor *src, const scale_op *ops, int nops,
               keep rows, keep cols, pmx_record *out)
{
  int64_t R = src->shape[0], C = src->rank == 2 ? src->shape[1] : 1;
  int nr = rows.idx ? rows.n : (int) R, nc = cols.idx ? cols.n : (int) C;
  int64_t shape[2] = { nr, nc };
  pmx_tensor *t = pmx_record_add (out, src->name, PMX_F32, src->rank, shape);
  if (!t)
    return -1;
  const float *w = src->data;
  float *d = t->data;
  for (int i = 0; i < nr; i++)
    {
      int r = rows.idx ? rows.idx[i] : i;
      for (int j = 0; j < nc; j++)
        {
          int c = cols.idx ? cols.idx[j] : j;
          float x = w[(int64_t) r * C + c];
          for (int k = 0; k < nops; k++)
            {
              const scale_op *o = &ops[k];
              int at = o->by_row ? r : c;
              x *= o->half ? o->v[at % o->half] : o->v[at / o->repeat];
            }
          d[(int64_t) i * nc + j] = x;
        }
    }
  return 0;
}

/* ---- The whole model ----------------------------------------------------- */

/* What a model's masks keep, as index lists.  */
typedef struct
{
  int H, Hk, hd;
  int *hidden;                          /* (Hk) kept hidden dims */
  int *hidden2;                         /* (2 Hk) [hidden ; H + hidden] */
  int *head_rows[PMX_COFI_MAX_LAYERS];  /* kept heads' rows (k_l * hd) */
  int nhead_rows[PMX_COFI_MAX_LAYERS];
  int *ffn[PMX_COFI_MAX_LAYERS];        /* kept FFN dims */
  int nffn[PMX_COFI_MAX_LAYERS];
} kept;

static void
kept_free (kept *k)
{
  free (k->hidden);
  free (k->hidden2);
  for (int l = 0; l < PMX_COFI_MAX_LAYERS; l++)
    {
      free (k->head_rows[l]);
      free (k->ffn[l]);
    }
}

static int
kept_init (kept *k, const pmx_cofi_z *z, int head_dim)
{
  memset (k, 0, sizeof *k);
  k->H = z->hidden;
  k->hd = head_dim;
  if (!(k->hidden = malloc ((size_t) z->hidden * sizeof (int)))
      || !(k->hidden2 = malloc (2 * (size_t) z->hidden * sizeof (int))))
    return pmx_error_errno (ENOMEM, "shrink");
  for (int d = 0; d < z->hidden; d++)
    if (z->hidden_z[d] != 0)
      k->hidden[k->Hk++] = d;
  for (int j = 0; j < k->Hk; j++)
    {
      k->hidden2[j] = k->hidden[j];
      k->hidden2[k->Hk + j] = z->hidden + k->hidden[j];
    }
  for (int l = 0; l < z->layers; l++)
    {
      /* prune_model_with_z: heads where head_z * head_layer_z == 0, FFN
         dims where intermediate_z * mlp_z == 0 (float products).  */
      k->head_rows[l] = malloc (((size_t) z->heads[l] * head_dim + 1)
                                * sizeof (int));
      k->ffn[l] = malloc (((size_t) z->ffn[l] + 1) * sizeof (int));
      if (!k->head_rows[l] || !k->ffn[l])
        return pmx_error_errno (ENOMEM, "shrink");
      for (int h = 0; h < z->heads[l]; h++)
        if (z->head[l][h] * z->head_layer[l] != 0)
          for (int e = 0; e < head_dim; e++)
            k->head_rows[l][k->nhead_rows[l]++] = h * head_dim + e;
      for (int j = 0; j < z->ffn[l]; j++)
        if (z->intermediate[l][j] * z->mlp[l] != 0)
          k->ffn[l][k->nffn[l]++] = j;
    }
  return 0;
}

static int
ends_with (const char *s, const char *tail)
{
  size_t n = strlen (s), m = strlen (tail);
  return n >= m && !strcmp (s + n - m, tail);
}

/* Whether Z changes the hidden dimensions at all (a zero or a soft z).  */
static int
hidden_touched (const pmx_cofi_z *z)
{
  for (int d = 0; d < z->hidden; d++)
    if (z->hidden_z[d] != 1.0f)
      return 1;
  return 0;
}

/* Shrink tensor T (one of a layer's, L being its layer and REST its name
   after "encoder.layer.L.") into OUT; a tensor of a removed sublayer is
   left out.  */
static int
shrink_layer_tensor (const pmx_tensor *t, int l, const char *rest,
                     const pmx_cofi_z *z, const kept *k, pmx_record *out)
{
  keep all = { NULL, 0 }, hid = { k->hidden, k->Hk },
    heads = { k->head_rows[l], k->nhead_rows[l] },
    ffn = { k->ffn[l], k->nffn[l] };
  int is_w = ends_with (rest, ".weight");
  scale_op zc = { z->hidden_z, 0, 1, 0 };   /* columns x hidden_z */
  scale_op zr = { z->hidden_z, 1, 1, 0 };   /* rows x hidden_z */
  if (!strncmp (rest, "attention.", 10))
    {
      if (!k->nhead_rows[l])
        return 0;
      if (!strncmp (rest, "attention.self.query.", 21)
          || !strncmp (rest, "attention.self.key.", 19))
        return is_w ? shrink_tensor (t, &zc, 1, heads, hid, out)
          : shrink_tensor (t, NULL, 0, heads, all, out);
      if (!strncmp (rest, "attention.self.value.", 21))
        {
          scale_op ops[2] = { { z->head[l], 1, k->hd, 0 }, zc };
          return is_w ? shrink_tensor (t, ops, 2, heads, hid, out)
            : shrink_tensor (t, ops, 1, heads, all, out);
        }
      if (!strncmp (rest, "attention.output.dense.", 23))
        {
          /* head_layer_z is one value: a row op on a 1-vector.  */
          scale_op ops[2] = { { &z->head_layer[l], 1, k->H, 0 }, zr };
          return shrink_tensor (t, ops, 2, hid, is_w ? heads : all, out);
        }
      if (!strncmp (rest, "attention.output.LayerNorm.", 27))
        return shrink_tensor (t, NULL, 0, hid, all, out);
    }
  else if (!strncmp (rest, "intermediate.dense.", 19))
    {
      if (!k->nffn[l])
        return 0;
      return is_w ? shrink_tensor (t, &zc, 1, ffn, hid, out)
        : shrink_tensor (t, NULL, 0, ffn, all, out);
    }
  else if (!strncmp (rest, "output.dense.", 13))
    {
      if (!k->nffn[l])
        return 0;
      scale_op mlp = { &z->mlp[l], 1, k->H, 0 };
      if (is_w)
        {
          scale_op ops[3] = { { z->intermediate[l], 0, 1, 0 }, mlp, zr };
          return shrink_tensor (t, ops, 3, hid, ffn, out);
        }
      /* The bias takes mlp_z but not hidden_z (update_params).  */
      return shrink_tensor (t, &mlp, 1, hid, all, out);
    }
  else if (!strncmp (rest, "output.LayerNorm.", 17))
    return k->nffn[l] ? shrink_tensor (t, NULL, 0, hid, all, out) : 0;
  return pmx_error ("tensor '%s': not a tensor shrinking knows", t->name);
}

/* Whether C's classifier reads the encoder output directly: N = 1
   without a pooler.  */
static int
classifier_reads_encoder (const pmx_model_config *c)
{
  return c->mux_n == 1 && c->num_labels > 0 && strcmp (c->pooling, "pooler");
}

/* Shrink any other tensor T into OUT.  */
static int
shrink_other (const pmx_tensor *t, const pmx_model_config *c,
              const pmx_cofi_z *z, const kept *k, pmx_record *out)
{
  keep all = { NULL, 0 }, hid = { k->hidden, k->Hk },
    hid2 = { k->hidden2, 2 * k->Hk };
  scale_op zc = { z->hidden_z, 0, 1, 0 };
  const char *n = t->name;
  if (!strcmp (n, "embeddings.word_embeddings.weight")
      || !strcmp (n, "embeddings.position_embeddings.weight")
      || !strcmp (n, "embeddings.token_type_embeddings.weight")
      || !strcmp (n, "pooler.dense.weight")
      || !strcmp (n, "instance_embedding"))
    return shrink_tensor (t, &zc, 1, all, hid, out);
  if (!strncmp (n, "embeddings.LayerNorm.", 21))
    return shrink_tensor (t, NULL, 0, hid, all, out);
  if (ends_with (n, "demux_module.demux_instance_embedding"))
    return shrink_tensor (t, NULL, 0, all, hid, out);
  /* A classifier reading the encoder output itself (N = 1, cls or mean
     pooling; prumux-train's models) has no rule in CoFi, which always has
     a pooler: it is treated as CoFi treats the pooler, the first matrix
     to read the encoder output.  Its columns take hidden_z and are cut;
     its rows and bias stay.  The mean of z * h over tokens is z times the
     mean, so the rule holds for mean pooling too.  */
  if (!strcmp (n, "classifier.weight") && classifier_reads_encoder (c))
    return shrink_tensor (t, &zc, 1, all, hid, out);
  if (ends_with (n, "demux_module.dense_1.weight")
      && !strcmp (c->demux_variant, "index_pos"))
    {
      scale_op z2 = { z->hidden_z, 0, 1, k->H };
      return shrink_tensor (t, &z2, 1, all, hid2, out);
    }
  return shrink_tensor (t, NULL, 0, all, all, out);
}

/* The masks Z must have M's shape.  */
static int
check_shape (const pmx_model *m, const pmx_cofi_z *z)
{
  const pmx_model_config *c = pmx_model_config_of (m);
  if (z->layers != c->layers || z->hidden != c->hidden)
    return pmx_error ("the masks are for %d layers of hidden size %d, the "
                      "model has %d of %d", z->layers, z->hidden, c->layers,
                      c->hidden);
  for (int l = 0; l < c->layers; l++)
    {
      int h, f;
      pmx_model_layer_shape (m, l, &h, &f);
      if (z->heads[l] != h || z->ffn[l] != f)
        return pmx_error ("layer %d: the masks have %d heads and FFN width "
                          "%d, the model %d and %d", l, z->heads[l],
                          z->ffn[l], h, f);
    }
  return 0;
}

int
pmx_shrink (const pmx_model *m, const pmx_cofi_z *z, pmx_model_config *cfg,
            pmx_record **recs, int *nrecs)
{
  const pmx_model_config *c = pmx_model_config_of (m);
  *recs = NULL;
  *nrecs = 0;
  if (check_shape (m, z) < 0)
    return -1;
  /* The hidden rules of §6.9 exist for PruMUX's index_pos demux and for
     BERT's pooler (and, by the pooler's rule, a classifier reading the
     encoder output); other demultiplexers reading the hidden states
     would need rules the published code does not have.  */
  if (hidden_touched (z) && c->mux_n > 1
      && strcmp (c->demux_variant, "index_pos"))
    return pmx_error ("hidden masks on a model with the '%s' "
                      "demultiplexer: PruMUX shrinks index_pos models "
                      "only", c->demux_variant);
  kept k;
  int rc = -1, n = pmx_model_tensor_count (m);
  if (kept_init (&k, z, c->head_dim) < 0)
    goto out;
  if (!k.Hk)
    {
      pmx_error ("the masks remove every hidden dimension");
      goto out;
    }
  int cap = n / PMX_MAX_TENSORS + 1;
  if (!(*recs = calloc ((size_t) cap, sizeof **recs)))
    {
      pmx_error_errno (ENOMEM, "shrink");
      goto out;
    }
  for (int r = 0; r < cap; r++)
    pmx_record_init (&(*recs)[r]);
  *nrecs = cap;
  for (int i = 0; i < n; i++)
    {
      const pmx_tensor *t = pmx_model_tensor_at (m, i);
      pmx_record *out = &(*recs)[0];
      while (out->count == PMX_MAX_TENSORS)
        out++;
      int err;
      if (t->dtype != PMX_F32 || t->rank < 1 || t->rank > 2)
        err = pmx_error ("tensor '%s': not an f32 vector or matrix", t->name);
      else if (!strncmp (t->name, "encoder.layer.", 14))
        {
          char *rest;
          long l = strtol (t->name + 14, &rest, 10);
          err = shrink_layer_tensor (t, (int) l, rest + 1, z, &k, out);
        }
      else
        err = shrink_other (t, c, z, &k, out);
      if (err < 0)
        {
          pmx_error_prefix ("shrink");
          goto out;
        }
    }
  /* Records fill in order; drop the ones pruning left empty.  */
  while (*nrecs > 1 && !(*recs)[*nrecs - 1].count)
    pmx_record_free (&(*recs)[--*nrecs]);
  *cfg = *c;
  cfg->hidden = k.Hk;
  cfg->sparsity = pmx_cofi_z_sparsity (z, c->head_dim, pmx_model_prunable (m));
  rc = 0;
out:
  kept_free (&k);
  if (rc < 0 && *recs)
    {
      for (int r = 0; r < *nrecs; r++)
        pmx_record_free (&(*recs)[r]);
      free (*recs);
      *recs = NULL;
      *nrecs = 0;
    }
  return rc;
}

int
pmx_shrink_save (const pmx_model *m, const pmx_cofi_z *z, const char *path,
                 int compress, char *id)
{
  pmx_model_config cfg;
  pmx_record *recs;
  int nrecs;
  if (pmx_shrink (m, z, &cfg, &recs, &nrecs) < 0)
    return -1;
  size_t vlen = 0;
  const char *vocab = pmx_model_vocab (m, &vlen);
  int rc = pmx_model_save_records (path, &cfg, recs, nrecs, vocab, vlen,
                                   compress);
  if (rc == 0 && id)
    memcpy (id, cfg.id, sizeof cfg.id);
  for (int r = 0; r < nrecs; r++)
    pmx_record_free (&recs[r]);
  free (recs);
  return rc;
}
