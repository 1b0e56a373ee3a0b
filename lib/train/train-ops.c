/* train-ops.c -- forward and backward passes of the training operations
   (see train-ops.h).  Plain loops for the elementwise parts, sgemm for every
   matrix product; the backward of each op follows its forward below it.  */

#include <config.h>
#include "train-ops.h"
#include "gemm.h"
#include "kernels.h"
#include "par.h"

#include <math.h>
#include <string.h>

/* ---- Embedding sum ------------------------------------------------------ */

/* The embedding sum's rows (forward) or columns (backward), a block a
   task: the backward adds each row into the tables in row order, over its
   own columns, so repeated ids give one thread's bits.  */
typedef struct embed_job
{
  float *out, *dword, *dpos, *dtype;
  const float *word, *pos, *type, *dout;
  const int32_t *ids, *types;
  int R, T, H;
} embed_job;

static void
embed_fwd_rows (void *arg, size_t r0, size_t r1, int thread)
{
  const embed_job *e = arg;
  (void) thread;
  int H = e->H;
  for (size_t r = r0; r < r1; r++)
    {
      const float *w = e->word + (int64_t) e->ids[r] * H;
      const float *p = e->pos + (int64_t) (r % e->T) * H;
      const float *s = e->type + (int64_t) (e->types ? e->types[r] : 0) * H;
      float *o = e->out + (int64_t) r * H;
      for (int j = 0; j < H; j++)
        o[j] = w[j] + p[j] + s[j];
    }
}

void
pmx_embed_sum_fwd (const pmx_par *par, float *out, const int32_t *ids,
                   const int32_t *types, const float *word, const float *pos,
                   const float *type, int R, int T, int H)
{
  embed_job e = { .out = out, .word = word, .pos = pos, .type = type, .ids = ids,
                  .types = types, .R = R, .T = T, .H = H };
  pmx_par_for (par, (size_t) R, pmx_par_chunk (par, (size_t) R, 16), embed_fwd_rows,
               &e);
}

static void
embed_bwd_cols (void *arg, size_t c0, size_t c1, int thread)
{
  const embed_job *e = arg;
  (void) thread;
  int64_t H = e->H, n = (int64_t) (c1 - c0);
  for (int r = 0; r < e->R; r++)
    {
      const float *d = e->dout + r * H + c0;
      if (e->dword)
        pmx_add (e->dword + (int64_t) e->ids[r] * H + c0, d, n);
      if (e->dpos)
        pmx_add (e->dpos + (int64_t) (r % e->T) * H + c0, d, n);
      if (e->dtype)
        pmx_add (e->dtype + (int64_t) (e->types ? e->types[r] : 0) * H + c0, d, n);
    }
}

void
pmx_embed_sum_bwd (const pmx_par *par, float *dword, float *dpos, float *dtype,
                   const float *dout, const int32_t *ids, const int32_t *types, int R,
                   int T, int H)
{
  embed_job e = { .dword = dword, .dpos = dpos, .dtype = dtype, .dout = dout,
                  .ids = ids, .types = types, .R = R, .T = T, .H = H };
  pmx_par_for (par, (size_t) H, PMX_PAR_COLS, embed_bwd_cols, &e);
}

/* ---- LayerNorm ---------------------------------------------------------- */

/* One LayerNorm for training, plain (Z NULL) or CoFi's (the sums over the
   columns with z[j] != 0 only).  With every column kept it is inference's
   kernel (kernels.c, pmx_layernorm_stats: float statistics, the encoder's
   bits), so that training's forward is the model inference runs and a
   model with all-nonzero z gives the plain results bit for bit.  The
   kernel has no mask, so CoFi's masked LayerNorm (some z[j] == 0) stays a
   path of its own here, with its statistics in double.  The backward uses
   the float MEAN and RSTD either path keeps.  */
static int
kept_columns (const float *z, int C)
{
  if (!z)
    return C;
  int kept = 0;
  for (int j = 0; j < C; j++)
    kept += z[j] != 0;
  return kept;
}

