/* cuda-encoder.cu -- the CUDA backend (backend.h): the BERT encoder layers
   on an NVIDIA GPU, cuBLAS for every matrix product and a few kernels of
   our own for the rest.  Devices "cuda:K" (GPU K, fp32 with TF32 off:
   parity with the CPU) and "cuda:K:tf32" (cuBLAS may round the GEMMs'
   inputs to TF32: faster on Ampere and later, less exact).

   The same layers as the CPU backend, from the same description
   (pmx_layer_weights, layers.c): post-LN BERT, exact erf GELU, an
   attention mask when lengths are given, identity sublayers where a
   pruned layer has no attention or no FFN, per-layer head counts and FFN
   widths, and from the last layer with attention on only the requested
   rows.

   Data flow of one chunk of NSEQ sequences (M real tokens, the longest
   LMAX, R requested rows), all in device memory:

     X   (M, H)        hidden states of the packed tokens (no padding)
     QKV (M, 3A)       X [Wq; Wk; Wv]^T, biases not yet added
     Qh, Kh, Vh        (NSEQ * heads, LMAX, dh) each: one head of one
                       sequence per batch entry, padded with zero rows,
                       the biases added (to_heads)
     S   (NSEQ * heads, LQ, LMAX)   scores, then the masked softmax
     Ch  (NSEQ * heads, LQ, dh)     S Vh, back to CTX (M, A) (from_heads)
     T1  (M, F)        FFN intermediate
     XS  (R, H), QS (R, A)          the requested rows, their queries

   Per layer: QKV = X Wqkv^T; to_heads; S = Qh Kh^T / sqrt (dh) (cuBLAS
   strided-batched over (sequence, head)); masked softmax; Ch = S Vh
   (strided-batched); from_heads; X = LN (X + CTX Wo^T + bo) (the GEMM
   adds into X with beta = 1, one kernel adds the bias and normalises);
   T1 = gelu (X W1^T + b1); X = LN (X + T1 W2^T + b2).

   Weights are uploaded once, at encoder_new, into one device allocation
   (straight from the lookup's storage: an mmapped archive is read once).
   Each forward packs its chunks into pinned host buffers, copies them in,
   runs every layer on one stream and copies the requested rows out; the
   host packs chunk c + 1 while the GPU runs chunk c (two sets of pinned
   buffers).  Workspace only grows.

   Errors (no driver, a driver older than the runtime, no GPU, out of
   device memory, a failed launch) become pmx_error messages; nothing here
   prints or exits.  */

extern "C" {
#include <config.h>
#include "backend.h"
#include "error.h"
}

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <dlfcn.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- cuBLAS, loaded when first needed -------------------------------------- */

/* libcublas pulls in libcublasLt, half a gigabyte: linked into libprumux,
   it cost every prumux program about half a second at start-up (0.46 s
   per process, measured on the development machine), GPU or not.  So it
   is opened with dlopen when a cuda device is first opened, and only the
   runtime (libcudart, small) is linked.  CUDA_LIBDIR is the toolkit's
   library directory configure found.  */
static struct
{
  decltype (&cublasCreate_v2) create;
  decltype (&cublasDestroy_v2) destroy;
  decltype (&cublasSetMathMode) set_math_mode;
  decltype (&cublasSetStream_v2) set_stream;
  decltype (&cublasSgemm_v2) sgemm;
  decltype (&cublasSgemmStridedBatched) sgemm_batched;
  decltype (&cublasGetStatusString) status_string;
} cb;
static pthread_once_t cb_once = PTHREAD_ONCE_INIT;
static char cb_error[512];      /* why cuBLAS could not be loaded; "" if it was */

#define STR_(x) #x
#define STR(x) STR_ (x)
#define CUBLAS_SONAME "libcublas.so." STR (CUBLAS_VER_MAJOR)

static void
cb_load (void)
{
  void *h = NULL;
#ifdef CUDA_LIBDIR
  h = dlopen (CUDA_LIBDIR "/" CUBLAS_SONAME, RTLD_NOW | RTLD_LOCAL);
#endif
  if (!h && !(h = dlopen (CUBLAS_SONAME, RTLD_NOW | RTLD_LOCAL)))
    {
      snprintf (cb_error, sizeof cb_error, "cannot load cuBLAS: %s", dlerror ());
      return;
    }
  /* The handle stays open for the life of the process.  */
  struct { void **fn; const char *name; } syms[] = {
    { (void **) &cb.create, "cublasCreate_v2" },
    { (void **) &cb.destroy, "cublasDestroy_v2" },
    { (void **) &cb.set_math_mode, "cublasSetMathMode" },
    { (void **) &cb.set_stream, "cublasSetStream_v2" },
    { (void **) &cb.sgemm, "cublasSgemm_v2" },
    { (void **) &cb.sgemm_batched, "cublasSgemmStridedBatched" },
    { (void **) &cb.status_string, "cublasGetStatusString" },
  };
  for (size_t i = 0; i < sizeof syms / sizeof syms[0]; i++)
    if (!(*syms[i].fn = dlsym (h, syms[i].name)))
      {
        snprintf (cb_error, sizeof cb_error, "cannot load cuBLAS: %s has no %s",
                  CUBLAS_SONAME, syms[i].name);
        return;
      }
}

/* 0 once cuBLAS is loaded (cb), else -1 with the reason.  */
static int
cublas_load (void)
{
  pthread_once (&cb_once, cb_load);
  return cb_error[0] ? pmx_error ("%s", cb_error) : 0;
}

/* ---- Errors --------------------------------------------------------------- */

/* Record CUDA error ERR of WHAT; -1.  The error is cleared (if it is not
   sticky) so the next call starts clean.  */
static int
cuda_fail (cudaError_t err, const char *what)
{
  cudaGetLastError ();
  if (err == cudaErrorMemoryAllocation)
    return pmx_error ("%s: out of GPU memory (%s)", what, cudaGetErrorString (err));
  return pmx_error ("%s: %s", what, cudaGetErrorString (err));
}

static int
blas_fail (cublasStatus_t st, const char *what)
{
  return pmx_error ("%s: cuBLAS: %s", what, cb.status_string (st));
}

#define CU(call, what)                                          \
  do {                                                          \
    cudaError_t err_ = (call);                                  \
    if (err_ != cudaSuccess)                                    \
      return cuda_fail (err_, what);                            \
  } while (0)

#define BLAS(call, what)                                        \
  do {                                                          \
    cublasStatus_t st_ = (call);                                \
    if (st_ != CUBLAS_STATUS_SUCCESS)                           \
      return blas_fail (st_, what);                             \
  } while (0)

/* After a kernel launch: a bad configuration shows here, a fault later.  */
#define LAUNCHED(what) CU (cudaGetLastError (), what)

