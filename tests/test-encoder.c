/* test-encoder.c -- unit tests of the encoder's kernels, thread pool and
   invariants that need no reference implementation:

   - the fast kernels against the double-precision references
     (GELU: 2e-6 absolute + 1e-6 relative; LayerNorm: 2e-5 absolute;
     softmax: 1e-6 absolute);
   - the pool runs every task exactly once;
   - an encoder with irregular pruned layers gives the same hidden states
     whatever the thread count and chunk size (bit for bit with the packed
     GEMM kernels, within 2e-5 on OpenBLAS), with every GEMM kind this CPU
     runs (within 2e-5 of each other), with padding
     removed as with the sequence alone, and for a subset of positions (the
     CLS row alone, positions repeated more times than there are tokens) as
     for all of them; padded positions come out as zeros;
   - bad weights and bad calls fail with a message.

   tests/ref-encoder.py checks the numbers themselves against PyTorch.  */

#include <config.h>
#include "encoder.h"
#include "error.h"
#include "gemm.h"
#include "kernels.h"
#include "threads.h"

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

static unsigned long long rng = 88172645463325252ull;

static float
frand (void)                    /* uniform in [-1, 1) */
{
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (float) ((rng >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}

static void
fill (float *x, size_t n, float scale, float offset)
{
  for (size_t i = 0; i < n; i++)
    x[i] = frand () * scale + offset;
}

static double
max_diff (const float *a, const float *b, size_t n)
{
  double m = 0;
  for (size_t i = 0; i < n; i++)
    {
      double d = fabs ((double) a[i] - b[i]);
      if (!(d <= m))
        m = isnan (d) ? INFINITY : d;
    }
  return m;
}

/* ---- Kernels ------------------------------------------------------------ */

static void
test_kernels (void)
{
  enum { R = 7, N = 771, LD = 800 };
  static float a[R * LD], b[R * LD], y[R * LD], bias[N], g[N], be[N];
  fill (a, R * LD, 6.0f, 0.0f);
  memcpy (b, a, sizeof a);
  fill (bias, N, 1.0f, 0.0f);
  pmx_bias_gelu (a, LD, bias, R, N);
  pmx_ref_bias_gelu (b, LD, bias, R, N);
  double worst = 0;
  for (int r = 0; r < R; r++)
    for (int j = 0; j < N; j++)
      {
        double d = fabs (a[r * LD + j] - b[r * LD + j]) - 1e-6 * fabs (b[r * LD + j]);
        worst = d > worst ? d : worst;
      }
  CHECK (worst <= 2e-6, "bias+GELU: error %g beyond 2e-6 + 1e-6 |x|", worst);
  /* Whole range, including the tails where erf saturates.  */
  double wg = 0;
  for (float x = -12.0f; x <= 12.0f; x += 1e-3f)
    {
      double ref = 0.5 * x * (1.0 + erf (x / sqrt (2.0)));
      double d = fabs (pmx_gelu_fast (x) - ref) - 1e-6 * fabs (ref);
      wg = d > wg ? d : wg;
    }
  CHECK (wg <= 2e-6, "GELU over [-12, 12]: error %g", wg);
  double we = 0;
  for (float x = -80.0f; x <= 10.0f; x += 1e-3f)
    {
      double d = fabs (pmx_exp_fast (x) - exp (x)) / exp (x);
      we = d > we ? d : we;
    }
  CHECK (we <= 1e-6, "exp over [-80, 10]: relative error %g", we);

  fill (a, R * N, 3.0f, 0.5f);
  memcpy (b, a, sizeof a);
  fill (y, R * LD, 2.0f, 0.0f);
  fill (g, N, 0.5f, 1.0f);
  fill (be, N, 0.5f, 0.0f);
  pmx_bias_residual_layernorm (a, y, LD, bias, g, be, R, N, 1e-12f);
  pmx_ref_bias_residual_layernorm (b, y, LD, bias, g, be, R, N, 1e-12f);
  CHECK (max_diff (a, b, R * N) <= 2e-5, "residual+LayerNorm: error %g",
         max_diff (a, b, R * N));
  fill (a, R * N, 3.0f, 0.5f);
  memcpy (b, a, sizeof a);
  pmx_bias_residual_layernorm (a, NULL, 0, bias, g, be, R, N, 1e-5f);
  pmx_ref_bias_residual_layernorm (b, NULL, 0, bias, g, be, R, N, 1e-5f);
  CHECK (max_diff (a, b, R * N) <= 2e-5, "bias+LayerNorm: error %g",
         max_diff (a, b, R * N));

  /* Plain, and scaled as attention's (scores of head size 64).  */
  static const float scales[] = { 1.0f, 0.125f };
  for (int k = 0; k < 2; k++)
    {
      fill (a, R * LD, 20.0f / scales[k], 0.0f);
      memcpy (b, a, sizeof a);
      pmx_softmax_rows (a, LD, R, N, scales[k]);
      pmx_ref_softmax_rows (b, LD, R, N, scales[k]);
      double ws = 0;
      for (int r = 0; r < R; r++)
        {
          double d = max_diff (a + r * LD, b + r * LD, N);
          ws = d > ws ? d : ws;
        }
      CHECK (ws <= 1e-6, "softmax (scale %g): error %g", scales[k], ws);
    }

  /* Softmax at attention's widths, past a block of 16 rows (the kernels
     go a block at a time) and with tails: the columns past N untouched,
     a NaN in a row makes that row NaN and leaves the others alone; the
     AVX-512 code where this CPU has it, and the portable one.  */
  static const int widths[] = { 1, 5, 16, 32, 33, 128, 130 };
  enum { SR = 37, SLD = 136 };
  static float sa[SR * SLD], sb[SR * SLD];
  static void (*const softmax[]) (float *, int, int, int, float) =
    { pmx_softmax_rows, pmx_softmax_rows_portable };
  for (size_t w = 0; w < 2 * sizeof widths / sizeof *widths; w++)
    {
      int n = widths[w / 2];
      fill (sa, SR * SLD, 30.0f, 0.0f);
      sa[3 * SLD + n / 2] = NAN;
      memcpy (sb, sa, sizeof sa);
      softmax[w % 2] (sa, SLD, SR, n, 0.17f);
      pmx_ref_softmax_rows (sb, SLD, SR, n, 0.17f);
      double ws = 0;
      int nan_ok = 1, tail_ok = 1;
      for (int r = 0; r < SR; r++)
        for (int j = 0; j < SLD; j++)
          {
            float av = sa[r * SLD + j], bv = sb[r * SLD + j];
            if (j >= n)
              tail_ok &= !memcmp (&av, &bv, sizeof av);
            else if (r == 3)
              nan_ok &= isnan (av);
            else
              {
                double d = fabs ((double) av - bv);
                ws = isfinite (av) && d <= ws ? ws : isfinite (av) ? d : INFINITY;
              }
          }
      const char *how = w % 2 ? " (portable)" : "";
      CHECK (ws <= 1e-6, "softmax%s of width %d: error %g", how, n, ws);
      CHECK (nan_ok, "softmax%s of width %d: a NaN did not make its row NaN", how, n);
      CHECK (tail_ok, "softmax%s of width %d: wrote past the row", how, n);
    }
}

/* ---- Pool ------------------------------------------------------------- */

static atomic_int hits[1000];

static void
count_task (void *arg, int t, int thread)
{
  int size = *(int *) arg;
  if (thread >= 0 && thread < size)
    atomic_fetch_add (&hits[t], 1);
}

static void
test_pool (void)
{
  for (int threads = 1; threads <= 4; threads++)
    {
      pmx_pool *p = pmx_pool_new (threads);
      CHECK (p && pmx_pool_size (p) == threads, "pool of %d", threads);
      if (!p)
        continue;
      for (int round = 0; round < 20; round++)
        {
          int n = round * 50;
          for (int i = 0; i < 1000; i++)
            atomic_store (&hits[i], 0);
          pmx_pool_run (p, count_task, &threads, n);
          for (int i = 0; i < 1000; i++)
            CHECK (atomic_load (&hits[i]) == (i < n), "pool %d: task %d ran %d times",
                   threads, i, atomic_load (&hits[i]));
        }
      pmx_pool_free (p);
    }
  CHECK (!pmx_pool_new (0), "pool of 0 threads accepted");
}

/* ---- Encoder -------------------------------------------------------------- */

enum { H = 48, DH = 8, LAYERS = 4 };
/* Heads and FFN width per layer: a dense-ish layer, one without FFN, one
   without attention, a thin one.  */
static const int heads[LAYERS] = { 6, 3, 0, 1 };
static const int ffn[LAYERS] = { 96, 0, 40, 7 };

static void
add (pmx_record *w, int l, const char *suffix, int64_t d0, int64_t d1, float scale,
     float offset)
{
  char name[128];
  snprintf (name, sizeof name, "encoder.layer.%d.%s", l, suffix);
  int64_t shape[2] = { d0, d1 };
  pmx_tensor *t = pmx_record_add (w, name, PMX_F32, d1 < 0 ? 1 : 2, shape);
  if (!t)
    {
      fprintf (stderr, "%s\n", pmx_errmsg ());
      exit (99);
    }
  fill (t->data, (size_t) pmx_tensor_numel (t), scale, offset);
}

static void
make_weights (pmx_record *w)
{
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
              add (w, l, n, A, H, 0.3f, 0);
              snprintf (n, sizeof n, "attention.self.%s.bias", qkv[i]);
              add (w, l, n, A, -1, 0.1f, 0);
            }
          add (w, l, "attention.output.dense.weight", H, A, 0.3f, 0);
          add (w, l, "attention.output.dense.bias", H, -1, 0.1f, 0);
          add (w, l, "attention.output.LayerNorm.weight", H, -1, 0.2f, 1);
          add (w, l, "attention.output.LayerNorm.bias", H, -1, 0.1f, 0);
        }
      if (F)
        {
          add (w, l, "intermediate.dense.weight", F, H, 0.3f, 0);
          add (w, l, "intermediate.dense.bias", F, -1, 0.1f, 0);
          add (w, l, "output.dense.weight", H, F, 0.3f, 0);
          add (w, l, "output.dense.bias", H, -1, 0.1f, 0);
          add (w, l, "output.LayerNorm.weight", H, -1, 0.2f, 1);
          add (w, l, "output.LayerNorm.bias", H, -1, 0.1f, 0);
        }
    }
}