/* Rows of a row-wise pass a task (no result depends on it).  */
static size_t
rows_chunk (const pmx_par *par, size_t R)
{
  return pmx_par_chunk (par, R, 16);
}

typedef struct layernorm_job
{
  float *out, *mean, *rstd;     /* forward */
  float *dinp, *dw, *db;        /* backward */
  const float *inp, *dout, *w, *b, *z, *cmean, *crstd;
  int R, C, kept;               /* rows, columns, kept columns */
  int acc;                      /* dinp += (1) or = 0 + (0) */
  float eps;
} layernorm_job;

static void
layernorm_fwd_rows (void *arg, size_t r0, size_t r1, int thread)
{
  const layernorm_job *j = arg;
  (void) thread;
  int C = j->C, kept = j->kept;
  const float *z = j->z, *w = j->w, *b = j->b;
  if (kept == C)
    {
      pmx_layernorm_stats (j->out + r0 * C, j->mean + r0, j->rstd + r0,
                           j->inp + r0 * C, w, b, (int) (r1 - r0), C, j->eps);
      return;
    }
  for (size_t r = r0; r < r1; r++)
    {
      const float *x = j->inp + r * C;
      float *o = j->out + r * C;
      if (kept == 0)
        {
          memcpy (o, x, C * sizeof *o);
          j->mean[r] = 0;
          j->rstd[r] = 0;
          continue;
        }
      double m = 0, v = 0;
      for (int c = 0; c < C; c++)
        if (!z || z[c] != 0)
          m += x[c];
      m /= kept;
      for (int c = 0; c < C; c++)
        if (!z || z[c] != 0)
          v += (x[c] - m) * (x[c] - m);
      v /= kept;
      float s = (float) (1.0 / sqrt (v + j->eps));
      for (int c = 0; c < C; c++)
        o[c] = !z || z[c] != 0 ? (float) ((x[c] - m) * s) * w[c] + b[c] : x[c];
      j->mean[r] = (float) m;
      j->rstd[r] = s;
    }
}

void
pmx_layernorm_z_fwd (const pmx_par *par, float *out, float *mean, float *rstd,
                     const float *inp, const float *w, const float *b, const float *z,
                     int R, int C, float eps)
{
  layernorm_job j = { .out = out, .mean = mean, .rstd = rstd, .inp = inp, .w = w,
                      .b = b, .z = z, .C = C, .kept = kept_columns (z, C), .eps = eps };
  pmx_par_for (par, (size_t) R, rows_chunk (par, (size_t) R), layernorm_fwd_rows, &j);
}

/* The input's gradient, a row at a time.  */
static void
layernorm_bwd_rows (void *arg, size_t r0, size_t r1, int thread)
{
  const layernorm_job *j = arg;
  (void) thread;
  int C = j->C, kept = j->kept;
  const float *z = j->z, *w = j->w;
  if (kept == C)
    {
      pmx_layernorm_bwd_rows (j->dinp + r0 * C, j->dout + r0 * C, j->inp + r0 * C, w,
                              j->cmean + r0, j->crstd + r0, (int) (r1 - r0), C, j->acc);
      return;
    }
  for (size_t r = r0; r < r1; r++)
    {
      const float *x = j->inp + r * C;
      const float *d = j->dout + r * C;
      float *dx = j->dinp + r * C;
      float m = j->cmean[r], s = j->crstd[r];
      if (!j->acc)
        for (int c = 0; c < C; c++)
          dx[c] = 0.0f;
      /* dx = s (dnorm - mean (dnorm) - norm * mean (dnorm * norm)),
         dnorm = dout * w.  */
      double dmean = 0, dnn = 0;
      for (int c = 0; c < C; c++)
        {
          if (z && z[c] == 0)
            continue;
          float n = (x[c] - m) * s;
          float dn = d[c] * w[c];
          dmean += dn;
          dnn += dn * n;
        }
      float a = kept ? (float) (dmean / kept) : 0;
      float cc = kept ? (float) (dnn / kept) : 0;
      for (int c = 0; c < C; c++)
        {
          if (z && z[c] == 0)
            {
              dx[c] += d[c];    /* passed through unchanged */
              continue;
            }
          float n = (x[c] - m) * s;
          dx[c] += s * (d[c] * w[c] - a - n * cc);
        }
    }
}

