/* hfimport.c -- Hugging Face model directory to model archive parts; see
   hfimport.h.  The structure of a pruned model is never read from the
   configuration: it is whatever the weight shapes say, as CoFi's
   load_pruned_model does.  */

#include <config.h>
#include "hfimport.h"
#include "error.h"
#include "safetensors.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define JSON_FILE_MAX (16u << 20)
#define VOCAB_FILE_MAX (64u << 20)

static int
starts (const char *s, const char *prefix)
{
  return strncmp (s, prefix, strlen (prefix)) == 0;
}

static int
ends (const char *s, const char *suffix)
{
  size_t n = strlen (s), k = strlen (suffix);
  return n >= k && strcmp (s + n - k, suffix) == 0;
}

const char *const pmx_hf_bert_groups[] = {
  "embeddings.", "encoder.", "pooler.", NULL
};
const char *const pmx_hf_demux_aliases[] = {
  "demultiplexer.", "retrieval_head.", NULL
};

int
pmx_hf_source_name (const char *name, char *dst, size_t size)
{
  const char *prefix = "";
  for (int i = 0; pmx_hf_bert_groups[i]; i++)
    if (starts (name, pmx_hf_bert_groups[i]))
      prefix = "bert.";
  if (strlen (prefix) + strlen (name) + 1 > size)
    return pmx_error ("tensor '%s': name too long", name);
  sprintf (dst, "%s%s", prefix, name);
  return 0;
}

int
pmx_hf_map_name (const char *src, char *dst, size_t size)
{
  const char *s = src;
  if (starts (s, "model."))
    s += 6;
  if (starts (s, "bert."))
    s += 5;
  if (ends (s, "position_ids") || ends (s, "embeddings.token_type_ids")
      || starts (s, "layer_transformation."))
    return 0;
  /* The demux module is shared by the demultiplexer and the retrieval head
     (one storage, several state-dict names): keep one canonical name.  */
  for (int i = 0; pmx_hf_demux_aliases[i]; i++)
    if (starts (s, pmx_hf_demux_aliases[i])
        && starts (s + strlen (pmx_hf_demux_aliases[i]), "demux_module."))
      {
        s += strlen (pmx_hf_demux_aliases[i]);
        break;
      }
  size_t n = strlen (s);
  const char *suffix = "";
  if (ends (s, ".gamma"))
    n -= 6, suffix = ".weight";
  else if (ends (s, ".beta"))
    n -= 5, suffix = ".bias";
  if (n + strlen (suffix) + 1 > size || n + strlen (suffix) > PMX_NAME_MAX)
    return -1;
  memcpy (dst, s, n);
  strcpy (dst + n, suffix);
  return 1;
}

/* ---- Files ------------------------------------------------------------------ */

static char *
path_join (const char *dir, const char *name)
{
  char *p = malloc (strlen (dir) + strlen (name) + 2);
  if (p)
    sprintf (p, "%s/%s", dir, name);
  return p;
}

static int
exists (const char *dir, const char *name)
{
  char *p = path_join (dir, name);
  struct stat sb;
  int ok = p && stat (p, &sb) == 0;
  free (p);
  return ok;
}

/* DIR/NAME as a JSON object (parsed with jansson FLAGS); NULL with
   *ERR = 0 if it does not exist and is not REQUIRED, NULL with *ERR = -1
   and an error otherwise.  */
static json_t *
load_json (const char *dir, const char *name, int required, size_t flags,
           int *err)
{
  *err = 0;
  char *p = path_join (dir, name);
  if (!p)
    {
      *err = pmx_error ("out of memory");
      return NULL;
    }
  struct stat sb;
  if (stat (p, &sb) < 0)
    {
      if (required || errno != ENOENT)
        *err = pmx_error_errno (errno, "%s", p);
      free (p);
      return NULL;
    }
  if (!S_ISREG (sb.st_mode) || sb.st_size > JSON_FILE_MAX)
    {
      *err = pmx_error ("%s: not a regular file of at most %u bytes", p,
                        JSON_FILE_MAX);
      free (p);
      return NULL;
    }
  json_error_t jerr;
  json_t *o = json_load_file (p, JSON_REJECT_DUPLICATES | flags, &jerr);
  if (!o || !json_is_object (o))
    {
      *err = o ? pmx_error ("%s: not a JSON object", p)
               : pmx_error ("%s: invalid JSON: %s (line %d)", p, jerr.text, jerr.line);
      json_decref (o);
      free (p);
      return NULL;
    }
  free (p);
  return o;
}

