/* mux.c -- the multiplexer; see mux.h.  */

#include <config.h>
#include "mux.h"
#include "error.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

enum mux_kind { MUX_NONE, MUX_GAUSSIAN_HADAMARD };

struct pmx_muxer
{
  enum mux_kind kind;
  int N;                        /* instances per group */
  int index_prefix;             /* `index` demux: N+1 prefix tokens per row */
  int pad_to;                   /* fixed row length L (0: keep the input's) */
  pmx_embed emb;
  const float *keys;            /* (N, H) instance_embedding */

  /* Rows waiting for a full group, in input order.  */
  int pending, cap;
  int width;                    /* L: ids per pending row */
  int64_t *rows;                // (cap)
  int32_t *ids;                 // (cap, L)
  int32_t *labels;              // (cap) raw 4-byte label values
  int32_t *lengths;             // (cap)
  int64_t *groups;              // (cap) grouping keys ('group')
  int label_dtype;              /* 0 until the first record says */
  int has_lengths;              /* -1 until the first record says */
  int has_groups;               /* -1 until the first record says */
  int64_t next_row;             /* for inputs without a 'row' tensor */

  int32_t *tok;                 // (T) one row's tokens (prefix included)
  float *e1;                    // (N, T, H) first embedding pass of a group
  float *acc;                   // (T, H) the group's multiplexed vectors
};

static int
parse_kind (const pmx_model_config *cfg, enum mux_kind *kind)
{
  const char *v = cfg->mux_variant;
  if (cfg->mux_n <= 1)
    {
      if (*v && strcmp (v, "none") != 0)
        return pmx_error ("muxing variant '%s' with N = %d", v, cfg->mux_n);
      *kind = MUX_NONE;
      return 0;
    }
  if (strcmp (v, "gaussian_hadamard") == 0)
    {
      *kind = MUX_GAUSSIAN_HADAMARD;
      return 0;
    }
  return pmx_error ("muxing variant '%s' is not supported "
                    "(supported: gaussian_hadamard)", v);
}

pmx_muxer *
pmx_muxer_new (const pmx_model_config *cfg, pmx_tensor_lookup get, const void *ctx)
{
  enum mux_kind kind;
  if (parse_kind (cfg, &kind) < 0)
    return NULL;
  pmx_muxer *mx = calloc (1, sizeof *mx);
  if (!mx)
    {
      pmx_error_errno (errno, "out of memory");
      return NULL;
    }
  mx->kind = kind;
  mx->N = kind == MUX_NONE ? 1 : cfg->mux_n;
  mx->label_dtype = 0;
  mx->has_lengths = -1;
  mx->has_groups = -1;
  if (pmx_embed_init (&mx->emb, cfg, get, ctx) < 0)
    goto fail;
  if (kind != MUX_NONE)
    {
      const pmx_tensor *k = pmx_embed_weight (get, ctx, "instance_embedding", 2,
                                              -1, mx->emb.hidden);
      if (!k)
        goto fail;
      /* The checkpoint may hold more keys than N (the code slices [:N]).  */
      if (k->shape[0] < mx->N)
        {
          pmx_error ("weight 'instance_embedding' has %lld rows for N = %d",
                     (long long) k->shape[0], mx->N);
          goto fail;
        }
      mx->keys = k->data;
      mx->index_prefix = strcmp (cfg->demux_variant, "index") == 0;
      /* Nothing masks the padding of a muxed model: all rows have the
         model's fixed length.  */
      mx->pad_to = cfg->max_length;
      if (mx->pad_to <= 0)
        {
          pmx_error ("the model gives no max_length to pad the rows to");
          goto fail;
        }
      int T = mx->pad_to + (mx->index_prefix ? mx->N + 1 : 0);
      if (T > mx->emb.max_pos)
        {
          pmx_error ("rows of %d tokens, but the model has only %d positions",
                     T, mx->emb.max_pos);
          goto fail;
        }
      if (mx->index_prefix && PMX_MUX_INDEX_FILLER >= mx->emb.vocab)
        {
          pmx_error ("the index prefix tokens are outside the vocabulary (%d)",
                     mx->emb.vocab);
          goto fail;
        }
    }
  else if (cfg->attend_padding)
    mx->pad_to = cfg->max_length;
  return mx;
fail:
  pmx_muxer_free (mx);
  return NULL;
}

