/* cpu-encoder.c -- the CPU backend (backend.h): BERT encoder layers with
   the packed GEMM kernels (gemm.h) or OpenBLAS, the fused elementwise
   kernels (kernels.h) and one thread pool (threads.h).  encoder.h says how
   it is fast.

   Data flow of one chunk of sequences (M real tokens, R requested rows):

     X   (M, H)     hidden states of the packed tokens (the residual stream)
     QKV (M, 3A)    [Q | K | V] of a layer, head h at columns h*dh
     CTX (M, A)     attention context, same head layout
     T1  (M, F)     FFN intermediate
     XS  (R, H)     the requested rows, from the last attention layer on
     QS  (R, A)     their queries in that layer

   Per layer: QKV = X Wqkv^T + b; per (sequence, head) S = Q K^T / sqrt(dh),
   softmax, CTX = S V; X = LN (X + CTX Wo^T + bo); T1 = gelu (X W1^T + b1);
   X = LN (X + T1 W2^T + b2).  The "X +" residuals are GEMMs with beta = 1
   into X, so each LayerNorm reads one matrix.  */

#include <config.h>
#include "backend.h"
#include "error.h"
#include "gemm.h"
#include "kernels.h"
#include "threads.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef HAVE_OPENBLAS_SET_NUM_THREADS
void openblas_set_num_threads (int);
#endif

typedef struct layer
{
  int A;                        /* heads * head_dim; 0: identity attention */
  int heads;
  int F;                        /* FFN width; 0: identity FFN */
  const float *wq, *wk, *wv;    /* (A, H) each */
  float *wqkv;                  /* (3A, H), owned: [Wq; Wk; Wv]; BLAS only */
  float *bqkv;                  /* (3A), owned */
  const float *wo, *bo;         /* (H, A), (H) */
  const float *ln1_g, *ln1_b;   /* (H), (H) */
  const float *w1, *b1;         /* (F, H), (F) */
  const float *w2, *b2;         /* (H, F), (H) */
  const float *ln2_g, *ln2_b;   /* (H), (H) */
  /* The weights packed for the GEMM kernel (kind PMX_GEMM_NONE: BLAS on
     the arrays above).  The last attention layer runs K, V and Q apart.  */
  pmx_packed pqkv, pq, pkv, po, p1, p2;
} layer;

typedef struct cpu_encoder
{
  int H, L, dh;
  float eps, scale;
  int attend_padding;
  int threads;
  int chunk;                    /* tokens per chunk */
  int last_att;                 /* last layer with attention, -1 if none */
  int Amax, Fmax;
  pmx_gemm_kind gemm_kind;
  layer *layers;
  pmx_pool *pool;

  /* Workspace, grow-only.  */
  void *fws;                    /* the float buffers below */
  size_t fws_bytes;
  float *X, *QKV, *CTX, *T1, *XS, *QS, *S, *PA;
  size_t S_stride;              /* floats of S per thread */
  size_t S_scores;              /* of which the scores (nq, L) */
  size_t PA_stride;             /* floats of PA (packed A blocks) per thread */
  int *iws;                     /* the int arrays below */
  size_t iws_count;
  int *off, *len;               /* (nseq) packed offset and length */
  int *r_off, *r_n;             /* (nseq) requested rows in XS */
  int *map;                     /* (nseq, P) row of XS, or -1 */
  int *bounds;                  /* (G + 1) chunk starts */
  char desc[192];               /* cpu_describe */
} cpu_encoder;

/* ---- Loading -------------------------------------------------------------- */

/* Take layer L's weights (layers.c found and checked them) into LY, and
   its Q, K and V biases fused into one owned (3A) array.  */
static int
load_layer (layer *ly, const pmx_layer_weights *w, int l)
{
  ly->A = w->A;
  ly->heads = w->heads;
  ly->F = w->F;
  ly->wq = w->wq;
  ly->wk = w->wk;
  ly->wv = w->wv;
  ly->wo = w->wo;
  ly->bo = w->bo;
  ly->ln1_g = w->ln1_g;
  ly->ln1_b = w->ln1_b;
  ly->w1 = w->w1;
  ly->b1 = w->b1;
  ly->w2 = w->w2;
  ly->b2 = w->b2;
  ly->ln2_g = w->ln2_g;
  ly->ln2_b = w->ln2_b;
  if (!w->A)
    return 0;
  size_t A = (size_t) w->A;
  if (posix_memalign ((void **) &ly->bqkv, 64, 3 * A * sizeof (float)) != 0)
    return pmx_error ("out of memory for the fused QKV biases of layer %d", l);
  memcpy (ly->bqkv, w->bq, A * sizeof (float));
  memcpy (ly->bqkv + A, w->bk, A * sizeof (float));
  memcpy (ly->bqkv + 2 * A, w->bv, A * sizeof (float));
  return 0;
}