/* Read DIR/NAME, or NAME alone if DIR is NULL.  */
static int
read_text (const char *dir, const char *name, char **out, size_t *len)
{
  char *p = dir ? path_join (dir, name) : strdup (name);
  if (!p)
    return pmx_error ("out of memory");
  FILE *f = fopen (p, "rb");
  struct stat sb;
  if (!f || fstat (fileno (f), &sb) < 0)
    {
      int rc = pmx_error_errno (errno, "%s", p);
      if (f)
        fclose (f);
      free (p);
      return rc;
    }
  if (!S_ISREG (sb.st_mode) || sb.st_size > VOCAB_FILE_MAX)
    {
      fclose (f);
      int rc = pmx_error ("%s: not a regular file of at most %u bytes", p,
                          VOCAB_FILE_MAX);
      free (p);
      return rc;
    }
  char *buf = malloc ((size_t) sb.st_size + 1);
  size_t n = buf ? fread (buf, 1, (size_t) sb.st_size, f) : 0;
  int bad = !buf || ferror (f) || n != (size_t) sb.st_size;
  fclose (f);
  if (bad)
    {
      free (buf);
      int rc = pmx_error ("%s: read error", p);
      free (p);
      return rc;
    }
  buf[n] = '\0';
  if (strlen (buf) != n)
    {
      free (buf);
      int rc = pmx_error ("%s: contains a NUL byte", p);
      free (p);
      return rc;
    }
  free (p);
  *out = buf;
  *len = n;
  return 0;
}

/* ---- config.json fields ----------------------------------------------------- */

/* Integer KEY of O in [LO, HI] into OUT; DEF (if not INT_MIN) when absent.  */
static int
cfg_int (json_t *o, const char *key, int lo, int hi, int def, int *out)
{
  json_t *v = json_object_get (o, key);
  if (!v || json_is_null (v))
    {
      if (def == INT_MIN)
        return pmx_error ("%s: missing", key);
      *out = def;
      return 0;
    }
  if (!json_is_integer (v) || json_integer_value (v) < lo
      || json_integer_value (v) > hi)
    return pmx_error ("%s: must be a whole number in [%d, %d]", key, lo, hi);
  *out = (int) json_integer_value (v);
  return 0;
}

/* String KEY of O into OUT (SIZE bytes); DEF when absent (NULL: required).  */
static int
cfg_str (json_t *o, const char *key, const char *def, char *out, size_t size)
{
  json_t *v = json_object_get (o, key);
  const char *s = def;
  if (v && !json_is_null (v))
    {
      if (!json_is_string (v))
        return pmx_error ("%s: not a string", key);
      s = json_string_value (v);
    }
  if (!s)
    return pmx_error ("%s: missing", key);
  if (strlen (s) >= size)
    return pmx_error ("%s: '%.40s' is too long", key, s);
  strcpy (out, s);
  return 0;
}

/* Boolean KEY of O; DEF when absent or null.  */
static int
cfg_bool (json_t *o, const char *key, int def, int *out)
{
  json_t *v = o ? json_object_get (o, key) : NULL;
  if (!v || json_is_null (v))
    *out = def;
  else if (json_is_boolean (v))
    *out = json_is_true (v);
  else
    return pmx_error ("%s: not true or false", key);
  return 0;
}

/* ---- Labels -------------------------------------------------------------- */

static int
set_labels (pmx_model_config *cfg, int n, const char *list, json_t *id2label)
{
  cfg->labels = calloc ((size_t) n, sizeof *cfg->labels);
  if (!cfg->labels)
    return pmx_error ("out of memory");
  cfg->num_labels = n;
  const char *p = list;
  for (int i = 0; i < n; i++)
    {
      char buf[PMX_LABEL_MAX + 1];
      if (list)
        {
          size_t k = strcspn (p, ",");
          if (!*p && i < n)
            return pmx_error ("--labels: %d names for a classifier of %d"
                              " labels", i, n);
          if (k == 0 || k > PMX_LABEL_MAX)
            return pmx_error ("--labels: name %d is empty or longer than %d"
                              " bytes", i + 1, PMX_LABEL_MAX);
          memcpy (buf, p, k);
          buf[k] = '\0';
          p += k + (p[k] == ',');
        }
      else
        {
          char key[16];
          snprintf (key, sizeof key, "%d", i);
          json_t *v = json_is_object (id2label) ? json_object_get (id2label, key) : NULL;
          if (v && !json_is_string (v))
            return pmx_error ("config.json: id2label: '%s' is not a string", key);
          if (v && (json_string_length (v) == 0
                    || json_string_length (v) > PMX_LABEL_MAX))
            return pmx_error ("config.json: id2label: '%s' is empty or longer"
                              " than %d bytes", key, PMX_LABEL_MAX);
          snprintf (buf, sizeof buf, "%s", v ? json_string_value (v) : key);
        }
      cfg->labels[i] = strdup (buf);
      if (!cfg->labels[i])
        return pmx_error ("out of memory");
    }
  if (list && *p)
    return pmx_error ("--labels: more names than the classifier's %d labels", n);
  return 0;
}