/* The weight's and bias's gradients for columns C0..C1, each summed over
   the rows in order.  */
static void
layernorm_bwd_cols (void *arg, size_t c0, size_t c1, int thread)
{
  const layernorm_job *j = arg;
  (void) thread;
  const float *z = j->z;
  if (j->kept == j->C && j->dw && j->db)
    {
      pmx_layernorm_grad_cols (j->dw, j->db, j->dout, j->inp, j->cmean, j->crstd, j->R,
                               j->C, (int) c0, (int) c1);
      return;
    }
  for (size_t r = 0; r < (size_t) j->R; r++)
    {
      const float *x = j->inp + r * j->C;
      const float *d = j->dout + r * j->C;
      float m = j->cmean[r], s = j->crstd[r];
      for (size_t c = c0; c < c1; c++)
        {
          if (z && z[c] == 0)
            continue;
          float n = (x[c] - m) * s;
          if (j->dw)
            j->dw[c] += d[c] * n;
          if (j->db)
            j->db[c] += d[c];
        }
    }
}

static void
layernorm_bwd (const pmx_par *par, float *dinp, int acc, float *dw, float *db,
               const float *dout, const float *inp, const float *w, const float *z,
               const float *mean, const float *rstd, int R, int C)
{
  layernorm_job j = { .dinp = dinp, .dw = dw, .db = db, .inp = inp, .dout = dout,
                      .w = w, .z = z, .cmean = mean, .crstd = rstd, .C = C,
                      .kept = kept_columns (z, C), .R = R, .acc = acc };
  pmx_par_for (par, (size_t) R, rows_chunk (par, (size_t) R), layernorm_bwd_rows, &j);
  if (dw || db)
    pmx_par_for (par, (size_t) C, PMX_PAR_COLS, layernorm_bwd_cols, &j);
}

void
pmx_layernorm_z_bwd (const pmx_par *par, float *dinp, float *dw, float *db,
                     const float *dout, const float *inp, const float *w,
                     const float *z, const float *mean, const float *rstd, int R, int C)
{
  layernorm_bwd (par, dinp, 1, dw, db, dout, inp, w, z, mean, rstd, R, C);
}

void
pmx_layernorm_z_bwd_to (const pmx_par *par, float *dinp, float *dw, float *db,
                        const float *dout, const float *inp, const float *w,
                        const float *z, const float *mean, const float *rstd, int R,
                        int C)
{
  layernorm_bwd (par, dinp, 0, dw, db, dout, inp, w, z, mean, rstd, R, C);
}

void
pmx_layernorm_fwd (const pmx_par *par, float *out, float *mean, float *rstd,
                   const float *inp, const float *w, const float *b, int R, int C,
                   float eps)
{
  pmx_layernorm_z_fwd (par, out, mean, rstd, inp, w, b, NULL, R, C, eps);
}

void
pmx_layernorm_bwd (const pmx_par *par, float *dinp, float *dw, float *db,
                   const float *dout, const float *inp, const float *w,
                   const float *mean, const float *rstd, int R, int C)
{
  layernorm_bwd (par, dinp, 1, dw, db, dout, inp, w, NULL, mean, rstd, R, C);
}

void
pmx_layernorm_bwd_to (const pmx_par *par, float *dinp, float *dw, float *db,
                      const float *dout, const float *inp, const float *w,
                      const float *mean, const float *rstd, int R, int C)
{
  layernorm_bwd (par, dinp, 0, dw, db, dout, inp, w, NULL, mean, rstd, R, C);
}

/* ---- Linear ------------------------------------------------------------- */

typedef struct rows_job
{
  float *out, *pre;
  const float *bias, *x;
  int O, rows;
} rows_job;

