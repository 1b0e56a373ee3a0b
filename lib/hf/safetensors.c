/* safetensors.c -- read a Hugging Face .safetensors file; see safetensors.h.  */

#include <config.h>
#include "safetensors.h"
#include "error.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* safetensors dtype names and their prumux codes (0: not representable).  */
static const struct { const char *name; int dtype; size_t size; } st_dtypes[] = {
  {"F32", PMX_F32, 4}, {"F16", PMX_F16, 2}, {"BF16", PMX_BF16, 2},
  {"F64", PMX_F64, 8}, {"I64", PMX_I64, 8}, {"I32", PMX_I32, 4},
  {"I16", PMX_I16, 2}, {"I8", PMX_I8, 1}, {"U8", PMX_U8, 1},
  {"BOOL", 0, 1}, {"U16", 0, 2}, {"U32", 0, 4}, {"U64", 0, 8},
  {"F8_E4M3", 0, 1}, {"F8_E5M2", 0, 1},
};

static uint64_t
get64 (const unsigned char *p)
{
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--)
    v = v << 8 | p[i];
  return v;
}

static int
cmp_offset (const void *a, const void *b)
{
  const pmx_st_tensor *x = a, *y = b;
  return x->data < y->data ? -1 : x->data > y->data;
}

/* Fill T from the header entry VAL; BASE is the start of the byte buffer of
   DATALEN bytes.  -1 with an error (without the tensor name) on a bad
   field.  */
static int
parse_entry (pmx_st_tensor *t, json_t *val, const unsigned char *base,
             uint64_t datalen)
{
  if (!json_is_object (val))
    return pmx_error ("not an object");
  json_t *dt = json_object_get (val, "dtype");
  json_t *shape = json_object_get (val, "shape");
  json_t *offs = json_object_get (val, "data_offsets");
  if (!json_is_string (dt))
    return pmx_error ("dtype: missing or not a string");
  size_t esize = 0;
  for (size_t i = 0; i < sizeof st_dtypes / sizeof st_dtypes[0]; i++)
    if (strcmp (json_string_value (dt), st_dtypes[i].name) == 0)
      {
        snprintf (t->dtype_name, sizeof t->dtype_name, "%s", st_dtypes[i].name);
        t->dtype = st_dtypes[i].dtype;
        esize = st_dtypes[i].size;
      }
  if (!esize)
    return pmx_error ("dtype: unknown dtype '%.20s'", json_string_value (dt));
  if (!json_is_array (shape))
    return pmx_error ("shape: missing or not an array");
  if (json_array_size (shape) > PMX_MAX_RANK)
    return pmx_error ("shape: rank %zu exceeds %d", json_array_size (shape),
                      PMX_MAX_RANK);
  t->rank = (int) json_array_size (shape);
  uint64_t bytes = esize;
  for (int i = 0; i < t->rank; i++)
    {
      json_t *d = json_array_get (shape, (size_t) i);
      if (!json_is_integer (d) || json_integer_value (d) < 0)
        return pmx_error ("shape: dimension %d is not a whole number >= 0", i);
      t->shape[i] = json_integer_value (d);
      if (__builtin_mul_overflow (bytes, (uint64_t) t->shape[i], &bytes))
        return pmx_error ("shape: too large");
    }
  if (!json_is_array (offs) || json_array_size (offs) != 2
      || !json_is_integer (json_array_get (offs, 0))
      || !json_is_integer (json_array_get (offs, 1)))
    return pmx_error ("data_offsets: missing or not [begin, end]");
  json_int_t b = json_integer_value (json_array_get (offs, 0));
  json_int_t e = json_integer_value (json_array_get (offs, 1));
  if (b < 0 || e < b || (uint64_t) e > datalen)
    return pmx_error ("data_offsets: [%lld, %lld] is outside the %llu-byte"
                      " data buffer", (long long) b, (long long) e,
                      (unsigned long long) datalen);
  if ((uint64_t) (e - b) != bytes)
    return pmx_error ("data_offsets: %lld bytes but the shape needs %llu",
                      (long long) (e - b), (unsigned long long) bytes);
  t->data = base + b;
  t->nbytes = (size_t) bytes;
  return 0;
}