/* ---- Tensors --------------------------------------------------------------- */

void
pmx_hf_tensors_free (pmx_hf_tensors *ts)
{
  for (int i = 0; i < ts->nrecs; i++)
    pmx_record_free (&ts->recs[i]);
  free (ts->recs);
  ts->recs = NULL;
  ts->nrecs = 0;
}

static pmx_tensor *
ts_get (const pmx_hf_tensors *ts, const char *name)
{
  for (int i = 0; i < ts->nrecs; i++)
    {
      pmx_tensor *t = pmx_record_get (&ts->recs[i], name);
      if (t)
        return t;
    }
  return NULL;
}

static int
ts_remove (pmx_hf_tensors *ts, const char *name)
{
  for (int i = 0; i < ts->nrecs; i++)
    if (pmx_record_remove (&ts->recs[i], name) == 0)
      return 0;
  return -1;
}

/* Add a tensor, starting a new record when the last one is full.  */
static pmx_tensor *
ts_add (pmx_hf_tensors *ts, const char *name, int rank, const int64_t *shape)
{
  if (ts->nrecs == 0 || ts->recs[ts->nrecs - 1].count == PMX_MAX_TENSORS)
    {
      pmx_record *r = realloc (ts->recs, sizeof *r * (size_t) (ts->nrecs + 1));
      if (!r)
        {
          pmx_error ("out of memory");
          return NULL;
        }
      ts->recs = r;
      pmx_record_init (&ts->recs[ts->nrecs++]);
    }
  return pmx_record_add (&ts->recs[ts->nrecs - 1], name, PMX_F32, rank, shape);
}

/* Sort key: embeddings, layers in numeric order, pooler, mux, demux, heads.  */
static int
group_of (const char *name, long *layer)
{
  static const char *const order[] = {
    "embeddings.", "encoder.layer.", "pooler.", "instance_embedding",
    "demux_module.", "demultiplexer.", "retrieval_head.", "classifier.", NULL
  };
  *layer = 0;
  for (int g = 0; order[g]; g++)
    if (starts (name, order[g]))
      {
        if (g == 1)
          *layer = strtol (name + 14, NULL, 10);
        return g;
      }
  return 8;
}

typedef struct mapped
{
  char name[PMX_NAME_MAX + 1];
  const pmx_st_tensor *src;
} mapped;

static int
cmp_mapped (const void *a, const void *b)
{
  const mapped *x = a, *y = b;
  long lx, ly;
  int gx = group_of (x->name, &lx), gy = group_of (y->name, &ly);
  if (gx != gy)
    return gx - gy;
  if (lx != ly)
    return lx < ly ? -1 : 1;
  return strcmp (x->name, y->name);
}

/* Whether NAME (a prumux name) is that of a weight, not of a buffer such
   as embeddings.position_ids: an integer tensor so named is an error,
   not something to drop and then report missing.  */
static int
is_weight_name (const char *name)
{
  size_t n = strlen (name);
  return (n > 7 && strcmp (name + n - 7, ".weight") == 0)
    || (n > 5 && strcmp (name + n - 5, ".bias") == 0)
    || strcmp (name, "instance_embedding") == 0;
}

