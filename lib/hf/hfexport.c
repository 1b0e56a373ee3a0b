/* hfexport.c -- model archive to Hugging Face model directory; see
   hfexport.h.  Every choice here mirrors one in hfimport.c, so that an
   import of the export gives the archive back: the name mapping comes from
   its tables, and the files carry exactly what the importer reads.  */

#include <config.h>
#include "hfexport.h"
#include "error.h"
#include "hfimport.h"
#include "safetensors.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_CREATED 16          /* files and folders an export makes */

static int
starts (const char *s, const char *prefix)
{
  return strncmp (s, prefix, strlen (prefix)) == 0;
}

/* ---- The temporary directory -------------------------------------------------- */

/* What has been created under TMP, so that a failure removes all of it.  */
typedef struct outdir
{
  char *tmp;                    /* DIR.XXXXXX */
  char *created[MAX_CREATED];   /* full paths, in creation order */
  int is_dir[MAX_CREATED];
  int ncreated;
} outdir;

static char *
join (const char *dir, const char *name)
{
  char *p = malloc (strlen (dir) + strlen (name) + 2);
  if (p)
    sprintf (p, "%s/%s", dir, name);
  return p;
}

/* Record PATH (owned from here on) as created.  */
static int
remember (outdir *o, char *path, int is_dir)
{
  if (o->ncreated == MAX_CREATED)
    {
      free (path);
      return pmx_error ("too many files");
    }
  o->is_dir[o->ncreated] = is_dir;
  o->created[o->ncreated++] = path;
  return 0;
}

static void
outdir_discard (outdir *o)
{
  for (int i = o->ncreated - 1; i >= 0; i--)
    {
      if (o->is_dir[i])
        rmdir (o->created[i]);
      else
        unlink (o->created[i]);
      free (o->created[i]);
    }
  o->ncreated = 0;
  if (o->tmp)
    rmdir (o->tmp);
  free (o->tmp);
  o->tmp = NULL;
}

static void
outdir_forget (outdir *o)
{
  for (int i = 0; i < o->ncreated; i++)
    free (o->created[i]);
  o->ncreated = 0;
  free (o->tmp);
  o->tmp = NULL;
}

static int
make_subdir (outdir *o, const char *name)
{
  char *p = join (o->tmp, name);
  if (!p)
    return pmx_error ("out of memory");
  if (mkdir (p, 0777) < 0)
    {
      int rc = pmx_error_errno (errno, "%s", name);
      free (p);
      return rc;
    }
  return remember (o, p, 1);
}

/* Write LEN bytes of DATA as the file NAME of the export.  */
static int
write_file (outdir *o, const char *name, const void *data, size_t len)
{
  char *p = join (o->tmp, name);
  if (!p)
    return pmx_error ("out of memory");
  FILE *f = fopen (p, "wb");
  if (!f)
    {
      int rc = pmx_error_errno (errno, "%s", name);
      free (p);
      return rc;
    }
  if (remember (o, p, 0) < 0)
    {
      fclose (f);
      return -1;
    }
  int bad = fwrite (data, 1, len, f) != len;
  bad |= fclose (f) != 0;
  return bad ? pmx_error_errno (errno, "%s: write error", name) : 0;
}

/* Write J (a reference is taken over) as NAME: indented, sorted keys, as
   transformers writes its JSON files.  */
static int
write_json (outdir *o, const char *name, json_t *j)
{
  /* Reals to 15 digits (0.1, not 0.10000000000000001), unless one needs
     all 17 to read back as the same double.  */
  int digits = 15;
  const char *key;
  json_t *v;
  json_object_foreach (j, key, v)
    if (json_is_real (v))
      {
        char buf[40];
        snprintf (buf, sizeof buf, "%.15g", json_real_value (v));
        if (strtod (buf, NULL) != json_real_value (v))
          digits = 17;
      }
  char *text = j ? json_dumps (j, JSON_INDENT (2) | JSON_SORT_KEYS
                                  | JSON_REAL_PRECISION (digits)) : NULL;
  json_decref (j);
  if (!text)
    return pmx_error ("%s: out of memory", name);
  size_t n = strlen (text);
  char *t = realloc (text, n + 2);
  if (!t)
    {
      free (text);
      return pmx_error ("%s: out of memory", name);
    }
  t[n] = '\n';
  int rc = write_file (o, name, t, n + 1);
  free (t);
  return rc;
}

