/* demux.c -- the demultiplexer and the heads; see demux.h.  */

#include <config.h>
#include "demux.h"
#include "demux-head.h"
#include "error.h"
#include "gemm.h"
#include "kernels.h"

#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum demux_kind { DEMUX_NONE, DEMUX_INDEX_POS, DEMUX_INDEX, DEMUX_MLP };
enum pool_kind { POOL_CLS, POOL_MEAN, POOL_POOLER };

#define MAX_DEMUX_LAYERS PMX_DEMUX_HEAD_MAX_DENSE

/* A Linear layer in nn.Linear layout: y = W x + b, W (out, in).  */
typedef struct linear
{
  const float *w, *b;
  int out, in;
  pmx_packed p;                 /* W packed once (kind NONE: not packed) */
} linear;

typedef struct layer_norm
{
  const float *w, *b;
  int n;
} layer_norm;

struct pmx_demuxer
{
  enum demux_kind kind;
  int N, H;                     /* instances, encoder width */
  int D;                        /* width of the vector the classifier reads */
  float eps;
  int outputs;
  /* index_pos */
  const float *inst;            // (N, H) demux_instance_embedding
  linear dense[MAX_DEMUX_LAYERS]; /* dense_1 (D, 2H), dense_2.. (D, D) */
  int ndense;
  linear pre;                   /* pre_decoder (D, D) */
  layer_norm pre_ln;
  float *inst_proj;             // (N, D) dense_1[:, :H] e_i + b_1
  pmx_demux_head head;          /* the above, as demux-head.c reads them */
  /* index */
  linear idx;                   /* demultiplexer.dense (D, 2H) */
  layer_norm idx_ln;
  /* mlp */
  linear *mlp;                  /* N of dense_i (D1, H) */
  layer_norm *mlp_ln;
  linear mlp_out;               /* dense_before_out_proj (D, D1) */
  layer_norm mlp_out_ln;
  /* N = 1 */
  enum pool_kind pool;
  int normalize;
  int has_pooler;
  linear pooler;                /* pooler.dense (P, H): P = H, or a CoFi
                                   model's unpruned width with H pruned */
  /* all */
  int has_classifier;
  linear cls;                   /* classifier (C, D) */
  /* Weights packed once, for the products of every record (packing them
     per record cost 2.3 ms a record at BERT-base width): dense_1's h
     half and the index demultiplexer's h_i half, which are not whole
     tensors, and SCRATCH for pmx_gemm_packed_rows.  */
  pmx_packed dense1_h, idx_a;
  float *pscratch;
  /* scratch, grown as needed */
  float *buf[4];
  size_t cap[4];
};

/* ---- Weights ------------------------------------------------------------ */

/* NAME, or the same name under "demultiplexer." (the state dict keeps the
   shared demux module under both), or NULL without an error.  */
static const pmx_tensor *
lookup_alias (pmx_tensor_lookup get, const void *ctx, const char *name,
              char *found, size_t size)
{
  snprintf (found, size, "%s", name);
  const pmx_tensor *t = get (ctx, found);
  if (!t && strncmp (name, "demux_module.", 13) == 0)
    {
      snprintf (found, size, "demultiplexer.%s", name);
      t = get (ctx, found);
    }
  if (!t)
    snprintf (found, size, "%s", name);
  return t;
}

/* The Linear layer PREFIX.{weight,bias} with IN inputs (-1: any) and OUT
   outputs (-1: any).  */
static int
get_linear (pmx_tensor_lookup get, const void *ctx, const char *prefix,
            int out, int in, linear *l)
{
  char name[PMX_NAME_MAX + 1], found[PMX_NAME_MAX + 1];
  snprintf (name, sizeof name, "%s.weight", prefix);
  lookup_alias (get, ctx, name, found, sizeof found);
  const pmx_tensor *w = pmx_embed_weight (get, ctx, found, 2, out, in);
  if (!w)
    return -1;
  snprintf (name, sizeof name, "%s.bias", prefix);
  lookup_alias (get, ctx, name, found, sizeof found);
  const pmx_tensor *b = pmx_embed_weight (get, ctx, found, 1, w->shape[0], -1);
  if (!b)
    return -1;
  l->w = w->data;
  l->b = b->data;
  l->out = (int) w->shape[0];
  l->in = (int) w->shape[1];
  return 0;
}