/* The tensors of ST under prumux names into TS (f32).  */
static int
import_tensors (pmx_safetensors *const *sts, int nst, pmx_hf_tensors *ts,
                pmx_hf_report *rep)
{
  size_t total = 0;
  for (int f = 0; f < nst; f++)
    total += (size_t) sts[f]->count;
  mapped *m = calloc (total + 1, sizeof *m);
  if (!m)
    return pmx_error ("out of memory");
  int n = 0, rc = 0;
  for (size_t k = 0; k < total && rc == 0; k++)
    {
      int f = 0;
      size_t i = k;
      while (i >= (size_t) sts[f]->count)
        i -= (size_t) sts[f++]->count;
      const pmx_st_tensor *t = &sts[f]->tensors[i];
      int keep = pmx_hf_map_name (t->name, m[n].name, sizeof m[n].name);
      if (keep < 0)
        rc = pmx_error ("tensor '%s': name too long", t->name);
      else if (t->dtype && !pmx_dtype_is_float (t->dtype)
               && is_weight_name (m[n].name))
        rc = pmx_error ("tensor '%s': dtype %s, but a weight must be"
                        " floating point", t->name, t->dtype_name);
      else if (keep == 0 || (t->dtype && !pmx_dtype_is_float (t->dtype)))
        rep->dropped++;         /* buffers: position ids and the like */
      else if (!t->dtype)
        rc = pmx_error ("tensor '%s': dtype %s is not supported", t->name,
                        t->dtype_name);
      else if (t->rank == 0)
        rc = pmx_error ("tensor '%s': a scalar is not a weight", t->name);
      else
        m[n++].src = t;
    }
  /* Archive order: prumux's own export keeps it (the identity hashes the
     tensors in order, so an archive comes back with its identity); any
     other checkpoint is put in the canonical order.  */
  const char *order = nst == 1 ? pmx_st_metadata (sts[0], PMX_HF_ORDER_KEY)
                                : NULL;
  if (!order || strcmp (order, PMX_HF_ORDER_ARCHIVE) != 0)
    qsort (m, (size_t) n, sizeof *m, cmp_mapped);
  float *scratch = NULL;
  for (int i = 0; i < n && rc == 0; i++)
    {
      const pmx_st_tensor *t = m[i].src;
      if (i > 0 && strcmp (m[i].name, m[i - 1].name) == 0)
        {
          /* Another name of a shared module: it must hold the same values.  */
          const pmx_tensor *prev = ts_get (ts, m[i].name);
          int same = prev->rank == t->rank
                     && !memcmp (prev->shape, t->shape, sizeof t->shape[0] * (size_t) t->rank);
          if (same)
            {
              free (scratch);
              scratch = malloc (prev->nbytes ? prev->nbytes : 1);
              if (!scratch)
                {
                  rc = pmx_error ("out of memory");
                  break;
                }
              rc = pmx_st_to_f32 (t, scratch);
              same = rc == 0 && memcmp (scratch, prev->data, prev->nbytes) == 0;
            }
          if (rc == 0 && !same)
            rc = pmx_error ("tensor '%s': its aliases (the shared demux module)"
                            " hold different values", m[i].name);
          rep->aliases++;
          continue;
        }
      pmx_tensor *d = ts_add (ts, m[i].name, t->rank, t->shape);
      if (!d)
        rc = -1;
      else
        rc = pmx_st_to_f32 (t, d->data);
      if (t->dtype != PMX_F32)
        rep->converted++;
      rep->kept++;
    }
  free (scratch);
  free (m);
  return rc;
}

/* Remove the LayerNorms of fully pruned sublayers: CoFi leaves them at the
   unpruned size and never uses them.  */
static void
drop_orphan_norms (pmx_hf_tensors *ts, int layers, pmx_hf_report *rep)
{
  char a[PMX_NAME_MAX + 1], b[PMX_NAME_MAX + 1];
  static const char *const parts[] = {"weight", "bias"};
  for (int l = 0; l < layers; l++)
    {
      snprintf (a, sizeof a, "encoder.layer.%d.attention.self.query.weight", l);
      if (!ts_get (ts, a))
        for (int k = 0; k < 2; k++)
          {
            snprintf (b, sizeof b, "encoder.layer.%d.attention.output.LayerNorm.%s",
                      l, parts[k]);
            if (ts_remove (ts, b) == 0)
              rep->dropped++, rep->kept--;
          }
      snprintf (a, sizeof a, "encoder.layer.%d.intermediate.dense.weight", l);
      if (!ts_get (ts, a))
        for (int k = 0; k < 2; k++)
          {
            snprintf (b, sizeof b, "encoder.layer.%d.output.LayerNorm.%s", l,
                      parts[k]);
            if (ts_remove (ts, b) == 0)
              rep->dropped++, rep->kept--;
          }
    }
}

/* ---- sentence-transformers layout ------------------------------------------ */

/* Where the parts of a sentence-transformers model are: the Hugging Face
   files at the top (current layout) or in the Transformer module's folder
   (older models: 0_BERT/), the pooling configuration in the Pooling
   module's folder, and whether a Normalize module follows.  */