/* [Wq; Wk; Wv] of LY in one new (3A, H) matrix, or NULL with an error.  */
static float *
fuse_qkv (const layer *ly, int H)
{
  size_t part = (size_t) ly->A * H;
  float *w = NULL;
  if (posix_memalign ((void **) &w, 64, 3 * part * sizeof (float)) != 0)
    {
      pmx_error ("out of memory for fused QKV weights");
      return NULL;
    }
  memcpy (w, ly->wq, part * sizeof (float));
  memcpy (w + part, ly->wk, part * sizeof (float));
  memcpy (w + 2 * part, ly->wv, part * sizeof (float));
  return w;
}

static void
unpack_layer (layer *ly)
{
  pmx_packed *ps[6] = { &ly->pqkv, &ly->pq, &ly->pkv, &ly->po, &ly->p1, &ly->p2 };
  for (int i = 0; i < 6; i++)
    pmx_packed_release (ps[i]);
  free (ly->wqkv);
  ly->wqkv = NULL;
}

/* Prepare layer L's weights for GEMM kind KIND: packed, or for BLAS the
   fused QKV matrix.  On failure what was made is freed by unpack_layer.  */
static int
pack_layer (cpu_encoder *e, int l, pmx_gemm_kind kind)
{
  layer *ly = &e->layers[l];
  int H = e->H, A = ly->A, F = ly->F;
  if (A)
    {
      float *w = fuse_qkv (ly, H);
      if (!w)
        return -1;
      int rc = 0;
      if (kind == PMX_GEMM_NONE)
        ly->wqkv = w;
      else if (l == e->last_att)
        rc = (pmx_packed_init (&ly->pq, w, A, H, kind) < 0
              || pmx_packed_init (&ly->pkv, w + (size_t) A * H, 2 * A, H, kind) < 0);
      else
        rc = pmx_packed_init (&ly->pqkv, w, 3 * A, H, kind);
      if (kind != PMX_GEMM_NONE)
        free (w);
      if (rc || pmx_packed_init (&ly->po, ly->wo, H, A, kind) < 0)
        return -1;
    }
  if (F && (pmx_packed_init (&ly->p1, ly->w1, F, H, kind) < 0
            || pmx_packed_init (&ly->p2, ly->w2, H, F, kind) < 0))
    return -1;
  return 0;
}

/* Once layer L is packed, the weights it copied leave the resident set
   when they come from a mapped archive (pmx_model_drop_pages), so that
   the packed copy is the only one kept; the last attention layer's K and
   V stay (attention_direct reads them).  */
static void
drop_sources (const cpu_encoder *e, int l, pmx_tensor_lookup get, const void *ctx)
{
  const layer *ly = &e->layers[l];
  if (e->gemm_kind == PMX_GEMM_NONE || get != pmx_model_lookup)
    return;
  size_t HA = (size_t) e->H * ly->A * sizeof (float);
  size_t HF = (size_t) e->H * ly->F * sizeof (float);
  const float *w[6] = { ly->wq, ly->wk, ly->wv, ly->wo, ly->w1, ly->w2 };
  size_t n[6] = { HA, HA, HA, HA, HF, HF };
  for (int i = 0; i < 6; i++)
    if (w[i] && n[i] && !(l == e->last_att && (i == 1 || i == 2)))
      pmx_model_drop_pages (ctx, w[i], n[i]);
}

/* The layers packed on the pool's threads, a layer a task: each writes
   its own layer alone.  The first failure's message is copied here, since
   errors are per thread (error.h).  */
typedef struct pack_job
{
  cpu_encoder *e;
  pmx_gemm_kind kind;
  pmx_tensor_lookup get;
  const void *ctx;
  int failed;                   /* set once, atomically */
  char msg[256];
} pack_job;

static void
pack_task (void *arg, int l, int thread)
{
  pack_job *j = arg;
  (void) thread;
  if (pack_layer (j->e, l, j->kind) < 0)
    {
      if (!__atomic_exchange_n (&j->failed, 1, __ATOMIC_ACQ_REL))
        snprintf (j->msg, sizeof j->msg, "%s", pmx_errmsg ());
      return;
    }
  drop_sources (j->e, l, j->get, j->ctx);
}

/* Prepare every layer for KIND, one this CPU runs (cpu_device), on the
   encoder's threads (BERT-base's start-up, 0.37 s on 2 threads, spent a
   fifth of it packing on one).  */