static int
get_layer_norm (pmx_tensor_lookup get, const void *ctx, const char *prefix, int n,
                layer_norm *ln)
{
  char name[PMX_NAME_MAX + 1], found[PMX_NAME_MAX + 1];
  snprintf (name, sizeof name, "%s.weight", prefix);
  lookup_alias (get, ctx, name, found, sizeof found);
  const pmx_tensor *w = pmx_embed_weight (get, ctx, found, 1, n, -1);
  if (!w)
    return -1;
  snprintf (name, sizeof name, "%s.bias", prefix);
  lookup_alias (get, ctx, name, found, sizeof found);
  const pmx_tensor *b = pmx_embed_weight (get, ctx, found, 1, n, -1);
  if (!b)
    return -1;
  ln->w = w->data;
  ln->b = b->data;
  ln->n = n;
  return 0;
}

/* ---- Maths -------------------------------------------------------------- */

/* Y (M, l->out) = X (M, l->in; row stride LDX) W^T + b.  */
static void
linear_fwd (const pmx_demuxer *dx, const linear *l, const float *x, int ldx, int M,
            float *y)
{
  if (M <= 0)
    return;
  pmx_sgemm_rows_packed (&l->p, l->w, l->in, l->out, l->in, x, ldx, y, l->out, M,
                         dx->pscratch);
  for (int m = 0; m < M; m++)
    for (int o = 0; o < l->out; o++)
      y[(size_t) m * l->out + o] += l->b[o];
}

static void
ln_rows (const layer_norm *ln, float *x, int M, float eps)
{
  for (int m = 0; m < M; m++)
    pmx_embed_layer_norm (x + (size_t) m * ln->n, ln->w, ln->b, ln->n, eps);
}

static float *
scratch (pmx_demuxer *dx, int k, size_t n)
{
  if (n == 0)
    n = 1;                      /* an empty record still gets a buffer */
  if (dx->cap[k] < n)
    {
      float *p = realloc (dx->buf[k], n * sizeof *p);
      if (!p)
        {
          pmx_error_errno (errno, "out of memory");
          return NULL;
        }
      dx->buf[k] = p;
      dx->cap[k] = n;
    }
  return dx->buf[k];
}

/* ---- Construction ------------------------------------------------------- */

static int
parse_pool (const char *s, enum pool_kind *p)
{
  if (!strcmp (s, "cls"))
    *p = POOL_CLS;
  else if (!strcmp (s, "mean"))
    *p = POOL_MEAN;
  else if (!strcmp (s, "pooler"))
    *p = POOL_POOLER;
  else
    return pmx_error ("unknown pooling '%s' (cls, mean, pooler)", s);
  return 0;
}

static int
init_index_pos (pmx_demuxer *dx, const pmx_model_config *cfg,
                pmx_tensor_lookup get, const void *ctx)
{
  int N = dx->N, H = dx->H;
  char found[PMX_NAME_MAX + 1];
  const pmx_tensor *e = lookup_alias (get, ctx, "demux_module.demux_instance_embedding",
                                      found, sizeof found);
  e = pmx_embed_weight (get, ctx, found, 2, -1, H);
  if (!e)
    return -1;
  if (e->shape[0] < N)
    return pmx_error ("weight '%s' has %lld rows for N = %d", found,
                      (long long) e->shape[0], N);
  dx->inst = e->data;
  /* The classification path runs dense_1 .. dense_{L-1} (the code's
     range(1, num_hidden_demux_layers)); the code's default L is 2.  */
  int L = cfg->demux_layers > 0 ? cfg->demux_layers : 2;
  if (L > MAX_DEMUX_LAYERS)
    return pmx_error ("%d demux layers; at most %d are supported", L, MAX_DEMUX_LAYERS);
  dx->ndense = L - 1 < 1 ? 1 : L - 1;
  if (get_linear (get, ctx, "demux_module.dense_1", -1, 2 * H, &dx->dense[0]) < 0)
    return -1;
  int D = dx->dense[0].out;
  for (int k = 1; k < dx->ndense; k++)
    {
      char p[64];
      snprintf (p, sizeof p, "demux_module.dense_%d", k + 1);
      if (get_linear (get, ctx, p, D, D, &dx->dense[k]) < 0)
        return -1;
    }
  if (get_linear (get, ctx, "demultiplexer.pre_decoder", D, D, &dx->pre) < 0
      || get_layer_norm (get, ctx, "demultiplexer.pre_decoder_layer_norm", D,
                         &dx->pre_ln) < 0)
    return -1;
  dx->D = D;
  /* dense_1 [e_i ; h] = W[:, :H] e_i + W[:, H:] h + b: the e_i half is the
     same for every group, so compute it once.  */
  pmx_demux_head *hd = &dx->head;
  *hd = (pmx_demux_head) { .N = N, .H = H, .D = D, .ndense = dx->ndense,
                           .inst = dx->inst, .pre_w = dx->pre.w,
                           .pre_b = dx->pre.b, .ln_w = dx->pre_ln.w,
                           .ln_b = dx->pre_ln.b, .eps = dx->eps };
  for (int k = 0; k < dx->ndense; k++)
    {
      hd->w[k] = dx->dense[k].w;
      hd->b[k] = dx->dense[k].b;
    }
  dx->inst_proj = malloc ((size_t) N * D * sizeof *dx->inst_proj);
  if (!dx->inst_proj)
    return pmx_error_errno (errno, "out of memory");
  pmx_demux_head_inst (hd, dx->inst_proj);
  return 0;
}

