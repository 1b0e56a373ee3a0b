/* train-model.c -- the trainable BERT / MUX-BERT (see train-model.h).

   The parameter table is built by one function, layout (), which runs
   three times: to list the tensors, then to point the weight views into
   the parameter buffer, then into the gradient buffer, so the table and
   the views cannot disagree.  Activations live in one arena, planned the
   same way (plan () sizes it, then carves it).  */

#include <config.h>
#include "train-model.h"
#include "train-ops.h"
#include "kernels.h"
#include "par.h"
#include "mux.h"
#include "demux-head.h"
#include "error.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { K_WEIGHT, K_NODECAY, K_FROZEN };

/* ---- Parameter table ---------------------------------------------------- */

typedef struct layout_state
{
  pmx_tmodel *m;
  float *base;                  /* NULL: listing pass */
  int cursor;
  int cap;
  int failed;                   /* no memory for the table */
} layout_state;

static float *
add (layout_state *s, int kind, int64_t d0, int64_t d1, const char *fmt, ...)
  __attribute__ ((format (printf, 5, 6)));

static float *
add (layout_state *s, int kind, int64_t d0, int64_t d1, const char *fmt, ...)
{
  pmx_tmodel *m = s->m;
  if (s->base)
    return s->base + m->param[s->cursor++].offset;
  if (s->failed)
    return NULL;
  if (m->nparams == s->cap)
    {
      s->cap = s->cap ? 2 * s->cap : 64;
      pmx_tparam *p = realloc (m->param, s->cap * sizeof *p);
      if (!p)
        {
          s->failed = 1;
          return NULL;
        }
      m->param = p;
    }
  pmx_tparam *p = &m->param[m->nparams++];
  memset (p, 0, sizeof *p);
  va_list ap;
  va_start (ap, fmt);
  vsnprintf (p->name, sizeof p->name, fmt, ap);
  va_end (ap);
  p->rank = d1 > 0 ? 2 : 1;
  p->shape[0] = d0;
  p->shape[1] = d1 > 0 ? d1 : 0;
  p->size = (size_t) d0 * (d1 > 0 ? (size_t) d1 : 1);
  p->offset = m->total;
  m->total += (p->size + 15) & ~(size_t) 15;  /* 64-byte aligned tensors */
  p->decay = kind == K_WEIGHT;
  p->frozen = kind == K_FROZEN;
  p->embedding = !strncmp (p->name, "embeddings.", 11);
  p->aux = !strncmp (p->name, "layer_transformation.", 21);
  return NULL;
}

static int
layout (pmx_tmodel *m, float *base, pmx_tweights *w)
{
  const pmx_train_config *c = &m->cfg;
  layout_state s = { m, base, 0, 0, 0 };
  int H = c->hidden, D = c->demux_hidden, N = c->mux_n;
  memset (w, 0, sizeof *w);
  w->word = add (&s, K_WEIGHT, c->vocab, H, "embeddings.word_embeddings.weight");
  w->pos = add (&s, K_WEIGHT, c->max_pos, H, "embeddings.position_embeddings.weight");
  w->type = add (&s, K_WEIGHT, c->type_vocab, H, "embeddings.token_type_embeddings.weight");
  w->eln_w = add (&s, K_NODECAY, H, 0, "embeddings.LayerNorm.weight");
  w->eln_b = add (&s, K_NODECAY, H, 0, "embeddings.LayerNorm.bias");
  for (int l = 0; l < c->layers; l++)
    {
      pmx_tlayer_w *L = &w->layer[l];
      int A = c->heads[l] * c->head_dim, F = c->ffn[l];
      const char *p = "encoder.layer";
      if (A > 0)
        {
          L->q_w = add (&s, K_WEIGHT, A, H, "%s.%d.attention.self.query.weight", p, l);
          L->q_b = add (&s, K_NODECAY, A, 0, "%s.%d.attention.self.query.bias", p, l);
          L->k_w = add (&s, K_WEIGHT, A, H, "%s.%d.attention.self.key.weight", p, l);
          L->k_b = add (&s, K_NODECAY, A, 0, "%s.%d.attention.self.key.bias", p, l);
          L->v_w = add (&s, K_WEIGHT, A, H, "%s.%d.attention.self.value.weight", p, l);
          L->v_b = add (&s, K_NODECAY, A, 0, "%s.%d.attention.self.value.bias", p, l);
          L->ao_w = add (&s, K_WEIGHT, H, A, "%s.%d.attention.output.dense.weight", p, l);
          L->ao_b = add (&s, K_NODECAY, H, 0, "%s.%d.attention.output.dense.bias", p, l);
          L->ln1_w = add (&s, K_NODECAY, H, 0, "%s.%d.attention.output.LayerNorm.weight", p, l);
          L->ln1_b = add (&s, K_NODECAY, H, 0, "%s.%d.attention.output.LayerNorm.bias", p, l);
        }
      if (F > 0)
        {
          L->fi_w = add (&s, K_WEIGHT, F, H, "%s.%d.intermediate.dense.weight", p, l);
          L->fi_b = add (&s, K_NODECAY, F, 0, "%s.%d.intermediate.dense.bias", p, l);
          L->fo_w = add (&s, K_WEIGHT, H, F, "%s.%d.output.dense.weight", p, l);
          L->fo_b = add (&s, K_NODECAY, H, 0, "%s.%d.output.dense.bias", p, l);
          L->ln2_w = add (&s, K_NODECAY, H, 0, "%s.%d.output.LayerNorm.weight", p, l);
          L->ln2_b = add (&s, K_NODECAY, H, 0, "%s.%d.output.LayerNorm.bias", p, l);
        }
    }
  if (c->muxed)
    {
      w->keys = add (&s, K_FROZEN, N, H, "instance_embedding");
      w->demux_e = add (&s, K_WEIGHT, N, H, "demux_module.demux_instance_embedding");
      w->d1_w = add (&s, K_WEIGHT, D, 2 * H, "demux_module.dense_1.weight");
      w->d1_b = add (&s, K_NODECAY, D, 0, "demux_module.dense_1.bias");
      w->d2_w = add (&s, K_WEIGHT, D, D, "demux_module.dense_2.weight");
      w->d2_b = add (&s, K_NODECAY, D, 0, "demux_module.dense_2.bias");
      w->dln1_w = add (&s, K_NODECAY, D, 0, "demux_module.layer_norm_1.weight");
      w->dln1_b = add (&s, K_NODECAY, D, 0, "demux_module.layer_norm_1.bias");
      w->dln2_w = add (&s, K_NODECAY, D, 0, "demux_module.layer_norm_2.weight");
      w->dln2_b = add (&s, K_NODECAY, D, 0, "demux_module.layer_norm_2.bias");
      w->pd_w = add (&s, K_WEIGHT, D, D, "demultiplexer.pre_decoder.weight");
      w->pd_b = add (&s, K_NODECAY, D, 0, "demultiplexer.pre_decoder.bias");
      w->pdln_w = add (&s, K_NODECAY, D, 0, "demultiplexer.pre_decoder_layer_norm.weight");
      w->pdln_b = add (&s, K_NODECAY, D, 0, "demultiplexer.pre_decoder_layer_norm.bias");
      if (c->retrieval)
        {
          w->rpd_w = add (&s, K_WEIGHT, D, D, "retrieval_head.pre_decoder.weight");
          w->rpd_b = add (&s, K_NODECAY, D, 0, "retrieval_head.pre_decoder.bias");
          w->rpdln_w = add (&s, K_NODECAY, D, 0, "retrieval_head.pre_decoder_layer_norm.weight");
          w->rpdln_b = add (&s, K_NODECAY, D, 0, "retrieval_head.pre_decoder_layer_norm.bias");
          w->dec_w = add (&s, K_WEIGHT, c->vocab, D, "retrieval_head.decoder.weight");
          w->dec_b = add (&s, K_NODECAY, c->vocab, 0, "retrieval_head.decoder.bias");
        }
    }
  if (c->num_labels > 0)
    {
      int in = c->muxed ? D : H;
      w->cls_w = add (&s, K_WEIGHT, c->num_labels, in, "classifier.weight");
      w->cls_b = add (&s, K_NODECAY, c->num_labels, 0, "classifier.bias");
    }
  if (c->layer_transformation)
    {
      int O = c->lt_out > 0 ? c->lt_out : H;
      w->lt_w = add (&s, K_WEIGHT, O, H, "layer_transformation.weight");
      w->lt_b = add (&s, K_NODECAY, O, 0, "layer_transformation.bias");
    }
  return s.failed ? -1 : 0;
}

static int
check_config (const pmx_train_config *c)
{
  if (c->vocab < 2 || c->hidden < 1 || c->layers < 0
      || c->layers > PMX_TRAIN_MAX_LAYERS || c->head_dim < 1
      || c->max_pos < 1 || c->type_vocab < 1 || c->mux_n < 1
      || c->num_labels < 0 || !(c->ln_eps > 0)
      || !(c->dropout >= 0 && c->dropout < 1))
    return pmx_error ("invalid training configuration");
  if (c->muxed && c->demux_hidden < 1)
    return pmx_error ("a multiplexed model needs a demux width");
  if (!c->muxed && (c->mux_n != 1 || c->retrieval))
    return pmx_error ("N > 1 and the retrieval head need a multiplexed model");
  for (int l = 0; l < c->layers; l++)
    if (c->heads[l] < 0 || c->ffn[l] < 0)
      return pmx_error ("layer %d: negative width", l);
  return 0;
}

int
pmx_train_config_from_model (pmx_train_config *c, const pmx_model_config *mc,
                             const int *heads, const int *ffn,
                             int demux_hidden, int retrieval, float dropout)
{
  memset (c, 0, sizeof *c);
  c->vocab = mc->vocab_size;
  c->hidden = mc->hidden;
  c->layers = mc->layers;
  c->head_dim = mc->head_dim;
  c->max_pos = mc->max_position;
  c->type_vocab = mc->type_vocab;
  c->ln_eps = (float) mc->ln_eps;
  c->mux_n = mc->mux_n;
  c->num_labels = mc->num_labels;
  c->attend_padding = mc->attend_padding;
  c->dropout = dropout;
  if (c->layers > PMX_TRAIN_MAX_LAYERS)
    return pmx_error ("%d layers: training supports at most %d", c->layers,
                      PMX_TRAIN_MAX_LAYERS);
  if (!strcmp (mc->mux_variant, "gaussian_hadamard")
      && !strcmp (mc->demux_variant, "index_pos"))
    c->muxed = 1;
  else if (strcmp (mc->mux_variant, "none"))
    return pmx_error ("training supports gaussian_hadamard muxing with the"
                      " index_pos demultiplexer, not %s/%s", mc->mux_variant,
                      mc->demux_variant);
  else if (strcmp (mc->pooling, "cls"))
    return pmx_error ("training supports cls pooling, not '%s'", mc->pooling);
  if (c->muxed && mc->demux_layers != 3)
    return pmx_error ("training supports 3 demux layers, not %d",
                      mc->demux_layers);
  for (int l = 0; l < c->layers; l++)
    {
      c->heads[l] = heads ? heads[l] : mc->heads;
      c->ffn[l] = ffn ? ffn[l] : mc->intermediate;
    }
  if (c->muxed)
    {
      c->demux_hidden = demux_hidden > 0 ? demux_hidden : mc->hidden;
      c->retrieval = retrieval != 0;
    }
  return 0;
}