void
pmx_linear_fwd (const pmx_par *par, float *out, const float *inp, const float *w,
                const float *bias, int R, int In, int O)
{
  if (R == 0 || O == 0)
    return;
  /* The bias as the kernels store the first sums (gemm.h): the bits of
     filling OUT with it and adding, without that pass over OUT.  */
  pmx_sgemm_par_bias (par, 0, 1, R, O, In, 1.0f, inp, In, w, In, out, O, bias);
}

/* dbias[c0..c1) += the column sums of dout (R rows), in row order.  */
static void
bias_grad_cols (void *arg, size_t c0, size_t c1, int thread)
{
  const rows_job *j = arg;
  (void) thread;
  pmx_colsum_acc (j->out, j->x, j->O, j->rows, (int) c0, (int) c1);
}

static void
linear_bwd (const pmx_par *par, float *dinp, int acc, float *dw, float *dbias,
            const float *dout, const float *inp, const float *w, int R, int In, int O)
{
  if (R == 0)
    return;
  if (O == 0)                   /* an empty sum */
    {
      if (dinp && !acc)
        memset (dinp, 0, (size_t) R * In * sizeof *dinp);
      return;
    }
  if (dinp)                     /* (R, In) += (R, O) (O, In) */
    pmx_sgemm_par (par, 0, 0, R, In, O, 1.0f, dout, O, w, In, acc ? 1.0f : 0.0f,
                   dinp, In);
  if (dw)                       /* (O, In) += (R, O)^T (R, In) */
    pmx_sgemm_par (par, 1, 0, O, In, R, 1.0f, dout, O, inp, In, 1.0f, dw, In);
  if (dbias)
    {
      rows_job j = { .out = dbias, .x = dout, .O = O, .rows = R };
      pmx_par_for (par, (size_t) O, PMX_PAR_COLS, bias_grad_cols, &j);
    }
}

void
pmx_linear_bwd (const pmx_par *par, float *dinp, float *dw, float *dbias,
                const float *dout, const float *inp, const float *w, int R, int In,
                int O)
{
  linear_bwd (par, dinp, 1, dw, dbias, dout, inp, w, R, In, O);
}

void
pmx_linear_bwd_to (const pmx_par *par, float *dinp, float *dw, float *dbias,
                   const float *dout, const float *inp, const float *w, int R, int In,
                   int O)
{
  linear_bwd (par, dinp, 0, dw, dbias, dout, inp, w, R, In, O);
}

/* ---- GELU (exact) ------------------------------------------------------- */

void
pmx_gelu_fwd (float *out, const float *inp, int n)
{
  for (int i = 0; i < n; i++)
    out[i] = pmx_gelu_erf (inp[i]);
}

void
pmx_gelu_bwd (float *dinp, const float *inp, const float *dout, int n)
{
  /* d/dx x Phi(x) = Phi(x) + x phi(x).  */
  const float k = (float) (0.5 * M_2_SQRTPI * M_SQRT1_2); /* 1/sqrt(2 pi) */
  for (int i = 0; i < n; i++)
    {
      float x = inp[i];
      float cdf = 0.5f * (1.0f + erff (x * (float) M_SQRT1_2));
      float pdf = k * expf (-0.5f * x * x);
      dinp[i] += dout[i] * (cdf + x * pdf);
    }
}

/* pre = out + bias, out = gelu (pre), for rows R0..R1.  */
static void
bias_gelu_rows (void *arg, size_t r0, size_t r1, int thread)
{
  const rows_job *j = arg;
  (void) thread;
  size_t O = (size_t) j->O;
  pmx_bias_gelu_keep (j->out + r0 * O, j->pre + r0 * O, j->O, j->bias, (int) (r1 - r0),
                      j->O);
}