static int
init_mlp (pmx_demuxer *dx, pmx_tensor_lookup get, const void *ctx)
{
  dx->mlp = calloc ((size_t) dx->N, sizeof *dx->mlp);
  dx->mlp_ln = calloc ((size_t) dx->N, sizeof *dx->mlp_ln);
  if (!dx->mlp || !dx->mlp_ln)
    return pmx_error_errno (errno, "out of memory");
  int D1 = -1;
  for (int i = 0; i < dx->N; i++)
    {
      char p[64];
      snprintf (p, sizeof p, "demux_module.dense_%d", i);
      if (get_linear (get, ctx, p, D1, dx->H, &dx->mlp[i]) < 0)
        return -1;
      D1 = dx->mlp[i].out;
      snprintf (p, sizeof p, "demux_module.layer_norm_%d", i);
      if (get_layer_norm (get, ctx, p, D1, &dx->mlp_ln[i]) < 0)
        return -1;
    }
  if (get_linear (get, ctx, "demultiplexer.dense_before_out_proj", -1, D1,
                  &dx->mlp_out) < 0
      || get_layer_norm (get, ctx, "demultiplexer.layernorm", dx->mlp_out.out,
                         &dx->mlp_out_ln) < 0)
    return -1;
  dx->D = dx->mlp_out.out;
  return 0;
}

/* D of an N = 1 model: the pooler's output width, or H.  */
static int
pool_width (const pmx_demuxer *dx)
{
  return dx->pool == POOL_POOLER ? dx->pooler.out : dx->H;
}

/* Logits need the classifier to read D values; a CoFi model with pruned
   hidden dimensions has a classifier over the pooler's (unpruned) width,
   so its other poolings give embeddings only.  */
static int
check_classifier (const pmx_demuxer *dx)
{
  if ((dx->outputs & PMX_DEMUX_LOGITS) && dx->cls.in != dx->D)
    return pmx_error ("the classifier reads %d values, but pooling '%s' "
                      "gives %d: only embeddings", dx->cls.in,
                      dx->pool == POOL_POOLER ? "pooler"
                      : dx->pool == POOL_MEAN ? "mean" : "cls", dx->D);
  return 0;
}

/* Pack W (N, K; rows LDW apart) into P for the best kernel of this CPU
   (none: P stays unpacked).  0, or -1 with an error.  */
static int
pack (pmx_packed *p, const float *w, int ldw, int N, int K)
{
  if (pmx_gemm_best () == PMX_GEMM_NONE || N <= 0 || K <= 0)
    return 0;
  float *copy = NULL;
  if (ldw != K)
    {
      if (!(copy = malloc ((size_t) N * K * sizeof *copy)))
        return pmx_error_errno (errno, "out of memory");
      for (int n = 0; n < N; n++)
        memcpy (copy + (size_t) n * K, w + (size_t) n * ldw, (size_t) K * sizeof *copy);
    }
  int rc = pmx_packed_init (p, copy ? copy : w, N, K, PMX_GEMM_BEST);
  free (copy);
  return rc;
}