static int
pack_weights (cpu_encoder *e, pmx_gemm_kind kind, pmx_tensor_lookup get,
              const void *ctx)
{
  e->gemm_kind = kind;
  pack_job j = { e, kind, get, ctx, 0, "" };
  pmx_pool_run (e->pool, pack_task, &j, e->L);
  if (j.failed)
    return pmx_error ("%s", j.msg);
  return 0;
}

static void cpu_free (void *enc);

/* The encoder of CFG (checked by encoder.c) on device DEV (a pmx_gemm_kind
   this CPU runs, cpu_device).  */
static void *
cpu_new (const void *dev, const pmx_model_config *cfg, pmx_tensor_lookup get,
         const void *ctx, int threads)
{
  pmx_gemm_kind gemm = *(const pmx_gemm_kind *) dev;
  if (threads <= 0)
    threads = pmx_online_cpus ();
  cpu_encoder *e = calloc (1, sizeof *e);
  if (!e || !(e->layers = calloc ((size_t) cfg->layers + 1, sizeof *e->layers)))
    {
      free (e);
      pmx_error ("out of memory");
      return NULL;
    }
  e->H = cfg->hidden;
  e->L = cfg->layers;
  e->dh = cfg->head_dim;
  e->eps = (float) cfg->ln_eps;
  e->scale = 1.0f / sqrtf ((float) cfg->head_dim);
  e->attend_padding = cfg->attend_padding;
  e->threads = threads;
  /* Measured on BERT-base with the packed kernels: 2048 tokens (row blocks
     of 512 with 2 threads) 2-5 % faster than 1024 -- each weight slice
     serves more rows -- and no better at 3072 or 4096.  */
  e->chunk = 2048;
  e->last_att = -1;
  for (int l = 0; l < e->L; l++)
    {
      layer *ly = &e->layers[l];
      pmx_layer_weights w;
      if (pmx_layer_weights_load (&w, get, ctx, l, e->H, e->dh) < 0
          || load_layer (ly, &w, l) < 0)
        {
          cpu_free (e);
          return NULL;
        }
      if (ly->A)
        e->last_att = l;
      e->Amax = ly->A > e->Amax ? ly->A : e->Amax;
      e->Fmax = ly->F > e->Fmax ? ly->F : e->Fmax;
    }
  if (!(e->pool = pmx_pool_new (threads)) || pack_weights (e, gemm, get, ctx) < 0)
    {
      cpu_free (e);
      return NULL;
    }
  snprintf (e->desc, sizeof e->desc, "cpu:%s: %s dense layers, attention on %s, "
            "%d thread%s", pmx_gemm_kind_name (gemm),
            gemm == PMX_GEMM_AVX512 ? "AVX-512 packed-weight (12x32)"
            : gemm == PMX_GEMM_AVX2 ? "AVX2 packed-weight (6x16)" : "OpenBLAS",
            pmx_sgemm_name (), threads, threads == 1 ? "" : "s");
#ifdef HAVE_OPENBLAS_SET_NUM_THREADS
  /* Our pool owns the cores; OpenBLAS runs inside its threads.  */
  openblas_set_num_threads (1);
#endif
  return e;
}

static void
cpu_free (void *enc)
{
  cpu_encoder *e = enc;
  if (!e)
    return;
  for (int l = 0; l < e->L; l++)
    {
      unpack_layer (&e->layers[l]);
      free (e->layers[l].bqkv);
    }
  free (e->layers);
  pmx_pool_free (e->pool);
  free (e->fws);
  free (e->iws);
  free (e);
}

static void
cpu_set_chunk (void *enc, int tokens)
{
  cpu_encoder *e = enc;
  e->chunk = tokens > 0 ? tokens : 1;
}

static const char *
cpu_describe (const void *enc)
{
  const cpu_encoder *e = enc;
  return e->desc;
}

/* ---- Parallel phases -------------------------------------------------- */

enum epilogue { EPI_BIAS, EPI_GELU, EPI_LN };

/* C (M, N) = A (M, K) W (N, K)^T + beta C, then the epilogue, cut into
   blocks of rows (and of columns, when there are too few rows to keep every
   thread busy) that the pool's threads take one at a time.  */
typedef struct gemm_job
{
  cpu_encoder *e;
  const float *A;
  int lda;
  const float *W;               /* for BLAS */
  const pmx_packed *pw;         /* the same weight, packed */
  float *C;
  int ldc;
  float beta;                   /* 0 or 1 */
  int M, N, K;
  int mb, nb, nblocks;          /* rows and columns of a block; column blocks */
  enum epilogue epi;
  const float *bias, *gamma, *beta_ln;
} gemm_job;