typedef struct st_layout
{
  char *model;                  /* folder of config.json etc. */
  char *pooling;                /* pooling config, relative to DIR, or NULL */
  int normalize;
} st_layout;

static void
layout_free (st_layout *L)
{
  free (L->model);
  free (L->pooling);
}

static int
read_layout (const char *dir, st_layout *L)
{
  memset (L, 0, sizeof *L);
  L->model = strdup (dir);
  if (!L->model)
    return pmx_error ("out of memory");
  if (!exists (dir, "modules.json"))
    {
      if (exists (dir, "1_Pooling/config.json")
          && !(L->pooling = strdup ("1_Pooling/config.json")))
        return pmx_error ("out of memory");
      return 0;
    }
  /* modules.json is an array, which load_json refuses: read it here.  */
  char *p = path_join (dir, "modules.json");
  json_error_t jerr;
  struct stat sb;
  json_t *mods = p && stat (p, &sb) == 0 && sb.st_size <= JSON_FILE_MAX
                 ? json_load_file (p, JSON_REJECT_DUPLICATES, &jerr) : NULL;
  free (p);
  if (!json_is_array (mods))
    {
      json_decref (mods);
      return pmx_error ("modules.json: not a JSON array");
    }
  int rc = 0;
  for (size_t i = 0; i < json_array_size (mods) && rc == 0; i++)
    {
      json_t *m = json_array_get (mods, i);
      json_t *ty = json_object_get (m, "type"), *pa = json_object_get (m, "path");
      if (!json_is_string (ty))
        continue;
      const char *t = json_string_value (ty);
      const char *path = json_is_string (pa) ? json_string_value (pa) : "";
      if (path[0] == '/' || strstr (path, ".."))
        {
          rc = pmx_error ("modules.json: module path '%.64s' leaves the"
                          " model directory", path);
          break;
        }
      if (ends (t, ".Normalize"))
        L->normalize = 1;
      else if (ends (t, ".Pooling"))
        {
          free (L->pooling);
          L->pooling = *path ? path_join (path, "config.json")
                             : strdup ("config.json");
          if (!L->pooling)
            rc = pmx_error ("out of memory");
        }
      else if ((ends (t, ".Transformer") || ends (t, ".BERT")) && *path)
        {
          free (L->model);
          L->model = path_join (dir, path);
          if (!L->model)
            rc = pmx_error ("out of memory");
        }
    }
  json_decref (mods);
  return rc;
}

/* ---- The import -------------------------------------------------------------- */