/* ---- Kernels -------------------------------------------------------------- */

enum { THREADS = 256 };         /* per block, a multiple of 32 */

/* Blocks for N elements, THREADS each; kernels loop over the rest.  */
static unsigned
blocks_for (size_t n)
{
  size_t b = (n + THREADS - 1) / THREADS;
  return (unsigned) (b < 65535 * 16 ? (b ? b : 1) : 65535 * 16);
}

/* The sum (MAX: the maximum) of V over the warp, in every lane.  */
__device__ static float
warp_reduce (float v, bool max)
{
  for (int o = 16; o > 0; o >>= 1)
    {
      float w = __shfl_xor_sync (0xffffffffu, v, o);
      v = max ? fmaxf (v, w) : v + w;
    }
  return v;
}

/* The row kernels (softmax, LayerNorm) give each row one warp: rows are
   short (the keys of one sequence, one hidden state), and a block a row
   spent most of its time in __syncthreads.  */
enum { WARPS = THREADS / 32 };

/* Blocks for ROWS rows, a warp each.  */
static unsigned
blocks_for_rows (int rows)
{
  size_t b = ((size_t) (rows > 0 ? rows : 1) + WARPS - 1) / WARPS;
  return (unsigned) (b < 65535 * 16 ? b : 65535 * 16);
}

/* OUT (nseq * heads, LQ, dh) from SRC rows (ld floats apart): entry
   (s, h, q, d) = SRC[ROWS[s, q], h dh + d] + BIAS[h dh + d], or 0 where
   ROWS[s, q] < 0 (padding).  BIAS may be NULL.  */
__global__ static void
k_to_heads (const float *src, int ld, const float *bias, const int *rows, int nseq,
            int lq, int heads, int dh, float *out)
{
  size_t n = (size_t) nseq * heads * lq * dh;
  for (size_t i = blockIdx.x * (size_t) blockDim.x + threadIdx.x; i < n;
       i += (size_t) gridDim.x * blockDim.x)
    {
      size_t t = i / dh;
      int d = (int) (i % dh), q = (int) (t % lq);
      t /= lq;
      int h = (int) (t % heads), s = (int) (t / heads);
      int row = rows[(size_t) s * lq + q];
      int col = h * dh + d;
      out[i] = row < 0 ? 0.0f
        : src[(size_t) row * ld + col] + (bias ? bias[col] : 0.0f);
    }
}

/* The inverse for the context: DST[ROWS[s, q], h dh + d] (ld floats apart)
   = SRC (s, h, q, d) where ROWS[s, q] >= 0.  */
__global__ static void
k_from_heads (const float *src, const int *rows, int nseq, int lq, int heads, int dh,
              float *dst, int ld)
{
  size_t n = (size_t) nseq * heads * lq * dh;
  for (size_t i = blockIdx.x * (size_t) blockDim.x + threadIdx.x; i < n;
       i += (size_t) gridDim.x * blockDim.x)
    {
      size_t t = i / dh;
      int d = (int) (i % dh), q = (int) (t % lq);
      t /= lq;
      int h = (int) (t % heads), s = (int) (t / heads);
      int row = rows[(size_t) s * lq + q];
      if (row >= 0)
        dst[(size_t) row * ld + h * dh + d] = src[i];
    }
}

/* Softmax of each row of X (rows, n) over its first LENS[row / PER_SEQ]
   entries (all N when LENS is NULL); the rest (masked keys) become 0.
   One warp per row; a row's lanes stay together (the loop bound is the
   warp's).  */
__global__ static void
k_masked_softmax (float *x, int rows, int n, const int *lens, int per_seq)
{
  int lane = threadIdx.x % 32;
  for (int r = blockIdx.x * WARPS + threadIdx.x / 32; r < rows; r += gridDim.x * WARPS)
    {
      float *v = x + (size_t) r * n;
      int valid = lens ? lens[r / per_seq] : n;
      float m = -INFINITY;
      for (int j = lane; j < valid; j += 32)
        m = fmaxf (m, v[j]);
      m = warp_reduce (m, true);
      float sum = 0.0f;
      for (int j = lane; j < valid; j += 32)
        {
          float e = expf (v[j] - m);
          v[j] = e;
          sum += e;
        }
      float inv = 1.0f / warp_reduce (sum, false);
      for (int j = lane; j < n; j += 32)
        v[j] = j < valid ? v[j] * inv : 0.0f;
    }
}

/* X (rows, n) = gelu (X + BIAS), the exact erf form.  */
__global__ static void
k_bias_gelu (float *x, const float *bias, size_t rows, int n)
{
  size_t total = rows * n;
  for (size_t i = blockIdx.x * (size_t) blockDim.x + threadIdx.x; i < total;
       i += (size_t) gridDim.x * blockDim.x)
    {
      float v = x[i] + bias[i % n];
      x[i] = 0.5f * v * (1.0f + erff (v * 0.70710678118654752f));
    }
}

/* X (rows, n) += BIAS.  */
__global__ static void
k_add_bias (float *x, const float *bias, size_t rows, int n)
{
  size_t total = rows * n;
  for (size_t i = blockIdx.x * (size_t) blockDim.x + threadIdx.x; i < total;
       i += (size_t) gridDim.x * blockDim.x)
    x[i] += bias[i % n];
}

/* X[r] = LayerNorm (X[r] + R[r] + BIAS) * GAMMA + BETA over N elements,
   BERT's post-LN residual (R may be NULL: the GEMM has added it into X).
   Mean, then the variance of the centred values (as the CPU's kernel).
   One warp per row; each lane reads back only what it wrote.  */
__global__ static void
k_residual_layernorm (float *x, const float *r, const float *bias, const float *gamma,
                      const float *beta, int rows, int n, float eps)
{
  int lane = threadIdx.x % 32;
  for (int row = blockIdx.x * WARPS + threadIdx.x / 32; row < rows;
       row += gridDim.x * WARPS)
    {
      float *v = x + (size_t) row * n;
      const float *rr = r ? r + (size_t) row * n : NULL;
      float sum = 0.0f;
      for (int j = lane; j < n; j += 32)
        {
          float t = v[j] + (rr ? rr[j] : 0.0f) + (bias ? bias[j] : 0.0f);
          v[j] = t;
          sum += t;
        }
      float mean = warp_reduce (sum, false) / (float) n;
      float ss = 0.0f;
      for (int j = lane; j < n; j += 32)
        ss += (v[j] - mean) * (v[j] - mean);
      float inv = 1.0f / sqrtf (warp_reduce (ss, false) / (float) n + eps);
      for (int j = lane; j < n; j += 32)
        v[j] = (v[j] - mean) * inv * gamma[j] + beta[j];
    }
}