/* Pack every weight the kind's forward multiplies by, and point the
   index_pos head at them.  */
static int
pack_weights (pmx_demuxer *dx)
{
  pmx_gemm_kind kind = pmx_gemm_best ();
  if (kind == PMX_GEMM_NONE)
    return 0;
  size_t n = pmx_gemm_scratch (kind, PMX_GEMM_ROWS);
  void *mem = NULL;
  if (posix_memalign (&mem, 64, n * sizeof (float)) != 0)
    return pmx_error_errno (ENOMEM, "out of memory");
  dx->pscratch = mem;
  int H = dx->H, D = dx->D;
  switch (dx->kind)
    {
    case DEMUX_INDEX_POS:
      {
        pmx_demux_head *hd = &dx->head;
        if (pack (&dx->dense1_h, dx->dense[0].w + H, 2 * H, D, H) < 0)
          return -1;
        hd->pw_h = &dx->dense1_h;
        for (int k = 1; k < dx->ndense; k++)
          {
            if (pack (&dx->dense[k].p, dx->dense[k].w, D, D, D) < 0)
              return -1;
            hd->pw[k - 1] = &dx->dense[k].p;
          }
        if (pack (&dx->pre.p, dx->pre.w, D, D, D) < 0)
          return -1;
        hd->pre_pw = &dx->pre.p;
        hd->scratch = dx->pscratch;
        break;
      }
    case DEMUX_INDEX:
      if (pack (&dx->idx_a, dx->idx.w, dx->idx.in, D, H) < 0)
        return -1;
      break;
    case DEMUX_MLP:
      for (int i = 0; i < dx->N; i++)
        if (pack (&dx->mlp[i].p, dx->mlp[i].w, dx->mlp[i].in, dx->mlp[i].out,
                  dx->mlp[i].in) < 0)
          return -1;
      if (pack (&dx->mlp_out.p, dx->mlp_out.w, dx->mlp_out.in, dx->mlp_out.out,
                dx->mlp_out.in) < 0)
        return -1;
      break;
    case DEMUX_NONE:
      if (dx->has_pooler
          && pack (&dx->pooler.p, dx->pooler.w, dx->pooler.in, dx->pooler.out,
                   dx->pooler.in) < 0)
        return -1;
      break;
    }
  if (dx->has_classifier
      && pack (&dx->cls.p, dx->cls.w, dx->cls.in, dx->cls.out, dx->cls.in) < 0)
    return -1;
  return 0;
}

pmx_demuxer *
pmx_demuxer_new (const pmx_model_config *cfg, pmx_tensor_lookup get, const void *ctx)
{
  pmx_demuxer *dx = calloc (1, sizeof *dx);
  if (!dx)
    {
      pmx_error_errno (errno, "out of memory");
      return NULL;
    }
  dx->N = cfg->mux_n > 1 ? cfg->mux_n : 1;
  dx->eps = cfg->ln_eps > 0 ? (float) cfg->ln_eps : 1e-12f;
  /* The encoder width is the (pruned) width of the embeddings.  */
  const pmx_tensor *we = pmx_embed_weight (get, ctx, "embeddings.word_embeddings.weight",
                                           2, -1, -1);
  if (!we)
    goto fail;
  dx->H = (int) we->shape[1];
  const char *v = cfg->demux_variant;
  if (dx->N == 1)
    {
      dx->kind = DEMUX_NONE;
      dx->has_pooler = get (ctx, "pooler.dense.weight") != NULL;
      /* CoFi slices the pooler's input only (§6.9): (H_unpruned, H).  */
      if (dx->has_pooler
          && get_linear (get, ctx, "pooler.dense", -1, dx->H, &dx->pooler) < 0)
        goto fail;
      const char *pool = cfg->pooling;
      if (!*pool)
        pool = dx->has_pooler && cfg->num_labels > 0 ? "pooler" : "cls";
      if (parse_pool (pool, &dx->pool) < 0)
        goto fail;
      if (dx->pool == POOL_POOLER && !dx->has_pooler)
        {
          pmx_error ("pooling 'pooler', but the model has no pooler weights");
          goto fail;
        }
      dx->normalize = cfg->normalize != 0;
      dx->D = pool_width (dx);
    }
  else if (!strcmp (v, "index_pos"))
    {
      dx->kind = DEMUX_INDEX_POS;
      if (init_index_pos (dx, cfg, get, ctx) < 0)
        goto fail;
    }
  else if (!strcmp (v, "index"))
    {
      dx->kind = DEMUX_INDEX;
      if (get_linear (get, ctx, "demultiplexer.dense", -1, 2 * dx->H, &dx->idx) < 0
          || get_layer_norm (get, ctx, "demultiplexer.layer_norm", dx->idx.out,
                             &dx->idx_ln) < 0)
        goto fail;
      dx->D = dx->idx.out;
    }
  else if (!strcmp (v, "mlp"))
    {
      dx->kind = DEMUX_MLP;
      if (init_mlp (dx, get, ctx) < 0)
        goto fail;
    }
  else
    {
      pmx_error ("demuxing variant '%s' is not supported (index_pos, index, mlp)", v);
      goto fail;
    }
  if (cfg->num_labels > 0)
    {
      /* Its width is checked against D when logits are asked for: a
         pooling other than the model's may give embeddings only.  */
      if (get_linear (get, ctx, "classifier", cfg->num_labels, -1, &dx->cls) < 0)
        goto fail;
      dx->has_classifier = 1;
    }
  dx->outputs = dx->has_classifier ? PMX_DEMUX_LOGITS : PMX_DEMUX_EMBEDDINGS;
  if (pack_weights (dx) < 0)
    goto fail;
  return dx;
fail:
  pmx_demuxer_free (dx);
  return NULL;
}