pmx_tmodel *
pmx_tmodel_new (const pmx_train_config *cfg)
{
  if (check_config (cfg) < 0)
    return NULL;
  pmx_tmodel *m = calloc (1, sizeof *m);
  if (!m)
    return pmx_error ("model: out of memory"), NULL;
  m->cfg = *cfg;
  pmx_tweights dummy;
  if (layout (m, NULL, &dummy) < 0)
    {
      pmx_tmodel_free (m);
      return pmx_error ("model: out of memory"), NULL;
    }
  m->params = aligned_alloc (64, m->total * sizeof (float) + 64);
  m->grads = aligned_alloc (64, m->total * sizeof (float) + 64);
  if (!m->params || !m->grads)
    {
      pmx_tmodel_free (m);
      pmx_error ("model: out of memory (%zu parameters)", m->total);
      return NULL;
    }
  memset (m->params, 0, m->total * sizeof (float));
  memset (m->grads, 0, m->total * sizeof (float));
  m->grads_zero = 1;
  layout (m, m->params, &m->w);
  layout (m, m->grads, &m->g);
  return m;
}

static void act_free (void *a);

int
pmx_tmodel_set_threads (pmx_tmodel *m, int threads)
{
  pmx_par *par = pmx_par_new (threads);
  if (!par)
    return -1;
  pmx_par_free (m->par);
  m->par = par;
  return 0;
}

void
pmx_tmodel_describe (const pmx_tmodel *m, char *buf, size_t size)
{
  int t = pmx_par_threads (m->par);
  snprintf (buf, size, "%d thread%s, matrix products on %s", t, t == 1 ? "" : "s",
            pmx_sgemm_name ());
}

void
pmx_tmodel_free (pmx_tmodel *m)
{
  if (!m)
    return;
  act_free (m->act);
  pmx_par_free (m->par);
  free (m->param);
  free (m->params);
  free (m->grads);
  free (m);
}

/* Whether Q (may be NULL) has P's rank and shape.  */
static int
same_shape (const pmx_tparam *p, const pmx_tparam *q)
{
  return q && q->rank == p->rank && q->shape[0] == p->shape[0]
    && q->shape[1] == p->shape[1];
}

int
pmx_tmodel_copy (pmx_tmodel *dst, const pmx_tmodel *src)
{
  int n = 0;
  for (int k = 0; k < dst->nparams; k++)
    {
      const pmx_tparam *p = &dst->param[k], *q = pmx_tmodel_find (src, p->name);
      if (!same_shape (p, q))
        continue;
      memcpy (dst->params + p->offset, src->params + q->offset,
              p->size * sizeof (float));
      n++;
    }
  return n;
}

const pmx_tparam *
pmx_tmodel_find (const pmx_tmodel *m, const char *name)
{
  for (int i = 0; i < m->nparams; i++)
    if (!strcmp (m->param[i].name, name))
      return &m->param[i];
  return NULL;
}

/* X[0..N) = 0, and Y[0..N) = X[0..N): in blocks on PAR's threads (the
   backward's buffers are megabytes, a step's grads tens).  */
typedef struct copy_job
{
  float *y;
  const float *x;               /* NULL: zero */
} copy_job;

static void
copy_range (void *arg, size_t i0, size_t i1, int thread)
{
  const copy_job *j = arg;
  (void) thread;
  if (j->x)
    memcpy (j->y + i0, j->x + i0, (i1 - i0) * sizeof (float));
  else
    memset (j->y + i0, 0, (i1 - i0) * sizeof (float));
}

static void
par_copy (const pmx_par *par, float *y, const float *x, size_t n)
{
  copy_job j = { y, x };
  pmx_par_for (par, n, 1 << 16, copy_range, &j);
}

static void
zero (const pmx_par *par, float *x, size_t n)
{
  par_copy (par, x, NULL, n);
}

void
pmx_tmodel_zero_grad (pmx_tmodel *m)
{
  if (!m->grads_zero)
    zero (m->par, m->grads, m->total);
  m->grads_zero = 1;
}

void
pmx_tmodel_grads_zeroed (pmx_tmodel *m)
{
  m->grads_zero = 1;
}

/* A standard normal from a counter (Box-Muller), so that initialisation
   depends only on the seed and the tensor.  */
static double
normal (uint64_t key, uint64_t i)
{
  uint64_t a = pmx_mix64 (key + 2 * i), b = pmx_mix64 (key + 2 * i + 1);
  double u1 = ((double) (a >> 11) + 1) * 0x1p-53;   /* (0, 1] */
  double u2 = (double) (b >> 11) * 0x1p-53;
  return sqrt (-2 * log (u1)) * cos (2 * M_PI * u2);
}

void
pmx_tmodel_init_param (pmx_tmodel *m, int k, uint64_t seed)
{
  pmx_tparam *p = &m->param[k];
  float *x = m->params + p->offset;
  uint64_t key = pmx_mix64 (seed ^ pmx_mix64 (k + 1));
  const char *n = p->name;
  size_t len = strlen (n);
  int is_ln = strstr (n, "LayerNorm") || strstr (n, "layer_norm");
  int is_bias = len > 5 && !strcmp (n + len - 5, ".bias");
  if (is_ln && !is_bias)
    for (size_t i = 0; i < p->size; i++)
      x[i] = 1.0f;
  else if (is_bias)
    memset (x, 0, p->size * sizeof *x);
  else if (!strcmp (n, "instance_embedding"))
    for (int64_t r = 0; r < p->shape[0]; r++)
      {
        /* MUX-PLM random_encoding: N(0,1) rows scaled to norm 1.  */
        float *row = x + r * p->shape[1];
        double ss = 0;
        for (int64_t j = 0; j < p->shape[1]; j++)
          {
            row[j] = (float) normal (key, r * p->shape[1] + j);
            ss += (double) row[j] * row[j];
          }
        for (int64_t j = 0; j < p->shape[1]; j++)
          row[j] = (float) (row[j] / sqrt (ss));
      }
  else if (!strcmp (n, "layer_transformation.weight"))
    {
      memset (x, 0, p->size * sizeof *x);
      for (int64_t r = 0; r < p->shape[0] && r < p->shape[1]; r++)
        x[r * p->shape[1] + r] = 1.0f;
    }
  else if (!strcmp (n, "demux_module.demux_instance_embedding"))
    for (size_t i = 0; i < p->size; i++)
      x[i] = (float) normal (key, i);
  else
    for (size_t i = 0; i < p->size; i++)
      x[i] = (float) (0.02 * normal (key, i));
}

void
pmx_tmodel_init (pmx_tmodel *m, uint64_t seed)
{
  for (int k = 0; k < m->nparams; k++)
    pmx_tmodel_init_param (m, k, seed);
}

void
pmx_tmodel_init_from (pmx_tmodel *m, uint64_t seed, const pmx_tmodel *src)
{
  for (int k = 0; k < m->nparams; k++)
    {
      const pmx_tparam *p = &m->param[k], *q = pmx_tmodel_find (src, p->name);
      if (same_shape (p, q))
        memcpy (m->params + p->offset, src->params + q->offset,
                p->size * sizeof (float));
      else
        pmx_tmodel_init_param (m, k, seed);
    }
}

/* ---- Activations -------------------------------------------------------- */

typedef struct layer_act
{
  const float *in;                      /* the layer's input (R, H) */
  const float *out;                     /* its output (R, H) */
  float *q, *k, *v, *ctx, *att;         // (R, A) x4, (G, NH, T, T)
  float *ao, *ao_mask, *res1, *x1, *mean1, *rstd1;  // (R, H), (R)
  float *f1, *fg, *f2, *f2_mask, *res2, *x2, *mean2, *rstd2;
  /* Under masks only: ctx_raw (R, A) before head_z (ctx after it);
     ao_raw, f2_raw (R, H) the dense outputs before head_layer_z / mlp_z and
     hidden_z; fgz (R, F) the GELU output times intermediate_z; x1z, x2z
     (R, H) the LayerNorm outputs times hidden_z.  skip_a / skip_f: the
     sublayer's z was 0, so it was an identity (CoFi's training quirk,
     MUX-PLM-SPEC.md §3).  */
  float *ctx_raw, *ao_raw, *fgz, *f2_raw, *x1z, *x2z;
  int skip_a, skip_f;
} layer_act;

typedef struct head_act
{
  int rows;
  int32_t *inst, *src, *target;        // (rows)
  float *z0;                            // (rows, 2H)
  float *d1, *z1, *d2, *g2, *z2;        // (rows, D): pre-GELU, GELU, ...
  float *l1, *mean1, *rstd1, *l2, *mean2, *rstd2;   // retrieval LNs
  float *p, *pg, *pl, *pmean, *prstd, *z3;
  float *C, *U, *dC, *dU;               /* task head: (N, D), (G, D) each */
  float *logits, *probs;                // (rows, C)
  /* gradients */
  float *dz0, *dd1, *dz1, *dd2, *dz2, *dp, *dpg, *dz3, *dlogits, *dl1, *dl2;
  double loss;
  int count;
  float scale;                          /* d loss / d (sum of row losses) */
} head_act;