/* DST (rows, n) = SRC[IDX[i]] row by row, or 0 where IDX[i] < 0.  */
__global__ static void
k_rows (float *dst, const float *src, const int *idx, size_t rows, int n)
{
  size_t total = rows * n;
  for (size_t i = blockIdx.x * (size_t) blockDim.x + threadIdx.x; i < total;
       i += (size_t) gridDim.x * blockDim.x)
    {
      int s = idx[i / n];
      dst[i] = s < 0 ? 0.0f : src[(size_t) s * n + i % n];
    }
}

/* ---- The operations, on device pointers ----------------------------------- */

/* C (M, N) = A (M, K) W (N, K)^T + BETA C, rows LDA and LDC apart; W's rows
   are K apart.  cuBLAS is column-major: this is C^T = W A^T.  */
static int
gemm (cublasHandle_t blas, const float *A, int lda, const float *W, float *C, int ldc,
      int M, int N, int K, float beta)
{
  if (M <= 0 || N <= 0)
    return 0;
  const float one = 1.0f;
  BLAS (cb.sgemm (blas, CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, &one, W, K, A, lda, &beta,
                  C, ldc), "linear layer");
  return 0;
}

static int
bias_gelu (cudaStream_t st, float *x, const float *bias, size_t rows, int n)
{
  k_bias_gelu<<<blocks_for (rows * n), THREADS, 0, st>>> (x, bias, rows, n);
  LAUNCHED ("GELU kernel");
  return 0;
}

static int
layernorm (cudaStream_t st, float *x, const float *r, const float *bias,
           const float *gamma, const float *beta, int rows, int n, float eps)
{
  if (rows <= 0)
    return 0;
  k_residual_layernorm<<<blocks_for_rows (rows), THREADS, 0, st>>> (x, r, bias, gamma,
                                                                     beta, rows, n, eps);
  LAUNCHED ("LayerNorm kernel");
  return 0;
}

static int
softmax (cudaStream_t st, float *x, int rows, int n, const int *lens, int per_seq)
{
  k_masked_softmax<<<blocks_for_rows (rows), THREADS, 0, st>>> (x, rows, n, lens,
                                                                 per_seq);
  LAUNCHED ("softmax kernel");
  return 0;
}

/* Attention's buffers: the heads of Q (NSEQ * heads, LQ, dh), of K and V
   (NSEQ * heads, LK, dh), the scores (NSEQ * heads, LQ, LK) and the
   context heads (as Q).  */
typedef struct heads_ws
{
  float *Qh, *Kh, *Vh, *S, *Ch;
} heads_ws;

/* Attention of NSEQ sequences with HEADS heads of DH: queries from rows
   QROWS (NSEQ, LQ) of Q (LDQ apart, + BQ), keys and values from rows
   KROWS (NSEQ, LK) of K and V (LDKV apart, + BK, BV; the biases may be
   NULL), sequence s attending to its first LENS[s] keys.  The context of
   each query row goes to row QROWS[s, q] of C (LDC apart), head h at
   columns h dh.  */
static int
attend (cudaStream_t st, cublasHandle_t blas, const heads_ws *w, int nseq, int heads,
        int dh, float scale, const float *Q, int ldq, const float *bq,
        const int *qrows, int lq, const float *K, const float *V, int ldkv,
        const float *bk, const float *bv, const int *krows, int lk, const int *lens,
        float *C, int ldc)
{
  int batch = nseq * heads;
  size_t nq = (size_t) batch * lq * dh, nk = (size_t) batch * lk * dh;
  k_to_heads<<<blocks_for (nq), THREADS, 0, st>>> (Q, ldq, bq, qrows, nseq, lq, heads,
                                                   dh, w->Qh);
  k_to_heads<<<blocks_for (nk), THREADS, 0, st>>> (K, ldkv, bk, krows, nseq, lk, heads,
                                                   dh, w->Kh);
  k_to_heads<<<blocks_for (nk), THREADS, 0, st>>> (V, ldkv, bv, krows, nseq, lk, heads,
                                                   dh, w->Vh);
  LAUNCHED ("attention heads kernel");
  const float zero = 0.0f, one = 1.0f;
  /* S (lq, lk) = scale Qh Kh^T per batch entry.  */
  BLAS (cb.sgemm_batched (blas, CUBLAS_OP_T, CUBLAS_OP_N, lk, lq, dh, &scale, w->Kh,
                          dh, (long long) lk * dh, w->Qh, dh, (long long) lq * dh,
                          &zero, w->S, lk, (long long) lq * lk, batch),
        "attention scores");
  if (softmax (st, w->S, batch * lq, lk, lens, heads * lq) < 0)
    return -1;
  /* Ch (lq, dh) = S Vh.  */
  BLAS (cb.sgemm_batched (blas, CUBLAS_OP_N, CUBLAS_OP_N, dh, lq, lk, &one, w->Vh, dh,
                          (long long) lk * dh, w->S, lk, (long long) lq * lk, &zero,
                          w->Ch, dh, (long long) lq * dh, batch),
        "attention context");
  k_from_heads<<<blocks_for (nq), THREADS, 0, st>>> (w->Ch, qrows, nseq, lq, heads, dh,
                                                     C, ldc);
  LAUNCHED ("attention context kernel");
  return 0;
}

/* ---- Devices -------------------------------------------------------------- */

typedef struct cuda_device
{
  int index;
  int tf32;
  char name[32];                /* "cuda:0", "cuda:0:tf32" */
} cuda_device;

enum { MAX_GPUS = 64 };
/* The handles: one per (GPU, TF32), filled once.  */
static cuda_device devices[MAX_GPUS][2];
static pthread_once_t devices_once = PTHREAD_ONCE_INIT;

static void
devices_init (void)
{
  for (int k = 0; k < MAX_GPUS; k++)
    for (int t = 0; t < 2; t++)
      {
        devices[k][t].index = k;
        devices[k][t].tf32 = t;
        snprintf (devices[k][t].name, sizeof devices[k][t].name, "cuda:%d%s", k,
                  t ? ":tf32" : "");
      }
}

/* 0 if GPU INDEX can be used, else -1 with the reason.  */
static int
check_gpu (int index)
{
  int count = 0;
  cudaError_t err = cudaGetDeviceCount (&count);
  if (err != cudaSuccess)
    {
      int drv = 0, rt = 0;
      cudaDriverGetVersion (&drv);
      cudaRuntimeGetVersion (&rt);
      cudaGetLastError ();
      if (drv == 0)
        return pmx_error ("no usable CUDA GPU: no NVIDIA driver found (%s)",
                          cudaGetErrorString (err));
      if (err == cudaErrorInsufficientDriver)
        return pmx_error ("no usable CUDA GPU: the NVIDIA driver (CUDA %d.%d) is older "
                          "than this prumux's CUDA runtime (%d.%d)", drv / 1000,
                          drv % 1000 / 10, rt / 1000, rt % 1000 / 10);
      return pmx_error ("no usable CUDA GPU: %s", cudaGetErrorString (err));
    }
  if (count == 0)
    return pmx_error ("no usable CUDA GPU: the driver sees none");
  if (index >= count)
    return pmx_error ("no CUDA GPU %d: this machine has %d (cuda:0..cuda:%d)", index,
                      count, count - 1);
  return 0;
}

