/* test-backend.c -- the per-op harness of the encoder's backends
   (lib/stages/backend.h): every op of a device against a double-precision
   reference written here, then whole layers through pmx_encoder_new.

   Usage: test-backend [DEVICE]...  Without arguments, every CPU device
   ("cpu", "cpu:blas", "cpu:avx2", "cpu:avx512"; those this CPU lacks are
   skipped with a note) and, in a build with CUDA, "cuda:0", skipped with a
   note on a machine without a usable GPU.  Named devices must exist,
   except a CUDA device on a machine without a GPU: exit 77 (skip) when
   every device named was skipped so ("test-backend cuda:0").

   Tolerances (inputs uniform in [-1, 1], shapes like a small BERT):
   - linear C = A W^T + b: |C - ref| <= 1e-6 sum_k |a_k w_k| + 1e-6, a
     tenth of fp32's worst-case summation bound at K = 300 (gamma_K = K u
     = 1.8e-5 of that sum), far above the rounding of any fixed order;
   - bias + GELU: 2e-6 + 1e-6 |ref| (the erf approximation, kernels.h);
   - residual + LayerNorm: 2e-5 (1 / sigma amplifies rounding);
   - softmax: 1e-6;  attention of one head: 2e-6 (a convex combination of
     rows of V, |V| <= 1);
   - whole layers (dense and pruned: a layer without attention, one
     without FFN; padding masked; all positions, and the CLS row alone,
     which takes the CPU's direct attention): 1e-5 after three layers,
     in one chunk and again in chunks of one sequence each (the GPU's
     double-buffered chunks, the CPU's per-thread ones).  */

#include <config.h>
#include "backend.h"
#include "encoder.h"
#include "error.h"
#include "stream.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

static unsigned long long rng = 0x9e3779b97f4a7c15ull;