typedef struct act
{
  size_t cap;                           /* floats in mem */
  float *mem;
  int B, T, G, R, N;                    /* R = G*T encoder rows */
  pmx_tbatch b;
  int32_t *ids;                         /* (B, T) copy */
  int32_t *types;                       /* (B, T) copy or NULL */
  int32_t *lengths;                     /* (B) copy */
  /* embeddings */
  float *es1, *e1, *emean1, *erstd1;    /* muxed: first pass (B*T, H) */
  float *mx;                            /* muxed (G*T, H) */
  float *es, *e, *emean, *erstd, *emask;  /* final pass (R, H) */
  /* Under masks only: the sums before hidden_z (es1_raw (B*T, H), es_raw
     (R, H)) and the outputs after it (e1z (B*T, H), ez (R, H)).  */
  float *es1_raw, *e1z, *es_raw, *ez;
  const pmx_cofi_z *z;                  /* the last forward's masks or NULL */
  pmx_cofi_z *dz;                       /* their gradient (owned) */
  double *dhz;                          /* (H) hidden_z gradient, in double */
  double *dcol;                         /* (max FFN) intermediate_z's, likewise */
  double *dhead;                        /* (max heads) head_z's, likewise */
  int masked;                           /* the arena has the mask buffers */
  int open;                             /* ... and the caller's gradients */
  int threads;                          /* datt holds T*T for each */
  pmx_tacts pub;                        /* what pmx_tmodel_acts shows */
  float *ext_dlogits;                   /* (B, C) */
  float *ext_dhidden[PMX_TRAIN_MAX_LAYERS + 1];  /* (R, H) each */
  layer_act L[PMX_TRAIN_MAX_LAYERS];
  float *X;                             /* encoder output (R, H), or (G, H)
                                           under rows_only */
  /* rows_only: the last forward ran its last layer on the rows the task
     head reads alone (head_rows_layer_fwd); xg (G, H) holds that layer's
     input at those rows.  */
  int rows_only;
  float *xg;
  head_act task, ret, mlm;
  /* backward scratch */
  float *dA, *dB, *dres, *dx1, *dq, *dk, *dv, *dctx, *dff, *dfg, *datt;
  float *dy;                            /* (R, H) under masks */
  float *de1, *des1;
  int have_forward;
  int dropped;                  /* the forward drew dropout masks (else none) */
} act;

static void
act_free (void *p)
{
  act *a = p;
  if (a)
    {
      free (a->mem);
      pmx_cofi_z_free (a->dz);
      free (a->dhz);
      free (a->dcol);
      free (a->dhead);
    }
  free (a);
}

/* Carve N floats (64-byte aligned) from *CUR; NULL base: count only.  */
static float *
carve (float *base, size_t *cur, size_t n)
{
  float *p = base ? base + *cur : NULL;
  *cur += (n + 15) & ~(size_t) 15;
  return p;
}

static void
plan_head (head_act *h, float *base, size_t *cur, int rows, int H, int D,
           int C, int retrieval)
{
  size_t r = rows;
  h->rows = rows;
  h->inst = (int32_t *) carve (base, cur, r);
  h->src = (int32_t *) carve (base, cur, r);
  h->target = (int32_t *) carve (base, cur, r);
  h->z0 = carve (base, cur, r * 2 * H);
  h->dz0 = carve (base, cur, r * 2 * H);
  float **bufs[] = { &h->d1, &h->z1, &h->d2, &h->g2, &h->z2, &h->p, &h->pg,
                     &h->pl, &h->z3, &h->dd1, &h->dz1, &h->dd2, &h->dz2,
                     &h->dp, &h->dpg, &h->dz3, &h->l1, &h->l2, &h->dl1,
                     &h->dl2 };
  for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
    *bufs[i] = carve (base, cur, r * D);
  h->C = carve (base, cur, retrieval ? 0 : r * D);
  h->U = carve (base, cur, retrieval ? 0 : r * D);
  h->dC = carve (base, cur, retrieval ? 0 : r * D);
  h->dU = carve (base, cur, retrieval ? 0 : r * D);
  h->pmean = carve (base, cur, r);
  h->prstd = carve (base, cur, r);
  h->mean1 = carve (base, cur, retrieval ? r : 0);
  h->rstd1 = carve (base, cur, retrieval ? r : 0);
  h->mean2 = carve (base, cur, retrieval ? r : 0);
  h->rstd2 = carve (base, cur, retrieval ? r : 0);
  h->logits = carve (base, cur, r * C);
  h->probs = carve (base, cur, r * C);
  h->dlogits = carve (base, cur, r * C);
}

static size_t
plan (const pmx_train_config *c, act *a, float *base, int B, int T)
{
  size_t mk = a->masked, op = a->open;  /* 0: the buffer is not needed */
  size_t cur = 0;
  int N = c->mux_n, G = B / N, R = G * T, H = c->hidden;
  size_t BT = (size_t) B * T;
  int Amax = 0, Fmax = 0, NHmax = 0;
  a->ids = (int32_t *) carve (base, &cur, BT);
  a->types = (int32_t *) carve (base, &cur, BT);
  a->lengths = (int32_t *) carve (base, &cur, B);
  if (c->muxed)
    {
      a->es1 = carve (base, &cur, BT * H);
      a->e1 = carve (base, &cur, BT * H);
      a->emean1 = carve (base, &cur, BT);
      a->erstd1 = carve (base, &cur, BT);
      a->mx = carve (base, &cur, (size_t) R * H);
      a->de1 = carve (base, &cur, BT * H);
      a->des1 = carve (base, &cur, BT * H);
      a->es1_raw = carve (base, &cur, mk * BT * H);
      a->e1z = carve (base, &cur, mk * BT * H);
    }
  a->es = carve (base, &cur, (size_t) R * H);
  a->e = carve (base, &cur, (size_t) R * H);
  a->emean = carve (base, &cur, R);
  a->erstd = carve (base, &cur, R);
  a->emask = carve (base, &cur, (size_t) R * H);
  a->es_raw = carve (base, &cur, mk * R * H);
  a->ez = carve (base, &cur, mk * R * H);
  a->dy = carve (base, &cur, mk * R * H);
  a->ext_dlogits = carve (base, &cur, op * B * c->num_labels);
  for (int l = 0; l <= c->layers; l++)
    a->ext_dhidden[l] = carve (base, &cur, op * R * H);
  for (int l = 0; l < c->layers; l++)
    {
      layer_act *L = &a->L[l];
      size_t A = (size_t) c->heads[l] * c->head_dim, F = c->ffn[l];
      memset (L, 0, sizeof *L);
      Amax = A > (size_t) Amax ? (int) A : Amax;
      Fmax = F > (size_t) Fmax ? (int) F : Fmax;
      NHmax = c->heads[l] > NHmax ? c->heads[l] : NHmax;
      if (A)
        {
          L->q = carve (base, &cur, R * A);
          L->k = carve (base, &cur, R * A);
          L->v = carve (base, &cur, R * A);
          L->ctx = carve (base, &cur, R * A);
          L->att = carve (base, &cur, (size_t) G * c->heads[l] * T * T);
          L->ao = carve (base, &cur, (size_t) R * H);
          L->ao_mask = carve (base, &cur, (size_t) R * H);
          L->res1 = carve (base, &cur, (size_t) R * H);
          L->x1 = carve (base, &cur, (size_t) R * H);
          L->mean1 = carve (base, &cur, R);
          L->rstd1 = carve (base, &cur, R);
          L->ctx_raw = carve (base, &cur, mk * R * A);
          L->ao_raw = carve (base, &cur, mk * R * H);
          L->x1z = carve (base, &cur, mk * R * H);
        }
      if (F)
        {
          L->f1 = carve (base, &cur, R * F);
          L->fg = carve (base, &cur, R * F);
          L->f2 = carve (base, &cur, (size_t) R * H);
          L->f2_mask = carve (base, &cur, (size_t) R * H);
          L->res2 = carve (base, &cur, (size_t) R * H);
          L->x2 = carve (base, &cur, (size_t) R * H);
          L->mean2 = carve (base, &cur, R);
          L->rstd2 = carve (base, &cur, R);
          L->fgz = carve (base, &cur, mk * R * F);
          L->f2_raw = carve (base, &cur, mk * R * H);
          L->x2z = carve (base, &cur, mk * R * H);
        }
    }
  a->xg = carve (base, &cur, (size_t) G * H);
  a->dA = carve (base, &cur, (size_t) R * H);
  a->dB = carve (base, &cur, (size_t) R * H);
  a->dres = carve (base, &cur, (size_t) R * H);
  a->dx1 = carve (base, &cur, (size_t) R * H);
  a->dq = carve (base, &cur, (size_t) R * Amax);
  a->dk = carve (base, &cur, (size_t) R * Amax);
  a->dv = carve (base, &cur, (size_t) R * Amax);
  a->dctx = carve (base, &cur, (size_t) R * Amax);
  a->dff = carve (base, &cur, (size_t) R * Fmax);
  a->dfg = carve (base, &cur, (size_t) R * Fmax);
  a->datt = carve (base, &cur, (size_t) a->threads * T * T);
  int D = c->muxed ? c->demux_hidden : H;
  plan_head (&a->task, base, &cur, B, H, D, c->num_labels, 0);
  plan_head (&a->ret, base, &cur, c->retrieval ? R : 0, H, D, c->vocab, 1);
  plan_head (&a->mlm, base, &cur, c->retrieval ? B * T : 0, H, D, c->vocab, 1);
  (void) NHmax;
  return cur;
}

static act *
get_act (pmx_tmodel *m, int B, int T, int masked)
{
  act *a = m->act;
  if (!a)
    {
      a = m->act = calloc (1, sizeof *a);
      if (!a)
        return pmx_error ("out of memory"), NULL;
    }
  /* The mask buffers, once asked for, stay (so that alternating masked
     and unmasked forwards do not reallocate).  */
  a->masked |= masked;
  a->open |= m->open;
  a->threads = pmx_par_threads (m->par);     /* attention's scratch, a thread each */
  if (a->masked && !a->dz)
    {
      const pmx_train_config *c = &m->cfg;
      int fmax = 1;
      for (int l = 0; l < c->layers; l++)
        fmax = c->ffn[l] > fmax ? c->ffn[l] : fmax;
      a->dz = pmx_cofi_z_new (c->layers, c->hidden, c->heads, c->ffn);
      a->dhz = calloc (c->hidden, sizeof *a->dhz);
      a->dcol = calloc (fmax, sizeof *a->dcol);
      int hmax = 1;
      for (int l = 0; l < c->layers; l++)
        hmax = c->heads[l] > hmax ? c->heads[l] : hmax;
      a->dhead = calloc (hmax, sizeof *a->dhead);
      if (!a->dz || !a->dhz || !a->dcol || !a->dhead)
        return pmx_error ("out of memory"), NULL;
    }
  size_t need = plan (&m->cfg, a, NULL, B, T);
  if (need > a->cap)
    {
      free (a->mem);
      a->mem = aligned_alloc (64, need * sizeof (float) + 64);
      a->cap = a->mem ? need : 0;
      if (!a->mem)
        return pmx_error ("out of memory for activations (%zu floats)", need),
          NULL;
    }
  plan (&m->cfg, a, a->mem, B, T);
  return a;
}