/* VARIANT: "K" or "K:tf32" (NULL: "0").  */
static const void *
cuda_device_open (const char *variant)
{
  const char *v = variant ? variant : "0";
  char *end;
  long k = strtol (v, &end, 10);
  int tf32 = 0;
  if (end == v || *v < '0' || *v > '9' || k >= MAX_GPUS)
    end = NULL;
  else if (!strcmp (end, ":tf32"))
    tf32 = 1;
  else if (*end)
    end = NULL;
  if (!end)
    {
      pmx_error ("unknown CUDA device '%s' (K or K:tf32, K the GPU's index)", v);
      return NULL;
    }
  if (cublas_load () < 0 || check_gpu ((int) k) < 0)
    return NULL;
  pthread_once (&devices_once, devices_init);
  return &devices[k][tf32];
}

static const char *
cuda_device_name (const void *dev)
{
  return ((const cuda_device *) dev)->name;
}

/* ---- The encoder ------------------------------------------------------------ */

typedef struct dlayer
{
  int A, heads, F;
  float *wqkv, *bqkv;           /* (3A, H), (3A): [Wq; Wk; Wv], [bq; bk; bv] */
  float *wo, *bo, *ln1_g, *ln1_b;
  float *w1, *b1, *w2, *b2, *ln2_g, *ln2_b;
} dlayer;

/* Buffers of one forward's workspace, in the order they are laid out.  */
enum { B_X, B_QKV, B_CTX, B_T1, B_XS, B_QS, B_QH, B_KH, B_VH, B_S, B_CH, B_OUT, NBUF };

/* The host side of one chunk, double-buffered (pinned).  */
typedef struct stage
{
  float *in;                    /* (M, H) packed tokens */
  float *out;                   /* (nseq, P, H) */
  int *ints;                    /* the chunk's plan, see plan_chunk */
  cudaEvent_t done;
  int g0, nseq, pending;
} stage;

typedef struct cuda_encoder
{
  const cuda_device *dev;
  int H, L, dh;
  float eps, scale;
  int last_att, Amax, Fmax;
  int chunk;                    /* tokens per chunk */
  dlayer *layers;
  float *weights;               /* device, all layers */
  cudaStream_t stream;
  cublasHandle_t blas;

  float *ws;                    /* device workspace */
  size_t ws_floats;
  float *buf[NBUF];
  int *dints;                   /* device copy of a chunk's plan */
  size_t dints_count;
  stage stages[2];
  size_t in_floats, out_floats, ints_count;     /* of each stage */
  char desc[512];
} cuda_encoder;

static void cuda_free (void *enc);

static size_t
round64 (size_t floats)
{
  return (floats + 63) / 64 * 64;
}

/* Upload layer W's weights into D, carving them from *P.  */
static int
upload_layer (dlayer *d, const pmx_layer_weights *w, int H, float **p)
{
  struct part { float **dst; const float *src; size_t n; size_t at; };
  size_t A = (size_t) w->A, F = (size_t) w->F, h = (size_t) H;
  part parts[] = {
    { &d->wqkv, w->wq, A * h, 0 }, { NULL, w->wk, A * h, A * h },
    { NULL, w->wv, A * h, 2 * A * h }, { &d->bqkv, w->bq, A, 0 }, { NULL, w->bk, A, A },
    { NULL, w->bv, A, 2 * A }, { &d->wo, w->wo, h * A, 0 }, { &d->bo, w->bo, h, 0 },
    { &d->ln1_g, w->ln1_g, h, 0 }, { &d->ln1_b, w->ln1_b, h, 0 },
    { &d->w1, w->w1, F * h, 0 }, { &d->b1, w->b1, F, 0 }, { &d->w2, w->w2, h * F, 0 },
    { &d->b2, w->b2, h, 0 }, { &d->ln2_g, w->ln2_g, h, 0 }, { &d->ln2_b, w->ln2_b, h, 0 },
  };
  d->A = w->A;
  d->heads = w->heads;
  d->F = w->F;
  float *base = NULL;
  for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
    {
      if (!parts[i].src)
        continue;               /* an identity sublayer */
      if (parts[i].dst)
        {
          /* Q, K and V (weights, then biases) share one array.  */
          size_t n = parts[i].dst == &d->wqkv ? 3 * A * h
            : parts[i].dst == &d->bqkv ? 3 * A : parts[i].n;
          base = *parts[i].dst = *p;
          *p += round64 (n);
        }
      CU (cudaMemcpy (base + parts[i].at, parts[i].src, parts[i].n * sizeof (float),
                      cudaMemcpyHostToDevice), "uploading the weights");
    }
  return 0;
}

/* Device floats of layer W's weights, as upload_layer lays them out.  */
static size_t
layer_floats (const pmx_layer_weights *w, int H)
{
  size_t A = (size_t) w->A, F = (size_t) w->F, h = (size_t) H, n = 0;
  if (A)
    n += round64 (3 * A * h) + round64 (3 * A) + round64 (h * A) + 3 * round64 (h);
  if (F)
    n += round64 (F * h) + round64 (F) + round64 (h * F) + 3 * round64 (h);
  return n;
}