static float
frand (void)                    /* uniform in [-1, 1) */
{
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (float) ((rng >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}

static float *
randv (size_t n, float scale, float offset)
{
  float *x = malloc (n * sizeof *x);
  if (!x)
    abort ();
  for (size_t i = 0; i < n; i++)
    x[i] = frand () * scale + offset;
  return x;
}

static double
gelu (double x)
{
  return 0.5 * x * (1.0 + erf (x / sqrt (2.0)));
}

/* X (n) = LN (X) * G + B in double.  */
static void
ref_layernorm (double *x, const float *g, const float *b, int n, double eps)
{
  double mean = 0, var = 0;
  for (int j = 0; j < n; j++)
    mean += x[j];
  mean /= n;
  for (int j = 0; j < n; j++)
    var += (x[j] - mean) * (x[j] - mean);
  var /= n;
  for (int j = 0; j < n; j++)
    x[j] = (x[j] - mean) / sqrt (var + eps) * g[j] + b[j];
}

/* OUT (nq, dh) = softmax (SCALE Q K^T) V, rows ldq / ldkv / ldo apart.  */
static void
ref_attention (const double *Q, int ldq, const double *K, const double *V, int ldkv,
               int nq, int L, int dh, double scale, double *out, int ldo)
{
  double *s = malloc ((size_t) L * sizeof *s);
  for (int i = 0; i < nq; i++)
    {
      double mx = -INFINITY, sum = 0;
      for (int t = 0; t < L; t++)
        {
          double d = 0;
          for (int k = 0; k < dh; k++)
            d += Q[(size_t) i * ldq + k] * K[(size_t) t * ldkv + k];
          s[t] = d * scale;
          mx = s[t] > mx ? s[t] : mx;
        }
      for (int t = 0; t < L; t++)
        sum += s[t] = exp (s[t] - mx);
      for (int k = 0; k < dh; k++)
        {
          double o = 0;
          for (int t = 0; t < L; t++)
            o += s[t] / sum * V[(size_t) t * ldkv + k];
          out[(size_t) i * ldo + k] = o;
        }
    }
  free (s);
}

/* ---- Single ops ------------------------------------------------------------ */

static void
test_ops (const char *name, const pmx_device *dev)
{
  const pmx_backend *b = dev->backend;
  /* Linear: shapes around the packed kernels' tiles and panels.  */
  static const int shapes[][3] = { { 1, 1, 1 }, { 7, 33, 300 }, { 29, 64, 128 },
                                   { 100, 50, 771 } };
  for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
    {
      int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
      float *A = randv ((size_t) M * K, 1, 0), *W = randv ((size_t) N * K, 1, 0);
      float *bias = randv (N, 1, 0), *C = randv ((size_t) M * N, 1, 0);
      CHECK (b->linear (dev->handle, A, W, bias, M, N, K, C) == 0, "%s: linear: %s",
             name, pmx_errmsg ());
      double worst = 0;
      for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++)
          {
            double ref = bias[j], mag = 0;
            for (int k = 0; k < K; k++)
              {
                double p = (double) A[(size_t) i * K + k] * W[(size_t) j * K + k];
                ref += p;
                mag += fabs (p);
              }
            double e = fabs (C[(size_t) i * N + j] - ref) / (1e-6 * mag + 1e-6);
            worst = !(e <= worst) ? e : worst;
          }
      CHECK (worst <= 1, "%s: linear %dx%dx%d: error %g of the tolerance", name, M, N,
             K, worst);
      free (A), free (W), free (bias), free (C);
    }

  enum { R = 9, N = 389 };
  float *x = randv (R * N, 6, 0), *bias = randv (N, 1, 0);
  float *y = malloc (R * N * sizeof *y);
  memcpy (y, x, R * N * sizeof *y);
  CHECK (b->bias_gelu (dev->handle, y, bias, R, N) == 0, "%s: gelu: %s", name,
         pmx_errmsg ());
  double worst = 0;
  for (int i = 0; i < R * N; i++)
    {
      double ref = gelu ((double) x[i] + bias[i % N]);
      double e = fabs (y[i] - ref) - 1e-6 * fabs (ref);
      worst = !(e <= worst) ? e : worst;
    }
  CHECK (worst <= 2e-6, "%s: bias + GELU: error %g beyond 2e-6 + 1e-6 |x|", name, worst);

  float *r = randv (R * N, 2, 0), *g = randv (N, 0.5f, 1), *be = randv (N, 0.5f, 0);
  for (int with_r = 0; with_r <= 1; with_r++)
    {
      memcpy (y, x, R * N * sizeof *y);
      CHECK (b->residual_layernorm (dev->handle, y, with_r ? r : NULL, bias, g, be, R,
                                    N, 1e-12f) == 0, "%s: layernorm: %s", name,
             pmx_errmsg ());
      worst = 0;
      for (int i = 0; i < R; i++)
        {
          double row[N];
          for (int j = 0; j < N; j++)
            row[j] = (double) x[i * N + j] + (with_r ? r[i * N + j] : 0) + bias[j];
          ref_layernorm (row, g, be, N, 1e-12);
          for (int j = 0; j < N; j++)
            {
              double e = fabs (y[i * N + j] - row[j]);
              worst = !(e <= worst) ? e : worst;
            }
        }
      CHECK (worst <= 2e-5, "%s: %sLayerNorm: error %g", name,
             with_r ? "residual + " : "bias + ", worst);
    }

  for (int i = 0; i < R * N; i++)
    y[i] = x[i] * 4;            /* scores up to +-24 */
  CHECK (b->softmax (dev->handle, y, R, N) == 0, "%s: softmax: %s", name, pmx_errmsg ());
  worst = 0;
  for (int i = 0; i < R; i++)
    {
      double mx = -INFINITY, sum = 0;
      for (int j = 0; j < N; j++)
        mx = 4.0 * x[i * N + j] > mx ? 4.0 * x[i * N + j] : mx;
      for (int j = 0; j < N; j++)
        sum += exp (4.0 * x[i * N + j] - mx);
      for (int j = 0; j < N; j++)
        {
          double e = fabs (y[i * N + j] - exp (4.0 * x[i * N + j] - mx) / sum);
          worst = !(e <= worst) ? e : worst;
        }
    }
  CHECK (worst <= 1e-6, "%s: softmax: error %g", name, worst);
  free (x), free (y), free (bias), free (r), free (g), free (be);

  /* One head of attention: queries fewer and more than keys.  */
  static const int att[][3] = { { 1, 1, 8 }, { 5, 17, 32 }, { 40, 23, 64 } };
  for (size_t s = 0; s < sizeof att / sizeof att[0]; s++)
    {
      int nq = att[s][0], L = att[s][1], dh = att[s][2];
      float *Q = randv ((size_t) nq * dh, 2, 0), *K = randv ((size_t) L * dh, 2, 0);
      float *V = randv ((size_t) L * dh, 1, 0), *O = randv ((size_t) nq * dh, 1, 0);
      double *q = malloc ((size_t) nq * dh * sizeof *q), *k = malloc ((size_t) L * dh * sizeof *k);
      double *v = malloc ((size_t) L * dh * sizeof *v), *o = malloc ((size_t) nq * dh * sizeof *o);
      for (int i = 0; i < nq * dh; i++)
        q[i] = Q[i];
      for (int i = 0; i < L * dh; i++)
        k[i] = K[i], v[i] = V[i];
      float scale = 1.0f / sqrtf ((float) dh);
      CHECK (b->attention (dev->handle, Q, K, V, nq, L, dh, scale, O) == 0,
             "%s: attention: %s", name, pmx_errmsg ());
      ref_attention (q, dh, k, v, dh, nq, L, dh, scale, o, dh);
      worst = 0;
      for (int i = 0; i < nq * dh; i++)
        {
          double e = fabs (O[i] - o[i]);
          worst = !(e <= worst) ? e : worst;
        }
      CHECK (worst <= 2e-6, "%s: attention %d queries, %d keys, dh %d: error %g", name,
             nq, L, dh, worst);
      free (Q), free (K), free (V), free (O), free (q), free (k), free (v), free (o);
    }
}

/* ---- Whole layers ------------------------------------------------------------ */

enum { H = 48, DH = 16, LAYERS = 3, G = 3, T = 9 };
/* Heads and FFN width per layer: a dense layer, one without attention,
   one without FFN (CoFi-pruned shapes).  */
static const int heads[LAYERS] = { 3, 0, 2 }, ffn[LAYERS] = { 100, 64, 0 };

static const float *
add (pmx_record *w, int l, const char *suffix, int64_t d0, int64_t d1, float scale,
     float offset)
{
  char name[PMX_NAME_MAX + 1];
  snprintf (name, sizeof name, "encoder.layer.%d.%s", l, suffix);
  int64_t shape[2] = { d0, d1 };
  pmx_tensor *t = pmx_record_add (w, name, PMX_F32, d1 < 0 ? 1 : 2, shape);
  if (!t)
    abort ();
  float *v = t->data;
  for (size_t i = 0; i < t->nbytes / 4; i++)
    v[i] = frand () * scale + offset;
  return v;
}

typedef struct ref_layer
{
  const float *w[6], *b[6];     /* q, k, v, o, up, down */
  const float *g1, *b1, *g2, *b2;
} ref_layer;

/* Y (n, rows) = X (rows, K) W (n, K)^T + B, in double.  */
static void
ref_linear (const double *x, int rows, int K, const float *W, const float *bias, int n,
            double *y)
{
  for (int i = 0; i < rows; i++)
    for (int j = 0; j < n; j++)
      {
        double s = bias[j];
        for (int k = 0; k < K; k++)
          s += x[(size_t) i * K + k] * W[(size_t) j * K + k];
        y[(size_t) i * n + j] = s;
      }
}

/* X (L, H) of one sequence through every layer, in double.  */
static void
ref_encoder (const ref_layer *ly, double *x, int L)
{
  enum { AMAX = 64, FMAX = 128 };   /* above every heads[l] * DH, ffn[l] */
  double *q = malloc (sizeof (double) * L * AMAX * 3), *k = q + L * AMAX,
    *v = k + L * AMAX, *c = malloc (sizeof (double) * L * AMAX),
    *t = malloc (sizeof (double) * L * FMAX), *o = malloc (sizeof (double) * L * H);
  for (int l = 0; l < LAYERS; l++)
    {
      int A = heads[l] * DH, F = ffn[l];
      if (A)
        {
          ref_linear (x, L, H, ly[l].w[0], ly[l].b[0], A, q);
          ref_linear (x, L, H, ly[l].w[1], ly[l].b[1], A, k);
          ref_linear (x, L, H, ly[l].w[2], ly[l].b[2], A, v);
          for (int h = 0; h < heads[l]; h++)
            ref_attention (q + h * DH, A, k + h * DH, v + h * DH, A, L, L, DH,
                           1.0 / sqrt (DH), c + h * DH, A);
          ref_linear (c, L, A, ly[l].w[3], ly[l].b[3], H, o);
          for (int i = 0; i < L; i++)
            {
              for (int j = 0; j < H; j++)
                x[i * H + j] += o[i * H + j];
              ref_layernorm (x + i * H, ly[l].g1, ly[l].b1, H, 1e-12);
            }
        }
      if (F)
        {
          ref_linear (x, L, H, ly[l].w[4], ly[l].b[4], F, t);
          for (int i = 0; i < L * F; i++)
            t[i] = gelu (t[i]);
          ref_linear (t, L, F, ly[l].w[5], ly[l].b[5], H, o);
          for (int i = 0; i < L; i++)
            {
              for (int j = 0; j < H; j++)
                x[i * H + j] += o[i * H + j];
              ref_layernorm (x + i * H, ly[l].g2, ly[l].b2, H, 1e-12);
            }
        }
    }
  free (q), free (c), free (t), free (o);
}

static void
test_layers (const char *name)
{
  pmx_record w;
  pmx_record_init (&w);
  ref_layer ly[LAYERS];
  memset (ly, 0, sizeof ly);
  for (int l = 0; l < LAYERS; l++)
    {
      int A = heads[l] * DH, F = ffn[l];
      if (A)
        {
          static const char *const qkv[] = { "query", "key", "value" };
          for (int i = 0; i < 3; i++)
            {
              char n[64];
              snprintf (n, sizeof n, "attention.self.%s.weight", qkv[i]);
              ly[l].w[i] = add (&w, l, n, A, H, 0.3f, 0);
              snprintf (n, sizeof n, "attention.self.%s.bias", qkv[i]);
              ly[l].b[i] = add (&w, l, n, A, -1, 0.1f, 0);
            }
          ly[l].w[3] = add (&w, l, "attention.output.dense.weight", H, A, 0.2f, 0);
          ly[l].b[3] = add (&w, l, "attention.output.dense.bias", H, -1, 0.1f, 0);
          ly[l].g1 = add (&w, l, "attention.output.LayerNorm.weight", H, -1, 0.2f, 1);
          ly[l].b1 = add (&w, l, "attention.output.LayerNorm.bias", H, -1, 0.1f, 0);
        }
      if (F)
        {
          ly[l].w[4] = add (&w, l, "intermediate.dense.weight", F, H, 0.2f, 0);
          ly[l].b[4] = add (&w, l, "intermediate.dense.bias", F, -1, 0.1f, 0);
          ly[l].w[5] = add (&w, l, "output.dense.weight", H, F, 0.2f, 0);
          ly[l].b[5] = add (&w, l, "output.dense.bias", H, -1, 0.1f, 0);
          ly[l].g2 = add (&w, l, "output.LayerNorm.weight", H, -1, 0.2f, 1);
          ly[l].b2 = add (&w, l, "output.LayerNorm.bias", H, -1, 0.1f, 0);
        }
    }
  pmx_model_config cfg;
  memset (&cfg, 0, sizeof cfg);
  cfg.hidden = H;
  cfg.layers = LAYERS;
  cfg.head_dim = DH;
  cfg.ln_eps = 1e-12;
  pmx_encoder *e = pmx_encoder_new (&cfg, pmx_record_lookup, &w, name, 2);
  CHECK (e, "%s: encoder: %s", name, pmx_errmsg ());
  if (!e)
    {
      pmx_record_free (&w);
      return;
    }
  static const int32_t lengths[G] = { 9, 4, 1 };
  int32_t all[T], cls = 0;
  for (int t = 0; t < T; t++)
    all[t] = t;
  float *x = randv ((size_t) G * T * H, 1, 0);
  /* Pass 0: the default chunk (one for these few tokens); pass 1: a
     chunk a sequence (pmx_encoder_set_chunk rounds up to whole ones).  */
  float *out = malloc (sizeof (float) * 2 * G * T * H),
    *one = malloc (sizeof (float) * 2 * G * H);
  for (int pass = 0; pass < 2; pass++)
    {
      if (pass)
        pmx_encoder_set_chunk (e, 1);
      CHECK (pmx_encoder_forward (e, x, G, T, lengths, all, T, out + pass * G * T * H) == 0,
             "%s: forward: %s", name, pmx_errmsg ());
      CHECK (pmx_encoder_forward (e, x, G, T, lengths, &cls, 1, one + pass * G * H) == 0,
             "%s: forward: %s", name, pmx_errmsg ());
    }
  double worst = 0, worst_cls = 0, pad = 0;
  for (int g = 0; g < G; g++)
    {
      int L = lengths[g];
      double ref[T * H];
      for (int i = 0; i < L * H; i++)
        ref[i] = x[(size_t) g * T * H + i];
      ref_encoder (ly, ref, L);
      for (int pass = 0; pass < 2; pass++)
        {
          for (int i = 0; i < T * H; i++)
            {
              double got = out[(size_t) (pass * G + g) * T * H + i];
              if (i >= L * H)
                pad = got != 0 ? 1 : pad;
              else
                worst = fabs (got - ref[i]) > worst || isnan (got)
                  ? fabs (got - ref[i]) : worst;
            }
          for (int j = 0; j < H; j++)
            {
              double d = fabs (one[(pass * G + g) * H + j] - ref[j]);
              worst_cls = d > worst_cls || isnan (d) ? d : worst_cls;
            }
        }
    }
  CHECK (worst <= 1e-5, "%s: %d layers, all positions: error %g", name, LAYERS, worst);
  CHECK (worst_cls <= 1e-5, "%s: %d layers, the CLS row: error %g", name, LAYERS,
         worst_cls);
  CHECK (pad == 0, "%s: a padded position is not zero", name);
  printf ("%s: %s: layers within %.2g (CLS row %.2g)\n", name, pmx_encoder_describe (e),
          worst, worst_cls);
  pmx_encoder_free (e);
  pmx_record_free (&w);
  free (x), free (out), free (one);
}

int
main (int argc, char **argv)
{
  static const char *const all[] = { "cpu", "cpu:blas", "cpu:avx2", "cpu:avx512",
#ifdef HAVE_CUDA
                                     "cuda:0",
#endif
  };
  const char *const *names = argc > 1 ? (const char *const *) argv + 1 : all;
  int n = argc > 1 ? argc - 1 : (int) (sizeof all / sizeof all[0]);
  int tested = 0;
  for (int i = 0; i < n; i++)
    {
      pmx_device dev;
      if (pmx_device_open (names[i], &dev) < 0)
        {
          /* A device named on the command line must exist, unless it is a
             GPU and this machine has none; a default one may be missing
             from this CPU.  */
          if (strstr (pmx_errmsg (), "no usable CUDA GPU")
              || (argc == 1 && strstr (pmx_errmsg (), "cannot run")))
            printf ("%s: skipped (%s)\n", names[i], pmx_errmsg ());
          else
            CHECK (0, "%s", pmx_errmsg ());
          continue;
        }
      tested++;
      test_ops (names[i], &dev);
      test_layers (names[i]);
    }
  return failures ? 1 : tested ? 0 : 77;
}