void
pmx_linear_gelu_fwd (const pmx_par *par, float *pre, float *out, const float *inp,
                     const float *w, const float *bias, int R, int In, int O)
{
  if (R == 0 || O == 0)
    return;
  pmx_sgemm_par (par, 0, 1, R, O, In, 1.0f, inp, In, w, In, 0.0f, out, O);
  rows_job j = { .out = out, .pre = pre, .bias = bias, .O = O };
  pmx_par_for (par, (size_t) R, rows_chunk (par, (size_t) R), bias_gelu_rows, &j);
}

typedef struct gelu_bwd_job
{
  float *dinp;
  const float *pre, *out, *dout;
  int acc;
} gelu_bwd_job;

static void
gelu_bwd_range (void *arg, size_t i0, size_t i1, int thread)
{
  const gelu_bwd_job *j = arg;
  (void) thread;
  pmx_gelu_bwd_vec (j->dinp + i0, j->pre + i0, j->out + i0, j->dout + i0, i1 - i0,
                    j->acc);
}

void
pmx_gelu_bwd_out (const pmx_par *par, float *dinp, const float *pre, const float *out,
                  const float *dout, int n)
{
  gelu_bwd_job j = { dinp, pre, out, dout, 1 };
  pmx_par_for (par, (size_t) n, 1 << 14, gelu_bwd_range, &j);
}

void
pmx_gelu_bwd_out_to (const pmx_par *par, float *dinp, const float *pre,
                     const float *out, const float *dout, int n)
{
  gelu_bwd_job j = { dinp, pre, out, dout, 0 };
  pmx_par_for (par, (size_t) n, 1 << 14, gelu_bwd_range, &j);
}

/* ---- Attention ---------------------------------------------------------- */

/* One (sequence, head) pair a task: its probabilities, context and
   gradients are its own.  */
typedef struct attention_job
{
  const pmx_par *par;
  float *out, *att, *dq, *dk, *dv, *scratch;
  const float *q, *k, *v, *dout, *catt;
  const int32_t *lengths;
  int T, TQ, NH, HD;
  float scale;
  float beta;                   /* 1: dq, dk, dv +=; 0: = */
} attention_job;

/* Where task TASK's head starts in a (B*ROWS, NH*HD) matrix: ROWS is T for
   k and v, TQ for q and out.  */
static int64_t
head_offset (const attention_job *j, int task, int rows)
{
  return (int64_t) (task / j->NH) * rows * j->NH * j->HD + (task % j->NH) * j->HD;
}

static void
attention_fwd_task (void *arg, int task, int thread)
{
  const attention_job *j = arg;
  int T = j->T, TQ = j->TQ, C = j->NH * j->HD, b = task / j->NH;
  pmx_sgemm_ws *ws = pmx_par_ws (j->par, thread);
  int64_t off = head_offset (j, task, T), offq = head_offset (j, task, TQ);
  float *a = j->att + (int64_t) task * TQ * T;  // (TQ, T)
  pmx_sgemm (0, 1, TQ, T, j->HD, 1.0f, j->q + offq, C, j->k + off, C, 0.0f, a, T, ws);
  /* The encoder's softmax, the scale applied as it reads (inference's
     arithmetic); masked keys get probability 0.  */
  int len = j->lengths ? j->lengths[b] : T;
  pmx_softmax_rows (a, T, TQ, len, j->scale);
  for (int i = 0; i < TQ && len < T; i++)
    memset (a + (int64_t) i * T + len, 0, (size_t) (T - len) * sizeof *a);
  pmx_sgemm (0, 0, TQ, j->HD, T, 1.0f, a, T, j->v + off, C, 0.0f, j->out + offq, C,
             ws);
}

void
pmx_attention_fwd (const pmx_par *par, float *out, float *att, const float *q,
                   const float *k, const float *v, const int32_t *lengths, int B, int T,
                   int TQ, int NH, int HD)
{
  attention_job j = { .par = par, .out = out, .att = att, .q = q, .k = k, .v = v,
                      .lengths = lengths, .T = T, .TQ = TQ, .NH = NH, .HD = HD,
                      .scale = 1.0f / sqrtf ((float) HD) };
  pmx_par_tasks (par, B * NH, attention_fwd_task, &j);
}