void
pmx_muxer_free (pmx_muxer *mx)
{
  if (!mx)
    return;
  free (mx->rows);
  free (mx->ids);
  free (mx->labels);
  free (mx->lengths);
  free (mx->groups);
  free (mx->tok);
  free (mx->e1);
  free (mx->acc);
  free (mx);
}

int
pmx_muxer_instances (const pmx_muxer *mx)
{
  return mx->N;
}

int
pmx_muxer_length (const pmx_muxer *mx)
{
  if (mx->pad_to <= 0)
    return 0;
  return mx->pad_to + (mx->index_prefix ? mx->N + 1 : 0);
}

/* Make room for a group of N sequences of T tokens in the scratch
   buffers.  */
static int
scratch (pmx_muxer *mx, int T)
{
  size_t H = (size_t) mx->emb.hidden;
  int32_t *tok = realloc (mx->tok, (size_t) T * sizeof *tok);
  if (tok)
    mx->tok = tok;
  float *e1 = tok ? realloc (mx->e1, (size_t) mx->N * T * H * sizeof *e1) : NULL;
  if (e1)
    mx->e1 = e1;
  float *acc = e1 ? realloc (mx->acc, (size_t) T * H * sizeof *acc) : NULL;
  if (!acc)
    return pmx_error_errno (errno, "out of memory");
  mx->acc = acc;
  return 0;
}

/* The input's row, label, lengths and group tensors, checked against B.  */
struct row_info
{
  const pmx_tensor *row, *label, *lengths, *group;
};

static int
row_info (const pmx_record *in, int64_t B, struct row_info *ri)
{
  ri->row = pmx_record_get (in, "row");
  ri->label = pmx_record_get (in, "label");
  ri->lengths = pmx_record_get (in, "lengths");
  ri->group = pmx_record_get (in, "group");
  if (ri->row && (ri->row->dtype != PMX_I64 || ri->row->rank != 1
                  || ri->row->shape[0] != B))
    return pmx_error ("tensor 'row' must be i64 (%lld)", (long long) B);
  if (ri->label && ((ri->label->dtype != PMX_I32 && ri->label->dtype != PMX_F32)
                    || ri->label->rank != 1 || ri->label->shape[0] != B))
    return pmx_error ("tensor 'label' must be i32 or f32 (%lld)", (long long) B);
  if (ri->lengths && (ri->lengths->dtype != PMX_I32 || ri->lengths->rank != 1
                      || ri->lengths->shape[0] != B))
    return pmx_error ("tensor 'lengths' must be i32 (%lld)", (long long) B);
  if (ri->group && (ri->group->dtype != PMX_I64 || ri->group->rank != 1
                    || ri->group->shape[0] != B))
    return pmx_error ("tensor 'group' must be i64 (%lld)", (long long) B);
  return 0;
}

/* ---- N = 1: the embedding stage --------------------------------------- */

