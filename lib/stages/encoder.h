/* encoder.h -- the BERT encoder layers, on a device chosen by name.

   Input: the encoder input h0 (after the embedding stage), output: the last
   hidden states at the requested positions.  Exactly BERT: post-LayerNorm,
   exact erf GELU, LayerNorm eps from the config, and an attention mask for
   padded positions when lengths are given.  Per-layer shapes come from the
   tensors (CoFi-pruned models): heads_l = query rows / head_dim, FFN width
   from the intermediate rows, hidden size cfg->hidden.  A layer without
   attention tensors has an identity attention sublayer (and no LayerNorm),
   a layer without FFN tensors an identity FFN (MUX-PLM-SPEC.md section 3).

   Devices: "cpu" (the best kernels this CPU has; what programs use unless
   told otherwise), "cpu:avx512", "cpu:avx2" (the packed GEMM kernels) and
   "cpu:blas" (OpenBLAS for the dense layers).  Each is a backend behind
   one table of functions (backend.h, internal).  A build with CUDA
   (configure --with-cuda) adds "cuda:K", GPU K in fp32 (TF32 off), and
   "cuda:K:tf32" (cuBLAS rounds the GEMMs' inputs to TF32), the same
   layers with cuBLAS and kernels of its own (cuda-encoder.cu; the
   threads argument does not apply there).  What follows is the CPU
   backend (cpu-encoder.c).

   How it is fast (one code path for dense and pruned models):
   - Weights are packed at load into the panels the GEMM micro-kernel reads
     (gemm.h: AVX-512 or AVX2, OpenBLAS on other CPUs), Q, K and V together
     as one (3A, H) matrix: one GEMM per layer; attention reads heads
     through strides, never copies them.
   - Tokens of all sequences are packed into one matrix (M = real tokens),
     padding removed when lengths are given; sequences are split only in
     attention, which runs over (sequence, head) pairs.
   - Sequences are processed in chunks of about 2048 tokens; each GEMM is
     cut into row blocks (two per thread), and each block's
     epilogue (bias + GELU, bias + residual + LayerNorm) runs right after
     its GEMM on the same thread.
   - One thread pool owns the cores; OpenBLAS (attention, and the dense
     layers on CPUs without a kernel) is set to one thread
     (openblas_set_num_threads, a process-wide setting) and called from the
     pool's threads.  With the packed kernels the output does not depend
     on the number of threads.
   - From the last layer with attention on, only the requested positions
     are computed.  When few are requested (the CLS row of a classifier),
     that layer's attention works straight from its input, without K and V
     of every token (cpu-encoder.c, attention_direct); otherwise K and V are
     computed for every token.
   - Workspace is planned per shape and only grows: no allocation per record
     once the largest shape has been seen.

   Ownership: the encoder owns its packed copies of the weights (and the
   fused Q/K/V biases) and borrows the rest from the lookup's storage, which
   must outlive it.  An encoder is used by one thread at a time.  */

#ifndef PRUMUX_ENCODER_H
#define PRUMUX_ENCODER_H

#include <stdint.h>
#include "model.h"
#include "stream.h"

typedef struct pmx_encoder pmx_encoder;

/* The CPU's device names, for messages and --help (a CUDA build also has
   "cuda:K" and "cuda:K:tf32").  */
#define PMX_DEVICES "cpu, cpu:avx512, cpu:avx2, cpu:blas"

/* Build the encoder of CFG (arch, hidden, layers, head_dim, ln_eps and
   attend_padding are used) from the tensors named
   encoder.layer.{i}.attention.self.{query,key,value}.{weight,bias},
   .attention.output.dense.*, .attention.output.LayerNorm.*,
   .intermediate.dense.*, .output.dense.*, .output.LayerNorm.*.
   DEVICE is a name above (NULL: "cpu").  THREADS >= 1 threads in all (0:
   the number of online CPUs).  NULL with an error naming the tensor if one
   is missing, not f32, or misshapen, or naming the device if it is unknown,
   not built in ("cuda:0") or not on this machine ("cpu:avx512" on a CPU
   without AVX-512).  */
pmx_encoder *pmx_encoder_new (const pmx_model_config *cfg, pmx_tensor_lookup get,
                              const void *ctx, const char *device, int threads);
void pmx_encoder_free (pmx_encoder *e);

/* Run the encoder on X (G, T, H) for G sequences of T tokens.  LENGTHS (G)
   holds each sequence's real tokens (1..T; the rest is padding, masked out
   of attention), or is NULL: attend to all T (MUX models attend to PAD).
   POSITIONS (P) are the rows wanted per sequence (each in 0..T-1, in any
   order); OUT (G, P, H) receives them.  A position at or beyond a
   sequence's length is padding: its row in OUT is zero.  Returns 0, or -1
   with an error (bad arguments, no memory).  */
int pmx_encoder_forward (pmx_encoder *e, const float *x, int G, int T,
                         const int32_t *lengths, const int32_t *positions, int P,
                         float *out);

/* The stage used by prumux-infer: reads 'embeds' (G, T, H) (and 'lengths'
   (G) when the model masks padding) from IN, writes 'hidden' (G, P, H) and
   'positions' (P) into OUT (reset first) and copies the other tensors of IN
   through, except 'embeds'.  -1 with an error on a malformed record.  */
int pmx_encoder_stage (pmx_encoder *e, const pmx_record *in,
                       const int32_t *positions, int P, pmx_record *out);

/* 0 if DEVICE names a device this machine runs, else -1 with the error
   pmx_encoder_new would give.  */
int pmx_encoder_device_check (const char *device);

/* Hidden size of E.  */
int pmx_encoder_hidden (const pmx_encoder *e);
/* The device E runs on, in full (never a default): "cpu:avx512".  */
const char *pmx_encoder_device (const pmx_encoder *e);
/* Which kernels run and on how many threads, one line for --verbose:
   "cpu:avx2: AVX2 packed-weight (6x16) dense layers, ...".  */
const char *pmx_encoder_describe (const pmx_encoder *e);
/* Tokens per chunk (default: 2048 on the CPU, 4096 on a GPU; at least one
   whole sequence is always processed at once); no effect on a device
   without chunks.  For benchmarks and tests.  */
void pmx_encoder_set_chunk (pmx_encoder *e, int tokens);

#endif
