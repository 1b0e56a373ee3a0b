/* model.c -- the model archive (.pmx): a tar file holding
       prumux-model    format marker ("prumux model archive, format 1")
       config.json     pmx_model_config as JSON, plus per-layer shapes
       vocab.txt       the WordPiece vocabulary (optional)
       tensors.pmxs    one prumux stream record holding every tensor
   prumux-model(5) documents it.  An uncompressed archive is mapped and its
   tensors are used in place (tar member data is 512-aligned, stream
   payloads 64-aligned within the member); a compressed one is read into
   memory.  Everything read is validated like stream input.  */

#include <config.h>
#include "model.h"
#include "error.h"
#include "outfile.h"
#include "kernels.h"

#include <archive.h>
#include <archive_entry.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#define MARKER_NAME "prumux-model"
#define MARKER_TEXT "prumux model archive, format "
#define FORMAT_VERSION 1
#define CONFIG_MAX (16u << 20)  /* bytes of config.json accepted */
#define VOCAB_MAX (64u << 20)   /* bytes of vocab.txt accepted */
#define MAX_LAYERS 1024

struct pmx_model
{
  pmx_model_config cfg;
  int ntensors;
  const pmx_tensor **tensors;   /* into recs, in record order */
  int nrecs;
  pmx_record *recs;             /* own the pmx_tensor structs */
  int *layer_heads, *layer_ffn; /* per layer, from the tensors */
  char *vocab;                  /* NUL-terminated copy, or NULL */
  size_t vocab_len;
  void *map;                    /* the mapped file (uncompressed archives) */
  size_t map_size;
  void *stream;                 /* tensors.pmxs when read into memory */
  const unsigned char *stream_at; /* the stream bytes, wherever they are */
  size_t stream_len;
};

/* ---- Identity hash -------------------------------------------------------

   A 128-bit hash in the spirit of FNV-1a, taken 8 bytes at a time so a
   90 MB model hashes in a few tens of milliseconds: two 64-bit lanes, each
   xor-in a word, multiply by an odd constant and rotate (the rotation
   carries high bits down, which plain FNV never does), finished with
   MurmurHash3's fmix64.  An identity, not a cryptographic digest.  */

typedef struct { uint64_t a, b, n; } hash128;

static uint64_t rotl64 (uint64_t x, int r) { return x << r | x >> (64 - r); }

static uint64_t
fmix64 (uint64_t k)
{
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdULL;
  k ^= k >> 33;
  k *= 0xc4ceb9fe1a85ec53ULL;
  k ^= k >> 33;
  return k;
}

static void
hash_init (hash128 *h)
{
  h->a = 0xcbf29ce484222325ULL;         /* FNV-1a offset basis */
  h->b = 0x6c62272e07bb0142ULL;
  h->n = 0;
}

static void
hash_word (hash128 *h, uint64_t w)
{
  h->a = rotl64 ((h->a ^ w) * 0x100000001b3ULL, 29);   /* FNV-1a prime */
  h->b = rotl64 ((h->b ^ rotl64 (w, 32)) * 0x9e3779b97f4a7c15ULL, 31);
}

/* Hash LEN bytes as one segment (its length is mixed in, so segments
   cannot run into each other).  */
static void
hash_segment (hash128 *h, const void *data, size_t len)
{
  const unsigned char *p = data;
  size_t i = 0;
  for (; i + 8 <= len; i += 8)
    {
      uint64_t w;
      memcpy (&w, p + i, 8);    /* little-endian hosts only, like stream.c */
      hash_word (h, w);
    }
  uint64_t tail = 0;
  for (size_t k = 0; i + k < len; k++)
    tail |= (uint64_t) p[i + k] << (8 * k);
  hash_word (h, tail);
  hash_word (h, (uint64_t) len);
  h->n += len;
}

static void
hash_hex (const hash128 *h, char out[33])
{
  uint64_t x = fmix64 (h->a ^ rotl64 (h->b, 17) ^ h->n);
  uint64_t y = fmix64 (h->b + x);
  x = fmix64 (x ^ y);
  snprintf (out, 33, "%016llx%016llx", (unsigned long long) x,
            (unsigned long long) y);
}

/* ---- Configuration ------------------------------------------------------- */

void
pmx_model_config_init (pmx_model_config *cfg)
{
  memset (cfg, 0, sizeof *cfg);
  strcpy (cfg->arch, "bert");
  cfg->head_dim = 64;
  cfg->type_vocab = 2;
  cfg->max_position = 512;
  cfg->ln_eps = 1e-12;
  cfg->mux_n = 1;
  strcpy (cfg->mux_variant, "none");
  strcpy (cfg->demux_variant, "none");
  strcpy (cfg->pooling, "cls");
  cfg->max_length = 512;
  cfg->lowercase = 1;
  cfg->strip_accents = 1;
}

void
pmx_model_config_free (pmx_model_config *cfg)
{
  if (cfg->labels)
    for (int i = 0; i < cfg->num_labels; i++)
      free (cfg->labels[i]);
  free (cfg->labels);
  cfg->labels = NULL;
}

static int
in_set (const char *s, const char *const *set)
{
  for (; *set; set++)
    if (strcmp (s, *set) == 0)
      return 1;
  return 0;
}

static const char *const mux_variants[] = {"none", "gaussian_hadamard", NULL};
static const char *const demux_variants[] = {"none", "index_pos", "index", "mlp", NULL};
static const char *const poolings[] = {"cls", "mean", "pooler", NULL};

/* A label or task name: printable, no tab (outputs are TSV).  */
static int
valid_text (const char *s, size_t max, int allow_empty)
{
  size_t n = strlen (s);
  if (n > max || (!allow_empty && n == 0))
    return 0;
  for (; *s; s++)
    if ((unsigned char) *s < ' ' || *s == 0x7f)
      return 0;
  return 1;
}