/* Fill CFG from the parsed files; errors name the file and field.  */
static int
map_config (const char *dir, const st_layout *L, json_t *hf,
            const pmx_hf_options *opt, const pmx_hf_tensors *ts,
            pmx_model_config *cfg, pmx_hf_report *rep)
{
  int err, hidden_size;
  char buf[64];
  /* Only BERT with exact GELU and absolute positions is implemented.  */
  if (cfg_str (hf, "model_type", "bert", buf, sizeof buf) < 0)
    return pmx_error_prefix ("config.json");
  if (strcmp (buf, "bert") != 0)
    return pmx_error ("config.json: model_type: '%s' is not supported (only bert)", buf);
  if (cfg_str (hf, "hidden_act", "gelu", buf, sizeof buf) < 0)
    return pmx_error_prefix ("config.json");
  if (strcmp (buf, "gelu") != 0)
    return pmx_error ("config.json: hidden_act: '%s' is not supported (only gelu)", buf);
  if (cfg_str (hf, "position_embedding_type", "absolute", buf, sizeof buf) < 0)
    return pmx_error_prefix ("config.json");
  if (strcmp (buf, "absolute") != 0)
    return pmx_error ("config.json: position_embedding_type: '%s' is not"
                      " supported", buf);
  json_t *arch = json_object_get (hf, "architectures");
  if (json_is_array (arch) && json_is_string (json_array_get (arch, 0)))
    snprintf (rep->architecture, sizeof rep->architecture, "%s",
              json_string_value (json_array_get (arch, 0)));
  if (cfg_int (hf, "vocab_size", 1, 1 << 24, INT_MIN, &cfg->vocab_size) < 0
      || cfg_int (hf, "hidden_size", 1, 1 << 16, INT_MIN, &hidden_size) < 0
      || cfg_int (hf, "num_hidden_layers", 0, 1024, INT_MIN, &cfg->layers) < 0
      || cfg_int (hf, "num_attention_heads", 1, 1024, INT_MIN, &cfg->heads) < 0
      || cfg_int (hf, "intermediate_size", 1, 1 << 20, INT_MIN, &cfg->intermediate) < 0
      || cfg_int (hf, "max_position_embeddings", 1, 1 << 20, 512, &cfg->max_position) < 0
      || cfg_int (hf, "type_vocab_size", 1, 1 << 16, 2, &cfg->type_vocab) < 0)
    return pmx_error_prefix ("config.json");
  if (hidden_size % cfg->heads)
    return pmx_error ("config.json: hidden_size %d is not a multiple of"
                      " num_attention_heads %d", hidden_size, cfg->heads);
  cfg->head_dim = hidden_size / cfg->heads;
  json_t *eps = json_object_get (hf, "layer_norm_eps");
  if (eps && !json_is_number (eps))
    return pmx_error ("config.json: layer_norm_eps: not a number");
  cfg->ln_eps = eps ? json_number_value (eps) : 1e-12;
  if (!(cfg->ln_eps > 0 && cfg->ln_eps < 1))
    return pmx_error ("config.json: layer_norm_eps: %g is outside (0, 1)", cfg->ln_eps);
  /* A pruned hidden size shows only in the embedding width.  */
  const pmx_tensor *we = ts_get (ts, "embeddings.word_embeddings.weight");
  if (!we || we->rank != 2)
    return pmx_error ("model.safetensors: no 2-d embeddings.word_embeddings.weight"
                      " (is this a BERT checkpoint?)");
  if (we->shape[1] > hidden_size)
    return pmx_error ("model.safetensors: word embeddings are %lld wide, more"
                      " than hidden_size %d", (long long) we->shape[1], hidden_size);
  cfg->hidden = (int) we->shape[1];

  /* Multiplexing (MUX-PLM, PruMUX).  */
  int muxed = ts_get (ts, "instance_embedding") != NULL
              || strstr (rep->architecture, "Muxed") != NULL;
  if (muxed)
    {
      if (cfg_str (hf, "muxing_variant", NULL, cfg->mux_variant, sizeof cfg->mux_variant) < 0
          || cfg_str (hf, "demuxing_variant", NULL, cfg->demux_variant,
                      sizeof cfg->demux_variant) < 0
          || cfg_int (hf, "num_instances", 1, 4096, INT_MIN, &cfg->mux_n) < 0
          || cfg_int (hf, "num_hidden_demux_layers", 0, 64, 3, &cfg->demux_layers) < 0)
        return pmx_error_prefix ("config.json");
      if (strcmp (cfg->mux_variant, "gaussian_hadamard") != 0)
        return pmx_error ("config.json: muxing_variant: '%s' is not supported"
                          " (only gaussian_hadamard)", cfg->mux_variant);
      if (strcmp (cfg->demux_variant, "index_pos") != 0
          && strcmp (cfg->demux_variant, "index") != 0
          && strcmp (cfg->demux_variant, "mlp") != 0)
        return pmx_error ("config.json: demuxing_variant: '%s' is not supported",
                          cfg->demux_variant);
      /* Published MUX models attend to padding and pad to 128.  */
      cfg->attend_padding = 1;
      cfg->max_length = 128 < cfg->max_position ? 128 : cfg->max_position;
    }

  /* Tokenizer.  */
  /* Tokenizer files may hold integers too big for jansson (HF writes
     model_max_length 1e30 as an integer): read their numbers as reals.  */
  json_t *tok = load_json (L->model, "tokenizer_config.json", 0,
                           JSON_DECODE_INT_AS_REAL, &err);
  if (err)
    return -1;
  json_t *sb = load_json (dir, "sentence_bert_config.json", 0,
                          JSON_DECODE_INT_AS_REAL, &err);
  if (!sb && !err)
    sb = load_json (L->model, "sentence_bert_config.json", 0,
                    JSON_DECODE_INT_AS_REAL, &err);
  if (err)
    {
      json_decref (tok);
      return -1;
    }
  int lower, sb_lower, rc = 0;
  if (cfg_bool (tok, "do_lower_case", 1, &lower) < 0
      || cfg_bool (tok, "strip_accents", -1, &cfg->strip_accents) < 0)
    rc = pmx_error_prefix ("tokenizer_config.json");
  else if (cfg_bool (sb, "do_lower_case", 0, &sb_lower) < 0)
    rc = pmx_error_prefix ("sentence_bert_config.json");
  if (rc == 0)
    {
      cfg->lowercase = lower || sb_lower;
      /* BertTokenizer: strip_accents None follows lowercase.  */
      if (cfg->strip_accents < 0)
        cfg->strip_accents = lower;
      if (!muxed)
        {
          json_t *v = sb ? json_object_get (sb, "max_seq_length") : NULL;
          json_t *w = tok ? json_object_get (tok, "model_max_length") : NULL;
          cfg->max_length = cfg->max_position;
          if (json_is_number (v) && json_number_value (v) >= 2
              && json_number_value (v) < cfg->max_length)
            cfg->max_length = (int) json_number_value (v);
          else if (json_is_number (w) && json_number_value (w) >= 2
                   && json_number_value (w) < cfg->max_length)
            cfg->max_length = (int) json_number_value (w);
        }
    }
  json_decref (tok);
  json_decref (sb);
  if (rc < 0)
    return -1;
  if (opt->max_length)
    {
      if (opt->max_length < 2 || opt->max_length > cfg->max_position)
        return pmx_error ("--max-length: %d is outside [2, %d]", opt->max_length,
                          cfg->max_position);
      cfg->max_length = opt->max_length;
    }

  /* Heads and pooling: sentence-transformers modules first.  */
  const pmx_tensor *cls = ts_get (ts, "classifier.weight");
  strcpy (cfg->pooling, "cls");
  if (cls && !muxed && ts_get (ts, "pooler.dense.weight"))
    strcpy (cfg->pooling, "pooler");
  json_t *pool = L->pooling ? load_json (dir, L->pooling, 0, 0, &err) : NULL;
  if (L->pooling && err)
    return -1;
  if (pool)
    {
      int mean, clst, maxt, sqrt;
      rc = cfg_bool (pool, "pooling_mode_mean_tokens", 0, &mean) < 0
           || cfg_bool (pool, "pooling_mode_cls_token", 0, &clst) < 0
           || cfg_bool (pool, "pooling_mode_max_tokens", 0, &maxt) < 0
           || cfg_bool (pool, "pooling_mode_mean_sqrt_len_tokens", 0, &sqrt) < 0
           ? -1 : 0;
      json_decref (pool);
      if (rc < 0)
        return pmx_error_prefix ("%s", L->pooling);
      if (maxt || sqrt || mean + clst != 1)
        return pmx_error ("%s: only one of mean or CLS pooling is supported",
                          L->pooling);
      strcpy (cfg->pooling, mean ? "mean" : "cls");
    }
  cfg->normalize = L->normalize;
  if (opt->pooling)
    {
      if (strcmp (opt->pooling, "cls") && strcmp (opt->pooling, "mean")
          && strcmp (opt->pooling, "pooler"))
        return pmx_error ("--pooling: '%s' is not one of cls, mean, pooler",
                          opt->pooling);
      strcpy (cfg->pooling, opt->pooling);
    }

  if (cls)
    {
      if (cls->rank != 2 || cls->shape[0] < 1 || cls->shape[0] > PMX_MAX_LABELS)
        return pmx_error ("model.safetensors: classifier.weight: not a"
                          " (labels, width) matrix");
      if (set_labels (cfg, (int) cls->shape[0], opt->labels,
                      json_object_get (hf, "id2label")) < 0)
        return -1;
    }
  else if (opt->labels)
    return pmx_error ("--labels: the model has no classifier");

  const char *task = opt->task;
  json_t *ft = json_object_get (hf, "finetuning_task");
  if (!task && json_is_string (ft))
    task = json_string_value (ft);
  if (task)
    {
      if (strlen (task) >= sizeof cfg->task)
        return pmx_error ("task: '%.40s' is too long", task);
      strcpy (cfg->task, task);
    }
  return 0;
}

