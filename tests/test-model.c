/* test-model.c -- unit tests of the model archive, the safetensors reader
   and the Hugging Face name mapping.

   With arguments, "test-model --time FILE [N]" opens FILE N times (default
   20) and prints the mean time of pmx_model_open + pmx_model_close.  */

#include <config.h>
#include "error.h"
#include "hfimport.h"
#include "model.h"
#include "safetensors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

static void
check_names (void)
{
  char d[PMX_NAME_MAX + 1];
  static const char *const cases[][2] = {
    {"bert.embeddings.word_embeddings.weight", "embeddings.word_embeddings.weight"},
    {"model.bert.pooler.dense.bias", "pooler.dense.bias"},
    {"model.encoder.layer.0.output.dense.weight", "encoder.layer.0.output.dense.weight"},
    {"bert.embeddings.LayerNorm.gamma", "embeddings.LayerNorm.weight"},
    {"encoder.layer.3.output.LayerNorm.beta", "encoder.layer.3.output.LayerNorm.bias"},
    {"demultiplexer.demux_module.dense_1.weight", "demux_module.dense_1.weight"},
    {"retrieval_head.demux_module.demux_instance_embedding",
     "demux_module.demux_instance_embedding"},
    {"demultiplexer.pre_decoder.weight", "demultiplexer.pre_decoder.weight"},
    {"classifier.weight", "classifier.weight"},
    {"instance_embedding", "instance_embedding"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    {
      CHECK (pmx_hf_map_name (cases[i][0], d, sizeof d) == 1);
      if (strcmp (d, cases[i][1]) != 0)
        {
          fprintf (stderr, "map %s: got %s, want %s\n", cases[i][0], d, cases[i][1]);
          failures++;
        }
    }
  CHECK (pmx_hf_map_name ("bert.embeddings.position_ids", d, sizeof d) == 0);
  CHECK (pmx_hf_map_name ("embeddings.token_type_ids", d, sizeof d) == 0);
  CHECK (pmx_hf_map_name ("layer_transformation.weight", d, sizeof d) == 0);
}

/* Write a safetensors file from HEADER and DATALEN bytes of data.  */
static void
write_st (const char *path, const char *header, size_t datalen)
{
  FILE *f = fopen (path, "wb");
  uint64_t n = strlen (header);
  unsigned char len[8];
  for (int i = 0; i < 8; i++)
    len[i] = (unsigned char) (n >> (8 * i));
  fwrite (len, 1, 8, f);
  fwrite (header, 1, n, f);
  for (size_t i = 0; i < datalen; i++)
    fputc ((int) (i * 7 & 0xff), f);
  fclose (f);
}

static void
check_safetensors (const char *dir)
{
  char path[4096];
  snprintf (path, sizeof path, "%s/t.safetensors", dir);
  /* A good file: an f32 (2,3), a bf16 (2) and an i64 (1).  */
  write_st (path, "{\"__metadata__\":{\"format\":\"pt\"},"
            "\"b\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[24,28]},"
            "\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
            "\"c\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[28,36]}}", 36);
  pmx_safetensors *st = pmx_st_open (path);
  CHECK (st != NULL);
  if (st)
    {
      CHECK (st->count == 3);
      const pmx_st_tensor *a = pmx_st_get (st, "a"), *b = pmx_st_get (st, "b");
      CHECK (a && a->dtype == PMX_F32 && a->rank == 2 && a->shape[1] == 3);
      CHECK (b && b->dtype == PMX_BF16);
      float f[6];
      CHECK (a && pmx_st_to_f32 (a, f) == 0);
      CHECK (b && pmx_st_to_f32 (b, f) == 0);
      /* bytes 24..27 = 0xa8 0xaf 0xb6 0xbd (i*7 mod 256) */
      CHECK (f[0] == pmx_bf16_to_f32 (0xafa8) && f[1] == pmx_bf16_to_f32 (0xbdb6));
      CHECK (pmx_st_to_f32 (pmx_st_get (st, "c"), f) < 0);
      pmx_st_close (st);
    }
  /* Hostile files: each must fail cleanly.  */
  static const struct { const char *header; size_t datalen; const char *msg; } bad[] = {
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
     "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, "overlaps"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 16, "not described"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, "hole"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, "shape needs"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,800]}}", 8, "outside"},
    {"{\"a\":{\"dtype\":\"Q4\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "unknown dtype"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904,4],"
     "\"data_offsets\":[0,8]}}", 8, "too large"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,8]}}", 8, "dimension"},
    {"[1,2]", 0, "not a JSON object"},
    {"{\"a\":", 0, "invalid JSON"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    {
      write_st (path, bad[i].header, bad[i].datalen);
      st = pmx_st_open (path);
      CHECK (st == NULL);
      if (st)
        pmx_st_close (st);
      else if (!strstr (pmx_errmsg (), bad[i].msg))
        {
          fprintf (stderr, "bad safetensors %zu: '%s' lacks '%s'\n", i,
                   pmx_errmsg (), bad[i].msg);
          failures++;
        }
    }
  /* A header length far past the end of the file.  */
  FILE *f = fopen (path, "wb");
  fwrite ("\xff\xff\xff\xff\xff\xff\xff\x7f{}", 1, 10, f);
  fclose (f);
  CHECK (pmx_st_open (path) == NULL && strstr (pmx_errmsg (), "exceeds"));
  unlink (path);
}

/* A tiny pruned BERT: hidden 8, 2 heads of 4, 3 layers (layer 1 without
   attention, layer 2 without FFN), vocab 10, a 2-label classifier.  */
static void
tiny_model (pmx_model_config *cfg, pmx_record *rec)
{
  pmx_model_config_init (cfg);
  cfg->vocab_size = 10;
  cfg->hidden = 8;
  cfg->layers = 3;
  cfg->heads = 2;
  cfg->head_dim = 4;
  cfg->intermediate = 16;
  cfg->max_position = 16;
  cfg->max_length = 16;
  cfg->num_labels = 2;
  cfg->labels = calloc (2, sizeof *cfg->labels);
  cfg->labels[0] = strdup ("neg");
  cfg->labels[1] = strdup ("pos");
  pmx_record_init (rec);
  struct { const char *name; int rank; int64_t d0, d1; } t[] = {
    {"embeddings.word_embeddings.weight", 2, 10, 8},
    {"embeddings.position_embeddings.weight", 2, 16, 8},
    {"embeddings.token_type_embeddings.weight", 2, 2, 8},
    {"embeddings.LayerNorm.weight", 1, 8, 0}, {"embeddings.LayerNorm.bias", 1, 8, 0},
    {"encoder.layer.0.attention.self.query.weight", 2, 4, 8},
    {"encoder.layer.0.attention.self.query.bias", 1, 4, 0},
    {"encoder.layer.0.attention.self.key.weight", 2, 4, 8},
    {"encoder.layer.0.attention.self.key.bias", 1, 4, 0},
    {"encoder.layer.0.attention.self.value.weight", 2, 4, 8},
    {"encoder.layer.0.attention.self.value.bias", 1, 4, 0},
    {"encoder.layer.0.attention.output.dense.weight", 2, 8, 4},
    {"encoder.layer.0.attention.output.dense.bias", 1, 8, 0},
    {"encoder.layer.0.attention.output.LayerNorm.weight", 1, 8, 0},
    {"encoder.layer.0.attention.output.LayerNorm.bias", 1, 8, 0},
    {"encoder.layer.0.intermediate.dense.weight", 2, 5, 8},
    {"encoder.layer.0.intermediate.dense.bias", 1, 5, 0},
    {"encoder.layer.0.output.dense.weight", 2, 8, 5},
    {"encoder.layer.0.output.dense.bias", 1, 8, 0},
    {"encoder.layer.0.output.LayerNorm.weight", 1, 8, 0},
    {"encoder.layer.0.output.LayerNorm.bias", 1, 8, 0},
    {"encoder.layer.1.intermediate.dense.weight", 2, 3, 8},
    {"encoder.layer.1.intermediate.dense.bias", 1, 3, 0},
    {"encoder.layer.1.output.dense.weight", 2, 8, 3},
    {"encoder.layer.1.output.dense.bias", 1, 8, 0},
    {"encoder.layer.1.output.LayerNorm.weight", 1, 8, 0},
    {"encoder.layer.1.output.LayerNorm.bias", 1, 8, 0},
    {"encoder.layer.2.attention.self.query.weight", 2, 8, 8},
    {"encoder.layer.2.attention.self.query.bias", 1, 8, 0},
    {"encoder.layer.2.attention.self.key.weight", 2, 8, 8},
    {"encoder.layer.2.attention.self.key.bias", 1, 8, 0},
    {"encoder.layer.2.attention.self.value.weight", 2, 8, 8},
    {"encoder.layer.2.attention.self.value.bias", 1, 8, 0},
    {"encoder.layer.2.attention.output.dense.weight", 2, 8, 8},
    {"encoder.layer.2.attention.output.dense.bias", 1, 8, 0},
    {"encoder.layer.2.attention.output.LayerNorm.weight", 1, 8, 0},
    {"encoder.layer.2.attention.output.LayerNorm.bias", 1, 8, 0},
    {"pooler.dense.weight", 2, 8, 8}, {"pooler.dense.bias", 1, 8, 0},
    {"classifier.weight", 2, 2, 8}, {"classifier.bias", 1, 2, 0},
  };
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
    {
      int64_t shape[2] = {t[i].d0, t[i].d1};
      pmx_tensor *x = pmx_record_add (rec, t[i].name, PMX_F32, t[i].rank, shape);
      float *p = x->data;
      for (int64_t k = 0; k < pmx_tensor_numel (x); k++)
        p[k] = (float) (i * 100 + (size_t) k) * 0.25f;
    }
  strcpy (cfg->pooling, "pooler");
}

static void
check_archive (const char *dir)
{
  char path[4096];
  snprintf (path, sizeof path, "%s/tiny.pmx", dir);
  pmx_model_config cfg;
  pmx_record rec;
  tiny_model (&cfg, &rec);
  const char vocab[] = "[PAD]\n[UNK]\n[CLS]\n[SEP]\na\nb\n";
  CHECK (pmx_model_save (path, &cfg, &rec, vocab, strlen (vocab), 0) == 0);
  CHECK (strlen (cfg.id) == 32);
  char id1[33];
  strcpy (id1, cfg.id);
  pmx_model *m = pmx_model_open (path);
  CHECK (m != NULL);
  if (m)
    {
      const pmx_model_config *c = pmx_model_config_of (m);
      CHECK (strcmp (c->id, id1) == 0);
      CHECK (c->layers == 3 && c->hidden == 8 && c->num_labels == 2);
      CHECK (strcmp (c->labels[1], "pos") == 0);
      CHECK (strcmp (pmx_model_storage (m), "mapped") == 0);
      CHECK (pmx_model_tensor_count (m) == rec.count);
      for (int i = 0; i < rec.count; i++)
        {
          const pmx_tensor *a = rec.slot[i], *b = pmx_model_tensor (m, a->name);
          CHECK (b && b->nbytes == a->nbytes && !memcmp (a->data, b->data, a->nbytes));
          CHECK (b && (uintptr_t) b->data % PMX_ALIGN == 0);
        }
      CHECK (pmx_model_expect (m, "classifier.weight", 2, 2, 8) != NULL);
      CHECK (pmx_model_expect (m, "classifier.weight", 2, 3, 8) == NULL);
      CHECK (pmx_model_tensor (m, "encoder.layer.1.attention.self.query.weight") == NULL);
      size_t vl;
      CHECK (pmx_model_vocab (m, &vl) && vl == strlen (vocab));
      CHECK (pmx_model_verify (m) == 0);
      pmx_model_close (m);
    }
  /* Compressed: same identity, read into memory.  */
  CHECK (pmx_model_save (path, &cfg, &rec, vocab, strlen (vocab),
                         PMX_COMPRESS_GZIP) == 0);
  CHECK (strcmp (cfg.id, id1) == 0);
  m = pmx_model_open (path);
  CHECK (m && strcmp (pmx_model_storage (m), "memory") == 0);
  if (m)
    {
      CHECK (pmx_model_verify (m) == 0);
      const pmx_tensor *t = pmx_model_tensor (m, "encoder.layer.2.attention.self.key.bias");
      const pmx_tensor *u = pmx_record_get (&rec, "encoder.layer.2.attention.self.key.bias");
      CHECK (t && u && !memcmp (t->data, u->data, u->nbytes));
      pmx_model_close (m);
    }
  /* A change of one value changes the identity.  */
  ((float *) rec.slot[5]->data)[0] += 1;
  CHECK (pmx_model_save (path, &cfg, &rec, vocab, strlen (vocab), 0) == 0);
  CHECK (strcmp (cfg.id, id1) != 0);
  ((float *) rec.slot[5]->data)[0] -= 1;
  /* Inconsistent models are refused before anything is written.  */
  unlink (path);
  cfg.num_labels = 1;
  CHECK (pmx_model_save (path, &cfg, &rec, vocab, strlen (vocab), 0) < 0
         && strstr (pmx_errmsg (), "classifier.weight"));
  cfg.num_labels = 2;
  cfg.hidden = 9;
  CHECK (pmx_model_save (path, &cfg, &rec, vocab, strlen (vocab), 0) < 0
         && strstr (pmx_errmsg (), "word_embeddings"));
  cfg.hidden = 8;
  cfg.layers = 2;
  CHECK (pmx_model_save (path, &cfg, &rec, vocab, strlen (vocab), 0) < 0
         && strstr (pmx_errmsg (), "belongs to no layer"));
  cfg.layers = 3;
  pmx_record_remove (&rec, "encoder.layer.0.attention.self.key.bias");
  CHECK (pmx_model_save (path, &cfg, &rec, vocab, strlen (vocab), 0) < 0
         && strstr (pmx_errmsg (), "key.bias' is missing"));
  CHECK (access (path, F_OK) != 0);
  /* No temporary file is left behind.  */
  char cmd[4200];
  snprintf (cmd, sizeof cmd, "test -z \"$(ls '%s' | grep 'tiny.pmx.')\"", dir);
  CHECK (system (cmd) == 0);
  pmx_record_free (&rec);
  pmx_model_config_free (&cfg);
}

static double
now (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (double) ts.tv_sec + ts.tv_nsec * 1e-9;
}

int
main (int argc, char **argv)
{
  if (argc >= 3 && strcmp (argv[1], "--time") == 0)
    {
      int n = argc > 3 ? atoi (argv[3]) : 20;
      double best = 1e9, sum = 0;
      for (int i = 0; i < n; i++)
        {
          double t0 = now ();
          pmx_model *m = pmx_model_open (argv[2]);
          if (!m)
            {
              fprintf (stderr, "test-model: %s\n", pmx_errmsg ());
              return 1;
            }
          pmx_model_close (m);
          double dt = now () - t0;
          sum += dt;
          best = dt < best ? dt : best;
        }
      printf ("pmx_model_open+close %s: mean %.3f ms, best %.3f ms over %d\n",
              argv[2], sum / n * 1e3, best * 1e3, n);
      return 0;
    }
  if (argc >= 3 && strcmp (argv[1], "--write-tiny") == 0)
    {
      pmx_model_config cfg;
      pmx_record rec;
      tiny_model (&cfg, &rec);
      const char vocab[] = "[PAD]\n[UNK]\n[CLS]\n[SEP]\na\nb\n";
      int z = argc > 3 && strcmp (argv[3], "gzip") == 0 ? PMX_COMPRESS_GZIP : 0;
      if (pmx_model_save (argv[2], &cfg, &rec, vocab, strlen (vocab), z) < 0)
        {
          fprintf (stderr, "test-model: %s\n", pmx_errmsg ());
          return 1;
        }
      pmx_record_free (&rec);
      pmx_model_config_free (&cfg);
      return 0;
    }
  char dir[] = "/tmp/prumux-test-model.XXXXXX";
  if (!mkdtemp (dir))
    return 99;
  check_names ();
  check_safetensors (dir);
  check_archive (dir);
  rmdir (dir);
  if (failures)
    fprintf (stderr, "test-model: %d failures\n", failures);
  return failures ? 1 : 0;
}
