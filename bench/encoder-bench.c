/* encoder-bench.c -- sequences per second of the CPU encoder on a given
   shape with random weights, and the OpenBLAS sgemm rate that bounds it.

   encoder-bench [--layers=L] [--hidden=H] [--heads=N|LIST] [--ffn=F|LIST]
                 [--seq=T] [--batch=B] [--threads=N] [--passes=N]
                 [--positions=all|cls] [--chunk=TOKENS] [--sgemm]
                 [--gemm=best|avx512|avx2|blas]

   LIST is comma-separated, one entry per layer (0 = pruned away), for
   CoFi-pruned shapes.  Prints which kernels run (the encoder's
   description, as prumux-infer --verbose), then a summary: the
   median pass in seq/s, GFLOP/s over the GEMM FLOPs of the shape (QKV,
   scores, context, output, FFN; as in PERF-ANCHORS.md), and with --sgemm
   the OpenBLAS rate on the shape's dense GEMMs over the whole batch at the
   same thread count, weighted by FLOPs (the measured sgemm roofline), and
   the FMA peak.  At one thread the roofline fraction is taken per
   CPU-second, which other processes on a shared machine hardly disturb.  */

#include <config.h>
#include "encoder.h"
#include "error.h"

#include <cblas.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#ifdef HAVE_OPENBLAS_SET_NUM_THREADS
void openblas_set_num_threads (int);
#endif

enum { MAXL = 64 };