static void
close_weights (pmx_safetensors **sts, int n)
{
  for (int i = 0; i < n; i++)
    pmx_st_close (sts[i]);
  free (sts);
}

/* Open DIR/model.safetensors, or the shards named by
   DIR/model.safetensors.index.json ("weight_map": {tensor: file}).  */
static int
open_weights (const char *dir, pmx_safetensors ***out, int *n)
{
  *out = NULL;
  *n = 0;
  if (exists (dir, "model.safetensors"))
    {
      char *p = path_join (dir, "model.safetensors");
      pmx_safetensors *st = p ? pmx_st_open (p) : NULL;
      free (p);
      if (!st || !(*out = malloc (sizeof **out)))
        {
          pmx_st_close (st);
          return st ? pmx_error ("out of memory") : -1;
        }
      (*out)[(*n)++] = st;
      return 0;
    }
  if (!exists (dir, "model.safetensors.index.json"))
    {
      if (exists (dir, "pytorch_model.bin"))
        return pmx_error ("%s: no model.safetensors, only pytorch_model.bin:"
                          " convert it with bin2safetensors.py first", dir);
      return pmx_error ("%s: no model.safetensors", dir);
    }
  int err;
  json_t *idx = load_json (dir, "model.safetensors.index.json", 1, 0, &err);
  if (!idx)
    return -1;
  json_t *wm = json_object_get (idx, "weight_map");
  const char **names = NULL;    /* file name of each shard, into IDX */
  int rc = 0;
  if (!json_is_object (wm))
    rc = pmx_error ("%s/model.safetensors.index.json: weight_map: not an"
                    " object", dir);
  const char *key;
  json_t *val;
  json_object_foreach (wm, key, val)
    {
      if (rc < 0)
        break;
      const char *file = json_is_string (val) ? json_string_value (val) : "";
      if (!*file || strchr (file, '/') || strcmp (file, "..") == 0)
        {
          rc = pmx_error ("%s/model.safetensors.index.json: weight_map: '%.64s'"
                          " is not a file name", dir, key);
          break;
        }
      /* The shard holding KEY: opened once, found by its file name.  */
      pmx_safetensors *st = NULL;
      for (int i = 0; i < *n && !st; i++)
        if (strcmp (names[i], file) == 0)
          st = (*out)[i];
      if (!st)
        {
          char *p = path_join (dir, file);
          st = p ? pmx_st_open (p) : NULL;
          free (p);
          if (!st)
            {
              rc = -1;
              break;
            }
          pmx_safetensors **g = realloc (*out, sizeof *g * (size_t) (*n + 1));
          const char **h = g ? realloc (names, sizeof *h * (size_t) (*n + 1)) : NULL;
          if (g)
            *out = g;
          if (!h)
            {
              pmx_st_close (st);
              rc = pmx_error ("out of memory");
              break;
            }
          names = h;
          names[*n] = file;
          (*out)[(*n)++] = st;
        }
      if (!pmx_st_get (st, key))
        {
          rc = pmx_error ("%s/%s: no tensor '%s' (weight_map)", dir, file, key);
          break;
        }
    }
  free (names);
  json_decref (idx);
  return rc;
}