static int
embed_stage (pmx_muxer *mx, const pmx_record *in, pmx_record *out)
{
  const pmx_tensor *ids = pmx_record_expect (in, "ids", PMX_I32, 2);
  if (!ids)
    return -1;
  int64_t B = ids->shape[0], T0 = ids->shape[1];
  const pmx_tensor *types = pmx_record_get (in, "type_ids");
  if (types && (types->dtype != PMX_I32 || types->rank != 2
                || types->shape[0] != B || types->shape[1] != T0))
    return pmx_error ("tensor 'type_ids' must be i32 with the shape of 'ids'");
  int64_t T = T0;
  if (mx->pad_to > 0)
    {
      if (T0 > mx->pad_to)
        return pmx_error ("rows of %lld tokens, longer than the model's "
                          "max_length %d", (long long) T0, mx->pad_to);
      T = mx->pad_to;
    }
  if (T > mx->emb.max_pos)
    return pmx_error ("rows of %lld tokens, but the model has only %d positions",
                      (long long) T, mx->emb.max_pos);
  if (scratch (mx, (int) T) < 0)
    return -1;
  int32_t *ty = NULL;
  if (types && T > T0)
    {
      ty = calloc ((size_t) T, sizeof *ty);
      if (!ty)
        return pmx_error_errno (errno, "out of memory");
    }

  pmx_record_reset (out);
  int64_t shape[3] = { B, T, mx->emb.hidden };
  pmx_tensor *emb = pmx_record_add (out, "embeds", PMX_F32, 3, shape);
  int rc = emb ? 0 : -1;
  for (int64_t b = 0; b < B && rc == 0; b++)
    {
      const int32_t *x = (const int32_t *) ids->data + b * T0;
      const int32_t *s = types ? (const int32_t *) types->data + b * T0 : NULL;
      if (T > T0)
        {
          memset (mx->tok, 0, (size_t) T * sizeof *mx->tok);   /* [PAD] = 0 */
          memcpy (mx->tok, x, (size_t) T0 * sizeof *x);
          x = mx->tok;
          if (s)
            {
              memcpy (ty, s, (size_t) T0 * sizeof *s);
              s = ty;
            }
        }
      rc = pmx_embed_tokens (&mx->emb, x, s, (int) T,
                             (float *) emb->data + (size_t) b * T * mx->emb.hidden);
      if (rc < 0)
        pmx_error_prefix ("row %lld", (long long) b);
    }
  free (ty);
  /* Everything else passes through (row, label, lengths, ...).  */
  for (int i = 0; i < in->count && rc == 0; i++)
    {
      const pmx_tensor *t = pmx_record_at (in, i);
      if (!strcmp (t->name, "ids") || !strcmp (t->name, "type_ids")
          || !strcmp (t->name, "embeds"))
        continue;
      pmx_tensor *c = pmx_record_add (out, t->name, t->dtype, t->rank, t->shape);
      if (!c)
        rc = -1;
      else
        memcpy (c->data, t->data, t->nbytes);
    }
  if (rc == 0 && !pmx_record_get (in, "row"))
    {
      pmx_tensor *r = pmx_record_add (out, "row", PMX_I64, 1, &B);
      if (!r)
        return -1;
      for (int64_t b = 0; b < B; b++)
        ((int64_t *) r->data)[b] = mx->next_row++;
    }
  return rc < 0 ? -1 : 1;
}

/* ---- N > 1: grouping and gaussian-Hadamard muxing ---------------------- */

static int
reserve_pending (pmx_muxer *mx, int need)
{
  if (need <= mx->cap)
    return 0;
  int cap = mx->cap ? mx->cap : 64;
  while (cap < need)
    cap *= 2;
  int64_t *rows = realloc (mx->rows, (size_t) cap * sizeof *rows);
  if (rows)
    mx->rows = rows;
  int32_t *ids = rows ? realloc (mx->ids, (size_t) cap * mx->width * sizeof *ids) : NULL;
  if (ids)
    mx->ids = ids;
  int32_t *lab = ids ? realloc (mx->labels, (size_t) cap * sizeof *lab) : NULL;
  if (lab)
    mx->labels = lab;
  int32_t *len = lab ? realloc (mx->lengths, (size_t) cap * sizeof *len) : NULL;
  if (len)
    mx->lengths = len;
  int64_t *grp = len ? realloc (mx->groups, (size_t) cap * sizeof *grp) : NULL;
  if (!grp)
    return pmx_error_errno (errno, "out of memory");
  mx->groups = grp;
  mx->cap = cap;
  return 0;
}

/* Complete the last, short pending group with filler rows: copies of the
   group's first row (a deterministic stand-in for the published code's
   random copies), row = -1 and label = -1, in the group's key.  */
static int
fill_group (pmx_muxer *mx)
{
  if (mx->pending % mx->N == 0)
    return 0;
  int first = mx->pending - mx->pending % mx->N;
  int need = first + mx->N;
  if (reserve_pending (mx, need) < 0)
    return -1;
  int L = mx->width;
  for (int k = mx->pending; k < need; k++)
    {
      memcpy (mx->ids + (size_t) k * L, mx->ids + (size_t) first * L,
              (size_t) L * sizeof *mx->ids);
      mx->rows[k] = -1;
      if (mx->label_dtype == PMX_F32)
        {
          float minus_one = -1.0f;
          memcpy (&mx->labels[k], &minus_one, sizeof minus_one);
        }
      else
        mx->labels[k] = -1;
      mx->lengths[k] = mx->lengths[first];
      mx->groups[k] = mx->groups[first];
    }
  mx->pending = need;
  return 0;
}

