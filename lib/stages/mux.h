/* mux.h -- the multiplexer: token records in, encoder-input records out.

   For an ordinary model (mux_n = 1) this is just the embedding stage:
       embeds[b, t] = LN(word[ids[b,t]] + pos[t] + type[type_ids[b,t]])  // (B, T, H)
   and every tensor except ids and type_ids passes through.

   For a multiplexed model (mux_n = N > 1, muxing "gaussian_hadamard") it is
   the published MUX-PLM computation (MUX-PLM-SPEC.md §2.3): N consecutive
   rows x_0..x_{N-1} form a group g and
       E1_i[t] = LN(word[x_i[t]] + pos[t] + type[0])
       M[t]    = (1/N) sum_i E1_i[t] * v_i        v_i = instance_embedding[i]
       embeds[g, t] = LN(M[t] + pos[t] + type[0])                      // (G, T, H)
   with ids[:, 0] forced to [CLS] (101) and type ids ignored; every row is
   padded with [PAD] (0) to the model's max_length, since nothing masks the
   padding.  With the `index` demultiplexer each row is prefixed by its
   N+1 index tokens (§4.3), so T = max_length + N + 1.

   Groups run across record boundaries: the rows a record leaves over wait
   for the next one, so only the last group of the stream can be short.
   pmx_mux_flush fills it with copies of the group's first row (a
   deterministic stand-in for the published code's random copies), marked
   row = -1 and label = -1; the demultiplexer drops them.

   Grouping keys (tenant isolation): when the input has a 'group' tensor
   (i64, B), a row whose key differs from that of the open group's rows
   closes the group, filled as above, so rows of different keys never share
   a group (nor a forward pass, through which a demultiplexer could carry
   information between them).  A run of k rows of one key costs ceil(k/N)
   groups.

   The output records carry row (G*N), and label, lengths and group if the
   input had them, in input order; other per-row tensors are dropped.

   Errors: every function returns -1 (or NULL) with pmx_error set.  */

#ifndef PRUMUX_MUX_H
#define PRUMUX_MUX_H

#include "embed.h"

#define PMX_MUX_CLS_ID 101      /* [CLS] of the BERT vocabularies, as the code */
#define PMX_MUX_INDEX_FILLER 680 /* index prefix: filler id; diagonal 680-(i+2) */

typedef struct pmx_muxer pmx_muxer;

/* A muxer for the model described by CFG whose weights GET (CTX) finds.  The
   weights must outlive the muxer.  NULL with an error for an unsupported
   muxing variant or a missing or misshapen weight.  */
pmx_muxer *pmx_muxer_new (const pmx_model_config *cfg, pmx_tensor_lookup get,
                          const void *ctx);
void pmx_muxer_free (pmx_muxer *mx);

/* Mux a record's groups on THREADS threads (0: all online CPUs; without
   this call, 1: the caller's): the output does not depend on the number.
   0, or -1 with an error (a thread could not start).  */
int pmx_muxer_set_threads (pmx_muxer *mx, int threads);

/* Rows per group (N) and sequence length of the output (T; 0 until known
   for an N = 1 model that does not pad).  */
int pmx_muxer_instances (const pmx_muxer *mx);
int pmx_muxer_length (const pmx_muxer *mx);

/* Take one token record IN (row, ids, type_ids, lengths, label).  Returns 1
   with an embeds record in OUT (reset first), 0 if all of IN's rows are
   waiting for a full group (OUT is then empty), -1 on error.  */
int pmx_mux_stage (pmx_muxer *mx, const pmx_record *in, pmx_record *out);

/* At the end of the stream: 1 with the last, filled-up group in OUT, or 0
   if no rows were waiting.  */
int pmx_mux_flush (pmx_muxer *mx, pmx_record *out);

/* The gaussian-Hadamard multiplexer itself (MUX-PLM-SPEC.md §2.3), the one
   the stage above and the training forward (train-model.c) both run:
     out[g, t] = (1/N) sum_i inp[g*N + i, t] * keys[i]
   inp (G*N, T, H) the first-pass embeddings E1, out (G, T, H), keys
   (N, H).  Each element is summed over i in order from 0 and divided by
   N (torch.mean).  Nothing allocates or fails.  */
void pmx_mux_fwd (float *out, const float *inp, const float *keys, int G,
                  int N, int T, int H);
/* Its backward for training: dinp += dout * keys[i] / N.  The keys are
   fixed, so there is no gradient for them.  */
void pmx_mux_bwd (float *dinp, const float *dout, const float *keys, int G,
                  int N, int T, int H);

#endif