void
pmx_demuxer_free (pmx_demuxer *dx)
{
  if (!dx)
    return;
  free (dx->inst_proj);
  for (int i = 0; dx->mlp && i < dx->N; i++)
    pmx_packed_release (&dx->mlp[i].p);
  free (dx->mlp);
  free (dx->mlp_ln);
  linear *ls[] = { &dx->pre, &dx->idx, &dx->mlp_out, &dx->pooler, &dx->cls };
  for (size_t i = 0; i < sizeof ls / sizeof *ls; i++)
    pmx_packed_release (&ls[i]->p);
  for (int k = 0; k < MAX_DEMUX_LAYERS; k++)
    pmx_packed_release (&dx->dense[k].p);
  pmx_packed_release (&dx->dense1_h);
  pmx_packed_release (&dx->idx_a);
  free (dx->pscratch);
  for (int k = 0; k < 4; k++)
    free (dx->buf[k]);
  free (dx);
}

int
pmx_demuxer_set_outputs (pmx_demuxer *dx, int what)
{
  if ((what & PMX_DEMUX_LOGITS) && !dx->has_classifier)
    return pmx_error ("the model has no classifier: it gives only embeddings");
  if (!(what & (PMX_DEMUX_LOGITS | PMX_DEMUX_EMBEDDINGS)))
    return pmx_error ("no output asked for");
  dx->outputs = what;
  return check_classifier (dx);
}

int
pmx_demuxer_set_pool (pmx_demuxer *dx, const char *pool, int normalize)
{
  if (dx->kind != DEMUX_NONE)
    return pmx_error ("pooling applies only to models without multiplexing");
  if (pool)
    {
      enum pool_kind p;
      if (parse_pool (pool, &p) < 0)
        return -1;
      if (p == POOL_POOLER && !dx->has_pooler)
        return pmx_error ("pooling 'pooler', but the model has no pooler weights");
      dx->pool = p;
      dx->D = pool_width (dx);
    }
  if (normalize >= 0)
    dx->normalize = normalize != 0;
  return 0;
}

int pmx_demuxer_classes (const pmx_demuxer *dx) { return dx->has_classifier ? dx->cls.out : 0; }
int pmx_demuxer_embedding_width (const pmx_demuxer *dx) { return dx->D; }
int pmx_demuxer_instances (const pmx_demuxer *dx) { return dx->N; }
int pmx_demuxer_hidden (const pmx_demuxer *dx) { return dx->H; }

/* The encoder positions a head of this kind reads: [CLS] (0); the N index
   tokens and the [CLS] after them for index; all (returns 0) for mean
   pooling.  */