static double
now (void)
{
  struct timespec t;
  clock_gettime (CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

/* CPU time of the whole process: on a shared machine, the work done per
   CPU-second at one thread is far steadier than the wall clock.  */
static double
cpu_now (void)
{
  struct timespec t;
  clock_gettime (CLOCK_PROCESS_CPUTIME_ID, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

static unsigned long long rng = 0x9e3779b97f4a7c15ull;

static void
fill (float *x, size_t n, float scale, float offset)
{
  for (size_t i = 0; i < n; i++)
    {
      rng ^= rng << 13;
      rng ^= rng >> 7;
      rng ^= rng << 17;
      x[i] = ((float) ((rng >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f) * scale
             + offset;
    }
}

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
      fprintf (stderr, "encoder-bench: %s\n", pmx_errmsg ());
      exit (1);
    }
  fill (t->data, (size_t) pmx_tensor_numel (t), scale, offset);
}

static int
parse_list (const char *arg, int *v, int L)
{
  int n = 0;
  for (const char *s = arg; *s && n < MAXL; n++)
    {
      char *end;
      v[n] = (int) strtol (s, &end, 10);
      s = *end == ',' ? end + 1 : end;
    }
  for (int i = n; i < L && n == 1; i++)
    v[i] = v[0];
  return n;
}

static int
cmp_double (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return (x > y) - (x < y);
}

#if defined __x86_64__ && defined __GNUC__
# include <immintrin.h>

/* The FMA peak of one core, GFLOP/s, for one vector width: CHAINS
   independent chains of FMAs (more than latency x units on any core we
   know: 4 cycles x 2 units), no memory traffic, wall clock (measured before
   OpenBLAS starts threads that spin).  Both widths are measured and the
   faster is the peak: Zen 4 runs 512-bit FMAs at the 256-bit rate, Intel
   cores with two 512-bit units at twice it, and a probe of 256-bit FMAs
   alone would report half the real peak there.  */
__attribute__ ((target ("avx2,fma"))) static double
fma_peak_avx2 (void)
{
  enum { CHAINS = 12 };
  __m256 acc[CHAINS], m = _mm256_set1_ps (0.999999f), a = _mm256_set1_ps (1e-6f);
#pragma GCC unroll 12
  for (int i = 0; i < CHAINS; i++)
    acc[i] = _mm256_set1_ps ((float) i);
  long n = 20000000;
  double c0 = now ();
  for (long k = 0; k < n; k++)
    {
#pragma GCC unroll 12
      for (int i = 0; i < CHAINS; i++)
        acc[i] = _mm256_fmadd_ps (acc[i], m, a);
    }
  double c = now () - c0;
  float sink[8];
  __m256 s = acc[0];
#pragma GCC unroll 12
  for (int i = 1; i < CHAINS; i++)
    s = _mm256_add_ps (s, acc[i]);
  _mm256_storeu_ps (sink, s);
  return sink[0] == 12345.0f ? 0 : 2.0 * 8 * CHAINS * n / c / 1e9;
}

__attribute__ ((target ("avx512f"))) static double
fma_peak_avx512 (void)
{
  enum { CHAINS = 16 };
  __m512 acc[CHAINS], m = _mm512_set1_ps (0.999999f), a = _mm512_set1_ps (1e-6f);
#pragma GCC unroll 16
  for (int i = 0; i < CHAINS; i++)
    acc[i] = _mm512_set1_ps ((float) i);
  long n = 10000000;
  double c0 = now ();
  for (long k = 0; k < n; k++)
    {
#pragma GCC unroll 16
      for (int i = 0; i < CHAINS; i++)
        acc[i] = _mm512_fmadd_ps (acc[i], m, a);
    }
  double c = now () - c0;
  __m512 s = acc[0];
#pragma GCC unroll 16
  for (int i = 1; i < CHAINS; i++)
    s = _mm512_add_ps (s, acc[i]);
  return _mm512_reduce_add_ps (s) == 12345.0f ? 0 : 2.0 * 16 * CHAINS * n / c / 1e9;
}

/* The best of three runs of each width; *WIDTH says which won.  */
static double
fma_peak (int *width)
{
  __builtin_cpu_init ();
  double best = 0;
  *width = 0;
  for (int r = 0; r < 3; r++)
    {
      if (__builtin_cpu_supports ("avx2") && __builtin_cpu_supports ("fma"))
        {
          double p = fma_peak_avx2 ();
          if (p > best)
            best = p, *width = 256;
        }
      if (__builtin_cpu_supports ("avx512f"))
        {
          double p = fma_peak_avx512 ();
          if (p > best)
            best = p, *width = 512;
        }
    }
  return best;
}
#else
static double
fma_peak (int *width)
{
  *width = 0;
  return 0;
}
#endif

/* OpenBLAS alone on C (M, N) = A (M, K) W (N, K)^T, GFLOP/s.  */
static double
sgemm_rate (int M, int N, int K, int threads)
{
#ifdef HAVE_OPENBLAS_SET_NUM_THREADS
  openblas_set_num_threads (threads);
#endif
  float *A = malloc ((size_t) M * K * 4), *W = malloc ((size_t) N * K * 4),
        *C = malloc ((size_t) M * N * 4);
  fill (A, (size_t) M * K, 1, 0);
  fill (W, (size_t) N * K, 1, 0);
  cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1, A, K, W, K, 0, C, N);
  int reps = 0;
  double t0 = now (), c0 = cpu_now (), t;
  do
    {
      cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1, A, K, W, K, 0,
                   C, N);
      reps++;
    }
  while ((t = now () - t0) < 1.0);
  double c = cpu_now () - c0;
  free (A);
  free (W);
  free (C);
  /* One thread: per CPU-second (see cpu_now); more: wall clock.  */
  return 2.0 * M * N * K * reps / (threads == 1 ? c : t) / 1e9;
}

int
main (int argc, char **argv)
{
  int L = 12, H = 768, T = 128, B = 32, threads = 2, passes = 5, chunk = 0, sgemm = 0;
  const char *device = "cpu";
  char gemm_device[64];
  int heads[MAXL], ffn[MAXL], dh = 64, cls = 0;
  const char *heads_arg = "12", *ffn_arg = "3072";
  static const struct option longopts[] = {
    { "layers", required_argument, NULL, 'l' }, { "hidden", required_argument, NULL, 'H' },
    { "heads", required_argument, NULL, 'n' }, { "ffn", required_argument, NULL, 'f' },
    { "seq", required_argument, NULL, 'T' }, { "batch", required_argument, NULL, 'b' },
    { "threads", required_argument, NULL, 't' }, { "passes", required_argument, NULL, 'p' },
    { "positions", required_argument, NULL, 'P' }, { "chunk", required_argument, NULL, 'c' },
    { "head-dim", required_argument, NULL, 'd' }, { "sgemm", no_argument, NULL, 's' },
    { "device", required_argument, NULL, 'D' }, { "gemm", required_argument, NULL, 'g' },
    { NULL, 0, NULL, 0 }
  };
  int c;
  while ((c = getopt_long (argc, argv, "", longopts, NULL)) != -1)
    switch (c)
      {
      case 'l': L = atoi (optarg); break;
      case 'H': H = atoi (optarg); break;
      case 'n': heads_arg = optarg; break;
      case 'f': ffn_arg = optarg; break;
      case 'T': T = atoi (optarg); break;
      case 'b': B = atoi (optarg); break;
      case 't': threads = atoi (optarg); break;
      case 'p': passes = atoi (optarg); break;
      case 'P': cls = !strcmp (optarg, "cls"); break;
      case 'c': chunk = atoi (optarg); break;
      case 'd': dh = atoi (optarg); break;
      case 's': sgemm = 1; break;
      case 'D': device = optarg; break;
      case 'g':                 /* --gemm=K: --device=cpu:K */
        snprintf (gemm_device, sizeof gemm_device, "cpu:%s", optarg);
        device = strcmp (optarg, "best") ? gemm_device : "cpu";
        break;
      default: return 2;
      }
  if (L < 1 || L > MAXL || parse_list (heads_arg, heads, L) < 1
      || parse_list (ffn_arg, ffn, L) < 1 || passes < 1 || passes > 1000)
    {
      fprintf (stderr, "encoder-bench: bad arguments\n");
      return 2;
    }

  /* Random weights, BERT-like scale.  */
  pmx_record w;
  pmx_record_init (&w);
  double flops = 0;               /* GEMM FLOPs per sequence */
  for (int l = 0; l < L; l++)
    {
      int A = heads[l] * dh, F = ffn[l];
      if (A)
        {
          static const char *const qkv[] = { "query", "key", "value" };
          for (int i = 0; i < 3; i++)
            {
              char n[64];
              snprintf (n, sizeof n, "attention.self.%s.weight", qkv[i]);
              add (&w, l, n, A, H, 0.05f, 0);
              snprintf (n, sizeof n, "attention.self.%s.bias", qkv[i]);
              add (&w, l, n, A, -1, 0.05f, 0);
            }
          add (&w, l, "attention.output.dense.weight", H, A, 0.05f, 0);
          add (&w, l, "attention.output.dense.bias", H, -1, 0.05f, 0);
          add (&w, l, "attention.output.LayerNorm.weight", H, -1, 0.1f, 1);
          add (&w, l, "attention.output.LayerNorm.bias", H, -1, 0.1f, 0);
          flops += 2.0 * T * H * 3 * A + 2.0 * 2 * T * T * A + 2.0 * T * A * H;
        }
      if (F)
        {
          add (&w, l, "intermediate.dense.weight", F, H, 0.05f, 0);
          add (&w, l, "intermediate.dense.bias", F, -1, 0.05f, 0);
          add (&w, l, "output.dense.weight", H, F, 0.05f, 0);
          add (&w, l, "output.dense.bias", H, -1, 0.05f, 0);
          add (&w, l, "output.LayerNorm.weight", H, -1, 0.1f, 1);
          add (&w, l, "output.LayerNorm.bias", H, -1, 0.1f, 0);
          flops += 2.0 * 2 * T * H * F;
        }
    }

  double roof = 0, peak = 0;
  if (sgemm)
    {
      /* The shape's dense GEMMs with all the batch's tokens as rows (M up to
         4096, where OpenBLAS is at its best), OpenBLAS's own threads; the
         roofline weighs them by their FLOPs (Q, K, V and output are H x H).  */
      int width;
      peak = fma_peak (&width) * threads;
      int F = ffn[0] ? ffn[0] : 4 * H, M = B * T < 4096 ? B * T : 4096;
      double r1 = sgemm_rate (M, H, H, threads), r2 = sgemm_rate (M, F, H, threads),
             r3 = sgemm_rate (M, H, F, threads);
      roof = (4.0 * H * H + 2.0 * H * F) / (4.0 * H * H / r1 + (double) H * F / r2
                                            + (double) H * F / r3);
      printf ("sgemm %d threads, M %d: %dx%d %.1f, %d->%d %.1f, %d->%d %.1f GFLOP/s; "
              "roofline %.1f; FMA peak %.1f (%d x one core, %d-bit FMAs)\n", threads, M, H,
              H, r1, H, F, r2, F, H, r3, roof, peak, threads, width);
    }

  pmx_model_config cfg;
  memset (&cfg, 0, sizeof cfg);
  cfg.hidden = H;
  cfg.layers = L;
  cfg.head_dim = dh;
  cfg.ln_eps = 1e-12;
  pmx_encoder *e = pmx_encoder_new (&cfg, pmx_record_lookup, &w, device, threads);
  if (!e)
    {
      fprintf (stderr, "encoder-bench: %s\n", pmx_errmsg ());
      return 1;
    }
  if (chunk)
    pmx_encoder_set_chunk (e, chunk);
  printf ("kernels: %s\n", pmx_encoder_describe (e));
  int P = cls ? 1 : T;
  float *x = malloc ((size_t) B * T * H * 4), *out = malloc ((size_t) B * P * H * 4);
  int32_t *lengths = malloc ((size_t) B * 4), *pos = malloc ((size_t) T * 4);
  fill (x, (size_t) B * T * H, 1, 0);
  for (int b = 0; b < B; b++)
    lengths[b] = T;
  for (int t = 0; t < T; t++)
    pos[t] = t;

  double times[1000], cpu[1000];
  if (pmx_encoder_forward (e, x, B, T, lengths, pos, P, out) < 0)   /* warm-up */
    {
      fprintf (stderr, "encoder-bench: %s\n", pmx_errmsg ());
      return 1;
    }
  for (int i = 0; i < passes; i++)
    {
      double t0 = now (), c0 = cpu_now ();
      pmx_encoder_forward (e, x, B, T, lengths, pos, P, out);
      times[i] = now () - t0;
      cpu[i] = cpu_now () - c0;
    }
  qsort (times, (size_t) passes, sizeof times[0], cmp_double);
  qsort (cpu, (size_t) passes, sizeof cpu[0], cmp_double);
  double med = times[passes / 2];
  double sps = B / med, gf = flops * B / med / 1e9;
  printf ("encoder L %d H %d heads %s ffn %s T %d batch %d threads %d positions %s "
          "device %s: %.2f seq/s (passes %.2f-%.2f), %.1f GFLOP/s of %.3f GFLOP/seq",
          L, H, heads_arg, ffn_arg, T, B, threads, cls ? "cls" : "all",
          pmx_encoder_device (e), sps,
          B / times[passes - 1], B / times[0], gf, flops / 1e9);
  /* At one thread both rates are per CPU-second (see cpu_now).  */
  double gf_cpu = flops * B / cpu[passes / 2] / 1e9;
  if (roof > 0)
    printf (", %.0f%% of sgemm", 100 * (threads == 1 ? gf_cpu : gf) / roof);
  if (peak > 0)
    printf (", %.0f%% of FMA peak", 100 * (threads == 1 ? gf_cpu : gf) / peak);
  printf ("; %.2f seq per CPU-s (%.1f GFLOP per CPU-s)", B / cpu[passes / 2], gf_cpu);
  /* Peak resident memory: the random weights built here, the encoder's
     packed copy of them and its workspace.  */
  struct rusage ru;
  if (getrusage (RUSAGE_SELF, &ru) == 0)
    printf ("; peak RSS %.0f MiB", ru.ru_maxrss / 1024.0);
  putchar ('\n');
  pmx_encoder_free (e);
  pmx_record_free (&w);
  free (x);
  free (out);
  free (lengths);
  free (pos);
  return 0;
}