static void *
cuda_new (const void *devp, const pmx_model_config *cfg, pmx_tensor_lookup get,
          const void *ctx, int threads)
{
  (void) threads;               /* the GPU's threads are the GPU's business */
  const cuda_device *dev = (const cuda_device *) devp;
  cuda_encoder *e = (cuda_encoder *) calloc (1, sizeof *e);
  pmx_layer_weights *w = (pmx_layer_weights *) calloc ((size_t) cfg->layers + 1,
                                                       sizeof *w);
  if (!e || !w || !(e->layers = (dlayer *) calloc ((size_t) cfg->layers + 1,
                                                   sizeof *e->layers)))
    {
      free (e);
      free (w);
      pmx_error ("out of memory");
      return NULL;
    }
  e->dev = dev;
  e->H = cfg->hidden;
  e->L = cfg->layers;
  e->dh = cfg->head_dim;
  e->eps = (float) cfg->ln_eps;
  e->scale = 1.0f / sqrtf ((float) cfg->head_dim);
  /* Chunks of 32 sequences of 128 tokens: the host packs chunk c + 1 and
     unpacks chunk c - 1 while the GPU runs chunk c.  On an H200 (BERT-base,
     128 sequences a forward, all positions) 4096 tokens ran 2 % (fp32) to
     31 % (TF32) faster than one chunk of 16384, which left that host work
     in series with the GPU's; the workspace is a quarter.  */
  e->chunk = 4096;
  e->last_att = -1;
  size_t floats = 0;
  for (int l = 0; l < e->L; l++)
    {
      if (pmx_layer_weights_load (&w[l], get, ctx, l, e->H, e->dh) < 0)
        goto fail;
      if (w[l].A)
        e->last_att = l;
      e->Amax = w[l].A > e->Amax ? w[l].A : e->Amax;
      e->Fmax = w[l].F > e->Fmax ? w[l].F : e->Fmax;
      floats += layer_floats (&w[l], e->H);
    }
  {
    cudaError_t err = cudaSetDevice (dev->index);
    if (err != cudaSuccess)
      {
        cuda_fail (err, dev->name);
        goto fail;
      }
    if ((err = cudaStreamCreateWithFlags (&e->stream, cudaStreamNonBlocking))
        != cudaSuccess)
      {
        cuda_fail (err, dev->name);
        goto fail;
      }
    cublasStatus_t st = cb.create (&e->blas);
    if (st != CUBLAS_STATUS_SUCCESS)
      {
        e->blas = NULL;
        blas_fail (st, dev->name);
        goto fail;
      }
    /* fp32 by default: cuBLAS's default math does not use TF32 for
       SGEMM (NVIDIA_TF32_OVERRIDE can only turn TF32 off).  */
    if ((st = cb.set_math_mode (e->blas, dev->tf32 ? CUBLAS_TF32_TENSOR_OP_MATH
                                : CUBLAS_DEFAULT_MATH)) != CUBLAS_STATUS_SUCCESS
        || (st = cb.set_stream (e->blas, e->stream)) != CUBLAS_STATUS_SUCCESS)
      {
        blas_fail (st, dev->name);
        goto fail;
      }
    if (floats
        && (err = cudaMalloc ((void **) &e->weights, floats * sizeof (float)))
        != cudaSuccess)
      {
        e->weights = NULL;
        char what[96];
        snprintf (what, sizeof what, "%s: %zu MiB of weights", dev->name,
                  floats * sizeof (float) >> 20);
        cuda_fail (err, what);
        goto fail;
      }
    float *p = e->weights;
    for (int l = 0; l < e->L; l++)
      if (upload_layer (&e->layers[l], &w[l], e->H, &p) < 0)
        {
          pmx_error_prefix ("%s: layer %d", dev->name, l);
          goto fail;
        }
    cudaDeviceProp prop;
    if ((err = cudaGetDeviceProperties (&prop, dev->index)) != cudaSuccess)
      {
        cuda_fail (err, dev->name);
        goto fail;
      }
    snprintf (e->desc, sizeof e->desc, "%s: %s (sm_%d%d, %zu MiB), cuBLAS %s GEMMs, "
              "%zu MiB of weights on the GPU", dev->name, prop.name, prop.major,
              prop.minor, prop.totalGlobalMem >> 20,
              dev->tf32 ? "TF32" : "fp32 (TF32 off)", floats * sizeof (float) >> 20);
  }
  free (w);
  return e;

fail:
  free (w);
  cuda_free (e);
  return NULL;
}

static void
cuda_free (void *enc)
{
  cuda_encoder *e = (cuda_encoder *) enc;
  if (!e)
    return;
  cudaSetDevice (e->dev->index);
  if (e->stream)
    cudaStreamSynchronize (e->stream);
  for (int i = 0; i < 2; i++)
    {
      cudaFreeHost (e->stages[i].in);
      cudaFreeHost (e->stages[i].out);
      cudaFreeHost (e->stages[i].ints);
      if (e->stages[i].done)
        cudaEventDestroy (e->stages[i].done);
    }
  cudaFree (e->ws);
  cudaFree (e->dints);
  cudaFree (e->weights);
  if (e->blas)
    cb.destroy (e->blas);
  if (e->stream)
    cudaStreamDestroy (e->stream);
  cudaGetLastError ();
  free (e->layers);
  free (e);
}

static void
cuda_set_chunk (void *enc, int tokens)
{
  cuda_encoder *e = (cuda_encoder *) enc;
  e->chunk = tokens > 0 ? tokens : 1;
}

static const char *
cuda_describe (const void *enc)
{
  return ((const cuda_encoder *) enc)->desc;
}

/* ---- Forward -------------------------------------------------------------- */

/* The shape of one chunk: sequences G0..G1-1.  */
typedef struct chunk
{
  int g0, nseq, M, lmax, R;
} chunk;

/* Ints of a chunk's plan: lens (nseq), rows (nseq, lmax), qmap (nseq, P),
   gidx (R).  */
static size_t
plan_ints (const chunk *c, int P)
{
  return (size_t) c->nseq * (1 + c->lmax + P) + c->R;
}

/* Fill C's plan into INTS: LENS the keys of each sequence, ROWS the packed
   row of each (sequence, position) or -1 (padding), QMAP the row of XS of
   each (sequence, requested position) or -1, GIDX the packed row of each
   row of XS.  */
static void
plan_chunk (const chunk *c, int T, const int32_t *lengths, const int32_t *positions,
            int P, int *ints)
{
  int *lens = ints, *rows = lens + c->nseq, *qmap = rows + (size_t) c->nseq * c->lmax;
  int *gidx = qmap + (size_t) c->nseq * P;
  int off = 0, r = 0;
  for (int s = 0; s < c->nseq; s++)
    {
      int len = lengths ? lengths[c->g0 + s] : T;
      lens[s] = len;
      for (int i = 0; i < c->lmax; i++)
        rows[(size_t) s * c->lmax + i] = i < len ? off + i : -1;
      for (int p = 0; p < P; p++)
        if (positions[p] < len)
          {
            gidx[r] = off + positions[p];
            qmap[(size_t) s * P + p] = r++;
          }
        else
          qmap[(size_t) s * P + p] = -1;
      off += len;
    }
}

/* Floats of each workspace buffer for chunk C.  */
static void
chunk_sizes (const cuda_encoder *e, const chunk *c, int P, size_t *sz)
{
  size_t H = (size_t) e->H, A = (size_t) e->Amax, M = (size_t) c->M, R = (size_t) c->R;
  size_t n = (size_t) c->nseq, lmax = (size_t) c->lmax;
  size_t lq = lmax > (size_t) P ? lmax : (size_t) P;
  size_t heads = A / (size_t) e->dh;
  sz[B_X] = M * H;
  sz[B_QKV] = M * 3 * A;
  sz[B_CTX] = (M > R ? M : R) * A;
  sz[B_T1] = (M > R ? M : R) * (size_t) e->Fmax;
  sz[B_XS] = R * H;
  sz[B_QS] = R * A;
  sz[B_QH] = n * lq * A;
  sz[B_KH] = n * lmax * A;
  sz[B_VH] = n * lmax * A;
  sz[B_S] = n * heads * lq * lmax;
  sz[B_CH] = n * lq * A;
  sz[B_OUT] = n * (size_t) P * H;
}

