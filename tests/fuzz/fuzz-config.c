/* fuzz-config.c -- libFuzzer harness for the model configuration reader
   (config.json of a model archive: JSON, every field's checks, and the
   checks of the tensors against it).  The input becomes config.json of an
   uncompressed archive that also holds the marker and a fixed
   tensors.pmxs: the embeddings of an encoder with no layers, vocab_size
   10, hidden 8, max_position 16, type_vocab 2 (the seed corpus holds a
   config.json that matches).  Build and run with `make fuzz`.  */

#define _GNU_SOURCE 1
#include <config.h>
#include "model.h"
#include "stream.h"
#include "error.h"
#include "fuzz-file.h"

#include <stdlib.h>
#include <string.h>

/* Append a ustar member NAME of LEN bytes to the archive at *BUF.  */
static void
tar_member (char **buf, size_t *len, const char *name, const void *data,
            size_t n)
{
  size_t pad = (512 - n % 512) % 512;
  char *p = realloc (*buf, *len + 512 + n + pad);
  if (!p)
    abort ();
  *buf = p;
  char *h = p + *len;
  memset (h, 0, 512);
  strncpy (h, name, 100);
  memcpy (h + 100, "0000644", 8);
  memcpy (h + 108, "0000000", 8);
  memcpy (h + 116, "0000000", 8);
  snprintf (h + 124, 12, "%011zo", n);
  memcpy (h + 136, "00000000000", 12);
  h[156] = '0';
  memcpy (h + 257, "ustar", 6);
  memcpy (h + 263, "00", 2);
  memset (h + 148, ' ', 8);
  unsigned sum = 0;
  for (int i = 0; i < 512; i++)
    sum += (unsigned char) h[i];
  snprintf (h + 148, 8, "%06o", sum);
  memcpy (h + 512, data, n);
  memset (h + 512 + n, 0, pad);
  *len += 512 + n + pad;
}

/* The fixed tensors.pmxs, made once.  */
static char *tensors;
static size_t tensors_len;

static void
make_tensors (void)
{
  FILE *f = open_memstream (&tensors, &tensors_len);
  pmx_meta meta;
  pmx_meta_init (&meta);
  pmx_meta_set (&meta, "content", "model-tensors");
  pmx_writer *w = pmx_writer_open (f, "tensors.pmxs", &meta);
  pmx_record rec;
  pmx_record_init (&rec);
  static const struct { const char *name; int rank; int64_t d0, d1; } t[] = {
    { "embeddings.word_embeddings.weight", 2, 10, 8 },
    { "embeddings.position_embeddings.weight", 2, 16, 8 },
    { "embeddings.token_type_embeddings.weight", 2, 2, 8 },
    { "embeddings.LayerNorm.weight", 1, 8, 0 },
    { "embeddings.LayerNorm.bias", 1, 8, 0 },
  };
  for (size_t i = 0; i < sizeof t / sizeof *t; i++)
    {
      int64_t shape[2] = { t[i].d0, t[i].d1 };
      pmx_tensor *x = pmx_record_add (&rec, t[i].name, PMX_F32, t[i].rank, shape);
      if (x)
        memset (x->data, 0, x->nbytes);
    }
  if (!w || pmx_writer_write (w, &rec) < 0 || pmx_writer_finish (w) < 0)
    abort ();
  pmx_writer_close (w);
  pmx_record_free (&rec);
  pmx_meta_free (&meta);
  fclose (f);
}

int LLVMFuzzerTestOneInput (const unsigned char *data, size_t size);

int
LLVMFuzzerTestOneInput (const unsigned char *data, size_t size)
{
  if (!tensors)
    make_tensors ();
  static const char marker[] = "prumux model archive, format 1\n";
  char *buf = NULL;
  size_t len = 0;
  tar_member (&buf, &len, "prumux-model", marker, sizeof marker - 1);
  tar_member (&buf, &len, "config.json", data, size);
  tar_member (&buf, &len, "tensors.pmxs", tensors, tensors_len);
  char *p = realloc (buf, len + 1024);
  if (!p)
    abort ();
  memset (p + len, 0, 1024);
  len += 1024;
  const char *path = fuzz_file (p, len);
  free (p);
  if (!path)
    return 0;
  pmx_model *m = pmx_model_open (path);
  if (m)
    {
      free (pmx_model_config_json (m));
      pmx_model_close (m);
    }
  return 0;
}
