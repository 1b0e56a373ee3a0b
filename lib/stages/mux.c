/* mux.c -- the multiplexer; see mux.h.  */

#include <config.h>
#include "mux.h"
#include "error.h"
#include "threads.h"

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

  int32_t *tok;                 // a record's rows, padded (and prefixed; N = 1: then types)
  float *ebuf;                  // (threads, H) one token's first-pass embedding
  int threads;
  pmx_pool *pool;               /* NULL: the caller's thread alone */
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
  free (mx->ebuf);
  pmx_pool_free (mx->pool);
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

/* Make room for TOKENS token ids and each thread's embedding in the
   scratch buffers.  */
static int
scratch (pmx_muxer *mx, size_t tokens)
{
  size_t H = (size_t) mx->emb.hidden;
  size_t threads = (size_t) (mx->threads > 1 ? mx->threads : 1);
  /* A record may be empty: realloc (p, 0) would free.  */
  int32_t *tok = realloc (mx->tok, (tokens ? tokens : 1) * sizeof *tok);
  if (tok)
    mx->tok = tok;
  float *ebuf = tok ? realloc (mx->ebuf, threads * H * sizeof *ebuf) : NULL;
  if (!ebuf)
    return pmx_error_errno (errno, "out of memory");
  mx->ebuf = ebuf;
  return 0;
}

int
pmx_muxer_set_threads (pmx_muxer *mx, int threads)
{
  if (threads < 1)
    threads = pmx_online_cpus ();
  pmx_pool *pool = NULL;
  if (threads > 1 && !(pool = pmx_pool_new (threads)))
    return -1;
  pmx_pool_free (mx->pool);
  mx->pool = pool;
  mx->threads = threads;
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

/* The rows of a record, checked: TOK and TY (NULL: type 0) (B, T), their
   embeddings into OUT (B, T, H).  */
struct embed_job
{
  const pmx_muxer *mx;
  int T;
  const int32_t *tok, *ty;
  float *out;
};

static void
embed_row_task (void *arg, int b, int thread)
{
  (void) thread;
  const struct embed_job *j = arg;
  const pmx_embed *e = &j->mx->emb;
  size_t at = (size_t) b * j->T;
  for (int t = 0; t < j->T; t++)
    pmx_embed_token (e, j->tok[at + t], j->ty ? j->ty[at + t] : 0, t,
                     j->out + (at + t) * e->hidden);
}

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
  if (B > (int64_t) 1 << 30)
    return pmx_error ("too many rows");
  /* Every row's tokens (and types), padded, checked here in order (the
     first bad row is the one named), then embedded on the threads.  */
  size_t BT = (size_t) B * T;
  if (scratch (mx, types ? 2 * BT : BT) < 0)
    return -1;
  int32_t *tok = mx->tok, *ty = types ? mx->tok + BT : NULL;
  for (int64_t b = 0; b < B; b++)
    {
      int32_t *x = tok + (size_t) b * T;
      memcpy (x, (const int32_t *) ids->data + b * T0, (size_t) T0 * sizeof *x);
      memset (x + T0, 0, (size_t) (T - T0) * sizeof *x);      /* [PAD] = 0 */
      if (ty)
        {
          memcpy (ty + (size_t) b * T, (const int32_t *) types->data + b * T0,
                  (size_t) T0 * sizeof *ty);
          memset (ty + (size_t) b * T + T0, 0, (size_t) (T - T0) * sizeof *ty);
        }
      if (pmx_embed_check (&mx->emb, x, ty ? ty + (size_t) b * T : NULL, (int) T) < 0)
        return pmx_error_prefix ("row %lld", (long long) b);
    }

  pmx_record_reset (out);
  int64_t shape[3] = { B, T, mx->emb.hidden };
  pmx_tensor *emb = pmx_record_add (out, "embeds", PMX_F32, 3, shape);
  if (!emb)
    return -1;
  struct embed_job job = { mx, (int) T, tok, ty, (float *) emb->data };
  pmx_pool_run (mx->pool, embed_row_task, &job, (int) B);
  int rc = 0;
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

/* out[t] += x * key and out[t] /= N: the multiplexer's arithmetic, in one
   place for the stage's fused loop and pmx_mux_fwd (the same floats in
   the same order in both).  */
static inline void
mux_add (float *o, const float *x, const float *key, int H)
{
  for (int j = 0; j < H; j++)
    o[j] += x[j] * key[j];
}

static inline void
mux_mean (float *o, int N, int H)
{
  for (int j = 0; j < H; j++)
    o[j] /= (float) N;            /* torch.mean over the instances */
}

/* One group of the record being muxed: its N rows of T tokens (checked)
   in mx->tok, its (T, H) embeddings into OUT.  */
struct mux_job
{
  const pmx_muxer *mx;
  int T;
  float *out;
};

/* Group G of JOB, on pool thread THREAD: each position's N first-pass
   embeddings are made one at a time in the thread's buffer (a few KiB,
   in L1) and added into the muxed vector at once, rather than all of a
   group's N x T first (4 MB for BERT-base at N = 10) and then read back.
   The same floats as pmx_embed_tokens then pmx_mux_fwd.  */
static void
mux_group_task (void *arg, int g, int thread)
{
  const struct mux_job *j = arg;
  const pmx_muxer *mx = j->mx;
  int N = mx->N, T = j->T, H = mx->emb.hidden;
  const int32_t *tok = mx->tok + (size_t) g * N * T;
  float *e = mx->ebuf + (size_t) thread * H;
  float *out = j->out + (size_t) g * T * H;
  for (int t = 0; t < T; t++)
    {
      float *o = out + (size_t) t * H;
      memset (o, 0, (size_t) H * sizeof *o);
      for (int i = 0; i < N; i++)
        {
          pmx_embed_token (&mx->emb, tok[(size_t) i * T + t], 0, t, e);
          mux_add (o, e, mx->keys + (size_t) i * H, H);
        }
      mux_mean (o, N, H);
    }
  pmx_embed_vectors (&mx->emb, out, T, out);
}

/* Mux the first G*N pending rows into OUT and drop them from the queue.  */
static int
emit_groups (pmx_muxer *mx, int G, pmx_record *out)
{
  int N = mx->N, H = mx->emb.hidden, L = mx->width;
  int P = mx->index_prefix ? N + 1 : 0;
  int T = L + P;
  int64_t B = (int64_t) G * N;
  if (scratch (mx, (size_t) B * T) < 0)
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

  /* Every row's tokens, checked here in order (the first bad row is the
     one named), then the groups muxed on the threads.  */
  for (int64_t k = 0; k < B; k++)
    {
      int32_t *x = mx->tok + (size_t) k * T;
      int i = (int) (k % N);
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
      if (pmx_embed_check (&mx->emb, x, NULL, T) < 0)
        return pmx_error_prefix ("row %lld", (long long) mx->rows[k]);
    }
  struct mux_job job = { mx, T, (float *) emb->data };
  pmx_pool_run (mx->pool, mux_group_task, &job, G);

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
          mux_add (o, inp + (((int64_t) g * N + i) * T + t) * H, keys + (int64_t) i * H, H);
        mux_mean (o, N, H);
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