/* Grow the workspace (device and pinned host) to SZ and the stages to IN,
   OUT floats and INTS ints.  */
static int
reserve (cuda_encoder *e, const size_t *sz, size_t in, size_t out, size_t ints)
{
  size_t total = 0;
  for (int i = 0; i < NBUF; i++)
    total += round64 (sz[i]);
  if (total > e->ws_floats)
    {
      cudaFree (e->ws);
      e->ws = NULL;
      e->ws_floats = 0;
      cudaError_t err = cudaMalloc ((void **) &e->ws, total * sizeof (float));
      if (err != cudaSuccess)
        {
          e->ws = NULL;
          char what[96];
          snprintf (what, sizeof what, "%s: %zu MiB of workspace", e->dev->name,
                    total * sizeof (float) >> 20);
          return cuda_fail (err, what);
        }
      e->ws_floats = total;
    }
  float *p = e->ws;
  for (int i = 0; i < NBUF; i++)
    {
      e->buf[i] = p;
      p += round64 (sz[i]);
    }
  if (ints > e->dints_count)
    {
      cudaFree (e->dints);
      e->dints = NULL;
      e->dints_count = 0;
      CU (cudaMalloc ((void **) &e->dints, ints * sizeof (int)), "workspace");
      e->dints_count = ints;
    }
  int grow = in > e->in_floats || out > e->out_floats || ints > e->ints_count;
  in = in > e->in_floats ? in : e->in_floats;
  out = out > e->out_floats ? out : e->out_floats;
  ints = ints > e->ints_count ? ints : e->ints_count;
  if (grow)
    {
      /* Until every stage has its new buffers, none counts as there.  */
      e->in_floats = e->out_floats = e->ints_count = 0;
      for (int i = 0; i < 2; i++)
        {
          stage *s = &e->stages[i];
          cudaFreeHost (s->in);
          cudaFreeHost (s->out);
          cudaFreeHost (s->ints);
          s->in = s->out = NULL;
          s->ints = NULL;
        }
      for (int i = 0; i < 2; i++)
        {
          stage *s = &e->stages[i];
          CU (cudaMallocHost ((void **) &s->in, in * sizeof (float)), "pinned memory");
          CU (cudaMallocHost ((void **) &s->out, out * sizeof (float)), "pinned memory");
          CU (cudaMallocHost ((void **) &s->ints, ints * sizeof (int)), "pinned memory");
        }
    }
  for (int i = 0; i < 2; i++)
    if (!e->stages[i].done)
      CU (cudaEventCreateWithFlags (&e->stages[i].done, cudaEventDisableTiming), "event");
  e->in_floats = in;
  e->out_floats = out;
  e->ints_count = ints;
  return 0;
}

/* X (rows, H) = LN (X + CTX Wo^T + bo).  */
static int
attention_output (cuda_encoder *e, const dlayer *ly, float *X, int rows)
{
  if (gemm (e->blas, e->buf[B_CTX], ly->A, ly->wo, X, e->H, rows, e->H, ly->A, 1.0f) < 0)
    return -1;
  return layernorm (e->stream, X, NULL, ly->bo, ly->ln1_g, ly->ln1_b, rows, e->H, e->eps);
}

/* X (rows, H) = LN (X + gelu (X W1^T + b1) W2^T + b2).  */
static int
ffn (cuda_encoder *e, const dlayer *ly, float *X, int rows)
{
  float *T1 = e->buf[B_T1];
  if (gemm (e->blas, X, e->H, ly->w1, T1, ly->F, rows, ly->F, e->H, 0.0f) < 0
      || bias_gelu (e->stream, T1, ly->b1, (size_t) rows, ly->F) < 0
      || gemm (e->blas, T1, ly->F, ly->w2, X, e->H, rows, e->H, ly->F, 1.0f) < 0)
    return -1;
  return layernorm (e->stream, X, NULL, ly->b2, ly->ln2_g, ly->ln2_b, rows, e->H, e->eps);
}

/* Enqueue chunk C (its plan and packed input in stage SG) on the stream:
   copies in, every layer, the requested rows out into SG->out.  */
static int
run_chunk (cuda_encoder *e, const chunk *c, int P, stage *sg)
{
  cudaStream_t st = e->stream;
  size_t H = (size_t) e->H;
  size_t nints = plan_ints (c, P);
  int *lens = e->dints, *rows = lens + c->nseq, *qmap = rows + (size_t) c->nseq * c->lmax;
  int *gidx = qmap + (size_t) c->nseq * P;
  float *X = e->buf[B_X], *XS = e->buf[B_XS];
  heads_ws hw = { e->buf[B_QH], e->buf[B_KH], e->buf[B_VH], e->buf[B_S], e->buf[B_CH] };
  CU (cudaMemcpyAsync (e->dints, sg->ints, nints * sizeof (int), cudaMemcpyHostToDevice,
                       st), "copy to the GPU");
  CU (cudaMemcpyAsync (X, sg->in, (size_t) c->M * H * sizeof (float),
                       cudaMemcpyHostToDevice, st), "copy to the GPU");

  int gathered = 0;
  for (int l = 0; l <= e->L; l++)
    {
      /* From the last attention layer on, only the requested rows matter
         (as cpu-encoder.c's run_chunk).  */
      if (!gathered && (l == e->L || l >= e->last_att))
        {
          const dlayer *ly = &e->layers[l];
          int att = l < e->L && ly->A;
          float *QKV = e->buf[B_QKV];
          /* K and V of every token (biases added in attend).  */
          if (att && gemm (e->blas, X, e->H, ly->wqkv + (size_t) ly->A * H, QKV + ly->A,
                           3 * ly->A, c->M, 2 * ly->A, e->H, 0.0f) < 0)
            return -1;
          if (c->R)
            {
              k_rows<<<blocks_for ((size_t) c->R * H), THREADS, 0, st>>> (XS, X, gidx,
                                                                          c->R, e->H);
              LAUNCHED ("gather kernel");
            }
          gathered = 1;
          if (att)
            {
              float *QS = e->buf[B_QS];
              if (gemm (e->blas, XS, e->H, ly->wqkv, QS, ly->A, c->R, ly->A, e->H,
                        0.0f) < 0
                  || attend (st, e->blas, &hw, c->nseq, ly->heads, e->dh, e->scale, QS,
                             ly->A, ly->bqkv, qmap, P, QKV + ly->A, QKV + 2 * ly->A,
                             3 * ly->A, ly->bqkv + ly->A, ly->bqkv + 2 * ly->A, rows,
                             c->lmax, lens, e->buf[B_CTX], ly->A) < 0
                  || attention_output (e, ly, XS, c->R) < 0
                  || (ly->F && ffn (e, ly, XS, c->R) < 0))
                return -1;
              continue;
            }
        }
      if (l == e->L)
        break;
      const dlayer *ly = &e->layers[l];
      if (ly->A)
        {
          float *QKV = e->buf[B_QKV];
          if (gemm (e->blas, X, e->H, ly->wqkv, QKV, 3 * ly->A, c->M, 3 * ly->A, e->H,
                    0.0f) < 0
              || attend (st, e->blas, &hw, c->nseq, ly->heads, e->dh, e->scale, QKV,
                         3 * ly->A, ly->bqkv, rows, c->lmax, QKV + ly->A,
                         QKV + 2 * ly->A, 3 * ly->A, ly->bqkv + ly->A,
                         ly->bqkv + 2 * ly->A, rows, c->lmax, lens, e->buf[B_CTX],
                         ly->A) < 0
              || attention_output (e, ly, X, c->M) < 0)
            return -1;
        }
      if (ly->F && ffn (e, ly, gathered ? XS : X, gathered ? c->R : c->M) < 0)
        return -1;
    }

  size_t nout = (size_t) c->nseq * P;
  k_rows<<<blocks_for (nout * H), THREADS, 0, st>>> (e->buf[B_OUT], XS, qmap, nout,
                                                     e->H);
  LAUNCHED ("scatter kernel");
  CU (cudaMemcpyAsync (sg->out, e->buf[B_OUT], nout * H * sizeof (float),
                       cudaMemcpyDeviceToHost, st), "copy from the GPU");
  CU (cudaEventRecord (sg->done, st), "event");
  return 0;
}