/* ---- What the importer would read back ------------------------------------------- */

static int
muxed (const pmx_model_config *c)
{
  return strcmp (c->mux_variant, "none") != 0;
}

/* The pooling hfimport.c gives a directory without a Pooling module.  */
static const char *
default_pooling (const pmx_model *m)
{
  const pmx_model_config *c = pmx_model_config_of (m);
  if (c->num_labels && !muxed (c) && pmx_model_tensor (m, "pooler.dense.weight"))
    return "pooler";
  return "cls";
}

static int
has_prefix (const pmx_model *m, const char *prefix)
{
  for (int i = 0; i < pmx_model_tensor_count (m); i++)
    if (starts (pmx_model_tensor_at (m, i)->name, prefix))
      return 1;
  return 0;
}

static const char *
architecture (const pmx_model *m)
{
  const pmx_model_config *c = pmx_model_config_of (m);
  if (muxed (c))
    return c->num_labels ? "MuxedBertForSequenceClassification"
           : pmx_model_tensor (m, "retrieval_head.decoder.weight")
           ? "MuxedBertForMaskedLM" : "MuxedBertModel";
  return c->num_labels ? "BertForSequenceClassification" : "BertModel";
}

/* ---- config.json ------------------------------------------------------------------- */

#define SET(o, k, v) (rc |= json_object_set_new (o, k, v))

static json_t *
hf_config (const pmx_model *m, const char *arch)
{
  const pmx_model_config *c = pmx_model_config_of (m);
  json_t *o = json_object ();
  json_t *archs = json_array ();
  json_t *pruned = json_object ();
  if (!o || !archs || !pruned)
    goto oom;
  int rc = json_array_append_new (archs, json_string (arch));
  SET (o, "architectures", archs);
  SET (o, "model_type", json_string ("bert"));
  SET (o, "vocab_size", json_integer (c->vocab_size));
  /* The unpruned sizes, as CoFi keeps them: the pruned shapes are the
     weights' own, and pruned_heads tells transformers which heads to drop
     before it loads them.  */
  SET (o, "hidden_size", json_integer ((json_int_t) c->heads * c->head_dim));
  SET (o, "num_hidden_layers", json_integer (c->layers));
  SET (o, "num_attention_heads", json_integer (c->heads));
  SET (o, "intermediate_size", json_integer (c->intermediate));
  SET (o, "hidden_act", json_string ("gelu"));
  SET (o, "hidden_dropout_prob", json_real (0.1));
  SET (o, "attention_probs_dropout_prob", json_real (0.1));
  SET (o, "initializer_range", json_real (0.02));
  SET (o, "max_position_embeddings", json_integer (c->max_position));
  SET (o, "type_vocab_size", json_integer (c->type_vocab));
  SET (o, "layer_norm_eps", json_real (c->ln_eps));
  SET (o, "position_embedding_type", json_string ("absolute"));
  SET (o, "pad_token_id", json_integer (0));
  for (int l = 0; l < c->layers; l++)
    {
      int heads, ffn;
      pmx_model_layer_shape (m, l, &heads, &ffn);
      if (heads >= c->heads)
        continue;
      /* Which heads went is not recorded in an archive, only how many:
         the last ones, as good as any for the shapes.  */
      json_t *list = json_array ();
      char key[16];
      snprintf (key, sizeof key, "%d", l);
      for (int h = heads; list && h < c->heads; h++)
        rc |= json_array_append_new (list, json_integer (h));
      if (!list || json_object_set_new (pruned, key, list) < 0)
        goto oom;
    }
  if (json_object_size (pruned))
    SET (o, "pruned_heads", json_incref (pruned));
  if (c->num_labels)
    {
      json_t *id2label = json_object (), *label2id = json_object ();
      SET (o, "id2label", id2label);
      SET (o, "label2id", label2id);
      for (int i = 0; !rc && id2label && label2id && i < c->num_labels; i++)
        {
          char key[16];
          snprintf (key, sizeof key, "%d", i);
          SET (id2label, key, json_string (c->labels[i]));
          SET (label2id, c->labels[i], json_integer (i));
        }
    }
  if (c->task[0])
    SET (o, "finetuning_task", json_string (c->task));
  if (muxed (c))
    {
      /* The MUX-PLM configuration (MUX-PLM-SPEC.md 5.2): what prumux
         runs, and the published code's other fields at the values of the
         fine-tuned checkpoints, since its model classes read them all.  */
      SET (o, "muxing_variant", json_string (c->mux_variant));
      SET (o, "demuxing_variant", json_string (c->demux_variant));
      SET (o, "num_instances", json_integer (c->mux_n));
      SET (o, "num_hidden_demux_layers", json_integer (c->demux_layers));
      SET (o, "binary_hadamard_epsilon", json_real (0.0));
      SET (o, "gaussian_hadamard_norm", json_real (1.0));
      SET (o, "head_temperature", json_real (100.0));
      SET (o, "hierarchical_softmax_buckets", json_integer (100));
      SET (o, "learn_muxing", json_integer (0));
      SET (o, "legacy_demuxing", json_false ());
      SET (o, "retrieval_loss_coeff", json_real (0.0));
      SET (o, "retrieval_percentage", json_real (1.0));
      SET (o, "task_loss_coeff", json_real (1.0));
      SET (o, "use_hierarchical_softmax", json_false ());
    }
  json_decref (pruned);
  if (rc)
    {
      json_decref (o);
      pmx_error ("config.json: out of memory");
      return NULL;
    }
  return o;
oom:
  json_decref (o);
  json_decref (pruned);
  pmx_error ("config.json: out of memory");
  return NULL;
}

