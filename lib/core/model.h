/* model.h -- a model archive (.pmx) in memory: configuration, vocabulary and
   named tensors.  prumux-model(5) documents the archive.

   Tensor names are the Hugging Face / MUX-PLM state-dict names with any
   leading "bert." removed, e.g.
       embeddings.word_embeddings.weight          (vocab, hidden)
       encoder.layer.3.attention.self.query.weight (heads_3*64, hidden)
       encoder.layer.3.output.dense.weight        (hidden, ffn_3)
       pooler.dense.weight, classifier.weight, instance_embedding,
       demux_module.dense_1.weight, demultiplexer.pre_decoder.weight, ...
   Weights are f32, row-major, nn.Linear layout (out, in).  A pruned model
   simply has smaller tensors, and a fully pruned attention or FFN sublayer
   has no tensors at all: consumers infer per-layer shapes from the tensors.

   Ownership: the model owns its tensors (mapped from the archive file when
   it is stored uncompressed, read into memory otherwise); pointers stay
   valid until pmx_model_close.  A loaded model is read-only and may be
   shared between threads.  */

#ifndef PRUMUX_MODEL_H
#define PRUMUX_MODEL_H

#include <stddef.h>
#include "stream.h"

#define PMX_LABEL_MAX 64        /* bytes of a label name, without NUL */
#define PMX_MAX_LABELS 4096

typedef struct pmx_model_config
{
  char arch[32];                /* "bert" */
  char id[33];                  /* identity, hex; carried in stream headers */
  char task[64];                /* free text, e.g. "sst2"; may be empty */
  int vocab_size;
  int hidden;                   /* hidden size (after pruning) */
  int layers;
  int heads;                    /* heads of the unpruned model */
  int head_dim;                 /* 64 for BERT */
  int intermediate;             /* FFN width of the unpruned model */
  double sparsity;              /* CoFi sparsity of a pruned model
                                   (pmx_cofi_z_sparsity, > 0 even when
                                   nothing was cut); 0: not pruned */
  int max_position;
  int type_vocab;
  double ln_eps;
  /* Multiplexing.  mux_n = 1 and mux_variant "none" for an ordinary model.  */
  int mux_n;
  char mux_variant[32];         /* "none", "gaussian_hadamard" */
  char demux_variant[32];       /* "none", "index_pos", "index", "mlp" */
  int demux_layers;             /* num_hidden_demux_layers */
  /* Heads and pooling.  */
  int num_labels;               /* 0: an encoder without a classifier */
  char **labels;                /* num_labels names ("0", "1", ... if unnamed) */
  char pooling[16];             /* "cls", "mean", "pooler" */
  int normalize;                /* L2-normalise pooled embeddings */
  /* Inputs.  */
  int attend_padding;           /* 1: no attention mask (published MUX models) */
  int max_length;               /* tokenizer max length (and fixed pad length
                                   when attend_padding) */
  int lowercase;
  int strip_accents;
} pmx_model_config;

typedef struct pmx_model pmx_model;

/* How a stage (encoder, mux, demux) finds a weight by its archive name:
   NULL if there is none (no error recorded).  CTX is a pmx_model for
   pmx_model_lookup, or a pmx_record of named tensors for pmx_record_lookup
   (tests and benchmarks).  */
typedef const pmx_tensor *(*pmx_tensor_lookup) (const void *ctx, const char *name);
const pmx_tensor *pmx_model_lookup (const void *model, const char *name);
const pmx_tensor *pmx_record_lookup (const void *record, const char *name);

/* Open an archive.  NULL with an error ("PATH: ...") if it cannot be read or
   fails validation.  */
pmx_model *pmx_model_open (const char *path);
void pmx_model_close (pmx_model *m);

const pmx_model_config *pmx_model_config_of (const pmx_model *m);
/* The tensor NAME, or NULL (no error recorded).  */
const pmx_tensor *pmx_model_tensor (const pmx_model *m, const char *name);
/* The f32 tensor NAME with the given rank and, where a dim is >= 0, that
   size; NULL with an error otherwise.  */
const pmx_tensor *pmx_model_expect (const pmx_model *m, const char *name,
                                    int rank, int64_t d0, int64_t d1);
int pmx_model_tensor_count (const pmx_model *m);
const pmx_tensor *pmx_model_tensor_at (const pmx_model *m, int i);
/* Heads and FFN width of layer L, from its tensors (0: pruned away).  */
void pmx_model_layer_shape (const pmx_model *m, int l, int *heads, int *ffn);
/* The configuration as config.json text, per-layer shapes included (a
   string the caller frees), or NULL on error.  */
char *pmx_model_config_json (const pmx_model *m);
/* vocab.txt text (one token per line), or NULL if the archive has none.  */
const char *pmx_model_vocab (const pmx_model *m, size_t *len);

/* The hash that makes a model's identity, over N byte segments SEG[i] of
   LEN[i] bytes (each length mixed in), as 32 hex digits and a NUL in OUT:
   an identity, not a cryptographic digest.  */
void pmx_identity_hash (const void *const *seg, const size_t *len, int n,
                        char out[33]);

/* Write an archive atomically (temporary file + rename).  CFG's id is
   computed here and stored back.  TENSORS are written in record order.  */
int pmx_model_save (const char *path, pmx_model_config *cfg,
                    const pmx_record *tensors, const char *vocab,
                    size_t vocab_len, int compress);

/* The same for a model of more than PMX_MAX_TENSORS tensors, spread over
   NRECS records (BERT-large has 24 x 16 encoder tensors).  */
int pmx_model_save_records (const char *path, pmx_model_config *cfg,
                            const pmx_record *recs, int nrecs,
                            const char *vocab, size_t vocab_len, int compress);

/* COMPRESS values for pmx_model_save.  */
enum
{
  PMX_COMPRESS_NONE = 0, PMX_COMPRESS_GZIP, PMX_COMPRESS_ZSTD, PMX_COMPRESS_XZ
};

/* Recompute the identity from the archive's contents: 0 if it matches
   cfg.id, -1 with an error otherwise (the archive was altered).  */
int pmx_model_verify (const pmx_model *m);
/* "mapped" when the tensors are used in place from the mapped file,
   "memory" when they were read (decompressed) into memory.  */
const char *pmx_model_storage (const pmx_model *m);
/* A hint: the caller has copied (packed) the bytes [P, P + BYTES) of M's
   tensors and will not read them again soon, so the pages wholly inside
   them leave the process's resident set.  Only for a mapped archive: a
   page is read back from the file if it is touched again, so this is never
   wrong; nothing happens for P outside the mapping or for archives held in
   memory.  */
void pmx_model_drop_pages (const pmx_model *m, const void *p, size_t bytes);

void pmx_model_config_init (pmx_model_config *cfg);
void pmx_model_config_free (pmx_model_config *cfg);

#endif