static void
gemm_task (void *arg, int t, int thread)
{
  const gemm_job *j = arg;
  const cpu_encoder *e = j->e;
  int r0 = t / j->nblocks * j->mb, c0 = t % j->nblocks * j->nb;
  int m = j->M - r0 < j->mb ? j->M - r0 : j->mb;
  int n = j->N - c0 < j->nb ? j->N - c0 : j->nb;
  const float *A = j->A + (size_t) r0 * j->lda;
  float *C = j->C + (size_t) r0 * j->ldc;
  if (e->gemm_kind != PMX_GEMM_NONE)
    pmx_gemm_packed (j->pw, A, j->lda, C, j->ldc, m, c0, c0 + n, j->beta != 0.0f,
                     e->PA + (size_t) thread * e->PA_stride);
  else
    cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, m, n, j->K, 1.0f, A, j->lda,
                 j->W + (size_t) c0 * j->K, j->K, j->beta, C + c0, j->ldc);
  switch (j->epi)
    {
    case EPI_BIAS:
      pmx_add_bias (C + c0, j->ldc, j->bias + c0, m, n);
      break;
    case EPI_GELU:
      pmx_bias_gelu (C + c0, j->ldc, j->bias + c0, m, n);
      break;
    case EPI_LN:
      if (j->nblocks == 1)
        pmx_bias_residual_layernorm (C, NULL, 0, j->bias, j->gamma, j->beta_ln, m,
                                     j->N, e->eps);
      break;
    }
}

/* The LayerNorm of rows block T, when the GEMM was cut into columns.  */
static void
layernorm_task (void *arg, int t, int thread)
{
  const gemm_job *j = arg;
  (void) thread;
  int r0 = t * j->mb;
  int m = j->M - r0 < j->mb ? j->M - r0 : j->mb;
  pmx_bias_residual_layernorm (j->C + (size_t) r0 * j->ldc, NULL, 0, j->bias, j->gamma,
                               j->beta_ln, m, j->N, j->e->eps);
}

/* Rows per block: at least this many keep a GEMM near its full rate.  */
enum { MIN_BLOCK_ROWS = 48 };

static void
gemm (cpu_encoder *e, gemm_job *j)
{
  if (j->M <= 0)
    return;
  /* Two blocks per thread, so a core slowed down by another process does
     not hold the phase up.  Few rows (the requested rows of the last
     layers, short inputs): cut the columns as well, in whole panels of the
     packed weight.  */
  int blocks = e->threads == 1 ? 1 : 2 * e->threads;
  int mb = (j->M + blocks - 1) / blocks;
  mb = mb < MIN_BLOCK_ROWS ? MIN_BLOCK_ROWS : (mb + 7) / 8 * 8;
  int mblocks = (j->M + mb - 1) / mb;
  int unit = e->gemm_kind != PMX_GEMM_NONE ? j->pw->nr * 4 : 64;
  int nblocks = mblocks >= blocks ? 1 : (blocks + mblocks - 1) / mblocks;
  if (nblocks > (j->N + unit - 1) / unit)
    nblocks = (j->N + unit - 1) / unit;
  int nb = (j->N + nblocks - 1) / nblocks;
  nb = (nb + unit - 1) / unit * unit;
  j->e = e;
  j->mb = mb;
  j->nb = nb;
  j->nblocks = (j->N + nb - 1) / nb;
  pmx_pool_run (e->pool, gemm_task, j, mblocks * j->nblocks);
  if (j->epi == EPI_LN && j->nblocks > 1)
    pmx_pool_run (e->pool, layernorm_task, j, mblocks);
}

/* Attention of NSEQ sequences: for each (sequence, head), queries Q rows
   q_off..+q_n against keys/values K, V rows off..+len -- or, with
   DIRECT, against the layer input X itself (attention_direct).  */
typedef struct attention_job
{
  cpu_encoder *e;
  int heads;
  const float *Q;
  int ldq;
  const float *K, *V;
  int ldkv;
  float *C;                     /* (rows, A) */
  int ldc;
  const int *q_off, *q_n;
  int direct;
  const float *wk, *wv, *bv;    /* (A, H), (A, H), (A), for DIRECT */
} attention_job;

/* One head of attention for the few requested rows of a sequence, from its
   input rows X (L, H) without K and V: q K_h^T = (q Wk_h) X^T + q.bk_h,
   whose last term is the same for every key and cancels in the softmax,
   and P V_h = (P X) Wv_h^T + bv_h, as each row of P sums to 1.  This costs
   2 nq (dh + L) H multiply-adds instead of the 2 L dh H of K_h and V_h, so
   the encoder uses it when few rows are requested (the CLS row of a
   classifier).  S holds nq x L scores, QP and U nq x H each.  */