/* ---- Tokenizer and sentence-transformers files ------------------------------------- */

static const char *const special_tokens[][2] = {
  {"unk_token", "[UNK]"}, {"sep_token", "[SEP]"}, {"pad_token", "[PAD]"},
  {"cls_token", "[CLS]"}, {"mask_token", "[MASK]"}
};
#define NSPECIAL (sizeof special_tokens / sizeof special_tokens[0])

static int
write_tokenizer (outdir *o, const pmx_model_config *c)
{
  json_t *tok = json_object (), *map = json_object ();
  int rc = !tok || !map;
  for (size_t i = 0; i < NSPECIAL && !rc; i++)
    {
      SET (tok, special_tokens[i][0], json_string (special_tokens[i][1]));
      SET (map, special_tokens[i][0], json_string (special_tokens[i][1]));
    }
  if (tok)
    {
      SET (tok, "tokenizer_class", json_string ("BertTokenizer"));
      SET (tok, "do_lower_case", json_boolean (c->lowercase));
      SET (tok, "strip_accents", json_boolean (c->strip_accents));
      SET (tok, "tokenize_chinese_chars", json_true ());
      SET (tok, "model_max_length", json_integer (c->max_length));
    }
  if (rc)
    {
      json_decref (tok);
      json_decref (map);
      return pmx_error ("out of memory");
    }
  if (write_json (o, "tokenizer_config.json", tok) < 0)
    {
      json_decref (map);
      return -1;
    }
  return write_json (o, "special_tokens_map.json", map);
}