static int
positions_read (enum demux_kind kind, enum pool_kind pool, int N, int32_t *pos, int max)
{
  if (kind == DEMUX_NONE && pool == POOL_MEAN)
    return 0;
  int P = kind == DEMUX_INDEX ? N + 1 : 1;
  for (int p = 0; p < P && p < max; p++)
    pos[p] = p;
  return P;
}

int
pmx_demuxer_positions (const pmx_demuxer *dx, int32_t *pos, int max)
{
  return positions_read (dx->kind, dx->pool, dx->N, pos, max);
}

int
pmx_head_positions (const pmx_model_config *cfg, int32_t *pos, int max)
{
  enum demux_kind kind = DEMUX_NONE;
  enum pool_kind pool = POOL_CLS;
  if (cfg->mux_n > 1)           /* index_pos and mlp read [CLS] only */
    kind = strcmp (cfg->demux_variant, "index") ? DEMUX_INDEX_POS : DEMUX_INDEX;
  else if (cfg->pooling[0] && parse_pool (cfg->pooling, &pool) < 0)
    return -1;
  return positions_read (kind, pool, cfg->mux_n, pos, max);
}

/* ---- The stage ---------------------------------------------------------- */

/* The slot of position POS in the hidden tensor, or -1 with an error.  */
static int
slot_of (const int32_t *positions, int P, int pos)
{
  if (!positions)
    return pos < P ? pos : pmx_error ("'hidden' holds %d positions; position %d "
                                      "is needed", P, pos);
  for (int p = 0; p < P; p++)
    if (positions[p] == pos)
      return p;
  return pmx_error ("position %d is needed but not in 'positions'", pos);
}

