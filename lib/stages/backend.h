/* backend.h -- the seam between the encoder (encoder.h) and the code that
   runs it on one kind of device.  Internal: not installed.

   A device is named BACKEND[:VARIANT]: "cpu" (the best kernels of this
   CPU), "cpu:avx512", "cpu:avx2", "cpu:blas"; later "cuda:0".  A backend
   is one table of functions (pmx_backend) in two parts:

   - the encoder: build it from a configuration and a tensor lookup, run
     it on host arrays, describe it, free it.  The front end (encoder.c)
     has already checked the configuration and every argument, so a
     backend checks only its own limits (memory, workspace);
   - single ops on host arrays, each computed as the backend's encoder
     computes it, for the per-op harness (tests/test-backend.c), which
     compares every backend with double-precision references.  A backend
     whose memory is elsewhere (a GPU) copies in and out here; speed does
     not matter.

   All matrices are row-major and dense (rows N floats apart).  Functions
   return 0 / non-NULL, or -1 / NULL with pmx_error () set.  */

#ifndef PRUMUX_BACKEND_H
#define PRUMUX_BACKEND_H

#include <stdint.h>
#include "model.h"

typedef struct pmx_backend
{
  const char *name;             /* "cpu" */
  const char *variants;         /* for messages: "avx512, avx2 or blas" */

  /* The backend's handle of VARIANT (the text after "NAME:", NULL for
     none: the best this machine runs), or NULL with an error (unknown
     variant, not on this machine).  Handles live as long as the
     process; nothing frees them.  */
  const void *(*device) (const char *variant);
  /* The full name of what DEV runs, never a default: "cpu:avx512".  */
  const char *(*device_name) (const void *dev);

  /* The encoder (encoder.h has the contract of each).  */
  void *(*encoder_new) (const void *dev, const pmx_model_config *cfg,
                        pmx_tensor_lookup get, const void *ctx, int threads);
  int (*encoder_forward) (void *enc, const float *x, int G, int T,
                          const int32_t *lengths, const int32_t *positions,
                          int P, float *out);
  /* Which kernels run, and how many threads: "cpu:avx512: ...".  */
  const char *(*encoder_describe) (const void *enc);
  /* Tokens per chunk; NULL where the backend does not chunk.  */
  void (*encoder_set_chunk) (void *enc, int tokens);
  void (*encoder_free) (void *enc);

  /* Single ops, for tests.  */
  /* C (M, N) = A (M, K) W (N, K)^T + BIAS (N).  */
  int (*linear) (const void *dev, const float *A, const float *W, const float *bias,
                 int M, int N, int K, float *C);
  /* X (rows, n) = gelu (X + BIAS (n)), exact erf GELU.  */
  int (*bias_gelu) (const void *dev, float *x, const float *bias, int rows, int n);
  /* X (rows, n) = LayerNorm (X + R + BIAS) * GAMMA + BETA, BERT's post-LN
     residual; R (rows, n) may be NULL.  */
  int (*residual_layernorm) (const void *dev, float *x, const float *r,
                             const float *bias, const float *gamma,
                             const float *beta, int rows, int n, float eps);
  /* Softmax of each row of X (rows, n) in place.  */
  int (*softmax) (const void *dev, float *x, int rows, int n);
  /* One head: OUT (nq, dh) = softmax (SCALE Q K^T) V, Q (nq, dh), K and V
     (L, dh).  */
  int (*attention) (const void *dev, const float *Q, const float *K, const float *V,
                    int nq, int L, int dh, float scale, float *out);
} pmx_backend;

/* One encoder layer's weights as the lookup holds them (borrowed: the
   lookup's storage owns them), the one description of the layers every
   backend builds from.  A = heads * head_dim and F are this layer's own
   (CoFi-pruned models differ per layer); A = 0 is an identity attention
   sublayer (no tensors, no LayerNorm), F = 0 an identity FFN.  */
typedef struct pmx_layer_weights
{
  int A, heads, F;
  const float *wq, *wk, *wv;    /* (A, H) each */
  const float *bq, *bk, *bv;    /* (A) each */
  const float *wo, *bo;         /* (H, A), (H) */
  const float *ln1_g, *ln1_b;   /* (H), (H) */
  const float *w1, *b1;         /* (F, H), (F) */
  const float *w2, *b2;         /* (H, F), (H) */
  const float *ln2_g, *ln2_b;   /* (H), (H) */
} pmx_layer_weights;

/* Find and check layer LAYER's tensors (encoder.h names them) for hidden
   size H and heads of DH.  -1 with an error naming the tensor if one is
   missing (while others of its sublayer are there), not f32, or
   misshapen.  */
int pmx_layer_weights_load (pmx_layer_weights *w, pmx_tensor_lookup get,
                            const void *ctx, int layer, int H, int dh);

/* The backends built into this library.  */
extern const pmx_backend pmx_cpu_backend;
#ifdef HAVE_CUDA
extern const pmx_backend pmx_cuda_backend;   /* cuda-encoder.cu */
#endif

/* A device as named by the user, resolved.  */
typedef struct pmx_device
{
  const pmx_backend *backend;
  const void *handle;
} pmx_device;

/* Resolve NAME (NULL or "": "cpu") into DEV.  -1 with an error that lists
   the devices for an unknown name, or says that this build has no CUDA for
   "cuda" and "cuda:K".  */
int pmx_device_open (const char *name, pmx_device *dev);

#endif