static int
write_sentence_transformers (outdir *o, const pmx_model_config *c)
{
  static const char *const st = "sentence_transformers.models.";
  char type[64];
  json_t *mods = json_array ();
  int rc = !mods;
  const char *names[][2] = {
    {"Transformer", ""}, {"Pooling", "1_Pooling"}, {"Normalize", "2_Normalize"}
  };
  int n = c->normalize ? 3 : 2;
  for (int i = 0; i < n && !rc; i++)
    {
      char idx[8];
      snprintf (idx, sizeof idx, "%d", i);
      snprintf (type, sizeof type, "%s%s", st, names[i][0]);
      rc |= json_array_append_new (mods, json_pack ("{s:i, s:s, s:s, s:s}",
                                                    "idx", i, "name", idx,
                                                    "path", names[i][1],
                                                    "type", type));
    }
  if (rc)
    {
      json_decref (mods);
      return pmx_error ("out of memory");
    }
  if (write_json (o, "modules.json", mods) < 0
      || write_json (o, "sentence_bert_config.json",
                     json_pack ("{s:i, s:b}", "max_seq_length", c->max_length,
                                "do_lower_case", 0)) < 0
      || make_subdir (o, "1_Pooling") < 0
      || write_json (o, "1_Pooling/config.json",
                     json_pack ("{s:i, s:b, s:b, s:b, s:b}",
                                "word_embedding_dimension", c->hidden,
                                "pooling_mode_cls_token",
                                strcmp (c->pooling, "mean") != 0,
                                "pooling_mode_mean_tokens",
                                strcmp (c->pooling, "mean") == 0,
                                "pooling_mode_max_tokens", 0,
                                "pooling_mode_mean_sqrt_len_tokens", 0)) < 0)
    return -1;
  return c->normalize ? make_subdir (o, "2_Normalize") : 0;
}

/* ---- model.safetensors --------------------------------------------------------------- */

/* Every tensor under its state-dict name; the demux module also under the
   names of the modules that share it (the demultiplexer always, the
   retrieval head when the model has one), as the published code saves
   it.  */
static int
write_weights (outdir *o, const pmx_model *m, pmx_hf_export_report *rep)
{
  /* A bare BertModel's state dict has no "bert." (transformers and
     sentence-transformers checkpoints of encoders); a task model's
     encoder is its "bert" member.  */
  int base_model = strcmp (rep->architecture, "BertModel") == 0;
  int n = pmx_model_tensor_count (m);
  int with_retrieval = has_prefix (m, "retrieval_head.");
  int max = n * 3;
  pmx_st_out *out = calloc ((size_t) max + 1, sizeof *out);
  char (*names)[PMX_NAME_MAX + 1] = calloc ((size_t) max + 1, sizeof *names);
  int k = 0, rc = 0;
  if (!out || !names)
    rc = pmx_error ("out of memory");
  for (int i = 0; i < n && rc == 0; i++)
    {
      const pmx_tensor *t = pmx_model_tensor_at (m, i);
      if (base_model && strlen (t->name) < sizeof names[k])
        strcpy (names[k], t->name);
      else if (pmx_hf_source_name (t->name, names[k], sizeof names[k]) < 0)
        {
          rc = -1;
          break;
        }
      out[k].name = names[k];
      out[k++].t = t;
      if (!starts (t->name, "demux_module."))
        continue;
      for (int a = 0; pmx_hf_demux_aliases[a]; a++)
        {
          if (starts (pmx_hf_demux_aliases[a], "retrieval_head.") && !with_retrieval)
            continue;
          if (strlen (pmx_hf_demux_aliases[a]) + strlen (t->name) > PMX_NAME_MAX)
            {
              rc = pmx_error ("tensor '%s': name too long", t->name);
              break;
            }
          sprintf (names[k], "%s%s", pmx_hf_demux_aliases[a], t->name);
          out[k].name = names[k];
          out[k++].t = t;
          rep->aliases++;
        }
    }
  if (rc == 0)
    {
      char *p = join (o->tmp, "model.safetensors");
      FILE *f = p ? fopen (p, "wb") : NULL;
      if (!f)
        {
          rc = p ? pmx_error_errno (errno, "model.safetensors")
                 : pmx_error ("out of memory");
          free (p);
        }
      else if ((rc = remember (o, p, 0)) == 0)
        {
          static const char *const meta[] = {
            PMX_HF_ORDER_KEY, PMX_HF_ORDER_ARCHIVE, NULL
          };
          rc = pmx_st_write (f, "model.safetensors", out, k, meta);
          if (fclose (f) != 0 && rc == 0)
            rc = pmx_error_errno (errno, "model.safetensors: write error");
        }
      else
        fclose (f);
    }
  rep->tensors = k;
  free (out);
  free (names);
  return rc;
}

/* ---- The export ------------------------------------------------------------------------ */

/* 0 if DIR does not exist or is an empty directory (rename(2) replaces
   one), -1 with an error otherwise.  */