/* Parse the mapped file ST->map; errors without the path prefix.  */
static int
parse (pmx_safetensors *st)
{
  const unsigned char *p = st->map;
  if (st->size < 8)
    return pmx_error ("file too short for a safetensors header (%zu bytes)",
                      st->size);
  uint64_t hlen = get64 (p);
  if (hlen > PMX_ST_HEADER_MAX)
    return pmx_error ("header length %llu exceeds the %u-byte limit",
                      (unsigned long long) hlen, PMX_ST_HEADER_MAX);
  if (hlen > st->size - 8)
    return pmx_error ("header length %llu runs past the end of the file"
                      " (truncated?)", (unsigned long long) hlen);
  const unsigned char *base = p + 8 + hlen;
  uint64_t datalen = st->size - 8 - hlen;
  json_error_t jerr;
  json_t *root = json_loadb ((const char *) p + 8, (size_t) hlen,
                             JSON_REJECT_DUPLICATES, &jerr);
  if (!root)
    return pmx_error ("header: invalid JSON: %s (byte %d)", jerr.text,
                      jerr.position);
  if (!json_is_object (root))
    {
      json_decref (root);
      return pmx_error ("header: not a JSON object");
    }
  size_t n = json_object_size (root);
  st->tensors = calloc (n ? n : 1, sizeof *st->tensors);
  if (!st->tensors)
    {
      json_decref (root);
      return pmx_error ("out of memory");
    }
  const char *key;
  json_t *val;
  int rc = 0;
  json_object_foreach (root, key, val)
    {
      if (strcmp (key, "__metadata__") == 0)
        {
          /* Kept for pmx_st_metadata; the format says string values.  */
          if (json_is_object (val))
            st->meta = json_incref (val);
          continue;
        }
      size_t klen = strlen (key);
      if (klen == 0 || klen > PMX_NAME_MAX)
        {
          rc = pmx_error ("header: tensor name of %zu bytes is invalid", klen);
          break;
        }
      pmx_st_tensor *t = &st->tensors[st->count];
      memcpy (t->name, key, klen + 1);
      if (parse_entry (t, val, base, datalen) < 0)
        {
          rc = pmx_error_prefix ("header: tensor '%s'", key);
          break;
        }
      st->count++;
    }
  json_decref (root);
  if (rc < 0)
    return rc;
  /* The buffer must be covered exactly: no holes, no overlaps.  */
  qsort (st->tensors, (size_t) st->count, sizeof *st->tensors, cmp_offset);
  const unsigned char *at = base;
  for (int i = 0; i < st->count; i++)
    {
      pmx_st_tensor *t = &st->tensors[i];
      if (t->data < at)
        return pmx_error ("header: tensor '%s' overlaps the previous tensor",
                          t->name);
      if (t->data > at)
        return pmx_error ("header: hole of %td bytes before tensor '%s'",
                          t->data - at, t->name);
      at += t->nbytes;
    }
  if ((uint64_t) (at - base) != datalen)
    return pmx_error ("%llu bytes after the last tensor are not described by"
                      " the header", (unsigned long long) (datalen - (uint64_t) (at - base)));
  return 0;
}

pmx_safetensors *
pmx_st_open (const char *path)
{
  pmx_safetensors *st = calloc (1, sizeof *st);
  if (!st)
    {
      pmx_error ("out of memory");
      return NULL;
    }
  int fd = open (path, O_RDONLY | O_CLOEXEC);
  struct stat sb;
  if (fd < 0 || fstat (fd, &sb) < 0)
    {
      pmx_error_errno (errno, "%s", path);
      if (fd >= 0)
        close (fd);
      free (st);
      return NULL;
    }
  if (!S_ISREG (sb.st_mode))
    {
      close (fd);
      free (st);
      pmx_error ("%s: not a regular file", path);
      return NULL;
    }
  st->size = (size_t) sb.st_size;
  if (st->size > 0)
    {
      st->map = mmap (NULL, st->size, PROT_READ, MAP_PRIVATE, fd, 0);
      if (st->map == MAP_FAILED)
        {
          st->map = NULL;
          pmx_error_errno (errno, "%s: mmap", path);
          close (fd);
          free (st);
          return NULL;
        }
    }
  close (fd);
  if (parse (st) < 0)
    {
      pmx_error_prefix ("%s", path);
      pmx_st_close (st);
      return NULL;
    }
  return st;
}

void
pmx_st_close (pmx_safetensors *st)
{
  if (!st)
    return;
  if (st->map)
    munmap (st->map, st->size);
  json_decref (st->meta);
  free (st->tensors);
  free (st);
}

const pmx_st_tensor *
pmx_st_get (const pmx_safetensors *st, const char *name)
{
  for (int i = 0; i < st->count; i++)
    if (strcmp (st->tensors[i].name, name) == 0)
      return &st->tensors[i];
  return NULL;
}

const char *
pmx_st_metadata (const pmx_safetensors *st, const char *key)
{
  json_t *v = st->meta ? json_object_get (st->meta, key) : NULL;
  return json_is_string (v) ? json_string_value (v) : NULL;
}