/* ---- Forward ------------------------------------------------------------ */

static void
dropout (const pmx_par *par, float *x, float *mask, size_t n, float p, int training,
         uint64_t seed, uint64_t stream)
{
  if (!training || p == 0)
    return;                     /* no mask: act.dropped is 0 */
  pmx_dropout_fwd (par, x, mask, (int64_t) n, p, seed, stream, 0);
}

/* dropout () of a (G*T, H) tensor at its rows g*T alone, held as (G, H):
   the masks the whole tensor gets there.  */
static void
dropout_rows (float *x, float *mask, int G, int T, int H, float p,
              int training, uint64_t seed, uint64_t stream)
{
  if (!training || p == 0)
    return;
  for (int g = 0; g < G; g++)   /* H values: on this thread */
    pmx_dropout_fwd (NULL, x + (size_t) g * H, mask + (size_t) g * H, H, p, seed,
                     stream, (int64_t) g * T * H);
}

/* The index_pos head as demux-head.c reads it: M's weights, or with
   GRAD its gradients.  */
static pmx_demux_head
demux_head_of (const pmx_tmodel *m)
{
  const pmx_train_config *c = &m->cfg;
  const pmx_tweights *w = &m->w;
  return (pmx_demux_head) { .N = c->mux_n, .H = c->hidden,
                            .D = c->demux_hidden, .ndense = 2,
                            .inst = w->demux_e, .w = { w->d1_w, w->d2_w },
                            .b = { w->d1_b, w->d2_b }, .pre_w = w->pd_w,
                            .pre_b = w->pd_b, .ln_w = w->pdln_w,
                            .ln_b = w->pdln_b, .eps = c->ln_eps };
}

static pmx_demux_head_act
demux_head_act_of (const head_act *h)
{
  return (pmx_demux_head_act) { .pre = { h->d1, h->d2 },
                                .z = { h->z1, h->z2 }, .p = h->p,
                                .pg = h->pg, .pl = h->pl, .mean = h->pmean,
                                .rstd = h->prstd };
}

/* The demultiplexer's classification path (train-model.h) over h->rows,
   the rows of G = rows / N groups of T rows in X (T = 1 where X holds
   position 0 alone): the one index_pos head of inference (demux-head.c).  */
static void
task_head_fwd (const pmx_tmodel *m, head_act *h, const float *X, int T)
{
  const pmx_train_config *c = &m->cfg;
  const pmx_tweights *w = &m->w;
  int rows = h->rows, H = c->hidden, D = c->demux_hidden, C = c->num_labels;
  if (!c->muxed)
    {
      /* cls pooling: the classifier reads h_0 of each row.  */
      for (int r = 0; r < rows; r++)
        memcpy (h->z0 + (size_t) r * H, X + (size_t) h->src[r] * H,
                H * sizeof (float));
      pmx_linear_fwd (m->par, h->logits, h->z0, w->cls_w, w->cls_b, rows, H, C);
      return;
    }
  pmx_demux_head hd = demux_head_of (m);
  pmx_demux_head_act ha = demux_head_act_of (h);
  pmx_demux_head_inst (&hd, h->C);
  pmx_demux_head_fwd (&hd, h->C, X, T * H, rows / c->mux_n, h->U, h->z3,
                      &ha);
  pmx_linear_fwd (m->par, h->logits, h->z3, w->cls_w, w->cls_b, rows, D, C);
}

/* The retrieval head (MUX-PLM-SPEC.md §4.2): no residuals, LN after every
   GELU.  */
static void
ret_head_fwd (const pmx_tmodel *m, head_act *h, const float *X)
{
  const pmx_train_config *c = &m->cfg;
  const pmx_tweights *w = &m->w;
  int rows = h->rows, H = c->hidden, D = c->demux_hidden;
  size_t n = (size_t) rows * D;
  pmx_concat_fwd (h->z0, w->demux_e, h->inst, X, h->src, rows, H);
  pmx_linear_fwd (m->par, h->d1, h->z0, w->d1_w, w->d1_b, rows, 2 * H, D);
  pmx_gelu_fwd (h->z1, h->d1, n);
  pmx_layernorm_fwd (m->par, h->l1, h->mean1, h->rstd1, h->z1, w->dln1_w, w->dln1_b,
                     rows, D, c->ln_eps);
  pmx_linear_fwd (m->par, h->d2, h->l1, w->d2_w, w->d2_b, rows, D, D);
  pmx_gelu_fwd (h->g2, h->d2, n);
  pmx_layernorm_fwd (m->par, h->l2, h->mean2, h->rstd2, h->g2, w->dln2_w, w->dln2_b,
                     rows, D, c->ln_eps);
  pmx_linear_fwd (m->par, h->p, h->l2, w->rpd_w, w->rpd_b, rows, D, D);
  pmx_gelu_fwd (h->pg, h->p, n);
  pmx_layernorm_fwd (m->par, h->pl, h->pmean, h->prstd, h->pg, w->rpdln_w,
                     w->rpdln_b, rows, D, c->ln_eps);
  pmx_linear_fwd (m->par, h->logits, h->pl, w->dec_w, w->dec_b, rows, D, c->vocab);
}

/* Run the vocabulary head H over its first K rows (filled by the caller)
   and return its weighted mean loss (0 without rows or weight).  */
static double
run_vocab_head (const pmx_tmodel *m, head_act *h, int k, const float *X,
                float weight)
{
  h->rows = k;
  h->count = 0;
  h->scale = 0;
  if (k == 0)
    return 0;
  ret_head_fwd (m, h, X);
  h->loss = pmx_softmax_xent_fwd (h->probs, h->logits, h->target, k,
                                  m->cfg.vocab, &h->count);
  if (weight == 0 || h->count == 0)
    return 0;
  h->scale = weight / h->count;
  return weight * h->loss / h->count;
}

static int
check_batch (const pmx_train_config *c, const pmx_tbatch *b)
{
  if (b->B < 1 || b->T < 1 || b->B % c->mux_n)
    return pmx_error ("batch of %d rows is not a multiple of N = %d", b->B,
                      c->mux_n);
  if (b->T > c->max_pos)
    return pmx_error ("sequence length %d exceeds max_position %d", b->T,
                      c->max_pos);
  for (int64_t i = 0; i < (int64_t) b->B * b->T; i++)
    {
      if (b->ids[i] < 0 || b->ids[i] >= c->vocab)
        return pmx_error ("token id %d out of range (vocabulary %d)",
                          b->ids[i], c->vocab);
      if (b->type_ids && (b->type_ids[i] < 0 || b->type_ids[i] >= c->type_vocab))
        return pmx_error ("type id %d out of range", b->type_ids[i]);
    }
  for (int r = 0; r < b->B; r++)
    {
      if (b->lengths && (b->lengths[r] < 1 || b->lengths[r] > b->T))
        return pmx_error ("row %d: length %d out of range", r, b->lengths[r]);
      if (b->labels && b->labels[r] >= c->num_labels)
        return pmx_error ("row %d: label %d out of range (%d classes)", r,
                          b->labels[r], c->num_labels);
    }
  if (b->labels && b->task_weight != 0 && c->num_labels == 0)
    return pmx_error ("the model has no classifier");
  if (b->mlm_labels)
    {
      if (!c->retrieval)
        return pmx_error ("MLM needs a multiplexed model with a retrieval head");
      for (int64_t i = 0; i < (int64_t) b->B * b->T; i++)
        if (b->mlm_labels[i] >= c->vocab)
          return pmx_error ("MLM label %d out of range", b->mlm_labels[i]);
    }
  if (b->ret_inst)
    {
      if (!c->retrieval)
        return pmx_error ("the model has no retrieval head");
      for (int64_t i = 0; i < (int64_t) (b->B / c->mux_n) * b->T; i++)
        if (b->ret_inst[i] < 0 || b->ret_inst[i] >= c->mux_n)
          return pmx_error ("retrieval instance %d out of range",
                            b->ret_inst[i]);
    }
  return 0;
}

static int
check_masks (const pmx_train_config *c, const pmx_cofi_z *z)
{
  if (z->layers != c->layers || z->hidden != c->hidden)
    return pmx_error ("masks for %d layers of %d, not %d of %d", z->layers,
                      z->hidden, c->layers, c->hidden);
  for (int l = 0; l < c->layers; l++)
    if (z->heads[l] != c->heads[l] || z->ffn[l] != c->ffn[l])
      return pmx_error ("layer %d: masks for %d heads and %d FFN dimensions,"
                        " not %d and %d", l, z->heads[l], z->ffn[l],
                        c->heads[l], c->ffn[l]);
  return 0;
}

/* Masks' elementwise steps on PAR's threads: what pmx_mul_cols,
   pmx_colsum_prod and a head's mask do, in blocks of rows (the products)
   or of columns and heads (the sums), each sum still in row order, so the
   same bits as on one thread.  Left on one thread, they took 3.3 % of a
   MiniLM-size pruning step's CPU time on two threads, the other thread
   waiting meanwhile.  */
typedef struct cols_job
{
  float *y;
  const float *x, *x2, *hz;
  double *acc;
  float s;
  int R, H, HD;
} cols_job;

static void
mul_cols_rows (void *arg, size_t r0, size_t r1, int thread)
{
  const cols_job *j = arg;
  (void) thread;
  size_t H = (size_t) j->H;
  pmx_mul_cols (j->y + r0 * H, j->x + r0 * H, j->hz, j->s, (int) (r1 - r0), j->H);
}

/* y (R, H) = x * s * hz[j] column-wise (Y may be X).  */
static void
par_mul_cols (const pmx_par *par, float *y, const float *x, const float *hz, float s,
              int R, int H)
{
  cols_job j = { .y = y, .x = x, .hz = hz, .s = s, .H = H };
  pmx_par_for (par, (size_t) R, pmx_par_chunk (par, (size_t) R, 16), mul_cols_rows, &j);
}

static void
colsum_prod_cols (void *arg, size_t c0, size_t c1, int thread)
{
  const cols_job *j = arg;
  (void) thread;
  pmx_colsum_prod (j->acc, j->x, j->x2, j->H, j->R, (int) c0, (int) c1);
}