/* Wait for the chunk of stage SG, and copy its rows into OUT.  */
static int
finish (cuda_encoder *e, stage *sg, int P, float *out)
{
  if (!sg->pending)
    return 0;
  sg->pending = 0;
  CU (cudaEventSynchronize (sg->done), e->dev->name);
  size_t n = (size_t) sg->nseq * P * e->H;
  memcpy (out + (size_t) sg->g0 * P * e->H, sg->out, n * sizeof (float));
  return 0;
}

/* The arguments have been checked by pmx_encoder_forward.  */
static int
cuda_forward (void *enc, const float *x, int G, int T, const int32_t *lengths,
              const int32_t *positions, int P, float *out)
{
  cuda_encoder *e = (cuda_encoder *) enc;
  if (G == 0)
    return 0;
  CU (cudaSetDevice (e->dev->index), e->dev->name);
  size_t H = (size_t) e->H;

  /* Plan the chunks (whole sequences, until about e->chunk tokens) and
     the workspace the largest needs.  */
  chunk *cs = (chunk *) malloc ((size_t) G * sizeof *cs);
  if (!cs)
    return pmx_error ("out of memory");
  int nchunks = 0;
  size_t sz[NBUF] = { 0 }, in = 0, outn = 0, ints = 0;
  for (int g = 0; g < G;)
    {
      chunk c = { g, 0, 0, 0, 0 };
      while (g < G)
        {
          int len = lengths ? lengths[g] : T;
          if (c.M > 0 && (size_t) c.M + len > (size_t) e->chunk)
            break;
          c.M += len;
          c.lmax = len > c.lmax ? len : c.lmax;
          for (int p = 0; p < P; p++)
            c.R += positions[p] < len;
          g++;
        }
      c.nseq = g - c.g0;
      cs[nchunks++] = c;
      size_t s[NBUF];
      chunk_sizes (e, &c, P, s);
      for (int i = 0; i < NBUF; i++)
        sz[i] = s[i] > sz[i] ? s[i] : sz[i];
      in = (size_t) c.M * H > in ? (size_t) c.M * H : in;
      outn = s[B_OUT] > outn ? s[B_OUT] : outn;
      ints = plan_ints (&c, P) > ints ? plan_ints (&c, P) : ints;
    }
  int rc = reserve (e, sz, in, outn, ints);

  /* Chunk c is packed on the host while the GPU runs chunk c - 1.  */
  for (int i = 0; rc == 0 && i < nchunks; i++)
    {
      const chunk *c = &cs[i];
      stage *sg = &e->stages[i % 2];
      if ((rc = finish (e, sg, P, out)) < 0)  /* chunk i - 2 */
        break;
      plan_chunk (c, T, lengths, positions, P, sg->ints);
      size_t off = 0;
      for (int s = 0; s < c->nseq; s++)
        {
          size_t len = (size_t) sg->ints[s];
          memcpy (sg->in + off * H, x + (size_t) (c->g0 + s) * T * H,
                  len * H * sizeof (float));
          off += len;
        }
      sg->g0 = c->g0;
      sg->nseq = c->nseq;
      if ((rc = run_chunk (e, c, P, sg)) < 0)
        break;
      sg->pending = 1;
    }
  /* Wait for what is still running, even after an error: the pinned
     buffers must not be reused or freed under a copy.  */
  for (int i = 0; i < 2; i++)
    if (finish (e, &e->stages[(nchunks + i) % 2], P, out) < 0 && rc == 0)
      rc = -1;
  if (rc < 0)
    {
      cudaStreamSynchronize (e->stream);
      for (int i = 0; i < 2; i++)
        e->stages[i].pending = 0;
    }
  free (cs);
  return rc;
}

/* ---- Single ops (backend.h), for the per-op harness ------------------------ */

/* Device buffers of one op, freed together.  */
typedef struct op_mem
{
  void *p[8];
  int n;
} op_mem;

/* N floats on the device, with HOST's contents (NULL: uninitialised).  */
static float *
op_upload (op_mem *m, const void *host, size_t bytes)
{
  void *d = NULL;
  cudaError_t err = cudaMalloc (&d, bytes ? bytes : 4);
  if (err != cudaSuccess)
    {
      cuda_fail (err, "single op");
      return NULL;
    }
  m->p[m->n++] = d;
  if (host && (err = cudaMemcpy (d, host, bytes, cudaMemcpyHostToDevice)) != cudaSuccess)
    {
      cuda_fail (err, "single op");
      return NULL;
    }
  return (float *) d;
}

/* Copy D back into HOST, free M's buffers; RC, or -1 if the copy failed.  */
static int
op_done (op_mem *m, int rc, void *host, const void *d, size_t bytes)
{
  if (rc == 0 && host)
    {
      cudaError_t err = cudaMemcpy (host, d, bytes, cudaMemcpyDeviceToHost);
      if (err != cudaSuccess)
        rc = cuda_fail (err, "single op");
    }
  for (int i = 0; i < m->n; i++)
    cudaFree (m->p[i]);
  return rc;
}