/* Z (B, D): the vectors the classifier reads, for all B = G*N rows.  */
static int
features (pmx_demuxer *dx, const float *hid, int G, int P, const int32_t *positions,
          const pmx_tensor *lengths, float *Z)
{
  int N = dx->N, H = dx->H, D = dx->D;
  size_t B = (size_t) G * N, PH = (size_t) P * H;
  int s0 = slot_of (positions, P, 0);
  if (s0 < 0)
    return -1;
  float *X = scratch (dx, 1, (size_t) G * H > B * H ? (size_t) G * H : B * H);
  if (!X)
    return -1;
  /* X (G, H): every group's position-0 vector, made contiguous.  */
  for (int g = 0; g < G; g++)
    memcpy (X + (size_t) g * H, hid + g * PH + (size_t) s0 * H, (size_t) H * sizeof *X);

  switch (dx->kind)
    {
    case DEMUX_INDEX_POS:
      {
        float *U = scratch (dx, 2, (size_t) G * D > B * D ? (size_t) G * D : B * D);
        if (!U)
          return -1;
        pmx_demux_head_fwd (&dx->head, dx->inst_proj, X, H, G, U, Z, NULL);
        return 0;
      }
    case DEMUX_INDEX:
      {
        /* z = LN(gelu(W[:, :H] h_i + W[:, H:] h_N + b)).  */
        int sN = slot_of (positions, P, N);
        if (sN < 0)
          return -1;
        float *A = scratch (dx, 1, B * H), *C = scratch (dx, 2, (size_t) G * D);
        if (!A || !C)
          return -1;
        for (int g = 0; g < G; g++)
          for (int i = 0; i < N; i++)
            {
              int si = slot_of (positions, P, i);
              if (si < 0)
                return -1;
              memcpy (A + ((size_t) g * N + i) * H, hid + g * PH + (size_t) si * H,
                      (size_t) H * sizeof *A);
            }
        const linear *l = &dx->idx;
        pmx_sgemm_rows_packed (&dx->idx_a, l->w, l->in, D, H, A, H, Z, D, (int) B,
                               dx->pscratch);
        for (int g = 0; g < G; g++)
          cblas_sgemv (CblasRowMajor, CblasNoTrans, D, H, 1.0f, l->w + H, l->in,
                       hid + g * PH + (size_t) sN * H, 1, 0.0f, C + (size_t) g * D, 1);
        for (size_t r = 0; r < B; r++)
          for (int o = 0; o < D; o++)
            {
              float *z = Z + r * D + o;
              *z = pmx_gelu_erf (*z + C[(r / N) * D + o] + l->b[o]);
            }
        ln_rows (&dx->idx_ln, Z, (int) B, dx->eps);
        return 0;
      }
    case DEMUX_MLP:
      {
        int D1 = dx->mlp[0].out;
        float *T = scratch (dx, 2, (size_t) G * D1), *Y = scratch (dx, 3, B * D1);
        if (!T || !Y)
          return -1;
        for (int i = 0; i < N; i++)
          {
            linear_fwd (dx, &dx->mlp[i], X, H, G, T);
            for (size_t j = 0; j < (size_t) G * D1; j++)
              T[j] = pmx_gelu_erf (T[j]);
            ln_rows (&dx->mlp_ln[i], T, G, dx->eps);
            for (int g = 0; g < G; g++)
              memcpy (Y + ((size_t) g * N + i) * D1, T + (size_t) g * D1,
                      (size_t) D1 * sizeof *Y);
          }
        linear_fwd (dx, &dx->mlp_out, Y, D1, (int) B, Z);
        for (size_t j = 0; j < B * D; j++)
          Z[j] = pmx_gelu_erf (Z[j]);
        ln_rows (&dx->mlp_out_ln, Z, (int) B, dx->eps);
        return 0;
      }
    case DEMUX_NONE:
      break;
    }

  /* N = 1: pooling.  */
  if (dx->pool == POOL_MEAN)
    {
      for (int g = 0; g < G; g++)
        {
          int len = P;
          if (lengths)
            len = ((const int32_t *) lengths->data)[g];
          if (len < 1 || len > (positions ? INT32_MAX : P))
            return pmx_error ("row %d: length %d does not fit %d positions", g, len, P);
          double *acc = calloc ((size_t) H, sizeof *acc);
          if (!acc)
            return pmx_error_errno (errno, "out of memory");
          int n = 0;
          for (int p = 0; p < P; p++)
            if ((positions ? positions[p] : p) < len)
              {
                const float *h = hid + g * PH + (size_t) p * H;
                for (int j = 0; j < H; j++)
                  acc[j] += h[j];
                n++;
              }
          for (int j = 0; j < H; j++)
            Z[(size_t) g * H + j] = (float) (acc[j] / (n ? n : 1));
          free (acc);
          if (n != len)
            return pmx_error ("row %d: mean pooling needs positions 0..%d, "
                              "'hidden' holds %d of them", g, len - 1, n);
        }
    }
  else if (dx->pool == POOL_POOLER)
    {
      linear_fwd (dx, &dx->pooler, X, H, G, Z);     // (G, D)
      for (size_t j = 0; j < (size_t) G * D; j++)
        Z[j] = tanhf (Z[j]);
    }
  else
    memcpy (Z, X, (size_t) G * H * sizeof *Z);
  if (dx->normalize)
    for (int g = 0; g < G; g++)
      {
        float *z = Z + (size_t) g * D;
        double ss = 0;
        for (int j = 0; j < D; j++)
          ss += (double) z[j] * z[j];
        /* torch.nn.functional.normalize: x / max(||x||, 1e-12).  */
        double n = sqrt (ss);
        float inv = (float) (1.0 / (n > 1e-12 ? n : 1e-12));
        for (int j = 0; j < D; j++)
          z[j] *= inv;
      }
  return 0;
}