/* Append IN's rows to the pending rows.  A row whose grouping key differs
   from the open group's closes that group with fillers first, so no group
   holds two keys.  */
static int
take_rows (pmx_muxer *mx, const pmx_record *in)
{
  const pmx_tensor *ids = pmx_record_expect (in, "ids", PMX_I32, 2);
  if (!ids)
    return -1;
  int64_t B = ids->shape[0], T0 = ids->shape[1];
  struct row_info ri;
  if (row_info (in, B, &ri) < 0)
    return -1;
  if (T0 > mx->width)
    return pmx_error ("rows of %lld tokens, longer than the model's "
                      "max_length %d", (long long) T0, mx->width);
  int lt = ri.label ? (int) ri.label->dtype : -1;
  if (mx->label_dtype == 0)
    mx->label_dtype = lt;
  else if (mx->label_dtype != lt)
    return pmx_error ("tensor 'label' is in some records but not in others");
  int hl = ri.lengths != NULL;
  if (mx->has_lengths < 0)
    mx->has_lengths = hl;
  else if (mx->has_lengths != hl)
    return pmx_error ("tensor 'lengths' is in some records but not in others");
  int hg = ri.group != NULL;
  if (mx->has_groups < 0)
    mx->has_groups = hg;
  else if (mx->has_groups != hg)
    return pmx_error ("tensor 'group' is in some records but not in others");
  if (B > (int64_t) 1 << 30 || reserve_pending (mx, mx->pending + (int) B) < 0)
    return B > (int64_t) 1 << 30 ? pmx_error ("too many rows") : -1;

  for (int64_t b = 0; b < B; b++)
    {
      int64_t key = ri.group ? ((const int64_t *) ri.group->data)[b] : 0;
      if (mx->pending % mx->N && mx->groups[mx->pending - 1] != key)
        {
          /* The fillers take room the reservation above did not count.  */
          if (fill_group (mx) < 0
              || reserve_pending (mx, mx->pending + (int) (B - b)) < 0)
            return -1;
        }
      int k = mx->pending++;
      int32_t *dst = mx->ids + (size_t) k * mx->width;
      memcpy (dst, (const int32_t *) ids->data + b * T0, (size_t) T0 * sizeof *dst);
      memset (dst + T0, 0, (size_t) (mx->width - T0) * sizeof *dst);  /* [PAD] */
      mx->rows[k] = ri.row ? ((const int64_t *) ri.row->data)[b] : mx->next_row;
      mx->next_row++;
      mx->labels[k] = ri.label ? ((const int32_t *) ri.label->data)[b] : 0;
      mx->lengths[k] = ri.lengths ? ((const int32_t *) ri.lengths->data)[b] : 0;
      mx->groups[k] = key;
    }
  return 0;
}