/* acc[j] += sum_r x[r, j] y[r, j] over R rows of H, each column in row
   order.  */
static void
par_colsum_prod (const pmx_par *par, double *acc, const float *x, const float *y, int R,
                 int H)
{
  cols_job j = { .x = x, .x2 = y, .acc = acc, .R = R, .H = H };
  pmx_par_for (par, (size_t) H, PMX_PAR_COLS, colsum_prod_cols, &j);
}

/* Y = X * HZ[j / HD] (a head's mask on its columns) for rows R0..R1.  */
static void
head_mul_rows (void *arg, size_t r0, size_t r1, int thread)
{
  const cols_job *j = arg;
  (void) thread;
  for (size_t i = r0 * j->H; i < r1 * j->H; i++)
    j->y[i] = j->x[i] * j->hz[(i % j->H) / j->HD];
}

/* For heads H0..H1 of HD columns of D and RAW (R rows of H = NH HD):
   ACC[h] = the sum of D RAW over the head's elements, in row order, then D
   = D * Z[h] (the backward of ctx = ctx_raw * head_z).  */
static void
head_z_heads (void *arg, size_t h0, size_t h1, int thread)
{
  const cols_job *j = arg;
  (void) thread;
  for (size_t h = h0; h < h1; h++)
    {
      double t = 0;
      for (int r = 0; r < j->R; r++)
        for (size_t c = h * j->HD; c < (h + 1) * j->HD; c++)
          {
            size_t i = (size_t) r * j->H + c;
            t += (double) j->y[i] * j->x[i];
            j->y[i] *= j->hz[h];
          }
      j->acc[h] = t;
    }
}

/* The multiplexer's forward and backward (mux.h) a block of groups a task
   (groups are independent: the same bits), and the muxed embedding sum
   es = mx + pos + type 0 a block of rows a task.  */
typedef struct mux_job
{
  float *out;
  const float *inp, *keys, *pos, *type;
  int N, T, H;
} mux_job;

static void
mux_fwd_groups (void *arg, size_t g0, size_t g1, int thread)
{
  const mux_job *j = arg;
  (void) thread;
  size_t TH = (size_t) j->T * j->H;
  pmx_mux_fwd (j->out + g0 * TH, j->inp + g0 * j->N * TH, j->keys, (int) (g1 - g0), j->N,
               j->T, j->H);
}

static void
mux_bwd_groups (void *arg, size_t g0, size_t g1, int thread)
{
  const mux_job *j = arg;
  (void) thread;
  size_t TH = (size_t) j->T * j->H;
  pmx_mux_bwd (j->out + g0 * j->N * TH, j->inp + g0 * TH, j->keys, (int) (g1 - g0), j->N,
               j->T, j->H);
}

static void
mux_embed_rows (void *arg, size_t r0, size_t r1, int thread)
{
  const mux_job *j = arg;
  (void) thread;
  size_t H = (size_t) j->H;
  for (size_t r = r0; r < r1; r++)
    for (size_t c = 0; c < H; c++)
      j->out[r * H + c] = j->inp[r * H + c] + j->pos[(r % j->T) * H + c] + j->type[c];
}

/* A sublayer's tail, the same after attention and after the FFN:
   RES = X + Y, then LayerNorm into OUT with MEAN and RSTD kept for the
   backward; under hidden masks HZ (NULL: none) CoFi's LayerNorm over the
   kept dimensions, then OUTZ = OUT * HZ.  Rows are independent: they go
   in blocks on PAR's threads.  Returns the sublayer's output.  */
typedef struct tail_job
{
  float *res, *out, *outz, *mean, *rstd;
  const float *x, *y, *g, *b, *hz;
  int H;
  float eps;
} tail_job;

static void
tail_rows (void *arg, size_t r0, size_t r1, int thread)
{
  const tail_job *j = arg;
  (void) thread;
  size_t H = (size_t) j->H, n = r1 - r0;
  for (size_t i = r0 * H; i < r1 * H; i++)
    j->res[i] = j->x[i] + j->y[i];
  pmx_layernorm_z_fwd (NULL, j->out + r0 * H, j->mean + r0, j->rstd + r0,
                       j->res + r0 * H, j->g, j->b, j->hz, (int) n, j->H, j->eps);
  if (j->hz)
    pmx_mul_cols (j->outz + r0 * H, j->out + r0 * H, j->hz, 1, (int) n, j->H);
}

static const float *
residual_layernorm (const pmx_par *par, float *res, const float *x, const float *y,
                    float *out, float *outz, float *mean, float *rstd, const float *g,
                    const float *b, const float *hz, int R, int H, float eps)
{
  tail_job j = { res, out, outz, mean, rstd, x, y, g, b, hz, H, eps };
  pmx_par_for (par, (size_t) R, pmx_par_chunk (par, (size_t) R, 16), tail_rows, &j);
  return hz ? outz : out;
}

/* The last layer on the rows the task head reads, position 0 of each of
   the G sequences, when nothing else reads that layer's output
   (pmx_tmodel.head_rows_only): keys and values for every position, the
   rest (queries, attention, its output, the FFN, both LayerNorms) for G
   rows instead of G*T, which in a 6-layer model is about a seventh of a
   step's products.  Row g of each (G, *) buffer is row g*T of the whole
   layer's, dropout masks included, so the results are that layer's rows.
   Unmasked only.  X (G*T, H) is the layer's input; returns its output
   (G, H).  */
static const float *
head_rows_layer_fwd (pmx_tmodel *m, act *a, int l, const float *x,
                     const int32_t *mask, int training, uint64_t dseed)
{
  const pmx_train_config *c = &m->cfg;
  const pmx_tlayer_w *W = &m->w.layer[l];
  layer_act *L = &a->L[l];
  int G = a->G, T = a->T, R = a->R, H = c->hidden;
  int NH = c->heads[l], HD = c->head_dim, A = NH * HD, F = c->ffn[l];
  float p = c->dropout;
  L->in = x;
  L->skip_a = L->skip_f = 0;
  for (int g = 0; g < G; g++)
    memcpy (a->xg + (size_t) g * H, x + (size_t) g * T * H, H * sizeof (float));
  x = a->xg;
  if (A)
    {
      pmx_linear_fwd (m->par, L->q, a->xg, W->q_w, W->q_b, G, H, A);
      pmx_linear_fwd (m->par, L->k, L->in, W->k_w, W->k_b, R, H, A);
      pmx_linear_fwd (m->par, L->v, L->in, W->v_w, W->v_b, R, H, A);
      pmx_attention_fwd (m->par, L->ctx, L->att, L->q, L->k, L->v, mask, G, T, 1,
                         NH, HD);
      pmx_linear_fwd (m->par, L->ao, L->ctx, W->ao_w, W->ao_b, G, A, H);
      dropout_rows (L->ao, L->ao_mask, G, T, H, p, training, dseed, 2 * l + 1);
      x = residual_layernorm (m->par, L->res1, x, L->ao, L->x1, NULL, L->mean1, L->rstd1,
                              W->ln1_w, W->ln1_b, NULL, G, H, c->ln_eps);
    }
  if (F)
    {
      pmx_linear_gelu_fwd (m->par, L->f1, L->fg, x, W->fi_w, W->fi_b, G, H, F);
      pmx_linear_fwd (m->par, L->f2, L->fg, W->fo_w, W->fo_b, G, F, H);
      dropout_rows (L->f2, L->f2_mask, G, T, H, p, training, dseed, 2 * l + 2);
      x = residual_layernorm (m->par, L->res2, x, L->f2, L->x2, NULL, L->mean2, L->rstd2,
                              W->ln2_w, W->ln2_b, NULL, G, H, c->ln_eps);
    }
  L->out = x;
  return x;
}

double
pmx_tmodel_forward (pmx_tmodel *m, const pmx_tbatch *b, int training,
                    uint64_t seed, uint64_t step)
{
  return pmx_tmodel_forward_z (m, b, NULL, training, seed, step);
}