static int
check_target (const char *dir)
{
  struct stat sb;
  if (stat (dir, &sb) < 0)
    return errno == ENOENT ? 0 : pmx_error_errno (errno, "%s", dir);
  if (!S_ISDIR (sb.st_mode))
    return pmx_error ("%s: exists and is not a directory", dir);
  DIR *d = opendir (dir);
  if (!d)
    return pmx_error_errno (errno, "%s", dir);
  struct dirent *e;
  int empty = 1;
  while (empty && (e = readdir (d)))
    empty = strcmp (e->d_name, ".") == 0 || strcmp (e->d_name, "..") == 0;
  closedir (d);
  return empty ? 0 : pmx_error ("%s: exists and is not empty (choose a new"
                                " directory)", dir);
}

/* Make O->tmp, a new directory DIR.XXXXXX beside DIR.  Not mkdtemp: its
   directory is private (0700), and the export should get the permissions
   of any new folder (0777 less the umask), which mkdir gives.  */
static int
make_tmpdir (outdir *o, const char *dir)
{
  size_t n = strlen (dir);
  while (n > 1 && dir[n - 1] == '/')
    n--;
  o->tmp = malloc (n + sizeof ".XXXXXX");
  if (!o->tmp)
    return pmx_error ("out of memory");
  unsigned long seed = (unsigned long) getpid () * 2654435761u
                       ^ (unsigned long) time (NULL);
  for (int attempt = 0; attempt < 100; attempt++)
    {
      seed = seed * 6364136223846793005u + 1442695040888963407u;
      snprintf (o->tmp, n + sizeof ".XXXXXX", "%.*s.%06lx", (int) n, dir,
                (seed >> 40) & 0xffffff);
      if (mkdir (o->tmp, 0777) == 0)
        return 0;
      if (errno != EEXIST)
        break;
    }
  int rc = pmx_error_errno (errno, "%s: cannot create a temporary directory",
                            dir);
  free (o->tmp);
  o->tmp = NULL;
  return rc;
}

static int
export_into (outdir *o, const pmx_model *m, pmx_hf_export_report *rep)
{
  const pmx_model_config *c = pmx_model_config_of (m);
  const char *arch = architecture (m);
  snprintf (rep->architecture, sizeof rep->architecture, "%s", arch);
  if (write_json (o, "config.json", hf_config (m, arch)) < 0
      || write_weights (o, m, rep) < 0)
    return -1;
  size_t vlen;
  const char *vocab = pmx_model_vocab (m, &vlen);
  if (vocab && write_file (o, "vocab.txt", vocab, vlen) < 0)
    return -1;
  if (write_tokenizer (o, c) < 0)
    return -1;
  /* The sentence-transformers files carry what config.json cannot: mean
     pooling, normalisation, and CLS pooling where a plain directory would
     be read as pooling through the pooler.  */
  rep->sentence_transformers = strcmp (c->pooling, "mean") == 0 || c->normalize
    || (strcmp (c->pooling, "cls") == 0
        && strcmp (default_pooling (m), "pooler") == 0);
  if (rep->sentence_transformers && write_sentence_transformers (o, c) < 0)
    return -1;
  for (int i = 0; i < o->ncreated; i++)
    rep->files += !o->is_dir[i];
  return 0;
}

int
pmx_hf_export (const pmx_model *m, const char *dir, pmx_hf_export_report *report)
{
  pmx_hf_export_report dummy;
  pmx_hf_export_report *rep = report ? report : &dummy;
  memset (rep, 0, sizeof *rep);
  if (!*dir)
    return pmx_error ("the output directory name is empty");
  if (check_target (dir) < 0)
    return -1;
  outdir o = {0};
  if (make_tmpdir (&o, dir) < 0)
    return -1;
  if (export_into (&o, m, rep) < 0)
    {
      pmx_error_prefix ("%s", dir);
      outdir_discard (&o);
      return -1;
    }
  if (rename (o.tmp, dir) < 0)
    {
      int rc = pmx_error_errno (errno, "%s: cannot rename %s to it", dir, o.tmp);
      outdir_discard (&o);
      return rc;
    }
  outdir_forget (&o);
  return 0;
}