static void
attention_bwd_task (void *arg, int task, int thread)
{
  const attention_job *j = arg;
  int T = j->T, TQ = j->TQ, C = j->NH * j->HD;
  pmx_sgemm_ws *ws = pmx_par_ws (j->par, thread);
  const float *a = j->catt + (int64_t) task * TQ * T;
  int64_t off = head_offset (j, task, T), offq = head_offset (j, task, TQ);
  float *da = j->scratch + (int64_t) thread * TQ * T;     // (TQ, T)
  /* da = dout v^T; dv += a^T dout (= with BETA 0, as dq and dk below).  */
  pmx_sgemm (0, 1, TQ, T, j->HD, 1.0f, j->dout + offq, C, j->v + off, C, 0.0f, da, T,
             ws);
  pmx_sgemm (1, 0, T, j->HD, TQ, 1.0f, a, T, j->dout + offq, C, j->beta, j->dv + off, C,
             ws);
  /* Softmax backward: ds = a (da - sum_j a da); masked keys have a = 0
     and so get no gradient.  */
  for (int i = 0; i < TQ; i++)
    {
      const float *ar = a + (int64_t) i * T;
      float *dr = da + (int64_t) i * T;
      double dot = 0;
      for (int c = 0; c < T; c++)
        dot += ar[c] * dr[c];
      for (int c = 0; c < T; c++)
        dr[c] = ar[c] * (dr[c] - (float) dot);
    }
  /* scores = scale q k^T: dq += scale ds k; dk += scale ds^T q.  */
  pmx_sgemm (0, 0, TQ, j->HD, T, j->scale, da, T, j->k + off, C, j->beta, j->dq + offq,
             C, ws);
  pmx_sgemm (1, 0, T, j->HD, TQ, j->scale, da, T, j->q + offq, C, j->beta, j->dk + off,
             C, ws);
}

static void
attention_bwd (const pmx_par *par, float beta, float *dq, float *dk, float *dv,
               float *scratch, const float *dout, const float *att, const float *q,
               const float *k, const float *v, int B, int T, int TQ, int NH, int HD)
{
  attention_job j = { .par = par, .dq = dq, .dk = dk, .dv = dv, .scratch = scratch,
                      .dout = dout, .catt = att, .q = q, .k = k, .v = v, .T = T,
                      .TQ = TQ, .NH = NH, .HD = HD, .scale = 1.0f / sqrtf ((float) HD),
                      .beta = beta };
  pmx_par_tasks (par, B * NH, attention_bwd_task, &j);
}

void
pmx_attention_bwd (const pmx_par *par, float *dq, float *dk, float *dv, float *scratch,
                   const float *dout, const float *att, const float *q, const float *k,
                   const float *v, int B, int T, int TQ, int NH, int HD)
{
  attention_bwd (par, 1.0f, dq, dk, dv, scratch, dout, att, q, k, v, B, T, TQ, NH, HD);
}

void
pmx_attention_bwd_to (const pmx_par *par, float *dq, float *dk, float *dv,
                      float *scratch, const float *dout, const float *att,
                      const float *q, const float *k, const float *v, int B, int T,
                      int TQ, int NH, int HD)
{
  attention_bwd (par, 0.0f, dq, dk, dv, scratch, dout, att, q, k, v, B, T, TQ, NH, HD);
}

/* ---- Softmax cross-entropy --------------------------------------------- */

double
pmx_softmax_xent_fwd (float *probs, const float *logits, const int32_t *target,
                      int R, int C, int *count)
{
  double loss = 0;
  int n = 0;
  for (int r = 0; r < R; r++)
    {
      const float *x = logits + (int64_t) r * C;
      float *p = probs + (int64_t) r * C;
      float mx = x[0];
      for (int j = 1; j < C; j++)
        mx = x[j] > mx ? x[j] : mx;
      double sum = 0;
      for (int j = 0; j < C; j++)
        sum += exp ((double) x[j] - mx);
      for (int j = 0; j < C; j++)
        p[j] = (float) (exp ((double) x[j] - mx) / sum);
      if (target[r] >= 0)
        {
          loss += log (sum) - ((double) x[target[r]] - mx);
          n++;
        }
    }
  *count = n;
  return loss;
}