static void
attention_direct (const attention_job *j, int h, int nq, int L, const float *Q,
                  const float *X, float *C, float *S, float *QP, float *U)
{
  const cpu_encoder *e = j->e;
  int H = e->H, dh = e->dh;
  const float *wk = j->wk + (size_t) h * dh * H, *wv = j->wv + (size_t) h * dh * H;
  pmx_sgemm (0, 0, nq, H, dh, 1.0f, Q, j->ldq,
               wk, H, 0.0f, QP, H, NULL);
  pmx_sgemm (0, 1, nq, L, H, 1.0f, QP, H, X, H,
               0.0f, S, L, NULL);
  pmx_softmax_rows (S, L, nq, L, e->scale);
  pmx_sgemm (0, 0, nq, H, L, 1.0f, S, L, X, H,
               0.0f, U, H, NULL);
  pmx_sgemm (0, 1, nq, dh, H, 1.0f, U, H, wv, H,
               0.0f, C, j->ldc, NULL);
  pmx_add_bias (C, j->ldc, j->bv + (size_t) h * dh, nq, dh);
}

/* One head of attention: C (nq, dh) = softmax (SCALE Q K^T) V for Q
   (nq, dh) against K and V (L, dh), through S (nq, L).  SCALE goes to the
   softmax: as an ALPHA, our kernels would pack Q to scale it (3 % of
   MiniLM-L6's encoder where OpenBLAS is not native).  */
static void
head_attention (const float *Q, int ldq, const float *K, const float *V, int ldkv,
                int nq, int L, int dh, float scale, float *S, float *C, int ldc)
{
  pmx_sgemm (0, 1, nq, L, dh, 1.0f, Q, ldq, K,
               ldkv, 0.0f, S, L, NULL);
  pmx_softmax_rows (S, L, nq, L, scale);
  pmx_sgemm (0, 0, nq, dh, L, 1.0f, S, L, V,
               ldkv, 0.0f, C, ldc, NULL);
}

static void
attention_task (void *arg, int t, int thread)
{
  const attention_job *j = arg;
  cpu_encoder *e = j->e;
  int s = t / j->heads, h = t % j->heads, dh = e->dh;
  int nq = j->q_n[s], L = e->len[s];
  if (nq == 0)
    return;
  float *S = e->S + (size_t) thread * e->S_stride;     /* (nq, L) */
  const float *Q = j->Q + (size_t) j->q_off[s] * j->ldq + (size_t) h * dh;
  float *C = j->C + (size_t) j->q_off[s] * j->ldc + (size_t) h * dh;
  if (j->direct)
    {
      float *QP = S + e->S_scores, *U = QP + (size_t) nq * e->H;
      attention_direct (j, h, nq, L, Q, e->X + (size_t) e->off[s] * e->H, C, S, QP, U);
      return;
    }
  const float *K = j->K + (size_t) e->off[s] * j->ldkv + (size_t) h * dh;
  const float *V = j->V + (size_t) e->off[s] * j->ldkv + (size_t) h * dh;
  head_attention (Q, j->ldq, K, V, j->ldkv, nq, L, dh, e->scale, S, C, j->ldc);
}

/* ---- Workspace ------------------------------------------------------------ */

static size_t
round64 (size_t floats)
{
  return (floats + 15) / 16 * 16;
}

/* Make room for the per-sequence plan of a call with G sequences and P
   positions.  */
static int
reserve_plan (cpu_encoder *e, int G, int P)
{
  size_t ints = (size_t) G * 4 + (size_t) G * P + (size_t) G + 1;
  if (ints > e->iws_count)
    {
      int *q = malloc (ints * sizeof *q);
      if (!q)
        return pmx_error ("out of memory");
      free (e->iws);
      e->iws = q;
      e->iws_count = ints;
    }
  e->off = e->iws;
  e->len = e->off + G;
  e->r_off = e->len + G;
  e->r_n = e->r_off + G;
  e->map = e->r_n + G;
  e->bounds = e->map + (size_t) G * P;
  return 0;
}

/* Make room for chunks of at most M tokens and R requested rows, with
   sequences of T tokens and P requested positions.  */