int
pmx_hf_import (const char *dir, const pmx_hf_options *opt,
               pmx_model_config *cfg, pmx_hf_tensors *tensors, char **vocab,
               size_t *vocab_len, pmx_hf_report *report)
{
  pmx_hf_report dummy;
  pmx_hf_report *rep = report ? report : &dummy;
  memset (rep, 0, sizeof *rep);
  pmx_model_config_init (cfg);
  tensors->nrecs = 0;
  tensors->recs = NULL;
  *vocab = NULL;
  *vocab_len = 0;
  int err;
  st_layout L;
  if (read_layout (dir, &L) < 0)
    {
      layout_free (&L);
      return pmx_error_prefix ("%s", dir);
    }
  const char *hfdir = L.model;
  json_t *hf = load_json (hfdir, "config.json", 1, 0, &err);
  if (!hf)
    {
      layout_free (&L);
      return -1;
    }
  int rc = -1, nst = 0;
  pmx_safetensors **sts = NULL;
  if (open_weights (hfdir, &sts, &nst) < 0)
    goto out;
  if (import_tensors (sts, nst, tensors, rep) < 0)
    {
      pmx_error_prefix ("%s", hfdir);
      goto out;
    }
  close_weights (sts, nst);
  sts = NULL;
  nst = 0;
  if (map_config (dir, &L, hf, opt, tensors, cfg, rep) < 0)
    {
      pmx_error_prefix ("%s", dir);
      goto out;
    }
  drop_orphan_norms (tensors, cfg->layers, rep);
  if ((opt->vocab ? read_text (NULL, opt->vocab, vocab, vocab_len)
       : read_text (hfdir, "vocab.txt", vocab, vocab_len)) < 0)
    goto out;
  long lines = 0;
  for (size_t i = 0; i < *vocab_len; i++)
    lines += (*vocab)[i] == '\n';
  if (*vocab_len && (*vocab)[*vocab_len - 1] != '\n')
    lines++;
  if (lines > cfg->vocab_size)
    {
      pmx_error ("%s: %ld tokens, more than vocab_size %d",
                 opt->vocab ? opt->vocab : "vocab.txt", lines, cfg->vocab_size);
      goto out;
    }
  rc = 0;
out:
  close_weights (sts, nst);
  json_decref (hf);
  layout_free (&L);
  return rc;
}