/* Mux the first G*N pending rows into OUT and drop them from the queue.  */
static int
emit_groups (pmx_muxer *mx, int G, pmx_record *out)
{
  int N = mx->N, H = mx->emb.hidden, L = mx->width;
  int P = mx->index_prefix ? N + 1 : 0;
  int T = L + P;
  int64_t B = (int64_t) G * N;
  if (scratch (mx, T) < 0)
    return -1;

  pmx_record_reset (out);
  int64_t shape[3] = { G, T, H };
  pmx_tensor *emb = pmx_record_add (out, "embeds", PMX_F32, 3, shape);
  pmx_tensor *row = emb ? pmx_record_add (out, "row", PMX_I64, 1, &B) : NULL;
  if (!row)
    return -1;
  memcpy (row->data, mx->rows, (size_t) B * sizeof (int64_t));
  if (mx->label_dtype > 0)
    {
      pmx_tensor *t = pmx_record_add (out, "label", mx->label_dtype, 1, &B);
      if (!t)
        return -1;
      memcpy (t->data, mx->labels, (size_t) B * 4);
    }
  if (mx->has_lengths > 0)
    {
      pmx_tensor *t = pmx_record_add (out, "lengths", PMX_I32, 1, &B);
      if (!t)
        return -1;
      memcpy (t->data, mx->lengths, (size_t) B * 4);
    }
  if (mx->has_groups > 0)
    {
      pmx_tensor *t = pmx_record_add (out, "group", PMX_I64, 1, &B);
      if (!t)
        return -1;
      memcpy (t->data, mx->groups, (size_t) B * sizeof *mx->groups);
    }

  size_t TH = (size_t) T * H;
  for (int g = 0; g < G; g++)
    {
      for (int i = 0; i < N; i++)
        {
          int k = g * N + i;
          int32_t *x = mx->tok;
          if (P)
            {
              /* Row i of the N x (N+1) prefix block: filler, its own index
                 token on the diagonal, then [CLS].  */
              for (int j = 0; j < N; j++)
                x[j] = j == i ? PMX_MUX_INDEX_FILLER - (i + 2) : PMX_MUX_INDEX_FILLER;
              x[N] = PMX_MUX_CLS_ID;
            }
          memcpy (x + P, mx->ids + (size_t) k * L, (size_t) L * sizeof *x);
          if (!P)
            x[0] = PMX_MUX_CLS_ID;      /* as the code: input_ids[:, 0] = 101 */
          if (pmx_embed_tokens (&mx->emb, x, NULL, T, mx->e1 + i * TH) < 0)
            return pmx_error_prefix ("row %lld", (long long) mx->rows[k]);
        }
      pmx_mux_fwd (mx->acc, mx->e1, mx->keys, 1, N, T, H);
      pmx_embed_vectors (&mx->emb, mx->acc, T, (float *) emb->data + (size_t) g * TH);
    }

  /* Keep the leftover rows for the next record.  */
  int left = mx->pending - (int) B;
  memmove (mx->rows, mx->rows + B, (size_t) left * sizeof *mx->rows);
  memmove (mx->ids, mx->ids + (size_t) B * L, (size_t) left * L * sizeof *mx->ids);
  memmove (mx->labels, mx->labels + B, (size_t) left * sizeof *mx->labels);
  memmove (mx->lengths, mx->lengths + B, (size_t) left * sizeof *mx->lengths);
  memmove (mx->groups, mx->groups + B, (size_t) left * sizeof *mx->groups);
  mx->pending = left;
  return 1;
}

int
pmx_mux_stage (pmx_muxer *mx, const pmx_record *in, pmx_record *out)
{
  if (mx->kind == MUX_NONE)
    return embed_stage (mx, in, out);
  mx->width = mx->pad_to;
  if (take_rows (mx, in) < 0)
    return -1;
  int G = mx->pending / mx->N;
  if (G == 0)
    {
      pmx_record_reset (out);
      return 0;
    }
  return emit_groups (mx, G, out);
}

int
pmx_mux_flush (pmx_muxer *mx, pmx_record *out)
{
  pmx_record_reset (out);
  if (mx->kind == MUX_NONE || mx->pending == 0)
    return 0;
  if (fill_group (mx) < 0)
    return -1;
  return emit_groups (mx, mx->pending / mx->N, out);
}

/* ---- The multiplexer's maths (also the training forward's) ------------- */

void
pmx_mux_fwd (float *out, const float *inp, const float *keys, int G, int N,
             int T, int H)
{
  for (int g = 0; g < G; g++)
    for (int t = 0; t < T; t++)
      {
        float *o = out + ((int64_t) g * T + t) * H;
        memset (o, 0, H * sizeof *o);
        for (int i = 0; i < N; i++)
          {
            const float *x = inp + (((int64_t) g * N + i) * T + t) * H;
            const float *v = keys + (int64_t) i * H;
            for (int j = 0; j < H; j++)
              o[j] += x[j] * v[j];
          }
        for (int j = 0; j < H; j++)
          o[j] /= (float) N;            /* torch.mean over the instances */
      }
}

void
pmx_mux_bwd (float *dinp, const float *dout, const float *keys, int G, int N,
             int T, int H)
{
  float inv = 1.0f / N;
  for (int g = 0; g < G; g++)
    for (int i = 0; i < N; i++)
      for (int t = 0; t < T; t++)
        {
          const float *d = dout + ((int64_t) g * T + t) * H;
          const float *v = keys + (int64_t) i * H;
          float *dx = dinp + (((int64_t) g * N + i) * T + t) * H;
          for (int j = 0; j < H; j++)
            dx[j] += d[j] * v[j] * inv;
        }
}