/* Check the fields that do not depend on tensors.  Errors name the field.  */
static int
check_fields (const pmx_model_config *c)
{
#define RANGE(f, lo, hi) \
  if (c->f < (lo) || c->f > (hi)) \
    return pmx_error (#f ": %d is outside [%d, %d]", c->f, (int) (lo), (int) (hi))
  if (strcmp (c->arch, "bert") != 0)
    return pmx_error ("arch: '%s' is not supported (only 'bert')", c->arch);
  if (!valid_text (c->task, sizeof c->task - 1, 1))
    return pmx_error ("task: invalid text");
  RANGE (vocab_size, 1, 1 << 24);
  RANGE (hidden, 1, 1 << 16);
  RANGE (layers, 0, MAX_LAYERS);
  RANGE (heads, 1, 1024);
  RANGE (head_dim, 1, 1024);
  RANGE (intermediate, 1, 1 << 20);
  RANGE (max_position, 1, 1 << 20);
  RANGE (type_vocab, 1, 1 << 16);
  if (!(c->ln_eps > 0 && c->ln_eps < 1))
    return pmx_error ("ln_eps: %g is outside (0, 1)", c->ln_eps);
  if (!(c->sparsity >= 0 && c->sparsity <= 1))
    return pmx_error ("sparsity: %g is outside [0, 1]", c->sparsity);
  RANGE (mux_n, 1, 4096);
  if (!in_set (c->mux_variant, mux_variants))
    return pmx_error ("mux_variant: '%s' is not supported", c->mux_variant);
  if (!in_set (c->demux_variant, demux_variants))
    return pmx_error ("demux_variant: '%s' is not supported", c->demux_variant);
  if ((strcmp (c->mux_variant, "none") == 0) != (strcmp (c->demux_variant, "none") == 0))
    return pmx_error ("mux_variant '%s' and demux_variant '%s' do not go together",
                      c->mux_variant, c->demux_variant);
  if (strcmp (c->mux_variant, "none") == 0 && c->mux_n != 1)
    return pmx_error ("mux_n: %d instances without a mux_variant", c->mux_n);
  RANGE (demux_layers, 0, 64);
  RANGE (num_labels, 0, PMX_MAX_LABELS);
  if (c->num_labels > 0 && !c->labels)
    return pmx_error ("labels: missing");
  for (int i = 0; i < c->num_labels; i++)
    {
      if (!c->labels[i] || !valid_text (c->labels[i], PMX_LABEL_MAX, 0))
        return pmx_error ("labels: label %d is empty, too long or has control"
                          " characters", i);
      for (int j = 0; j < i; j++)
        if (strcmp (c->labels[i], c->labels[j]) == 0)
          return pmx_error ("labels: '%s' appears twice", c->labels[i]);
    }
  if (!in_set (c->pooling, poolings))
    return pmx_error ("pooling: '%s' is not one of cls, mean, pooler", c->pooling);
  RANGE (normalize, 0, 1);
  RANGE (attend_padding, 0, 1);
  RANGE (max_length, 2, c->max_position);
  RANGE (lowercase, 0, 1);
  RANGE (strip_accents, 0, 1);
#undef RANGE
  return 0;
}

/* ---- Validation against the tensors --------------------------------------- */

typedef struct tensor_set
{
  int n;
  const pmx_tensor *const *t;
} tensor_set;

static const pmx_tensor *
set_get (const tensor_set *s, const char *name)
{
  for (int i = 0; i < s->n; i++)
    if (strcmp (s->t[i]->name, name) == 0)
      return s->t[i];
  return NULL;
}

/* The tensor NAME must exist (if REQUIRED) with rank RANK and dims D0, D1
   (-1: any).  Returns the tensor, or NULL: *ERR is set to -1 with an error
   if it is wrong or required and missing.  */
static const pmx_tensor *
want (const tensor_set *s, int *err, int required, const char *name, int rank,
      int64_t d0, int64_t d1)
{
  const pmx_tensor *t = set_get (s, name);
  if (!t)
    {
      if (required && *err == 0)
        *err = pmx_error ("tensor '%s' is missing", name);
      return NULL;
    }
  if (*err)
    return t;
  char sh[8 * 24];
  if (t->rank != rank || (d0 >= 0 && t->shape[0] != d0)
      || (rank > 1 && d1 >= 0 && t->shape[1] != d1))
    {
      char ex[64];
      if (rank == 1)
        snprintf (ex, sizeof ex, "%lld", (long long) d0);
      else
        snprintf (ex, sizeof ex, "%lldx%lld", (long long) d0, (long long) d1);
      *err = pmx_error ("tensor '%s' has shape %s, expected %s", name,
                        pmx_shape_str (t, sh, sizeof sh), ex);
    }
  return t;
}

/* The linear layer PREFIX.{weight (OUT, IN), bias (OUT)}.  Returns the
   weight or NULL.  */
static const pmx_tensor *
want_linear (const tensor_set *s, int *err, int required, const char *prefix,
             int64_t out, int64_t in)
{
  char w[PMX_NAME_MAX + 1], b[PMX_NAME_MAX + 1];
  snprintf (w, sizeof w, "%s.weight", prefix);
  snprintf (b, sizeof b, "%s.bias", prefix);
  const pmx_tensor *t = want (s, err, required, w, 2, out, in);
  if (t && !*err)
    want (s, err, 1, b, 1, t->shape[0], -1);
  else if (!t && set_get (s, b) && !*err)
    *err = pmx_error ("tensor '%s' is missing", w);
  return t;
}

static void
want_norm (const tensor_set *s, int *err, int required, const char *prefix,
           int64_t n)
{
  char w[PMX_NAME_MAX + 1], b[PMX_NAME_MAX + 1];
  snprintf (w, sizeof w, "%s.weight", prefix);
  snprintf (b, sizeof b, "%s.bias", prefix);
  want (s, err, required, w, 1, n, -1);
  want (s, err, required || set_get (s, w), b, 1, n, -1);
}

/* Check the tensors S against C and fill HEADS and FFN (C->layers each:
   heads and FFN width of each layer, 0 for a pruned sublayer).  */
static int
check_tensors (const pmx_model_config *c, const tensor_set *s, int *heads,
               int *ffn)
{
  int err = 0;
  int64_t H = c->hidden;
  char p[PMX_NAME_MAX + 1];
  for (int i = 0; i < s->n; i++)
    {
      const pmx_tensor *t = s->t[i];
      if (t->dtype != PMX_F32)
        return pmx_error ("tensor '%s' is %s, not f32", t->name,
                          pmx_dtype_name (t->dtype));
      if (t->rank < 1)
        return pmx_error ("tensor '%s' is a scalar", t->name);
      if (strncmp (t->name, "encoder.layer.", 14) == 0)
        {
          char *end;
          errno = 0;
          long l = strtol (t->name + 14, &end, 10);
          if (!isdigit ((unsigned char) t->name[14]) || *end != '.' || errno
              || l >= c->layers)
            return pmx_error ("tensor '%s' belongs to no layer of %d", t->name,
                              c->layers);
        }
    }
  want (s, &err, 1, "embeddings.word_embeddings.weight", 2, c->vocab_size, H);
  want (s, &err, 1, "embeddings.position_embeddings.weight", 2, c->max_position, H);
  want (s, &err, 1, "embeddings.token_type_embeddings.weight", 2, c->type_vocab, H);
  want_norm (s, &err, 1, "embeddings.LayerNorm", H);
  for (int l = 0; l < c->layers && !err; l++)
    {
      /* Attention: all of Q, K, V, output dense and LayerNorm, or none.  */
      snprintf (p, sizeof p, "encoder.layer.%d.attention.self.query", l);
      const pmx_tensor *q = want_linear (s, &err, 0, p, -1, H);
      int64_t dq = q ? q->shape[0] : 0;
      heads[l] = 0;
      if (q && !err)
        {
          if (dq % c->head_dim || dq / c->head_dim > c->heads || dq == 0)
            return pmx_error ("tensor '%s.weight': %lld rows are not 1 to %d"
                              " heads of %d", p, (long long) dq, c->heads,
                              c->head_dim);
          heads[l] = (int) (dq / c->head_dim);
        }
      snprintf (p, sizeof p, "encoder.layer.%d.attention.self.key", l);
      want_linear (s, &err, q != NULL, p, dq, H);
      snprintf (p, sizeof p, "encoder.layer.%d.attention.self.value", l);
      want_linear (s, &err, q != NULL, p, dq, H);
      snprintf (p, sizeof p, "encoder.layer.%d.attention.output.dense", l);
      want_linear (s, &err, q != NULL, p, H, dq);
      snprintf (p, sizeof p, "encoder.layer.%d.attention.output.LayerNorm", l);
      want_norm (s, &err, q != NULL, p, H);
      if (!q && !err)
        {
          /* Without a query, nothing else of the attention may remain.  */
          snprintf (p, sizeof p, "encoder.layer.%d.attention.", l);
          for (int i = 0; i < s->n; i++)
            if (strncmp (s->t[i]->name, p, strlen (p)) == 0)
              return pmx_error ("tensor '%s' without the layer's query",
                                s->t[i]->name);
        }
      /* FFN.  */
      snprintf (p, sizeof p, "encoder.layer.%d.intermediate.dense", l);
      const pmx_tensor *fi = want_linear (s, &err, 0, p, -1, H);
      int64_t m = fi ? fi->shape[0] : 0;
      ffn[l] = 0;
      if (fi && !err)
        {
          if (m < 1 || m > c->intermediate)
            return pmx_error ("tensor '%s.weight': FFN width %lld is outside"
                              " [1, %d]", p, (long long) m, c->intermediate);
          ffn[l] = (int) m;
        }
      snprintf (p, sizeof p, "encoder.layer.%d.output.dense", l);
      want_linear (s, &err, fi != NULL, p, H, m);
      snprintf (p, sizeof p, "encoder.layer.%d.output.LayerNorm", l);
      want_norm (s, &err, fi != NULL, p, H);
      if (!fi && !err)
        {
          snprintf (p, sizeof p, "encoder.layer.%d.", l);
          for (int i = 0; i < s->n; i++)
            if (strncmp (s->t[i]->name, p, strlen (p)) == 0
                && strncmp (s->t[i]->name + strlen (p), "attention.", 10) != 0)
              return pmx_error ("tensor '%s' without the layer's"
                                " intermediate.dense", s->t[i]->name);
        }
    }
  if (err)
    return -1;
  const pmx_tensor *pool = want_linear (s, &err, !strcmp (c->pooling, "pooler"),
                                        "pooler.dense", -1, H);
  if (err)
    return pmx_error_prefix ("pooling 'pooler'");
  /* Multiplexing: instance keys, and the demux module (index_pos) or the
     demultiplexer (index) that a classifier reads through.  */
  int64_t demux_out = -1;
  if (strcmp (c->mux_variant, "gaussian_hadamard") == 0)
    want (s, &err, 1, "instance_embedding", 2, c->mux_n, H);
  int cls = c->num_labels > 0;
  if (strcmp (c->demux_variant, "index_pos") == 0)
    {
      want (s, &err, 1, "demux_module.demux_instance_embedding", 2, c->mux_n, H);
      const pmx_tensor *d1 = want_linear (s, &err, 1, "demux_module.dense_1",
                                          -1, 2 * H);
      demux_out = d1 && !err ? d1->shape[0] : 0;
      for (int k = 2; k <= c->demux_layers && !err; k++)
        {
          snprintf (p, sizeof p, "demux_module.dense_%d", k);
          want_linear (s, &err, k < c->demux_layers, p, demux_out, demux_out);
        }
      want_linear (s, &err, cls, "demultiplexer.pre_decoder", demux_out, demux_out);
      want_norm (s, &err, cls, "demultiplexer.pre_decoder_layer_norm", demux_out);
    }
  else if (strcmp (c->demux_variant, "index") == 0)
    {
      const pmx_tensor *d = want_linear (s, &err, cls, "demultiplexer.dense",
                                         -1, 2 * H);
      demux_out = d && !err ? d->shape[0] : 0;
      if (d)
        want_norm (s, &err, 1, "demultiplexer.layer_norm", demux_out);
    }
  else if (strcmp (c->demux_variant, "mlp") == 0)
    {
      /* N private MLPs (H -> D1) and the shared output projection, which
         the demultiplexer needs with or without a classifier.  */
      int64_t d1 = -1;
      for (int i = 0; i < c->mux_n && !err; i++)
        {
          snprintf (p, sizeof p, "demux_module.dense_%d", i);
          const pmx_tensor *t = want_linear (s, &err, 1, p, d1, H);
          if (t && !err)
            d1 = t->shape[0];
          snprintf (p, sizeof p, "demux_module.layer_norm_%d", i);
          want_norm (s, &err, 1, p, d1);
        }
      const pmx_tensor *o = want_linear (s, &err, 1,
                                         "demultiplexer.dense_before_out_proj",
                                         -1, d1);
      demux_out = o && !err ? o->shape[0] : 0;
      want_norm (s, &err, 1, "demultiplexer.layernorm", demux_out);
    }
  if (err)
    return -1;
  /* Classifier: rows are the labels; its input is what feeds it.  */
  int64_t cin = H;
  if (demux_out >= 0)
    cin = demux_out;
  else if (strcmp (c->pooling, "pooler") == 0)
    cin = pool->shape[0];
  const pmx_tensor *ct = want_linear (s, &err, 0, "classifier", c->num_labels, cin);
  if (err)
    return -1;
  if (!ct && cls)
    return pmx_error ("num_labels is %d but there is no classifier",
                      c->num_labels);
  if (ct && !cls)
    return pmx_error ("num_labels is 0 but there is a classifier with %lld rows",
                      (long long) ct->shape[0]);
  return 0;
}

/* Every weight must be a finite number: one NaN or infinity makes every
   output NaN.  The scan reads each weight once: 15 to 30 ms more to open
   the 91 MB MiniLM archive (0.4 to 2 ms without it), so it is done at
   every open and save, not left to verify (prumux-model(5)).  */
static int
check_finite (const tensor_set *s, const pmx_model *m)
{
  for (int i = 0; i < s->n; i++)
    {
      const pmx_tensor *t = s->t[i];
      if (t->dtype != PMX_F32)
        continue;
      size_t n = t->nbytes / sizeof (float);
      if (pmx_count_nonfinite (t->data, n) == 0)
        {
          /* Read once here: a mapped archive need not stay resident (the
             stages touch again only what they use).  */
          if (m)
            pmx_model_drop_pages (m, t->data, t->nbytes);
          continue;
        }
      const float *x = t->data;
      size_t k = 0;
      while (k < n && pmx_count_nonfinite (x + k, 1) == 0)
        k++;
      return pmx_error ("tensor '%s': element %zu is %g (weights must be"
                        " finite)", t->name, k, (double) x[k]);
    }
  return 0;
}

/* ---- config.json ----------------------------------------------------------- */

/* CFG as JSON, with the per-layer shapes, and the id unless WITH_ID is 0.  */
static json_t *
config_to_json (const pmx_model_config *c, const int *heads, const int *ffn,
                int with_id)
{
  json_t *o = json_object ();
  json_t *lab = json_array (), *lh = json_array (), *lf = json_array ();
  for (int i = 0; i < c->num_labels; i++)
    json_array_append_new (lab, json_string (c->labels[i]));
  for (int l = 0; l < c->layers; l++)
    {
      json_array_append_new (lh, json_integer (heads[l]));
      json_array_append_new (lf, json_integer (ffn[l]));
    }
  json_object_set_new (o, "format_version", json_integer (FORMAT_VERSION));
  if (with_id)
    json_object_set_new (o, "id", json_string (c->id));
  json_object_set_new (o, "arch", json_string (c->arch));
  json_object_set_new (o, "task", json_string (c->task));
  json_object_set_new (o, "vocab_size", json_integer (c->vocab_size));
  json_object_set_new (o, "hidden", json_integer (c->hidden));
  json_object_set_new (o, "layers", json_integer (c->layers));
  json_object_set_new (o, "heads", json_integer (c->heads));
  json_object_set_new (o, "head_dim", json_integer (c->head_dim));
  json_object_set_new (o, "intermediate", json_integer (c->intermediate));
  json_object_set_new (o, "max_position", json_integer (c->max_position));
  json_object_set_new (o, "type_vocab", json_integer (c->type_vocab));
  json_object_set_new (o, "ln_eps", json_real (c->ln_eps));
  /* Only pruned models have it, so older archives keep their identity.  */
  if (c->sparsity > 0)
    json_object_set_new (o, "sparsity", json_real (c->sparsity));
  json_object_set_new (o, "layer_heads", lh);
  json_object_set_new (o, "layer_ffn", lf);
  json_object_set_new (o, "mux_n", json_integer (c->mux_n));
  json_object_set_new (o, "mux_variant", json_string (c->mux_variant));
  json_object_set_new (o, "demux_variant", json_string (c->demux_variant));
  json_object_set_new (o, "demux_layers", json_integer (c->demux_layers));
  json_object_set_new (o, "num_labels", json_integer (c->num_labels));
  json_object_set_new (o, "labels", lab);
  json_object_set_new (o, "pooling", json_string (c->pooling));
  json_object_set_new (o, "normalize", json_boolean (c->normalize));
  json_object_set_new (o, "attend_padding", json_boolean (c->attend_padding));
  json_object_set_new (o, "max_length", json_integer (c->max_length));
  json_object_set_new (o, "lowercase", json_boolean (c->lowercase));
  json_object_set_new (o, "strip_accents", json_boolean (c->strip_accents));
  return o;
}

static int
get_int (json_t *o, const char *key, int *out)
{
  json_t *v = json_object_get (o, key);
  if (!v)
    return pmx_error ("%s: missing", key);
  if (!json_is_integer (v) || json_integer_value (v) < INT_MIN
      || json_integer_value (v) > INT_MAX)
    return pmx_error ("%s: not a whole number", key);
  *out = (int) json_integer_value (v);
  return 0;
}

static int
get_bool (json_t *o, const char *key, int *out)
{
  json_t *v = json_object_get (o, key);
  if (!v)
    return pmx_error ("%s: missing", key);
  if (!json_is_boolean (v))
    return pmx_error ("%s: not true or false", key);
  *out = json_is_true (v);
  return 0;
}

static int
get_str (json_t *o, const char *key, char *out, size_t size)
{
  json_t *v = json_object_get (o, key);
  if (!v)
    return pmx_error ("%s: missing", key);
  if (!json_is_string (v))
    return pmx_error ("%s: not a string", key);
  if (json_string_length (v) >= size || strlen (json_string_value (v)) != json_string_length (v))
    return pmx_error ("%s: longer than %zu bytes", key, size - 1);
  strcpy (out, json_string_value (v));
  return 0;
}

/* Per-layer array KEY of N whole numbers into OUT.  */
static int
get_layer_array (json_t *o, const char *key, int n, int *out)
{
  json_t *v = json_object_get (o, key);
  if (!json_is_array (v) || json_array_size (v) != (size_t) n)
    return pmx_error ("%s: not an array of %d numbers", key, n);
  for (int i = 0; i < n; i++)
    {
      json_t *e = json_array_get (v, (size_t) i);
      if (!json_is_integer (e) || json_integer_value (e) < 0
          || json_integer_value (e) > INT_MAX)
        return pmx_error ("%s: element %d is not a whole number >= 0", key, i);
      out[i] = (int) json_integer_value (e);
    }
  return 0;
}

/* Parse config.json TEXT into C (initialised) and the per-layer arrays
   (allocated here).  Errors name the field.  */
static int
config_parse (const char *text, size_t len, pmx_model_config *c, int **heads,
              int **ffn)
{
  json_error_t jerr;
  json_t *o = json_loadb (text, len, JSON_REJECT_DUPLICATES, &jerr);
  if (!o)
    return pmx_error ("invalid JSON: %s (line %d)", jerr.text, jerr.line);
  int rc = -1, ver;
  if (!json_is_object (o))
    {
      pmx_error ("not a JSON object");
      goto out;
    }
  if (get_int (o, "format_version", &ver) < 0)
    goto out;
  if (ver != FORMAT_VERSION)
    {
      pmx_error ("format_version: %d is not supported (this program reads %d)",
                 ver, FORMAT_VERSION);
      goto out;
    }
  if (get_str (o, "id", c->id, sizeof c->id) < 0
      || get_str (o, "arch", c->arch, sizeof c->arch) < 0
      || get_str (o, "task", c->task, sizeof c->task) < 0
      || get_int (o, "vocab_size", &c->vocab_size) < 0
      || get_int (o, "hidden", &c->hidden) < 0
      || get_int (o, "layers", &c->layers) < 0
      || get_int (o, "heads", &c->heads) < 0
      || get_int (o, "head_dim", &c->head_dim) < 0
      || get_int (o, "intermediate", &c->intermediate) < 0
      || get_int (o, "max_position", &c->max_position) < 0
      || get_int (o, "type_vocab", &c->type_vocab) < 0
      || get_int (o, "mux_n", &c->mux_n) < 0
      || get_str (o, "mux_variant", c->mux_variant, sizeof c->mux_variant) < 0
      || get_str (o, "demux_variant", c->demux_variant, sizeof c->demux_variant) < 0
      || get_int (o, "demux_layers", &c->demux_layers) < 0
      || get_int (o, "num_labels", &c->num_labels) < 0
      || get_str (o, "pooling", c->pooling, sizeof c->pooling) < 0
      || get_bool (o, "normalize", &c->normalize) < 0
      || get_bool (o, "attend_padding", &c->attend_padding) < 0
      || get_int (o, "max_length", &c->max_length) < 0
      || get_bool (o, "lowercase", &c->lowercase) < 0
      || get_bool (o, "strip_accents", &c->strip_accents) < 0)
    goto out;
  if (strlen (c->id) != 32 || strspn (c->id, "0123456789abcdef") != 32)
    {
      pmx_error ("id: '%s' is not 32 lowercase hex digits", c->id);
      goto out;
    }
  json_t *eps = json_object_get (o, "ln_eps");
  if (!json_is_number (eps))
    {
      pmx_error ("ln_eps: missing or not a number");
      goto out;
    }
  c->ln_eps = json_number_value (eps);
  json_t *sp = json_object_get (o, "sparsity");
  if (sp && !json_is_number (sp))
    {
      pmx_error ("sparsity: not a number");
      goto out;
    }
  c->sparsity = sp ? json_number_value (sp) : 0;
  json_t *lab = json_object_get (o, "labels");
  if (!json_is_array (lab) || c->num_labels < 0 || c->num_labels > PMX_MAX_LABELS
      || json_array_size (lab) != (size_t) c->num_labels)
    {
      pmx_error ("labels: not an array of num_labels (%d) names", c->num_labels);
      goto out;
    }
  if (c->num_labels > 0)
    {
      c->labels = calloc ((size_t) c->num_labels, sizeof *c->labels);
      if (!c->labels)
        {
          pmx_error ("out of memory");
          goto out;
        }
      for (int i = 0; i < c->num_labels; i++)
        {
          json_t *e = json_array_get (lab, (size_t) i);
          if (!json_is_string (e)
              || strlen (json_string_value (e)) != json_string_length (e))
            {
              /* Leave num_labels as the count of names we hold.  */
              int n = c->num_labels;
              c->num_labels = i;
              pmx_error ("labels: element %d of %d is not a string", i, n);
              goto out;
            }
          c->labels[i] = strdup (json_string_value (e));
          if (!c->labels[i])
            {
              c->num_labels = i;
              pmx_error ("out of memory");
              goto out;
            }
        }
    }
  if (check_fields (c) < 0)
    goto out;
  *heads = calloc ((size_t) c->layers + 1, sizeof (int));
  *ffn = calloc ((size_t) c->layers + 1, sizeof (int));
  if (!*heads || !*ffn)
    {
      pmx_error ("out of memory");
      goto out;
    }
  if (get_layer_array (o, "layer_heads", c->layers, *heads) < 0
      || get_layer_array (o, "layer_ffn", c->layers, *ffn) < 0)
    goto out;
  rc = 0;
out:
  json_decref (o);
  return rc;
}

/* ---- Identity ------------------------------------------------------------- */

static int
compute_id (const pmx_model_config *c, const int *heads, const int *ffn,
            const char *vocab, size_t vocab_len, const void *stream,
            size_t stream_len, char out[33])
{
  json_t *o = config_to_json (c, heads, ffn, 0);
  char *text = o ? json_dumps (o, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION (15)) : NULL;
  json_decref (o);
  if (!text)
    return pmx_error ("out of memory");
  hash128 h;
  hash_init (&h);
  hash_segment (&h, text, strlen (text));
  hash_segment (&h, vocab ? vocab : "", vocab ? vocab_len : 0);
  hash_segment (&h, stream, stream_len);
  hash_hex (&h, out);
  free (text);
  return 0;
}

/* ---- Writing ---------------------------------------------------------------- */

static int
add_member (struct archive *a, const char *name, const void *data, size_t len)
{
  struct archive_entry *e = archive_entry_new ();
  if (!e)
    return pmx_error ("out of memory");
  archive_entry_set_pathname (e, name);
  archive_entry_set_size (e, (la_int64_t) len);
  archive_entry_set_filetype (e, AE_IFREG);
  archive_entry_set_perm (e, 0644);
  archive_entry_set_mtime (e, 0, 0);    /* same input, same bytes */
  int rc = archive_write_header (a, e);
  archive_entry_free (e);
  if (rc != ARCHIVE_OK)
    return pmx_error ("%s: %s", name, archive_error_string (a));
  const char *p = data;
  while (len > 0)
    {
      size_t n = len < ((size_t) 1 << 24) ? len : (size_t) 1 << 24;
      la_ssize_t w = archive_write_data (a, p, n);
      if (w <= 0)
        return archive_errno (a) > 0
               ? pmx_error_errno (archive_errno (a), "%s: write error", name)
               : pmx_error ("%s: %s", name, archive_error_string (a)
                            ? archive_error_string (a) : "write error");
      p += w;
      len -= (size_t) w;
    }
  return 0;
}

/* The tensors of RECS as NRECS records of a stream held in memory.  */
static int
stream_to_memory (const pmx_record *recs, int nrecs, char **buf, size_t *len)
{
  *buf = NULL;
  FILE *f = open_memstream (buf, len);
  if (!f)
    return pmx_error_errno (errno, "open_memstream");
  pmx_meta meta;
  pmx_meta_init (&meta);
  pmx_meta_set (&meta, "content", "model-tensors");
  pmx_writer *w = pmx_writer_open (f, "tensors.pmxs", &meta);
  pmx_meta_free (&meta);
  int rc = -1;
  if (w)
    {
      pmx_writer_set_flush (w, 0);
      rc = 0;
      for (int i = 0; i < nrecs && rc == 0; i++)
        rc = pmx_writer_write (w, &recs[i]);
      if (rc == 0)
        rc = pmx_writer_finish (w);
      pmx_writer_close (w);
    }
  if (fclose (f) != 0 && rc == 0)
    rc = pmx_error_errno (errno, "tensors.pmxs");
  if (rc < 0)
    {
      free (*buf);
      *buf = NULL;
    }
  return rc;
}

/* zstd output.  libarchive's zstd writer leaves the frame's content
   checksum out, so for zstd the tar goes through this compressor instead
   (zstd's default level 3, checksum on); readers then catch corruption.  */
typedef struct zsink
{
  int fd;
  ZSTD_CCtx *cc;
  unsigned char out[1 << 16];
} zsink;

/* Compress LEN bytes of SRC (MODE ZSTD_e_end: and end the frame), writing
   what comes out to Z->fd.  Errors are set on A.  */
static int
zsink_push (struct archive *a, zsink *z, const void *src, size_t len,
            ZSTD_EndDirective mode)
{
  ZSTD_inBuffer in = { src, len, 0 };
  for (;;)
    {
      ZSTD_outBuffer out = { z->out, sizeof z->out, 0 };
      size_t left = ZSTD_compressStream2 (z->cc, &out, &in, mode);
      if (ZSTD_isError (left))
        {
          archive_set_error (a, EIO, "zstd: %s", ZSTD_getErrorName (left));
          return -1;
        }
      for (size_t done = 0; done < out.pos;)
        {
          ssize_t w = write (z->fd, z->out + done, out.pos - done);
          if (w < 0 && errno == EINTR)
            continue;
          if (w <= 0)
            {
              archive_set_error (a, w < 0 ? errno : EIO, "write error");
              return -1;
            }
          done += (size_t) w;
        }
      if (mode == ZSTD_e_end ? left == 0 : in.pos == in.size)
        return 0;
    }
}

static la_ssize_t
zsink_write (struct archive *a, void *data, const void *buf, size_t len)
{
  return zsink_push (a, data, buf, len, ZSTD_e_continue) < 0 ? -1
    : (la_ssize_t) len;
}

static int
zsink_close (struct archive *a, void *data)
{
  return zsink_push (a, data, NULL, 0, ZSTD_e_end) < 0 ? ARCHIVE_FATAL
    : ARCHIVE_OK;
}

static int
write_archive (int fd, int compress, const char *config, const char *vocab,
               size_t vocab_len, const char *stream, size_t stream_len)
{
  struct archive *a = archive_write_new ();
  if (!a)
    return pmx_error ("out of memory");
  int rc = archive_write_set_format_pax_restricted (a);
  if (rc == ARCHIVE_OK)
    switch (compress)
      {
      case PMX_COMPRESS_NONE: rc = archive_write_add_filter_none (a); break;
      case PMX_COMPRESS_GZIP: rc = archive_write_add_filter_gzip (a); break;
      case PMX_COMPRESS_ZSTD: rc = archive_write_add_filter_none (a); break;
      case PMX_COMPRESS_XZ: rc = archive_write_add_filter_xz (a); break;
      default:
        archive_write_free (a);
        return pmx_error ("unknown compression %d", compress);
      }
  if (rc != ARCHIVE_OK)
    {
      pmx_error ("%s", archive_error_string (a));
      archive_write_free (a);
      return -1;
    }
  archive_write_set_bytes_in_last_block (a, 1);
  zsink *z = NULL;
  if (compress == PMX_COMPRESS_ZSTD)
    {
      z = malloc (sizeof *z);
      if (z)
        z->cc = ZSTD_createCCtx ();
      if (!z || !z->cc
          || ZSTD_isError (ZSTD_CCtx_setParameter (z->cc, ZSTD_c_compressionLevel, 3))
          || ZSTD_isError (ZSTD_CCtx_setParameter (z->cc, ZSTD_c_checksumFlag, 1)))
        {
          if (z)
            ZSTD_freeCCtx (z->cc);
          free (z);
          archive_write_free (a);
          return pmx_error ("out of memory");
        }
      z->fd = fd;
    }
  if ((z ? archive_write_open (a, z, NULL, zsink_write, zsink_close)
       : archive_write_open_fd (a, fd)) != ARCHIVE_OK)
    {
      pmx_error ("%s", archive_error_string (a));
      archive_write_free (a);
      if (z)
        ZSTD_freeCCtx (z->cc);
      free (z);
      return -1;
    }
  char marker[64];
  snprintf (marker, sizeof marker, MARKER_TEXT "%d\n", FORMAT_VERSION);
  rc = add_member (a, MARKER_NAME, marker, strlen (marker));
  if (rc == 0)
    rc = add_member (a, "config.json", config, strlen (config));
  if (rc == 0 && vocab)
    rc = add_member (a, "vocab.txt", vocab, vocab_len);
  if (rc == 0)
    rc = add_member (a, "tensors.pmxs", stream, stream_len);
  /* Closing writes the end blocks and flushes: a full disk shows here.  */
  if (archive_write_close (a) != ARCHIVE_OK && rc == 0)
    rc = archive_errno (a) > 0
         ? pmx_error_errno (archive_errno (a), "write error")
         : pmx_error ("%s", archive_error_string (a)
                      ? archive_error_string (a) : "write error");
  archive_write_free (a);
  if (z)
    ZSTD_freeCCtx (z->cc);
  free (z);
  return rc;
}

int
pmx_model_save (const char *path, pmx_model_config *cfg,
                const pmx_record *tensors, const char *vocab,
                size_t vocab_len, int compress)
{
  return pmx_model_save_records (path, cfg, tensors, 1, vocab, vocab_len,
                                 compress);
}

int
pmx_model_save_records (const char *path, pmx_model_config *cfg,
                        const pmx_record *recs, int nrecs, const char *vocab,
                        size_t vocab_len, int compress)
{
  if (check_fields (cfg) < 0)
    return pmx_error_prefix ("%s: config", path);
  if (vocab && vocab_len > VOCAB_MAX)
    return pmx_error ("%s: vocab.txt: larger than %u bytes", path, VOCAB_MAX);
  int n = 0;
  for (int i = 0; i < nrecs; i++)
    n += recs[i].count;
  const pmx_tensor **list = malloc (sizeof *list * (size_t) (n + 1));
  int *heads = calloc ((size_t) cfg->layers + 1, sizeof (int));
  int *ffn = calloc ((size_t) cfg->layers + 1, sizeof (int));
  char *stream = NULL, *config = NULL;
  size_t stream_len = 0;
  int rc = -1;
  pmx_outfile of;
  tensor_set set = {0, list};
  if (!heads || !ffn || !list)
    {
      pmx_error ("out of memory");
      goto out;
    }
  for (int i = 0; i < nrecs; i++)
    for (int j = 0; j < recs[i].count; j++)
      {
        const pmx_tensor *t = recs[i].slot[j];
        if (set_get (&set, t->name))
          {
            pmx_error ("%s: duplicate tensor '%s'", path, t->name);
            goto out;
          }
        list[set.n++] = t;
      }
  if (check_tensors (cfg, &set, heads, ffn) < 0 || check_finite (&set, NULL) < 0)
    {
      pmx_error_prefix ("%s", path);
      goto out;
    }
  if (stream_to_memory (recs, nrecs, &stream, &stream_len) < 0
      || compute_id (cfg, heads, ffn, vocab, vocab_len, stream, stream_len,
                     cfg->id) < 0)
    {
      pmx_error_prefix ("%s", path);
      goto out;
    }
  json_t *o = config_to_json (cfg, heads, ffn, 1);
  config = o ? json_dumps (o, JSON_INDENT (2) | JSON_REAL_PRECISION (15)) : NULL;
  json_decref (o);
  if (!config)
    {
      pmx_error ("out of memory");
      goto out;
    }
  if (pmx_outfile_open (&of, path) < 0)
    goto out;
  if (write_archive (of.fd, compress, config, vocab, vocab_len, stream,
                     stream_len) < 0)
    {
      pmx_error_prefix ("%s", path);
      pmx_outfile_abort (&of);
      goto out;
    }
  rc = pmx_outfile_commit (&of);
out:
  free (config);
  free (stream);
  free (heads);
  free (ffn);
  free (list);
  return rc;
}

/* ---- Reading ------------------------------------------------------------------ */

/* Read the current member of A (SIZE bytes claimed) into a new buffer,
   aligned for tensors and NUL-terminated; grown as data arrives so a
   hostile size costs nothing.  If the data lies in place in [MAP, MAP+MAPLEN)
   at a PMX_ALIGN boundary, *INPLACE receives it instead and *BUF is NULL.
   MAGIC, if not NULL, is what the first 8 bytes must be: checked as soon as
   they arrive, so a member of garbage is refused before it is inflated.  */
static int
read_member (struct archive *a, la_int64_t size, size_t cap, const void *map,
             size_t maplen, const char *magic, char **buf,
             const unsigned char **inplace, size_t *len)
{
  *buf = NULL;
  *len = 0;
  if (inplace)
    *inplace = NULL;
  if (size < 0 || (uint64_t) size > cap)
    return pmx_error ("member of %lld bytes exceeds the %zu-byte limit",
                      (long long) size, cap);
  size_t have = 0, alloc = 0;
  char *p = NULL;
  for (;;)
    {
      const void *blk;
      size_t n;
      la_int64_t off;
      int rc = archive_read_data_block (a, &blk, &n, &off);
      if (rc == ARCHIVE_EOF)
        break;
      if (rc != ARCHIVE_OK)
        {
          free (p);
          return pmx_error ("%s", archive_error_string (a)
                            ? archive_error_string (a) : "read error");
        }
      if (off < 0 || (uint64_t) off != have || n > (size_t) size - have)
        {
          free (p);
          return pmx_error ("sparse or oversized member data");
        }
      if (magic && have < 8)
        {
          /* The magic may straddle blocks: compare what this one holds.  */
          size_t k = n < 8 - have ? n : 8 - have;
          if (memcmp (blk, magic + have, k) != 0)
            {
              free (p);
              return pmx_error ("not a prumux stream (bad magic)");
            }
        }
      /* The whole member in one block, inside the mapping: use in place.  */
      if (inplace && have == 0 && n == (size_t) size && n > 0
          && (const char *) blk >= (const char *) map
          && (const char *) blk + n <= (const char *) map + maplen
          && (uintptr_t) blk % PMX_ALIGN == 0)
        {
          *inplace = blk;
          *len = n;
          return 0;
        }
      if (have + n + 1 > alloc)
        {
          size_t na = alloc ? alloc : 1 << 16;
          while (na < have + n + 1)
            na *= 2;
          if (na > (size_t) size + 1)
            na = (size_t) size + 1;
          void *q = NULL;
          if (posix_memalign (&q, PMX_ALIGN, na) != 0)
            {
              free (p);
              return pmx_error ("out of memory for %zu bytes", na);
            }
          if (have)
            memcpy (q, p, have);
          free (p);
          p = q;
          alloc = na;
        }
      memcpy (p + have, blk, n);
      have += n;
    }
  if (have != (size_t) size)
    {
      free (p);
      return pmx_error ("truncated: %zu of %lld bytes", have, (long long) size);
    }
  if (magic && have < 8)
    {
      free (p);
      return pmx_error ("not a prumux stream (%zu bytes)", have);
    }
  if (!p && posix_memalign ((void **) &p, PMX_ALIGN, 1) != 0)
    return pmx_error ("out of memory");
  p[have] = '\0';
  *buf = p;
  *len = have;
  return 0;
}

/* Read the tensor records of the stream in M.  */
static int
read_tensors (pmx_model *m)
{
  pmx_reader *r = pmx_reader_open_mem (m->stream_at, m->stream_len, "tensors.pmxs");
  if (!r)
    return -1;
  int rc;
  for (;;)
    {
      pmx_record *nr = realloc (m->recs, sizeof *nr * (size_t) (m->nrecs + 1));
      if (!nr)
        {
          rc = pmx_error ("out of memory");
          break;
        }
      m->recs = nr;
      pmx_record_init (&m->recs[m->nrecs]);
      rc = pmx_reader_read (r, &m->recs[m->nrecs]);
      if (rc <= 0)
        {
          pmx_record_free (&m->recs[m->nrecs]);
          break;
        }
      m->nrecs++;
      m->ntensors += m->recs[m->nrecs - 1].count;
    }
  pmx_reader_close (r);
  if (rc < 0)
    return -1;
  if (m->nrecs == 0)
    return pmx_error ("tensors.pmxs: no tensor record");
  m->tensors = malloc (sizeof *m->tensors * (size_t) (m->ntensors + 1));
  if (!m->tensors)
    return pmx_error ("out of memory");
  int k = 0;
  for (int i = 0; i < m->nrecs; i++)
    for (int j = 0; j < m->recs[i].count; j++)
      {
        const pmx_tensor *t = m->recs[i].slot[j];
        for (int u = 0; u < k; u++)
          if (strcmp (m->tensors[u]->name, t->name) == 0)
            return pmx_error ("tensors.pmxs: duplicate tensor '%s'", t->name);
        m->tensors[k++] = t;
      }
  return 0;
}

/* ---- Compressed archives ---------------------------------------------------

   A compressed archive is unpacked in two layers: libarchive's "raw" format
   undoes the compression, and a second reader takes the tar from it through
   unpack_read.  That is where the size is bounded (a small archive must not
   inflate to gigabytes) and where, after the tar's end, the rest of the
   compressed data is read so that its checksum is checked: xz and zstd
   check their own (zstd when the frame has one, as ours do); libarchive does
   not check gzip's CRC-32, so it is computed here.  */

typedef struct unpack
{
  struct archive *raw;          /* the decompressing reader */
  int gzip;
  uint32_t crc;                 /* CRC-32 of the bytes so far (gzip) */
  uint64_t total;               /* bytes unpacked so far */
  uint64_t limit;               /* most bytes allowed so far */
  const unsigned char *file;    /* the compressed file, for gzip's trailer */
  size_t file_len;
} unpack;

static uint32_t crc_table[256];

static void
crc_init (void)
{
  for (uint32_t i = 0; i < 256; i++)
    {
      uint32_t c = i;
      for (int k = 0; k < 8; k++)
        c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
      crc_table[i] = c;
    }
}

/* gzip's CRC-32 (ISO 3309), continued from CRC over LEN bytes of P.  */
static uint32_t
crc32_update (uint32_t crc, const unsigned char *p, size_t len)
{
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once (&once, crc_init);
  crc = ~crc;
  for (size_t i = 0; i < len; i++)
    crc = crc_table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
  return ~crc;
}

/* The next block of unpacked bytes in *BUF: its length, 0 at the end, -1
   with an error set on A (the reader it is for) or, when A is NULL, in
   pmx_error.  */
static la_ssize_t
unpack_next (struct archive *a, unpack *u, const void **buf)
{
  size_t n;
  la_int64_t off;
  int rc = archive_read_data_block (u->raw, buf, &n, &off);
  const char *msg = NULL;
  char text[160];
  if (rc == ARCHIVE_EOF)
    return 0;
  if (rc != ARCHIVE_OK)
    msg = archive_error_string (u->raw) ? archive_error_string (u->raw)
      : "decompression error";
  else if (n > u->limit - u->total)
    {
      snprintf (text, sizeof text, "unpacks to more than the %llu bytes"
                " its configuration can need", (unsigned long long) u->limit);
      msg = text;
    }
  if (msg)
    {
      if (a)
        archive_set_error (a, EIO, "%s", msg);
      else
        pmx_error ("%s", msg);
      return -1;
    }
  u->total += n;
  if (u->gzip)
    u->crc = crc32_update (u->crc, *buf, n);
  return (la_ssize_t) n;
}

static la_ssize_t
unpack_read (struct archive *a, void *data, const void **buf)
{
  return unpack_next (a, data, buf);
}

/* After the tar's end: read the compressed data to its end (its checksum
   is checked there) and check gzip's CRC-32 and length.  */
static int
unpack_finish (unpack *u)
{
  const void *buf;
  la_ssize_t n;
  while ((n = unpack_next (NULL, u, &buf)) > 0)
    ;
  if (n < 0)
    return -1;
  if (u->gzip)
    {
      /* The trailer: CRC-32 and length mod 2^32, little-endian; libarchive
         writes one gzip member, which ends the file.  */
      const unsigned char *t = u->file + u->file_len - 8;
      uint32_t crc = (uint32_t) t[0] | (uint32_t) t[1] << 8
                     | (uint32_t) t[2] << 16 | (uint32_t) t[3] << 24;
      uint32_t len = (uint32_t) t[4] | (uint32_t) t[5] << 8
                     | (uint32_t) t[6] << 16 | (uint32_t) t[7] << 24;
      if (u->file_len < 18 || crc != u->crc || len != (uint32_t) u->total)
        return pmx_error ("gzip data is corrupt (CRC-32 or length mismatch)");
    }
  return 0;
}

/* The most bytes tensors.pmxs can need for configuration C: every tensor
   the configuration allows, at its largest, with room for names, headers
   and metadata.  The demultiplexer's, pooler's and classifier's widths are
   not in the configuration; they are allowed up to twice the larger of
   hidden and intermediate.  */
static uint64_t
stream_bound (const pmx_model_config *c)
{
  double H = c->hidden, V = c->vocab_size, P = c->max_position,
    T = c->type_vocab, L = c->layers, A = (double) c->heads * c->head_dim,
    I = c->intermediate, N = c->mux_n, C = c->num_labels, D = c->demux_layers;
  double W = 2 * (H > I ? H : I);
  double layer = 3 * (A * H + A) + H * A + H + 2 * H       /* attention */
                 + 2 * I * H + I + H + 2 * H;               /* FFN */
  double n = (V + P + T) * H + 2 * H + L * layer
             + W * H + W                                    /* pooler */
             + 2 * N * H                                    /* instance keys */
             + 2 * (2 * H * W + 3 * W) + (D + 2) * (W * W + 3 * W)   /* demux */
             + C * W + C;                                   /* classifier */
  double tensors = 32 + 16 * L + 4 * D;
  double bytes = 4 * n + tensors * 1024 + PMX_META_MAX + (1 << 20);
  return bytes >= 0x1p62 ? (uint64_t) 1 << 62 : (uint64_t) bytes;
}

/* Read the archive mapped at M->map; errors without the path prefix.  */
static int
load (pmx_model *m)
{
  struct archive *a = NULL;
  unpack u = { .file = m->map, .file_len = m->map_size };
  int rc = -1, seen = 0, compressed = 0, parsed = 0;
  char *config = NULL;
  size_t config_len = 0;

  /* Compressed?  The raw reader says which filter it found.  */
  u.raw = archive_read_new ();
  if (!u.raw)
    return pmx_error ("out of memory");
  archive_read_support_format_raw (u.raw);
  archive_read_support_filter_gzip (u.raw);
  archive_read_support_filter_zstd (u.raw);
  archive_read_support_filter_xz (u.raw);
  struct archive_entry *re;
  if (archive_read_open_memory (u.raw, m->map, m->map_size) != ARCHIVE_OK)
    {
      pmx_error ("not a model archive: %s", archive_error_string (u.raw));
      goto out;
    }
  compressed = archive_filter_code (u.raw, 0) != ARCHIVE_FILTER_NONE;
  u.gzip = archive_filter_code (u.raw, 0) == ARCHIVE_FILTER_GZIP;
  if (compressed && archive_read_next_header (u.raw, &re) != ARCHIVE_OK)
    {
      pmx_error ("not a model archive: %s", archive_error_string (u.raw)
                 ? archive_error_string (u.raw) : "bad compressed data");
      goto out;
    }
  if (!compressed)
    {
      archive_read_free (u.raw);
      u.raw = NULL;
    }
  /* Before config.json is read, the marker and it are all there can be.  */
  u.limit = CONFIG_MAX + (1 << 20);

  a = archive_read_new ();
  if (!a)
    {
      pmx_error ("out of memory");
      goto out;
    }
  archive_read_support_format_tar (a);
  if ((compressed ? archive_read_open (a, &u, NULL, unpack_read, NULL)
       : archive_read_open_memory (a, m->map, m->map_size)) != ARCHIVE_OK)
    {
      pmx_error ("not a model archive: %s", archive_error_string (a));
      goto out;
    }
  for (;;)
    {
      struct archive_entry *e;
      int hr = archive_read_next_header (a, &e);
      if (hr == ARCHIVE_EOF)
        break;
      if (hr != ARCHIVE_OK)
        {
          pmx_error ("%s%s", seen ? "" : "not a model archive: ",
                     archive_error_string (a) ? archive_error_string (a)
                     : "bad archive header");
          goto out;
        }
      const char *name = archive_entry_pathname (e);
      if (!name)
        name = "";
      if (archive_entry_filetype (e) != AE_IFREG)
        {
          pmx_error ("%.64s: not a regular file", name);
          goto out;
        }
      la_int64_t size = archive_entry_size (e);
      char *buf = NULL;
      size_t len;
      if (seen == 0)
        {
          if (strcmp (name, MARKER_NAME) != 0)
            {
              pmx_error ("not a model archive (first member is '%.64s', not '"
                         MARKER_NAME "')", name);
              goto out;
            }
          if (read_member (a, size, 256, NULL, 0, NULL, &buf, NULL, &len) < 0)
            {
              pmx_error_prefix (MARKER_NAME);
              goto out;
            }
          int ver = -1;
          if (strncmp (buf, MARKER_TEXT, strlen (MARKER_TEXT)) == 0)
            ver = atoi (buf + strlen (MARKER_TEXT));
          free (buf);
          if (ver != FORMAT_VERSION)
            {
              pmx_error (MARKER_NAME ": archive format %d is not supported"
                         " (this program reads %d)", ver, FORMAT_VERSION);
              goto out;
            }
          seen = 1;
          continue;
        }
      if (strcmp (name, "config.json") == 0 && !config)
        {
          if (read_member (a, size, CONFIG_MAX, NULL, 0, NULL, &config,
                           NULL, &config_len) < 0
              || config_parse (config, config_len, &m->cfg, &m->layer_heads,
                               &m->layer_ffn) < 0)
            {
              pmx_error_prefix ("config.json");
              goto out;
            }
          parsed = 1;
          /* From here on, what the configuration can need (and the largest
             vocabulary).  */
          uint64_t rest = stream_bound (&m->cfg) + VOCAB_MAX + (1 << 20);
          u.limit = u.total > UINT64_MAX - rest ? UINT64_MAX : u.total + rest;
        }
      else if (strcmp (name, "vocab.txt") == 0 && !m->vocab)
        {
          if (read_member (a, size, VOCAB_MAX, NULL, 0, NULL, &m->vocab,
                           NULL, &m->vocab_len) < 0)
            {
              pmx_error_prefix ("vocab.txt");
              goto out;
            }
          if (strlen (m->vocab) != m->vocab_len)
            {
              pmx_error ("vocab.txt: contains a NUL byte");
              goto out;
            }
        }
      else if (strcmp (name, "tensors.pmxs") == 0 && !m->stream_at)
        {
          /* A stream is at most the archive (uncompressed) or what the
             configuration can need (compressed), which must come first.  */
          if (compressed && !parsed)
            {
              pmx_error ("config.json: missing (a compressed archive needs"
                         " it before tensors.pmxs)");
              goto out;
            }
          size_t cap = compressed ? (size_t) stream_bound (&m->cfg) : m->map_size;
          if (read_member (a, size, cap, m->map, m->map_size,
                           PMX_STREAM_MAGIC, (char **) &m->stream,
                           &m->stream_at, &m->stream_len) < 0)
            {
              pmx_error_prefix ("tensors.pmxs");
              goto out;
            }
          if (m->stream)
            m->stream_at = m->stream;
        }
      else
        {
          pmx_error ("unexpected member '%.64s'", name);
          goto out;
        }
    }
  if (compressed && unpack_finish (&u) < 0)
    goto out;
  if (!seen)
    {
      pmx_error ("not a model archive (empty)");
      goto out;
    }
  if (!config)
    {
      pmx_error ("config.json: missing");
      goto out;
    }
  if (!m->stream_at)
    {
      pmx_error ("tensors.pmxs: missing");
      goto out;
    }
  if (read_tensors (m) < 0)
    goto out;
  if (m->vocab)
    {
      /* One token per line: at most vocab_size lines.  */
      long lines = 0;
      for (size_t i = 0; i < m->vocab_len; i++)
        lines += m->vocab[i] == '\n';
      if (m->vocab_len && m->vocab[m->vocab_len - 1] != '\n')
        lines++;
      if (lines > m->cfg.vocab_size)
        {
          pmx_error ("vocab.txt: %ld tokens but vocab_size is %d", lines,
                     m->cfg.vocab_size);
          goto out;
        }
    }
  int *heads = calloc ((size_t) m->cfg.layers + 1, sizeof (int));
  int *ffn = calloc ((size_t) m->cfg.layers + 1, sizeof (int));
  tensor_set set = {m->ntensors, m->tensors};
  if (!heads || !ffn)
    pmx_error ("out of memory");
  else if (check_tensors (&m->cfg, &set, heads, ffn) < 0)
    pmx_error_prefix ("config.json and tensors disagree");
  else if (check_finite (&set, m) < 0)
    pmx_error_prefix ("tensors.pmxs");
  else
    {
      rc = 0;
      for (int l = 0; l < m->cfg.layers && rc == 0; l++)
        if (heads[l] != m->layer_heads[l] || ffn[l] != m->layer_ffn[l])
          rc = pmx_error ("config.json: layer %d: layer_heads/layer_ffn say"
                          " %d/%d but the tensors have %d/%d", l,
                          m->layer_heads[l], m->layer_ffn[l], heads[l], ffn[l]);
    }
  free (heads);
  free (ffn);
out:
  free (config);
  if (a)
    archive_read_free (a);
  if (u.raw)
    archive_read_free (u.raw);
  return rc;
}

pmx_model *
pmx_model_open (const char *path)
{
  pmx_model *m = calloc (1, sizeof *m);
  if (!m)
    {
      pmx_error ("out of memory");
      return NULL;
    }
  pmx_model_config_init (&m->cfg);
  int fd = open (path, O_RDONLY | O_CLOEXEC);
  struct stat sb;
  if (fd < 0 || fstat (fd, &sb) < 0)
    {
      pmx_error_errno (errno, "%s", path);
      goto fail;
    }
  if (!S_ISREG (sb.st_mode))
    {
      pmx_error ("%s: not a regular file", path);
      goto fail;
    }
  if (sb.st_size == 0)
    {
      pmx_error ("%s: empty file, not a model archive", path);
      goto fail;
    }
  m->map_size = (size_t) sb.st_size;
  m->map = mmap (NULL, m->map_size, PROT_READ, MAP_PRIVATE, fd, 0);
  if (m->map == MAP_FAILED)
    {
      m->map = NULL;
      pmx_error_errno (errno, "%s: mmap", path);
      goto fail;
    }
  close (fd);
  fd = -1;
  if (load (m) < 0)
    {
      pmx_error_prefix ("%s", path);
      goto fail;
    }
  /* Tensors read into memory no longer need the file.  */
  if (m->stream)
    {
      munmap (m->map, m->map_size);
      m->map = NULL;
    }
  return m;
fail:
  if (fd >= 0)
    close (fd);
  pmx_model_close (m);
  return NULL;
}

void
pmx_model_close (pmx_model *m)
{
  if (!m)
    return;
  for (int i = 0; i < m->nrecs; i++)
    pmx_record_free (&m->recs[i]);
  free (m->recs);
  free (m->tensors);
  free (m->layer_heads);
  free (m->layer_ffn);
  free (m->vocab);
  free (m->stream);
  if (m->map)
    munmap (m->map, m->map_size);
  pmx_model_config_free (&m->cfg);
  free (m);
}

const pmx_model_config *
pmx_model_config_of (const pmx_model *m)
{
  return &m->cfg;
}

const pmx_tensor *
pmx_model_tensor (const pmx_model *m, const char *name)
{
  for (int i = 0; i < m->ntensors; i++)
    if (strcmp (m->tensors[i]->name, name) == 0)
      return m->tensors[i];
  return NULL;
}

const pmx_tensor *
pmx_model_expect (const pmx_model *m, const char *name, int rank, int64_t d0,
                  int64_t d1)
{
  const pmx_tensor *t = pmx_model_tensor (m, name);
  if (!t)
    {
      pmx_error ("model %s: no tensor '%s'", m->cfg.id, name);
      return NULL;
    }
  char sh[8 * 24];
  if (t->dtype != PMX_F32 || t->rank != rank || (rank > 0 && d0 >= 0 && t->shape[0] != d0)
      || (rank > 1 && d1 >= 0 && t->shape[1] != d1))
    {
      pmx_error ("model %s: tensor '%s' is %s %s, expected f32 of rank %d"
                 " (%lld, %lld)", m->cfg.id, name, pmx_dtype_name (t->dtype),
                 pmx_shape_str (t, sh, sizeof sh), rank, (long long) d0,
                 (long long) d1);
      return NULL;
    }
  return t;
}

int
pmx_model_tensor_count (const pmx_model *m)
{
  return m->ntensors;
}

const pmx_tensor *
pmx_model_tensor_at (const pmx_model *m, int i)
{
  return i >= 0 && i < m->ntensors ? m->tensors[i] : NULL;
}

const char *
pmx_model_vocab (const pmx_model *m, size_t *len)
{
  if (len)
    *len = m->vocab ? m->vocab_len : 0;
  return m->vocab;
}

void
pmx_identity_hash (const void *const *seg, const size_t *len, int n,
                   char out[33])
{
  hash128 h;
  hash_init (&h);
  for (int i = 0; i < n; i++)
    hash_segment (&h, seg[i], len[i]);
  hash_hex (&h, out);
}

int
pmx_model_verify (const pmx_model *m)
{
  char id[33];
  if (compute_id (&m->cfg, m->layer_heads, m->layer_ffn, m->vocab,
                  m->vocab_len, m->stream_at, m->stream_len, id) < 0)
    return -1;
  if (strcmp (id, m->cfg.id) != 0)
    return pmx_error ("identity mismatch: config.json says %s but the"
                      " contents hash to %s (the archive was altered)",
                      m->cfg.id, id);
  return 0;
}

const char *
pmx_model_storage (const pmx_model *m)
{
  return m->stream ? "memory" : "mapped";
}

void
pmx_model_drop_pages (const pmx_model *m, const void *p, size_t bytes)
{
  const char *map = m->map, *c = p;
  if (!map || m->stream || c < map || c >= map + m->map_size
      || bytes > m->map_size - (size_t) (c - map))
    return;
  long page = sysconf (_SC_PAGESIZE);
  if (page <= 0)
    return;
  uintptr_t lo = ((uintptr_t) c + (uintptr_t) page - 1) / (uintptr_t) page * (uintptr_t) page;
  uintptr_t hi = ((uintptr_t) c + bytes) / (uintptr_t) page * (uintptr_t) page;
  /* A private, never written, read-only file mapping: the pages come back
     from the file.  A failure only leaves them resident.  */
  if (hi > lo)
    (void) madvise ((void *) lo, hi - lo, MADV_DONTNEED);
}

const pmx_tensor *
pmx_model_lookup (const void *model, const char *name)
{
  return pmx_model_tensor (model, name);
}

const pmx_tensor *
pmx_record_lookup (const void *record, const char *name)
{
  return pmx_record_get (record, name);
}

void
pmx_model_layer_shape (const pmx_model *m, int l, int *heads, int *ffn)
{
  const pmx_model_config *c = pmx_model_config_of (m);
  char name[PMX_NAME_MAX + 1];
  snprintf (name, sizeof name, "encoder.layer.%d.attention.self.query.weight", l);
  const pmx_tensor *q = pmx_model_tensor (m, name);
  *heads = q ? (int) (q->shape[0] / c->head_dim) : 0;
  snprintf (name, sizeof name, "encoder.layer.%d.intermediate.dense.weight", l);
  const pmx_tensor *f = pmx_model_tensor (m, name);
  *ffn = f ? (int) f->shape[0] : 0;
}

char *
pmx_model_config_json (const pmx_model *m)
{
  const pmx_model_config *c = pmx_model_config_of (m);
  int *heads = calloc ((size_t) c->layers + 1, sizeof *heads);
  int *ffn = calloc ((size_t) c->layers + 1, sizeof *ffn);
  char *text = NULL;
  if (heads && ffn)
    {
      for (int l = 0; l < c->layers; l++)
        pmx_model_layer_shape (m, l, &heads[l], &ffn[l]);
      json_t *o = config_to_json (c, heads, ffn, 1);
      text = o ? json_dumps (o, JSON_INDENT (2) | JSON_REAL_PRECISION (15)) : NULL;
      json_decref (o);
    }
  free (heads);
  free (ffn);
  if (!text)
    pmx_error ("out of memory");
  return text;
}