static int
reserve (cpu_encoder *e, size_t M, size_t R, int T, int P)
{
  size_t H = (size_t) e->H, A = (size_t) e->Amax;
  size_t F = (size_t) (e->Fmax > e->H ? e->Fmax : e->H);
  /* A GEMM block has at most max (M, R) rows (one block, one thread).  */
  size_t pa = e->gemm_kind == PMX_GEMM_NONE ? 0
    : round64 (pmx_gemm_scratch (e->gemm_kind, (int) (M > R ? M : R)));
  /* Per thread: scores of up to max (T, P) queries (positions may repeat)
     against T keys, and attention_direct's two (P, H) matrices.  */
  size_t scores = round64 ((size_t) (T > P ? T : P) * T);
  size_t per_thread = scores + round64 (2 * (size_t) P * H);
  size_t sizes[8] = {
    round64 (M * H), round64 (M * 3 * A), round64 (M * A), round64 (M * F),
    round64 (R * H), round64 (R * A), per_thread * e->threads, pa * e->threads
  };
  size_t total = 0;
  for (int i = 0; i < 8; i++)
    total += sizes[i];
  if (total * sizeof (float) > e->fws_bytes)
    {
      void *p = NULL;
      if (posix_memalign (&p, 64, total * sizeof (float)) != 0)
        return pmx_error ("out of memory for %zu MiB of encoder workspace",
                          total * sizeof (float) >> 20);
      free (e->fws);
      e->fws = p;
      e->fws_bytes = total * sizeof (float);
    }
  float **bufs[8] = { &e->X, &e->QKV, &e->CTX, &e->T1, &e->XS, &e->QS, &e->S, &e->PA };
  float *p = e->fws;
  for (int i = 0; i < 8; i++)
    {
      *bufs[i] = p;
      p += sizes[i];
    }
  e->S_stride = per_thread;
  e->S_scores = scores;
  e->PA_stride = pa;
  return 0;
}

/* ---- Forward -------------------------------------------------------------- */

static void
attention (cpu_encoder *e, const layer *ly, const float *Q, int ldq, const int *q_off,
           const int *q_n, int nseq, int direct)
{
  attention_job j = {
    .e = e, .heads = ly->heads, .Q = Q, .ldq = ldq,
    .K = e->QKV + ly->A, .V = e->QKV + 2 * ly->A, .ldkv = 3 * ly->A,
    .C = e->CTX, .ldc = ly->A, .q_off = q_off, .q_n = q_n,
    .direct = direct, .wk = ly->wk, .wv = ly->wv, .bv = ly->bqkv + 2 * ly->A
  };
  pmx_pool_run (e->pool, attention_task, &j, nseq * ly->heads);
}

/* X (rows, H) = LN (X + CTX Wo^T + bo).  */
static void
attention_output (cpu_encoder *e, const layer *ly, float *X, int rows)
{
  gemm_job j = { .A = e->CTX, .lda = ly->A, .W = ly->wo, .pw = &ly->po, .C = X,
                 .ldc = e->H, .beta = 1.0f, .M = rows, .N = e->H, .K = ly->A,
                 .epi = EPI_LN, .bias = ly->bo, .gamma = ly->ln1_g,
                 .beta_ln = ly->ln1_b };
  gemm (e, &j);
}

/* X (rows, H) = LN (X + gelu (X W1^T + b1) W2^T + b2).  */
static void
ffn (cpu_encoder *e, const layer *ly, float *X, int rows)
{
  gemm_job up = { .A = X, .lda = e->H, .W = ly->w1, .pw = &ly->p1, .C = e->T1,
                  .ldc = ly->F, .beta = 0.0f, .M = rows, .N = ly->F, .K = e->H,
                  .epi = EPI_GELU, .bias = ly->b1 };
  gemm (e, &up);
  gemm_job down = { .A = e->T1, .lda = ly->F, .W = ly->w2, .pw = &ly->p2, .C = X,
                    .ldc = e->H, .beta = 1.0f, .M = rows, .N = e->H, .K = ly->F,
                    .epi = EPI_LN, .bias = ly->b2, .gamma = ly->ln2_g,
                    .beta_ln = ly->ln2_b };
  gemm (e, &down);
}