int
pmx_demux_stage (pmx_demuxer *dx, const pmx_record *in, pmx_record *out)
{
  char buf[8 * 24];
  const pmx_tensor *hid = pmx_record_expect (in, "hidden", PMX_F32, 3);
  if (!hid)
    return -1;
  int64_t G = hid->shape[0], P = hid->shape[1];
  if (hid->shape[2] != dx->H)
    return pmx_error ("tensor 'hidden' is %s, but the model's hidden size is %d",
                      pmx_shape_str (hid, buf, sizeof buf), dx->H);
  if (P < 1 || G > INT32_MAX / (dx->N > dx->D ? dx->N : dx->D))
    return pmx_error ("tensor 'hidden' has a bad shape %s",
                      pmx_shape_str (hid, buf, sizeof buf));
  const pmx_tensor *pos = pmx_record_get (in, "positions");
  if (pos && (pos->dtype != PMX_I32 || pos->rank != 1 || pos->shape[0] != P))
    return pmx_error ("tensor 'positions' must be i32 (%lld)", (long long) P);
  int64_t B = G * dx->N;
  const pmx_tensor *row = pmx_record_get (in, "row");
  if (!row)
    return pmx_error ("no tensor 'row'");
  if (row->dtype != PMX_I64 || row->rank != 1 || row->shape[0] != B)
    return pmx_error ("tensor 'row' has %lld rows; %lld sequences of N = %d "
                      "instances need %lld", (long long) (row->rank == 1 ? row->shape[0] : -1),
                      (long long) G, dx->N, (long long) B);
  /* -1 marks a filler row (dropped below); anything else negative is not
     a row number, and dropping it too would lose a row silently.  */
  for (int64_t b = 0; b < B; b++)
    if (((const int64_t *) row->data)[b] < -1)
      return pmx_error ("tensor 'row': %lld is not a row number (-1 marks"
                        " a filler row)",
                        (long long) ((const int64_t *) row->data)[b]);
  const pmx_tensor *label = pmx_record_get (in, "label");
  if (label && (label->rank != 1 || label->shape[0] != B
                || pmx_dtype_size (label->dtype) == 0))
    return pmx_error ("tensor 'label' must have %lld rows", (long long) B);
  const pmx_tensor *lengths = pmx_record_get (in, "lengths");
  if (lengths && (lengths->dtype != PMX_I32 || lengths->rank != 1
                  || lengths->shape[0] != B))
    return pmx_error ("tensor 'lengths' must be i32 (%lld)", (long long) B);

  if (check_classifier (dx) < 0)
    return -1;
  int D = dx->D;
  float *Z = scratch (dx, 0, (size_t) B * D);
  if (!Z || features (dx, hid->data, (int) G, (int) P,
                      pos ? pos->data : NULL, lengths, Z) < 0)
    return -1;
  int C = dx->has_classifier ? dx->cls.out : 0;
  float *Y = NULL;
  if (dx->outputs & PMX_DEMUX_LOGITS)
    {
      Y = scratch (dx, 1, (size_t) B * C);
      if (!Y)
        return -1;
      linear_fwd (dx, &dx->cls, Z, D, (int) B, Y);
    }

  /* Never hand on a NaN or infinity: an argmax would call it class 0.  */
  const int64_t *rv = row->data;
  for (int64_t b = 0; b < B; b++)
    if (rv[b] >= 0 && (pmx_count_nonfinite (Z + b * D, (size_t) D)
                       || (Y && pmx_count_nonfinite (Y + b * C, (size_t) C))))
      return pmx_error ("row %lld: the %s are not finite (NaN or infinity):"
                        " the input or the model overflows", (long long) rv[b],
                        pmx_count_nonfinite (Z + b * D, (size_t) D)
                        ? "features" : "logits");

  /* Keep the real rows, drop the fillers.  */
  int64_t R = 0;
  for (int64_t b = 0; b < B; b++)
    R += rv[b] >= 0;
  pmx_record_reset (out);
  pmx_tensor *orow = pmx_record_add (out, "row", PMX_I64, 1, &R);
  pmx_tensor *olab = NULL, *olog = NULL, *oemb = NULL;
  if (!orow)
    return -1;
  if (label && !(olab = pmx_record_add (out, "label", label->dtype, 1, &R)))
    return -1;
  int64_t s[2] = { R, C };
  if ((dx->outputs & PMX_DEMUX_LOGITS)
      && !(olog = pmx_record_add (out, "logits", PMX_F32, 2, s)))
    return -1;
  s[1] = D;
  if ((dx->outputs & PMX_DEMUX_EMBEDDINGS)
      && !(oemb = pmx_record_add (out, "embeddings", PMX_F32, 2, s)))
    return -1;
  size_t ls = label ? pmx_dtype_size (label->dtype) : 0;
  int64_t r = 0;
  for (int64_t b = 0; b < B; b++)
    {
      if (rv[b] < 0)
        continue;
      ((int64_t *) orow->data)[r] = rv[b];
      if (olab)
        memcpy ((char *) olab->data + r * ls, (const char *) label->data + b * ls, ls);
      if (olog)
        memcpy ((float *) olog->data + r * C, Y + b * C, (size_t) C * sizeof *Y);
      if (oemb)
        memcpy ((float *) oemb->data + r * D, Z + b * D, (size_t) D * sizeof *Z);
      r++;
    }
  return 1;
}