void
pmx_softmax_xent_bwd (float *dlogits, const float *probs,
                      const int32_t *target, int R, int C, float scale)
{
  for (int r = 0; r < R; r++)
    {
      if (target[r] < 0)
        continue;
      const float *p = probs + (int64_t) r * C;
      float *d = dlogits + (int64_t) r * C;
      for (int j = 0; j < C; j++)
        d[j] += scale * (p[j] - (j == target[r]));
    }
}

/* ---- Demultiplexer input ---------------------------------------------- */

void
pmx_concat_fwd (float *out, const float *e, const int32_t *inst,
                const float *h, const int32_t *src, int R, int H)
{
  for (int r = 0; r < R; r++)
    {
      memcpy (out + (int64_t) r * 2 * H, e + (int64_t) inst[r] * H,
              H * sizeof *out);
      memcpy (out + (int64_t) r * 2 * H + H, h + (int64_t) src[r] * H,
              H * sizeof *out);
    }
}

void
pmx_concat_bwd (float *de, float *dh, const float *dout, const int32_t *inst,
                const int32_t *src, int R, int H)
{
  for (int r = 0; r < R; r++)
    {
      if (de)
        pmx_add (de + (int64_t) inst[r] * H, dout + (int64_t) r * 2 * H, H);
      if (dh)
        pmx_add (dh + (int64_t) src[r] * H, dout + (int64_t) r * 2 * H + H, H);
    }
}

/* ---- Dropout and helpers ------------------------------------------------ */

uint64_t
pmx_mix64 (uint64_t x)
{
  return pmx_splitmix64 (x);
}

void
pmx_dropout_mask (float *mask, int64_t n, float p, uint64_t seed,
                  uint64_t stream, int64_t first)
{
  pmx_dropout_kernel (NULL, mask, (size_t) n, p, 1.0f / (1.0f - p),
                      pmx_mix64 (seed ^ pmx_mix64 (stream)), (uint64_t) first);
}

void
pmx_mul (float *x, const float *mask, int64_t n)
{
  pmx_vmul (x, mask, (size_t) n);
}

/* Elements of a task of dropout's passes.  */
enum { DROPOUT_CHUNK = 1 << 14 };

typedef struct dropout_job
{
  float *x, *mask;
  const float *cmask;
  float p, keep;
  uint64_t base, first;
} dropout_job;

static void
dropout_range (void *arg, size_t i0, size_t i1, int thread)
{
  const dropout_job *j = arg;
  (void) thread;
  pmx_dropout_kernel (j->x + i0, j->mask + i0, i1 - i0, j->p, j->keep, j->base,
                      j->first + i0);
}

void
pmx_dropout_fwd (const pmx_par *par, float *x, float *mask, int64_t n, float p,
                 uint64_t seed, uint64_t stream, int64_t first)
{
  dropout_job j = { .x = x, .mask = mask, .p = p, .keep = 1.0f / (1.0f - p),
                    .base = pmx_mix64 (seed ^ pmx_mix64 (stream)),
                    .first = (uint64_t) first };
  pmx_par_for (par, (size_t) n, DROPOUT_CHUNK, dropout_range, &j);
}

static void
mul_range (void *arg, size_t i0, size_t i1, int thread)
{
  const dropout_job *j = arg;
  (void) thread;
  pmx_vmul (j->x + i0, j->cmask + i0, i1 - i0);
}

void
pmx_dropout_bwd (const pmx_par *par, float *dx, const float *mask, int64_t n)
{
  dropout_job j = { .x = dx, .cmask = mask };
  pmx_par_for (par, (size_t) n, DROPOUT_CHUNK, mul_range, &j);
}

void
pmx_add (float *y, const float *x, int64_t n)
{
  pmx_vadd (y, x, (size_t) n);
}