/* Run all layers on sequences G0..G1-1 of the call.  */
static void
run_chunk (cpu_encoder *e, const float *x, int g0, int g1, int T, const int32_t *lengths,
           const int32_t *positions, int P, float *out)
{
  size_t H = (size_t) e->H;
  int nseq = g1 - g0, M = 0, R = 0;
  for (int s = 0; s < nseq; s++)
    {
      e->off[s] = M;
      e->len[s] = lengths ? lengths[g0 + s] : T;
      memcpy (e->X + (size_t) M * H, x + (size_t) (g0 + s) * T * H,
              (size_t) e->len[s] * H * sizeof (float));
      M += e->len[s];
      e->r_off[s] = R;
      e->r_n[s] = 0;
      for (int p = 0; p < P; p++)
        {
          int ok = positions[p] < e->len[s];
          e->map[(size_t) s * P + p] = ok ? R++ : -1;
          e->r_n[s] += ok;
        }
    }
  float *out0 = out + (size_t) g0 * P * H;
  if (R == 0)
    {
      memset (out0, 0, (size_t) nseq * P * H * sizeof (float));
      return;
    }

  int gathered = 0;
  for (int l = 0; l <= e->L; l++)
    {
      /* From the last attention layer on, only the requested rows matter.  */
      if (!gathered && (l == e->L || l >= e->last_att))
        {
          const layer *ly = &e->layers[l];
          /* Attention straight from X (attention_direct) when that is
             cheaper than K and V of every token.  */
          int direct = 0;
          if (l < e->L && ly->A)
            {
              double cost = 0;
              for (int s = 0; s < nseq; s++)
                cost += (double) e->r_n[s] * ly->heads * (e->dh + e->len[s]);
              direct = cost < (double) M * ly->A;
            }
          if (l < e->L && ly->A && !direct)
            {
              /* K and V of every token first.  */
              gemm_job kv = { .A = e->X, .lda = e->H, .W = ly->wqkv + (size_t) ly->A * H,
                              .pw = &ly->pkv,
                              .C = e->QKV + ly->A, .ldc = 3 * ly->A, .beta = 0.0f,
                              .M = M, .N = 2 * ly->A, .K = e->H, .epi = EPI_BIAS,
                              .bias = ly->bqkv + ly->A };
              gemm (e, &kv);
            }
          for (int s = 0; s < nseq; s++)
            for (int p = 0; p < P; p++)
              {
                int r = e->map[(size_t) s * P + p];
                if (r >= 0)
                  memcpy (e->XS + (size_t) r * H,
                          e->X + (size_t) (e->off[s] + positions[p]) * H,
                          H * sizeof (float));
              }
          gathered = 1;
          if (l < e->L && ly->A)
            {
              gemm_job q = { .A = e->XS, .lda = e->H, .W = ly->wqkv, .pw = &ly->pq,
                             .C = e->QS, .ldc = ly->A, .beta = 0.0f, .M = R, .N = ly->A,
                             .K = e->H, .epi = EPI_BIAS, .bias = ly->bqkv };
              gemm (e, &q);
              attention (e, ly, e->QS, ly->A, e->r_off, e->r_n, nseq, direct);
              attention_output (e, ly, e->XS, R);
              if (ly->F)
                ffn (e, ly, e->XS, R);
              continue;
            }
        }
      if (l == e->L)
        break;
      const layer *ly = &e->layers[l];
      float *X = gathered ? e->XS : e->X;
      int rows = gathered ? R : M;
      if (ly->A)
        {
          gemm_job qkv = { .A = e->X, .lda = e->H, .W = ly->wqkv, .pw = &ly->pqkv,
                           .C = e->QKV, .ldc = 3 * ly->A, .beta = 0.0f, .M = M,
                           .N = 3 * ly->A, .K = e->H, .epi = EPI_BIAS, .bias = ly->bqkv };
          gemm (e, &qkv);
          attention (e, ly, e->QKV, 3 * ly->A, e->off, e->len, nseq, 0);
          attention_output (e, ly, e->X, M);
        }
      if (ly->F)
        ffn (e, ly, X, rows);
    }

  for (int s = 0; s < nseq; s++)
    for (int p = 0; p < P; p++)
      {
        int r = e->map[(size_t) s * P + p];
        float *dst = out0 + ((size_t) s * P + p) * H;
        if (r >= 0)
          memcpy (dst, e->XS + (size_t) r * H, H * sizeof (float));
        else
          memset (dst, 0, H * sizeof (float));
      }
}

/* The arguments have been checked by pmx_encoder_forward; what is left is
   the size of the per-thread attention workspace.  */
static int
cpu_forward (void *enc, const float *x, int G, int T, const int32_t *lengths,
             const int32_t *positions, int P, float *out)
{
  cpu_encoder *e = enc;
  if ((size_t) T * T > ((size_t) 1 << 28) / (size_t) e->threads)
    return pmx_error ("sequence length %d is too long", T);
  if ((size_t) P * T > ((size_t) 1 << 28) / (size_t) e->threads)
    return pmx_error ("%d positions of sequences of %d tokens is too many", P, T);
  if (G == 0)
    return 0;

  /* Plan the chunks: whole sequences, until about e->chunk tokens.  */
  if (reserve_plan (e, G, P) < 0)
    return -1;
  int nchunks = 0;
  size_t maxM = 0, maxR = 0;
  for (int g = 0; g < G;)
    {
      size_t m = 0;
      int g1 = g;
      while (g1 < G)
        {
          size_t len = (size_t) (lengths ? lengths[g1] : T);
          if (m > 0 && m + len > (size_t) e->chunk)
            break;
          m += len;
          g1++;
        }
      e->bounds[nchunks++] = g;
      maxM = m > maxM ? m : maxM;
      size_t r = (size_t) (g1 - g) * P;
      maxR = r > maxR ? r : maxR;
      g = g1;
    }
  e->bounds[nchunks] = G;
  if (reserve (e, maxM, maxR, T, P) < 0)
    return -1;
  for (int c = 0; c < nchunks; c++)
    run_chunk (e, x, e->bounds[c], e->bounds[c + 1], T, lengths, positions, P, out);
  return 0;
}