double
pmx_tmodel_forward_z (pmx_tmodel *m, const pmx_tbatch *b,
                      const pmx_cofi_z *z, int training, uint64_t seed,
                      uint64_t step)
{
  const pmx_train_config *c = &m->cfg;
  const pmx_tweights *w = &m->w;
  if (check_batch (c, b) < 0 || (z && check_masks (c, z) < 0))
    return NAN;
  m->grads_zero = 0;            /* a backward or a loss outside may follow */
  act *a = get_act (m, b->B, b->T, z != NULL);
  if (!a)
    return NAN;
  a->z = z;
  const float *hz = z ? z->hidden_z : NULL;
  int N = c->mux_n, B = b->B, T = b->T, G = B / N, R = G * T, H = c->hidden;
  size_t RH = (size_t) R * H;
  a->B = B; a->T = T; a->G = G; a->R = R; a->N = N;
  a->b = *b;
  a->have_forward = 0;
  memcpy (a->ids, b->ids, (size_t) B * T * sizeof (int32_t));
  if (b->type_ids && !c->muxed)
    memcpy (a->types, b->type_ids, (size_t) B * T * sizeof (int32_t));
  else
    a->types = NULL;            /* muxed models use type 0 (§2.1) */
  for (int r = 0; r < B; r++)
    a->lengths[r] = b->lengths ? b->lengths[r] : T;
  float p = c->dropout;
  a->dropped = training && p != 0;
  uint64_t dseed = pmx_mix64 (seed ^ pmx_mix64 (step + 0x5eed));

  /* Embeddings.  Under masks each pass is CoFi's: the sum times hidden_z,
     LayerNorm over the kept dimensions, times hidden_z again (the first,
     per-instance pass too: see train-model.h).  */
  if (c->muxed)
    {
      const float *e1 = a->e1;
      if (z)
        {
          pmx_embed_sum_fwd (m->par, a->es1_raw, a->ids, NULL, w->word, w->pos,
                             w->type, B * T, T, H);
          par_mul_cols (m->par, a->es1, a->es1_raw, hz, 1, B * T, H);
          pmx_layernorm_z_fwd (m->par, a->e1, a->emean1, a->erstd1, a->es1, w->eln_w,
                               w->eln_b, hz, B * T, H, c->ln_eps);
          par_mul_cols (m->par, a->e1z, a->e1, hz, 1, B * T, H);
          e1 = a->e1z;
        }
      else
        {
          pmx_embed_sum_fwd (m->par, a->es1, a->ids, NULL, w->word, w->pos, w->type,
                             B * T, T, H);
          pmx_layernorm_fwd (m->par, a->e1, a->emean1, a->erstd1, a->es1, w->eln_w,
                             w->eln_b, B * T, H, c->ln_eps);
        }
      mux_job mj = { .out = a->mx, .inp = e1, .keys = w->keys, .N = N, .T = T, .H = H };
      pmx_par_for (m->par, (size_t) G, 1, mux_fwd_groups, &mj);
      mux_job ej = { .out = z ? a->es_raw : a->es, .inp = a->mx, .pos = w->pos,
                     .type = w->type, .T = T, .H = H };
      pmx_par_for (m->par, (size_t) R, pmx_par_chunk (m->par, (size_t) R, 16),
                   mux_embed_rows, &ej);
    }
  else
    pmx_embed_sum_fwd (m->par, z ? a->es_raw : a->es, a->ids, a->types, w->word,
                       w->pos, w->type, R, T, H);
  const float *x = a->e;
  if (z)
    {
      par_mul_cols (m->par, a->es, a->es_raw, hz, 1, R, H);
      pmx_layernorm_z_fwd (m->par, a->e, a->emean, a->erstd, a->es, w->eln_w,
                           w->eln_b, hz, R, H, c->ln_eps);
      dropout (m->par, a->e, a->emask, RH, p, training, dseed, 0);
      par_mul_cols (m->par, a->ez, a->e, hz, 1, R, H);
      x = a->ez;
    }
  else
    {
      pmx_layernorm_fwd (m->par, a->e, a->emean, a->erstd, a->es, w->eln_w, w->eln_b,
                         R, H, c->ln_eps);
      dropout (m->par, a->e, a->emask, RH, p, training, dseed, 0);
    }
  a->pub.hidden[0] = x;

  /* Encoder.  Masks multiply where CoFi's modeling_bert.py does
     (MUX-PLM-SPEC.md §6.1): each head's context by head_z, the
     attention-output dense by head_layer_z, the GELU output by
     intermediate_z, the FFN-output dense by mlp_z, and every sublayer
     output by hidden_z before and after its LayerNorm.  */
  const int32_t *mask = c->attend_padding || c->muxed ? NULL : a->lengths;
  a->rows_only = m->head_rows_only && !z && !a->open && c->num_labels > 0
    && !(c->retrieval && (b->ret_inst || b->mlm_labels));
  for (int l = 0; l < c->layers; l++)
    {
      const pmx_tlayer_w *W = &w->layer[l];
      layer_act *L = &a->L[l];
      int NH = c->heads[l], HD = c->head_dim, A = NH * HD, F = c->ffn[l];
      if (a->rows_only && l == c->layers - 1)
        {
          x = head_rows_layer_fwd (m, a, l, x, mask, training, dseed);
          a->pub.hidden[l + 1] = NULL;   /* not the whole layer's output */
          break;
        }
      L->in = x;
      L->skip_a = L->skip_f = 0;
      if (A)
        {
          pmx_linear_fwd (m->par, L->q, x, W->q_w, W->q_b, R, H, A);
          pmx_linear_fwd (m->par, L->k, x, W->k_w, W->k_b, R, H, A);
          pmx_linear_fwd (m->par, L->v, x, W->v_w, W->v_b, R, H, A);
          pmx_attention_fwd (m->par, z ? L->ctx_raw : L->ctx, L->att, L->q, L->k,
                             L->v, mask, G, T, T, NH, HD);
          if (z)
            {
              /* ctx = ctx_raw * head_z (per head) */
              cols_job hj = { .y = L->ctx, .x = L->ctx_raw, .hz = z->head[l], .H = A,
                              .HD = HD };
              pmx_par_for (m->par, (size_t) R, pmx_par_chunk (m->par, (size_t) R, 16),
                           head_mul_rows, &hj);
            }
          pmx_linear_fwd (m->par, z ? L->ao_raw : L->ao, L->ctx, W->ao_w, W->ao_b, R,
                          A, H);
          if (z && z->head_layer[l] == 0)
            L->skip_a = 1;      /* x + 0: the LayerNorm is skipped */
          else
            {
              if (z)
                par_mul_cols (m->par, L->ao, L->ao_raw, hz, z->head_layer[l], R, H);
              dropout (m->par, L->ao, L->ao_mask, RH, p, training, dseed, 2 * l + 1);
              x = residual_layernorm (m->par, L->res1, x, L->ao, L->x1, L->x1z,
                                      L->mean1, L->rstd1, W->ln1_w, W->ln1_b,
                                      hz, R, H, c->ln_eps);
            }
        }
      if (F)
        {
          pmx_linear_gelu_fwd (m->par, L->f1, L->fg, x, W->fi_w, W->fi_b, R, H, F);
          const float *fg = L->fg;
          if (z)
            {
              par_mul_cols (m->par, L->fgz, L->fg, z->intermediate[l], 1, R, F);
              fg = L->fgz;
            }
          pmx_linear_fwd (m->par, z ? L->f2_raw : L->f2, fg, W->fo_w, W->fo_b, R, F,
                          H);
          if (z && z->mlp[l] == 0)
            L->skip_f = 1;
          else
            {
              if (z)
                par_mul_cols (m->par, L->f2, L->f2_raw, hz, z->mlp[l], R, H);
              dropout (m->par, L->f2, L->f2_mask, RH, p, training, dseed, 2 * l + 2);
              x = residual_layernorm (m->par, L->res2, x, L->f2, L->x2, L->x2z,
                                      L->mean2, L->rstd2, W->ln2_w, W->ln2_b,
                                      hz, R, H, c->ln_eps);
            }
        }
      L->out = x;
      a->pub.hidden[l + 1] = x;
    }
  a->X = (float *) x;
  int xT = a->rows_only ? 1 : T;        /* X's rows per sequence */

  /* Heads.  */
  double loss = 0;
  head_act *th = &a->task, *rh = &a->ret, *mh = &a->mlm;
  th->count = rh->count = 0;
  th->scale = rh->scale = 0;
  if (c->num_labels > 0)
    {
      for (int r = 0; r < B; r++)
        {
          th->inst[r] = r % N;
          th->src[r] = (r / N) * xT;    /* position 0 of the row's group */
          th->target[r] = b->labels ? b->labels[r] : -1;
        }
      task_head_fwd (m, th, a->X, xT);
      th->loss = pmx_softmax_xent_fwd (th->probs, th->logits, th->target, B,
                                       c->num_labels, &th->count);
      if (b->labels && b->task_weight != 0 && th->count > 0)
        {
          th->scale = b->task_weight / th->count;
          loss += b->task_weight * th->loss / th->count;
        }
    }
  rh->rows = mh->rows = 0;
  mh->count = 0;
  mh->scale = 0;
  if (c->retrieval && b->ret_inst)
    {
      /* One instance per muxed position; its token is the target, and PAD
         targets (id 0) are left out, as the published code does.  */
      int k = 0;
      for (int g = 0; g < G; g++)
        for (int t = 0; t < T; t++)
          {
            int i = b->ret_inst[g * T + t];
            int32_t tok = a->ids[((size_t) g * N + i) * T + t];
            if (tok == 0)
              continue;
            rh->inst[k] = i;
            rh->src[k] = g * T + t;
            rh->target[k] = tok;
            k++;
          }
      loss += run_vocab_head (m, rh, k, a->X, b->retrieval_weight);
    }
  if (c->retrieval && b->mlm_labels)
    {
      /* MLM with multiplexing: every masked position of every instance is
         demultiplexed with that instance's e_i (§4.2, mlm_mask).  */
      int k = 0;
      for (int g = 0; g < G; g++)
        for (int i = 0; i < N; i++)
          for (int t = 0; t < T; t++)
            {
              int32_t tok = b->mlm_labels[((size_t) g * N + i) * T + t];
              if (tok < 0)
                continue;
              mh->inst[k] = i;
              mh->src[k] = g * T + t;
              mh->target[k] = tok;
              k++;
            }
      loss += run_vocab_head (m, mh, k, a->X, b->mlm_weight);
    }
  /* What a loss outside the model reads and differentiates.  */
  pmx_tacts *pub = &a->pub;
  pub->B = B;
  pub->T = T;
  pub->G = G;
  pub->H = H;
  pub->C = c->num_labels;
  pub->layers = c->layers;
  pub->logits = c->num_labels > 0 ? th->logits : NULL;
  pub->dlogits = NULL;
  for (int l = 0; l <= c->layers; l++)
    pub->dhidden[l] = NULL;
  if (a->open)
    {
      if (c->num_labels > 0)
        {
          pub->dlogits = a->ext_dlogits;
          zero (m->par, a->ext_dlogits, (size_t) B * c->num_labels);
        }
      for (int l = 0; l <= c->layers; l++)
        {
          pub->dhidden[l] = a->ext_dhidden[l];
          zero (m->par, a->ext_dhidden[l], RH);
        }
    }
  a->have_forward = 1;
  return loss;
}

pmx_tacts *
pmx_tmodel_acts (pmx_tmodel *m)
{
  act *a = m->act;
  return a && a->have_forward ? &a->pub : NULL;
}

const float *
pmx_tmodel_logits (const pmx_tmodel *m)
{
  const act *a = m->act;
  return a && a->have_forward && m->cfg.num_labels > 0 ? a->task.logits : NULL;
}

static int
correct (const head_act *h, int C)
{
  int n = 0;
  for (int r = 0; r < h->rows; r++)
    {
      if (h->target[r] < 0)
        continue;
      const float *x = h->logits + (size_t) r * C;
      int best = 0;
      for (int j = 1; j < C; j++)
        best = x[j] > x[best] ? j : best;
      n += best == h->target[r];
    }
  return n;
}

void
pmx_tmodel_stats (const pmx_tmodel *m, pmx_tstats *s)
{
  const act *a = m->act;
  memset (s, 0, sizeof *s);
  if (!a || !a->have_forward)
    return;
  if (a->b.labels && m->cfg.num_labels > 0)
    {
      s->task_loss = a->task.loss;
      s->task_count = a->task.count;
      s->task_correct = correct (&a->task, m->cfg.num_labels);
    }
  if (a->ret.rows > 0)
    {
      s->ret_loss = a->ret.loss;
      s->ret_count = a->ret.count;
      s->ret_correct = correct (&a->ret, m->cfg.vocab);
    }
  if (a->mlm.rows > 0)
    {
      s->mlm_loss = a->mlm.loss;
      s->mlm_count = a->mlm.count;
      s->mlm_correct = correct (&a->mlm, m->cfg.vocab);
    }
}