static void
test_encoder (void)
{
  pmx_record w;
  pmx_record_init (&w);
  make_weights (&w);
  pmx_model_config cfg;
  memset (&cfg, 0, sizeof cfg);
  cfg.hidden = H;
  cfg.layers = LAYERS;
  cfg.head_dim = DH;
  cfg.ln_eps = 1e-12;

  enum { G = 5, T = 11 };
  static const int32_t lengths[G] = { 11, 3, 7, 1, 10 };
  int32_t all[T];
  for (int t = 0; t < T; t++)
    all[t] = t;
  static float x[G * T * H], ref[G * T * H], got[G * T * H], one[T * H];
  fill (x, G * T * H, 1.0f, 0.0f);

  pmx_encoder *e1 = pmx_encoder_new (&cfg, pmx_record_lookup, &w, "cpu", 1);
  CHECK (e1, "encoder_new: %s", pmx_errmsg ());
  if (!e1)
    goto out;
  CHECK (pmx_encoder_forward (e1, x, G, T, lengths, all, T, ref) == 0, "forward: %s",
         pmx_errmsg ());

  /* Thread counts and chunk sizes must not change the result.  */
  for (int threads = 1; threads <= 3; threads++)
    for (int chunk = 1; chunk <= 64; chunk *= 4)
      {
        pmx_encoder *e = pmx_encoder_new (&cfg, pmx_record_lookup, &w, NULL, threads);
        pmx_encoder_set_chunk (e, chunk);
        memset (got, 0xff, sizeof got);
        CHECK (pmx_encoder_forward (e, x, G, T, lengths, all, T, got) == 0,
               "forward: %s", pmx_errmsg ());
        if (strcmp (pmx_encoder_device (e), "cpu:blas"))
          CHECK (memcmp (got, ref, sizeof got) == 0,
                 "%d threads, chunk %d: not bit for bit (differs by %g)", threads,
                 chunk, max_diff (got, ref, G * T * H));
        CHECK (max_diff (got, ref, G * T * H) <= 2e-5,
               "%d threads, chunk %d: differs by %g", threads, chunk,
               max_diff (got, ref, G * T * H));
        pmx_encoder_free (e);
      }

  /* Every GEMM kind the CPU has, OpenBLAS included, gives the same states.  */
  for (pmx_gemm_kind k = PMX_GEMM_NONE; k <= pmx_gemm_best (); k++)
    for (int threads = 1; threads <= 2; threads++)
      {
        char device[32];
        snprintf (device, sizeof device, "cpu:%s", pmx_gemm_kind_name (k));
        pmx_encoder *e = pmx_encoder_new (&cfg, pmx_record_lookup, &w, device, threads);
        CHECK (e && !strcmp (pmx_encoder_device (e), device), "%s: %s", device,
               pmx_errmsg ());
        if (!e)
          continue;
        pmx_encoder_set_chunk (e, 16);
        memset (got, 0xff, sizeof got);
        CHECK (pmx_encoder_forward (e, x, G, T, lengths, all, T, got) == 0,
               "forward: %s", pmx_errmsg ());
        CHECK (max_diff (got, ref, G * T * H) <= 2e-5, "gemm %s, %d threads: differs by %g",
               pmx_gemm_kind_name (k), threads, max_diff (got, ref, G * T * H));
        pmx_encoder_free (e);
      }

  if (pmx_gemm_best () < PMX_GEMM_AVX512)
    CHECK (!pmx_encoder_new (&cfg, pmx_record_lookup, &w, "cpu:avx512", 1)
           && strstr (pmx_errmsg (), "cannot run the avx512"),
           "a kernel this CPU lacks accepted: '%s'", pmx_errmsg ());
  /* "cpu" is the best kernel; unknown devices and CUDA fail clearly.  */
  {
    char best[32];
    snprintf (best, sizeof best, "cpu:%s", pmx_gemm_kind_name (pmx_gemm_best ()));
    CHECK (!strcmp (pmx_encoder_device (e1), best), "'cpu' runs %s, not %s",
           pmx_encoder_device (e1), best);
    CHECK (!strncmp (pmx_encoder_describe (e1), best, strlen (best)),
           "description '%s'", pmx_encoder_describe (e1));
    static const char *const bad[][2] = {
      { "gpu", "unknown device 'gpu' (devices: cpu, " },
      { "cpu:sse", "device 'cpu:sse': unknown CPU kernel 'sse'" },
      { "cpu:", "device 'cpu:': unknown CPU kernel ''" },
#ifdef HAVE_CUDA
      { "cuda:x", "device 'cuda:x': unknown CUDA device 'x'" },
      { "cuda:0:fp16", "device 'cuda:0:fp16': unknown CUDA device '0:fp16'" },
      { "cuda:-1", "device 'cuda:-1': unknown CUDA device '-1'" },
#else
      { "cuda:0", "device 'cuda:0': this prumux was built without CUDA" },
      { "cuda", "device 'cuda': this prumux was built without CUDA" },
#endif
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
      CHECK (!pmx_encoder_new (&cfg, pmx_record_lookup, &w, bad[i][0], 1)
             && strstr (pmx_errmsg (), bad[i][1])
             && pmx_encoder_device_check (bad[i][0]) < 0,
             "device %s: '%s'", bad[i][0], pmx_errmsg ());
  }

  /* Padding removed = the sequence alone; padded rows are zero.  */
  for (int g = 0; g < G; g++)
    {
      int L = lengths[g];
      CHECK (pmx_encoder_forward (e1, x + (size_t) g * T * H, 1, L, NULL, all, L, one)
             == 0, "forward alone: %s", pmx_errmsg ());
      CHECK (max_diff (one, ref + (size_t) g * T * H, (size_t) L * H) <= 2e-5,
             "sequence %d: padded and alone differ by %g", g,
             max_diff (one, ref + (size_t) g * T * H, (size_t) L * H));
      for (size_t i = (size_t) L * H; i < (size_t) T * H; i++)
        CHECK (ref[(size_t) g * T * H + i] == 0.0f, "sequence %d: padded row not zero", g);
    }

  /* A subset of positions, in any order, repeated.  */
  static const int32_t some[4] = { 9, 0, 2, 0 };
  float sub[G * 4 * H];
  CHECK (pmx_encoder_forward (e1, x, G, T, lengths, some, 4, sub) == 0, "forward: %s",
         pmx_errmsg ());
  for (int g = 0; g < G; g++)
    for (int p = 0; p < 4; p++)
      CHECK (max_diff (sub + ((size_t) g * 4 + p) * H,
                       ref + ((size_t) g * T + some[p]) * H, H) <= 2e-5,
             "sequence %d, position %d: subset differs", g, (int) some[p]);

  /* The CLS row alone (the encoder then attends straight from X, without
     K and V), and more positions than tokens (all of them position 0).  */
  enum { MANY = 2 * T + 3 };
  int32_t zeros[MANY] = { 0 };
  static float many[G * MANY * H];
  for (int np = 1; np <= MANY; np += MANY - 1)
    {
      CHECK (pmx_encoder_forward (e1, x, G, T, lengths, zeros, np, many) == 0,
             "forward: %s", pmx_errmsg ());
      for (int g = 0; g < G; g++)
        for (int p = 0; p < np; p++)
          CHECK (max_diff (many + ((size_t) g * np + p) * H, ref + (size_t) g * T * H, H)
                 <= 2e-5, "%d positions 0, sequence %d, row %d: differs by %g", np, g, p,
                 max_diff (many + ((size_t) g * np + p) * H, ref + (size_t) g * T * H, H));
    }

  /* Without lengths, every position attends to all T.  */
  CHECK (pmx_encoder_forward (e1, x, G, T, NULL, all, T, got) == 0, "forward: %s",
         pmx_errmsg ());
  CHECK (max_diff (got + (size_t) T * H, ref + (size_t) T * H, H) > 1e-3,
         "no mask gave the masked result");

  /* Bad calls.  */
  int32_t badpos = T;
  CHECK (pmx_encoder_forward (e1, x, G, T, lengths, &badpos, 1, got) < 0
         && strstr (pmx_errmsg (), "position 11"), "position out of range: '%s'",
         pmx_errmsg ());
  int32_t badlen[G] = { 1, 0, 1, 1, 1 };
  CHECK (pmx_encoder_forward (e1, x, G, T, badlen, all, 1, got) < 0
         && strstr (pmx_errmsg (), "length 0"), "length 0: '%s'", pmx_errmsg ());
  pmx_encoder_free (e1);

  /* Bad weights: a missing key, a wrong shape.  */
  pmx_record_remove (&w, "encoder.layer.1.attention.self.key.weight");
  CHECK (!pmx_encoder_new (&cfg, pmx_record_lookup, &w, NULL, 1)
         && strstr (pmx_errmsg (), "encoder.layer.1.attention.self.key.weight: missing"),
         "missing key: '%s'", pmx_errmsg ());
  pmx_record_reset (&w);
  make_weights (&w);
  pmx_tensor *t = pmx_record_get (&w, "encoder.layer.3.output.dense.weight");
  t->shape[1] = 6;
  CHECK (!pmx_encoder_new (&cfg, pmx_record_lookup, &w, NULL, 1)
         && strstr (pmx_errmsg (), "shape 48x6, expected 48x7"), "bad shape: '%s'",
         pmx_errmsg ());
  t->shape[1] = 7;
  cfg.hidden = 40;
  CHECK (!pmx_encoder_new (&cfg, pmx_record_lookup, &w, NULL, 1),
         "wrong hidden size accepted");
out:
  pmx_record_free (&w);
}

int
main (void)
{
  test_kernels ();
  test_pool ();
  test_encoder ();
  if (failures)
    fprintf (stderr, "%d checks failed\n", failures);
  return failures ? 1 : 0;
}