/* ---- The device and its single ops (backend.h) ---------------------------- */

static const pmx_gemm_kind cpu_kinds[] = { PMX_GEMM_NONE, PMX_GEMM_AVX2, PMX_GEMM_AVX512 };

/* "avx512", "avx2", "blas" or NULL (the best): a pointer to the kind.  */
static const void *
cpu_device (const char *variant)
{
  pmx_gemm_kind kind = pmx_gemm_best ();
  if (variant && strcmp (variant, "best")
      && (pmx_gemm_kind_parse (variant, &kind) < 0 || kind == PMX_GEMM_BEST))
    {
      pmx_error ("unknown CPU kernel '%s' (avx512, avx2 or blas)", variant);
      return NULL;
    }
  if (kind > pmx_gemm_best ())  /* the kinds are ordered: AVX-512 implies AVX2 */
    {
      pmx_error ("this CPU cannot run the %s GEMM kernel", pmx_gemm_kind_name (kind));
      return NULL;
    }
  return &cpu_kinds[kind];
}

static const char *
cpu_device_name (const void *dev)
{
  switch (*(const pmx_gemm_kind *) dev)
    {
    case PMX_GEMM_AVX512: return "cpu:avx512";
    case PMX_GEMM_AVX2: return "cpu:avx2";
    default: return "cpu:blas";
    }
}

/* As gemm_task runs a dense layer: the packed kernel or OpenBLAS, then the
   bias.  */
static int
cpu_linear (const void *dev, const float *A, const float *W, const float *bias, int M,
            int N, int K, float *C)
{
  pmx_gemm_kind kind = *(const pmx_gemm_kind *) dev;
  if (kind == PMX_GEMM_NONE)
    cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, A, K, W, K,
                 0.0f, C, N);
  else
    {
      pmx_packed p;
      float *scratch = NULL;
      if (pmx_packed_init (&p, W, N, K, kind) < 0)
        return -1;
      if (posix_memalign ((void **) &scratch, 64,
                          pmx_gemm_scratch (kind, M) * sizeof (float) + 64) != 0)
        {
          pmx_packed_release (&p);
          return pmx_error ("out of memory");
        }
      pmx_gemm_packed (&p, A, K, C, N, M, 0, N, 0, scratch);
      free (scratch);
      pmx_packed_release (&p);
    }
  pmx_add_bias (C, N, bias, M, N);
  return 0;
}

static int
cpu_bias_gelu (const void *dev, float *x, const float *bias, int rows, int n)
{
  (void) dev;
  pmx_bias_gelu (x, n, bias, rows, n);
  return 0;
}

static int
cpu_residual_layernorm (const void *dev, float *x, const float *r, const float *bias,
                        const float *gamma, const float *beta, int rows, int n, float eps)
{
  (void) dev;
  pmx_bias_residual_layernorm (x, r, n, bias, gamma, beta, rows, n, eps);
  return 0;
}

static int
cpu_softmax (const void *dev, float *x, int rows, int n)
{
  (void) dev;
  pmx_softmax_rows (x, n, rows, n, 1.0f);
  return 0;
}

static int
cpu_attention (const void *dev, const float *Q, const float *K, const float *V, int nq,
               int L, int dh, float scale, float *out)
{
  (void) dev;
  float *S = malloc ((size_t) nq * L * sizeof *S);
  if (!S)
    return pmx_error ("out of memory");
  head_attention (Q, dh, K, V, dh, nq, L, dh, scale, S, out, dh);
  free (S);
  return 0;
}

const pmx_backend pmx_cpu_backend = {
  .name = "cpu",
  .variants = "avx512, avx2 or blas",
  .device = cpu_device,
  .device_name = cpu_device_name,
  .encoder_new = cpu_new,
  .encoder_forward = cpu_forward,
  .encoder_describe = cpu_describe,
  .encoder_set_chunk = cpu_set_chunk,
  .encoder_free = cpu_free,
  .linear = cpu_linear,
  .bias_gelu = cpu_bias_gelu,
  .residual_layernorm = cpu_residual_layernorm,
  .softmax = cpu_softmax,
  .attention = cpu_attention,
};