/* ---- Backward ----------------------------------------------------------- */

/* The task head's backward, for the forward over X (groups of T rows);
   adds to dX, shaped as X.  */
static void
task_head_bwd (pmx_tmodel *m, head_act *h, const float *ext, const float *X,
               int T, float *dX)
{
  const pmx_train_config *c = &m->cfg;
  const pmx_tweights *w = &m->w, *g = &m->g;
  int rows = h->rows, H = c->hidden, D = c->demux_hidden, C = c->num_labels;
  zero (m->par, h->dlogits, (size_t) rows * C);
  pmx_softmax_xent_bwd (h->dlogits, h->probs, h->target, rows, C, h->scale);
  if (ext)
    pmx_add (h->dlogits, ext, (size_t) rows * C);
  if (!c->muxed)
    {
      zero (m->par, h->dz0, (size_t) rows * H);
      pmx_linear_bwd (m->par, h->dz0, g->cls_w, g->cls_b, h->dlogits, h->z0, w->cls_w,
                      rows, H, C);
      for (int r = 0; r < rows; r++)
        pmx_add (dX + (size_t) h->src[r] * H, h->dz0 + (size_t) r * H, H);
      return;
    }
  /* logits = cls (z3), z3 the head's output.  */
  zero (m->par, h->dz3, (size_t) rows * D);
  pmx_linear_bwd (m->par, h->dz3, g->cls_w, g->cls_b, h->dlogits, h->z3, w->cls_w,
                  rows, D, C);
  pmx_demux_head hd = demux_head_of (m);
  pmx_demux_head_act ha = demux_head_act_of (h);
  pmx_demux_head_act da = { .pre = { h->dd1, h->dd2 }, .z = { h->dz1, h->dz2 },
                            .p = h->dp, .pg = h->dpg };
  pmx_demux_head_grad gr = { .inst = g->demux_e, .w = { g->d1_w, g->d2_w },
                             .b = { g->d1_b, g->d2_b }, .pre_w = g->pd_w,
                             .pre_b = g->pd_b, .ln_w = g->pdln_w,
                             .ln_b = g->pdln_b };
  pmx_demux_head_bwd (&hd, &gr, &ha, &da, X, T * H, rows / c->mux_n, h->dz3,
                      dX, h->dC, h->dU);
}

static void
ret_head_bwd (pmx_tmodel *m, head_act *h, float *dX)
{
  const pmx_train_config *c = &m->cfg;
  const pmx_tweights *w = &m->w, *g = &m->g;
  int rows = h->rows, H = c->hidden, D = c->demux_hidden, V = c->vocab;
  size_t n = (size_t) rows * D;
  zero (m->par, h->dlogits, (size_t) rows * V);
  pmx_softmax_xent_bwd (h->dlogits, h->probs, h->target, rows, V, h->scale);
  zero (m->par, h->dz3, n);             /* d pl */
  pmx_linear_bwd (m->par, h->dz3, g->dec_w, g->dec_b, h->dlogits, h->pl, w->dec_w,
                  rows, D, V);
  zero (m->par, h->dpg, n);
  pmx_layernorm_bwd (m->par, h->dpg, g->rpdln_w, g->rpdln_b, h->dz3, h->pg,
                     w->rpdln_w, h->pmean, h->prstd, rows, D);
  zero (m->par, h->dp, n);
  pmx_gelu_bwd (h->dp, h->p, h->dpg, n);
  zero (m->par, h->dl2, n);
  pmx_linear_bwd (m->par, h->dl2, g->rpd_w, g->rpd_b, h->dp, h->l2, w->rpd_w, rows, D,
                  D);
  zero (m->par, h->dz2, n);             /* d g2 */
  pmx_layernorm_bwd (m->par, h->dz2, g->dln2_w, g->dln2_b, h->dl2, h->g2, w->dln2_w,
                     h->mean2, h->rstd2, rows, D);
  zero (m->par, h->dd2, n);
  pmx_gelu_bwd (h->dd2, h->d2, h->dz2, n);
  zero (m->par, h->dl1, n);
  pmx_linear_bwd (m->par, h->dl1, g->d2_w, g->d2_b, h->dd2, h->l1, w->d2_w, rows, D, D);
  zero (m->par, h->dz1, n);
  pmx_layernorm_bwd (m->par, h->dz1, g->dln1_w, g->dln1_b, h->dl1, h->z1, w->dln1_w,
                     h->mean1, h->rstd1, rows, D);
  zero (m->par, h->dd1, n);
  pmx_gelu_bwd (h->dd1, h->d1, h->dz1, n);
  zero (m->par, h->dz0, (size_t) rows * 2 * H);
  pmx_linear_bwd (m->par, h->dz0, g->d1_w, g->d1_b, h->dd1, h->z0, w->d1_w, rows,
                  2 * H, D);
  pmx_concat_bwd (g->demux_e, dX, h->dz0, h->inst, h->src, rows, H);
}

static double
dot (const float *x, const float *y, size_t n)
{
  double s = 0;
  for (size_t i = 0; i < n; i++)
    s += (double) x[i] * y[i];
  return s;
}

/* The gradient D of a sublayer output OUT = res * s * hz (elementwise,
   after dropout): adds to dhz and returns d/ds; D becomes d/dres.  */
static double
bwd_scaled (float *d, const float *res, const float *hz, float s, double *dhz,
            int R, int H)
{
  double ds = 0;
  for (int r = 0; r < R; r++)
    for (int j = 0; j < H; j++)
      {
        size_t i = (size_t) r * H + j;
        double t = (double) d[i] * res[i];
        dhz[j] += t * s;
        ds += t * hz[j];
        d[i] *= s * hz[j];
      }
  return ds;
}

/* The backward of a sublayer's residual LayerNorm, x' = LN (x + y) (times
   hidden_z under masks), y the sublayer's output after dropout (and
   under masks its raw output times Z and hidden_z).  D is the gradient
   of the LayerNorm's output (ROWS rows); RESID receives (is written
   with) that of its input, which is the residual's, x's.  Returns y's
   before dropout: RESID itself where dropout and masks change nothing,
   else SCRATCH (which may be D), RESID's copy times the dropout MASK (and
   under masks scaled as bwd_scaled says, adding d/dz to *DZ; DZ NULL
   without masks).  */
static float *
residual_ln_bwd (pmx_tmodel *m, act *a, int rows, float *resid, float *scratch,
                 const float *d, float *dw, float *db, const float *res, const float *w,
                 const float *mean, const float *rstd, const float *mask,
                 const float *raw, float z, float *dz)
{
  int R = rows, H = m->cfg.hidden;
  const float *hz = a->z ? a->z->hidden_z : NULL;
  pmx_layernorm_z_bwd_to (m->par, resid, dw, db, d, res, w, hz, mean, rstd, R, H);
  if (!a->dropped && !a->z)
    return resid;
  par_copy (m->par, scratch, resid, (size_t) R * H);
  if (a->dropped)
    pmx_dropout_bwd (m->par, scratch, mask, (int64_t) R * H);
  if (a->z)
    *dz += (float) bwd_scaled (scratch, raw, hz, z, a->dhz, R, H);
  return scratch;
}

static void
zero_z (pmx_cofi_z *z)
{
  for (int l = 0; l < z->layers; l++)
    {
      if (z->heads[l])
        memset (z->head[l], 0, z->heads[l] * sizeof (float));
      if (z->ffn[l])
        memset (z->intermediate[l], 0, z->ffn[l] * sizeof (float));
      z->head_layer[l] = z->mlp[l] = 0;
    }
  memset (z->hidden_z, 0, z->hidden * sizeof (float));
}

static void
add_z (pmx_cofi_z *y, const pmx_cofi_z *x)
{
  for (int l = 0; l < x->layers; l++)
    {
      for (int h = 0; h < x->heads[l]; h++)
        y->head[l][h] += x->head[l][h];
      for (int j = 0; j < x->ffn[l]; j++)
        y->intermediate[l][j] += x->intermediate[l][j];
      y->head_layer[l] += x->head_layer[l];
      y->mlp[l] += x->mlp[l];
    }
  for (int j = 0; j < x->hidden; j++)
    y->hidden_z[j] += x->hidden_z[j];
}

/* The backward of head_rows_layer_fwd: DOUT (G, H) the gradient of its
   output; DIN (G*T, H) receives the gradient of its input (rows other than
   g*T from the keys and values alone).  */
static void
head_rows_layer_bwd (pmx_tmodel *m, act *a, int l, const float *dout, float *din)
{
  const pmx_train_config *c = &m->cfg;
  const pmx_tlayer_w *W = &m->w.layer[l], *Gw = &m->g.layer[l];
  layer_act *L = &a->L[l];
  int G = a->G, T = a->T, R = a->R, H = c->hidden;
  int NH = c->heads[l], HD = c->head_dim, A = NH * HD, F = c->ffn[l];
  size_t GH = (size_t) G * H, GF = (size_t) G * F;
  float *dxg = a->dx1;          /* the FFN's input's gradient, then xg's */
  if (F)
    {
      float *dres = residual_ln_bwd (m, a, G, dxg, a->dres, dout, Gw->ln2_w, Gw->ln2_b,
                                     L->res2, W->ln2_w, L->mean2, L->rstd2, L->f2_mask,
                                     NULL, 0, NULL);
      pmx_linear_bwd_to (m->par, a->dfg, Gw->fo_w, Gw->fo_b, dres, L->fg, W->fo_w,
                         G, F, H);
      pmx_gelu_bwd_out_to (m->par, a->dff, L->f1, L->fg, a->dfg, GF);
      pmx_linear_bwd (m->par, dxg, Gw->fi_w, Gw->fi_b, a->dff, A ? L->x1 : a->xg,
                      W->fi_w, G, H, F);
    }
  else
    par_copy (m->par, dxg, dout, GH);
  if (A)
    {
      /* The residual's gradient goes to a->dres (q's is added to it
         below), the attention output's to dres: a->dres too without
         dropout, else dxg's buffer, free once read.  */
      float *dres = residual_ln_bwd (m, a, G, a->dres, dxg, dxg, Gw->ln1_w, Gw->ln1_b,
                                     L->res1, W->ln1_w, L->mean1, L->rstd1, L->ao_mask,
                                     NULL, 0, NULL);
      dxg = a->dres;
      pmx_linear_bwd_to (m->par, a->dctx, Gw->ao_w, Gw->ao_b, dres, L->ctx,
                         W->ao_w, G, A, H);
      pmx_attention_bwd_to (m->par, a->dq, a->dk, a->dv, a->datt, a->dctx, L->att,
                            L->q, L->k, L->v, G, T, 1, NH, HD);
      pmx_linear_bwd (m->par, dxg, Gw->q_w, Gw->q_b, a->dq, a->xg, W->q_w, G, H, A);
      pmx_linear_bwd_to (m->par, din, Gw->k_w, Gw->k_b, a->dk, L->in, W->k_w, R, H, A);
      pmx_linear_bwd (m->par, din, Gw->v_w, Gw->v_b, a->dv, L->in, W->v_w, R, H, A);
    }
  else
    zero (m->par, din, (size_t) R * H);
  for (int g = 0; g < G; g++)
    pmx_add (din + (size_t) g * T * H, dxg + (size_t) g * H, H);
}