static int
op_begin (const void *dev, op_mem *m)
{
  m->n = 0;
  CU (cudaSetDevice (((const cuda_device *) dev)->index), "single op");
  return 0;
}

/* A cuBLAS handle for one op into *H (NULL on failure), in DEV's math
   mode.  */
static int
op_blas (const void *dev, cublasHandle_t *h)
{
  cublasStatus_t st = cb.create (h);
  if (st != CUBLAS_STATUS_SUCCESS)
    {
      *h = NULL;
      return blas_fail (st, "single op");
    }
  if ((st = cb.set_math_mode (*h, ((const cuda_device *) dev)->tf32
                              ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH))
      != CUBLAS_STATUS_SUCCESS)
    return blas_fail (st, "single op");
  return 0;
}

static int
cuda_linear (const void *dev, const float *A, const float *W, const float *bias, int M,
             int N, int K, float *C)
{
  op_mem m;
  if (op_begin (dev, &m) < 0)
    return -1;
  size_t cbytes = (size_t) M * N * sizeof (float);
  float *dA = op_upload (&m, A, (size_t) M * K * sizeof (float));
  float *dW = dA ? op_upload (&m, W, (size_t) N * K * sizeof (float)) : NULL;
  float *db = dW ? op_upload (&m, bias, (size_t) N * sizeof (float)) : NULL;
  float *dC = db ? op_upload (&m, NULL, cbytes) : NULL;
  int rc = dC ? 0 : -1;
  cublasHandle_t h = NULL;
  if (rc == 0)
    rc = op_blas (dev, &h);
  if (rc == 0 && gemm (h, dA, K, dW, dC, N, M, N, K, 0.0f) < 0)
    rc = -1;
  if (rc == 0)
    {
      k_add_bias<<<blocks_for ((size_t) M * N), THREADS>>> (dC, db, (size_t) M, N);
      cudaError_t err = cudaGetLastError ();
      if (err != cudaSuccess)
        rc = cuda_fail (err, "bias kernel");
    }
  if (h)
    cb.destroy (h);
  return op_done (&m, rc, C, dC, cbytes);
}

static int
cuda_bias_gelu (const void *dev, float *x, const float *bias, int rows, int n)
{
  op_mem m;
  if (op_begin (dev, &m) < 0)
    return -1;
  size_t xb = (size_t) rows * n * sizeof (float);
  float *dx = op_upload (&m, x, xb);
  float *db = dx ? op_upload (&m, bias, (size_t) n * sizeof (float)) : NULL;
  int rc = db ? bias_gelu (0, dx, db, (size_t) rows, n) : -1;
  return op_done (&m, rc, x, dx, xb);
}

static int
cuda_residual_layernorm (const void *dev, float *x, const float *r, const float *bias,
                         const float *gamma, const float *beta, int rows, int n,
                         float eps)
{
  op_mem m;
  if (op_begin (dev, &m) < 0)
    return -1;
  size_t xb = (size_t) rows * n * sizeof (float), vb = (size_t) n * sizeof (float);
  float *dx = op_upload (&m, x, xb), *dr = NULL, *db = NULL, *dg = NULL, *dbe = NULL;
  int rc = dx ? 0 : -1;
  if (rc == 0 && r && !(dr = op_upload (&m, r, xb)))
    rc = -1;
  if (rc == 0 && bias && !(db = op_upload (&m, bias, vb)))
    rc = -1;
  if (rc == 0 && (!(dg = op_upload (&m, gamma, vb)) || !(dbe = op_upload (&m, beta, vb))))
    rc = -1;
  if (rc == 0)
    rc = layernorm (0, dx, dr, db, dg, dbe, rows, n, eps);
  return op_done (&m, rc, x, dx, xb);
}

static int
cuda_softmax (const void *dev, float *x, int rows, int n)
{
  op_mem m;
  if (op_begin (dev, &m) < 0)
    return -1;
  size_t xb = (size_t) rows * n * sizeof (float);
  float *dx = op_upload (&m, x, xb);
  int rc = dx ? softmax (0, dx, rows, n, NULL, 1) : -1;
  return op_done (&m, rc, x, dx, xb);
}

/* One head through attend, as the encoder runs every head.  */
static int
cuda_attention (const void *dev, const float *Q, const float *K, const float *V, int nq,
                int L, int dh, float scale, float *out)
{
  op_mem m;
  if (op_begin (dev, &m) < 0)
    return -1;
  int n = nq > L ? nq : L;
  int *ints = (int *) malloc ((size_t) (n + 1) * sizeof *ints);
  if (!ints)
    return pmx_error ("out of memory");
  ints[0] = L;
  for (int i = 0; i < n; i++)
    ints[1 + i] = i;            /* rows 0..nq-1 and 0..L-1 */
  size_t qb = (size_t) nq * dh * sizeof (float), kb = (size_t) L * dh * sizeof (float);
  float *dQ = op_upload (&m, Q, qb);
  float *dK = dQ ? op_upload (&m, K, kb) : NULL;
  float *dV = dK ? op_upload (&m, V, kb) : NULL;
  int *di = dV ? (int *) op_upload (&m, ints, (size_t) (n + 1) * sizeof (int)) : NULL;
  float *ws = di ? op_upload (&m, NULL, (2 * qb + 2 * kb
                                         + (size_t) nq * L * sizeof (float))) : NULL;
  float *dO = ws ? op_upload (&m, NULL, qb) : NULL;
  free (ints);
  cublasHandle_t h = NULL;
  int rc = dO ? 0 : -1;
  if (rc == 0)
    rc = op_blas (dev, &h);
  if (rc == 0)
    {
      size_t fq = (size_t) nq * dh, fk = (size_t) L * dh;
      heads_ws hw = { ws, ws + fq, ws + fq + fk, ws + fq + 2 * fk, ws + 2 * fq + 2 * fk };
      rc = attend (0, h, &hw, 1, 1, dh, scale, dQ, dh, NULL, di + 1, nq, dK, dV, dh,
                   NULL, NULL, di + 1, L, di, dO, dh);
    }
  if (h)
    cb.destroy (h);
  return op_done (&m, rc, out, dO, qb);
}

extern "C" const pmx_backend pmx_cuda_backend = {
  "cuda",                       /* name */
  "K or K:tf32, K the GPU's index",     /* variants */
  cuda_device_open,
  cuda_device_name,
  cuda_new,
  cuda_forward,
  cuda_describe,
  cuda_set_chunk,
  cuda_free,
  cuda_linear,
  cuda_bias_gelu,
  cuda_residual_layernorm,
  cuda_softmax,
  cuda_attention,
};