int
pmx_st_to_f32 (const pmx_st_tensor *t, float *out)
{
  const unsigned char *p = t->data;
  size_t n;
  switch (t->dtype)
    {
    case PMX_F32:
      memcpy (out, p, t->nbytes);
      return 0;
    case PMX_F16:
    case PMX_BF16:
      n = t->nbytes / 2;
      for (size_t i = 0; i < n; i++)
        {
          uint16_t h = (uint16_t) (p[2 * i] | p[2 * i + 1] << 8);
          out[i] = t->dtype == PMX_F16 ? pmx_f16_to_f32 (h) : pmx_bf16_to_f32 (h);
        }
      return 0;
    case PMX_F64:
      n = t->nbytes / 8;
      for (size_t i = 0; i < n; i++)
        {
          double d;
          memcpy (&d, p + 8 * i, 8);
          out[i] = (float) d;
        }
      return 0;
    default:
      return pmx_error ("tensor '%s': dtype %s is not a floating-point type",
                        t->name, t->dtype_name);
    }
}

/* ---- Writing ----------------------------------------------------------------- */

/* Write NBYTES of f32 data little-endian, whatever the host order.  */
static int
write_le32 (FILE *f, const pmx_tensor *t)
{
  const unsigned char *p = t->data;
  int one = 1;
  if (*(const char *) &one == 1)
    return fwrite (p, 1, t->nbytes, f) == t->nbytes ? 0 : -1;
  for (size_t i = 0; i < t->nbytes; i += 4)
    {
      unsigned char b[4] = { p[i + 3], p[i + 2], p[i + 1], p[i] };
      if (fwrite (b, 1, 4, f) != 4)
        return -1;
    }
  return 0;
}

int
pmx_st_write (FILE *f, const char *path, const pmx_st_out *ts, int n,
              const char *const *metadata)
{
  json_t *root = json_object ();
  json_t *meta = json_object ();
  int rc = 0;
  if (!root || !meta
      || json_object_set_new (meta, "format", json_string ("pt")) < 0)
    rc = pmx_error ("out of memory");
  for (int i = 0; rc == 0 && metadata && metadata[i]; i += 2)
    if (json_object_set_new (meta, metadata[i], json_string (metadata[i + 1])) < 0)
      rc = pmx_error ("out of memory");
  if (rc == 0 && json_object_set_new (root, "__metadata__", meta) < 0)
    rc = pmx_error ("out of memory");
  uint64_t off = 0;
  for (int i = 0; i < n && rc == 0; i++)
    {
      const pmx_tensor *t = ts[i].t;
      if (t->dtype != PMX_F32)
        {
          rc = pmx_error ("tensor '%s': only f32 tensors are written", ts[i].name);
          break;
        }
      if (json_object_get (root, ts[i].name))
        {
          rc = pmx_error ("tensor '%s' written twice", ts[i].name);
          break;
        }
      json_t *shape = json_array ();
      json_t *e = json_object ();
      json_t *offs = json_pack ("[II]", (json_int_t) off,
                                (json_int_t) (off + t->nbytes));
      for (int d = 0; shape && d < t->rank; d++)
        json_array_append_new (shape, json_integer (t->shape[d]));
      if (!shape || !e || !offs
          || json_object_set_new (e, "dtype", json_string ("F32")) < 0
          || json_object_set_new (e, "shape", shape) < 0
          || json_object_set_new (e, "data_offsets", offs) < 0
          || json_object_set_new (root, ts[i].name, e) < 0)
        rc = pmx_error ("out of memory");
      off += t->nbytes;
    }
  char *text = rc == 0 ? json_dumps (root, JSON_COMPACT | JSON_PRESERVE_ORDER)
                       : NULL;
  json_decref (root);
  if (rc == 0 && !text)
    rc = pmx_error ("out of memory");
  if (rc < 0)
    {
      free (text);
      return pmx_error_prefix ("%s", path);
    }
  /* Pad the header with spaces so the data starts 8-byte aligned.  */
  size_t hlen = strlen (text);
  size_t padded = (hlen + 7) & ~(size_t) 7;
  unsigned char len8[8];
  for (int i = 0; i < 8; i++)
    len8[i] = (unsigned char) ((uint64_t) padded >> (8 * i));
  int bad = fwrite (len8, 1, 8, f) != 8 || fwrite (text, 1, hlen, f) != hlen;
  for (size_t i = hlen; i < padded && !bad; i++)
    bad = putc (' ', f) == EOF;
  free (text);
  for (int i = 0; i < n && !bad; i++)
    bad = write_le32 (f, ts[i].t) < 0;
  if (bad)
    return pmx_error_errno (errno, "%s: write error", path);
  return 0;
}