int
pmx_tmodel_backward (pmx_tmodel *m)
{
  return pmx_tmodel_backward_z (m, NULL);
}

int
pmx_tmodel_backward_z (pmx_tmodel *m, pmx_cofi_z *dzout)
{
  act *a = m->act;
  if (!a || !a->have_forward)
    return pmx_error ("backward without a forward");
  const pmx_train_config *c = &m->cfg;
  const pmx_tweights *w = &m->w, *g = &m->g;
  int N = a->N, B = a->B, T = a->T, G = a->G, R = a->R, H = c->hidden;
  size_t RH = (size_t) R * H;
  const pmx_cofi_z *z = a->z;
  const float *hz = z ? z->hidden_z : NULL;
  pmx_cofi_z *dz = a->dz;
  double *dhz = a->dhz;
  if (dzout && (!z || check_masks (c, dzout) < 0))
    return pmx_error ("mask gradients without masks of the model's shape");
  if (z)
    {
      zero_z (dz);
      memset (dhz, 0, H * sizeof *dhz);
    }

  /* dA: gradient of the current layer's output.  */
  float *dout = a->dA, *din = a->dB;
  zero (m->par, dout, RH);
  if (c->num_labels > 0 && (a->task.scale != 0 || a->open))
    task_head_bwd (m, &a->task, a->open ? a->ext_dlogits : NULL, a->X,
                   a->rows_only ? 1 : a->T, dout);
  if (a->ret.rows > 0 && a->ret.scale != 0)
    ret_head_bwd (m, &a->ret, dout);
  if (a->mlm.rows > 0 && a->mlm.scale != 0)
    ret_head_bwd (m, &a->mlm, dout);
  if (a->open)
    pmx_add (dout, a->ext_dhidden[c->layers], RH);

  for (int l = c->layers - 1; l >= 0; l--)
    {
      const pmx_tlayer_w *W = &w->layer[l], *Gw = &g->layer[l];
      layer_act *L = &a->L[l];
      int NH = c->heads[l], HD = c->head_dim, A = NH * HD, F = c->ffn[l];
      size_t RF = (size_t) R * F;
      if (a->rows_only && l == c->layers - 1)
        {
          head_rows_layer_bwd (m, a, l, dout, din);
          float *t = dout;
          dout = din;
          din = t;
          continue;
        }
      const float *x_in = L->in;
      const float *x1 = A && !L->skip_a ? (z ? L->x1z : L->x1) : x_in;
      float *dx1 = dout;        /* gradient of the FFN's input */
      if (F && L->skip_f)
        dz->mlp[l] += (float) dot (dout, L->f2_raw, RH);
      else if (F)
        {
          dx1 = a->dx1;
          const float *d = dout;
          if (z)
            {
              /* out = x2 * hz */
              par_colsum_prod (m->par, dhz, dout, L->x2, R, H);
              par_mul_cols (m->par, a->dy, dout, hz, 1, R, H);
              d = a->dy;
            }
          float *dres = residual_ln_bwd (m, a, R, dx1, a->dres, d, Gw->ln2_w, Gw->ln2_b,
                                         L->res2, W->ln2_w, L->mean2, L->rstd2,
                                         L->f2_mask, L->f2_raw, z ? z->mlp[l] : 0,
                                         z ? &dz->mlp[l] : NULL);
          pmx_linear_bwd_to (m->par, a->dfg, Gw->fo_w, Gw->fo_b, dres,
                             z ? L->fgz : L->fg, W->fo_w, R, F, H);
          if (z)
            {
              /* fgz = fg * intermediate_z.  Summed a row of a block of
                 columns at a time (a column at a time, every term was a
                 cache miss: 7 % of a MiniLM-size pruning step), each
                 column still in row order, so the same sums.  */
              memset (a->dcol, 0, F * sizeof *a->dcol);
              par_colsum_prod (m->par, a->dcol, a->dfg, L->fg, R, F);
              for (int j = 0; j < F; j++)
                dz->intermediate[l][j] += (float) a->dcol[j];
              par_mul_cols (m->par, a->dfg, a->dfg, z->intermediate[l], 1, R, F);
            }
          pmx_gelu_bwd_out_to (m->par, a->dff, L->f1, L->fg, a->dfg, RF);
          pmx_linear_bwd (m->par, dx1, Gw->fi_w, Gw->fi_b, a->dff, x1, W->fi_w, R, H,
                          F);
        }
      if (A && L->skip_a)
        {
          dz->head_layer[l] += (float) dot (dx1, L->ao_raw, RH);
          if (dx1 != dout)
            par_copy (m->par, dout, dx1, RH);
        }
      else if (A)
        {
          const float *d = dx1;
          if (z)
            {
              par_colsum_prod (m->par, dhz, dx1, L->x1, R, H);
              par_mul_cols (m->par, a->dy, dx1, hz, 1, R, H);
              d = a->dy;
            }
          /* din, the layer input's gradient, starts as the residual's.  */
          float *dres = residual_ln_bwd (m, a, R, din, a->dres, d, Gw->ln1_w, Gw->ln1_b,
                                         L->res1, W->ln1_w, L->mean1, L->rstd1,
                                         L->ao_mask, L->ao_raw,
                                         z ? z->head_layer[l] : 0,
                                         z ? &dz->head_layer[l] : NULL);
          pmx_linear_bwd_to (m->par, a->dctx, Gw->ao_w, Gw->ao_b, dres, L->ctx,
                             W->ao_w, R, A, H);
          if (z)
            {
              /* ctx = ctx_raw * head_z (per head) */
              cols_job hj = { .y = a->dctx, .x = L->ctx_raw, .hz = z->head[l],
                              .acc = a->dhead, .R = R, .H = A, .HD = HD };
              pmx_par_for (m->par, (size_t) NH, 1, head_z_heads, &hj);
              for (int h = 0; h < NH; h++)
                dz->head[l][h] += (float) a->dhead[h];
            }
          pmx_attention_bwd_to (m->par, a->dq, a->dk, a->dv, a->datt, a->dctx, L->att,
                                L->q, L->k, L->v, G, T, T, NH, HD);
          pmx_linear_bwd (m->par, din, Gw->q_w, Gw->q_b, a->dq, x_in, W->q_w, R, H, A);
          pmx_linear_bwd (m->par, din, Gw->k_w, Gw->k_b, a->dk, x_in, W->k_w, R, H, A);
          pmx_linear_bwd (m->par, din, Gw->v_w, Gw->v_b, a->dv, x_in, W->v_w, R, H, A);
          float *t = dout;
          dout = din;
          din = t;
        }
      else if (dx1 != dout)
        par_copy (m->par, dout, dx1, RH);
      if (a->open)
        pmx_add (dout, a->ext_dhidden[l], RH);
    }

  /* Embeddings: dout is the gradient of the encoder's input.  */
  if (z)
    {
      par_colsum_prod (m->par, dhz, dout, a->e, R, H);
      par_mul_cols (m->par, dout, dout, hz, 1, R, H);
    }
  if (a->dropped)
    pmx_dropout_bwd (m->par, dout, a->emask, (int64_t) RH);
  if (z)
    {
      pmx_layernorm_z_bwd_to (m->par, a->dres, g->eln_w, g->eln_b, dout, a->es, w->eln_w,
                              hz, a->emean, a->erstd, R, H);
      par_colsum_prod (m->par, dhz, a->dres, a->es_raw, R, H);
      par_mul_cols (m->par, a->dres, a->dres, hz, 1, R, H);
    }
  else
    pmx_layernorm_bwd_to (m->par, a->dres, g->eln_w, g->eln_b, dout, a->es, w->eln_w,
                          a->emean, a->erstd, R, H);
  if (c->muxed)
    {
      /* es = mx + pos + type0; then mx = mux(e1), e1 = LN(word+pos+type0).  */
      pmx_embed_sum_bwd (m->par, NULL, g->pos, g->type, a->dres, NULL, NULL, R, T, H);
      size_t BTH = (size_t) B * T * H;
      zero (m->par, a->de1, BTH);
      mux_job mj = { .out = a->de1, .inp = a->dres, .keys = w->keys, .N = N, .T = T,
                     .H = H };
      pmx_par_for (m->par, (size_t) G, 1, mux_bwd_groups, &mj);
      if (z)
        {
          par_colsum_prod (m->par, dhz, a->de1, a->e1, B * T, H);
          par_mul_cols (m->par, a->de1, a->de1, hz, 1, B * T, H);
          pmx_layernorm_z_bwd_to (m->par, a->des1, g->eln_w, g->eln_b, a->de1, a->es1,
                               w->eln_w, hz, a->emean1, a->erstd1, B * T, H);
          par_colsum_prod (m->par, dhz, a->des1, a->es1_raw, B * T, H);
          par_mul_cols (m->par, a->des1, a->des1, hz, 1, B * T, H);
        }
      else
        pmx_layernorm_bwd_to (m->par, a->des1, g->eln_w, g->eln_b, a->de1, a->es1,
                              w->eln_w, a->emean1, a->erstd1, B * T, H);
      pmx_embed_sum_bwd (m->par, g->word, g->pos, g->type, a->des1, a->ids, NULL,
                         B * T, T, H);
    }
  else
    pmx_embed_sum_bwd (m->par, g->word, g->pos, g->type, a->dres, a->ids, a->types, R,
                       T, H);
  if (z)
    {
      for (int j = 0; j < H; j++)
        dz->hidden_z[j] = (float) dhz[j];
      if (dzout)
        add_z (dzout, dz);
    }
  return 0;
}
