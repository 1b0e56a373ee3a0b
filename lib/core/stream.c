/* stream.c -- reading and writing the prumux tensor stream (stream.h,
   prumux-stream(5)).

   A reader never trusts a size it reads: every length and shape is checked
   against caps and for overflow before it is used, and tensor buffers grow
   only as bytes actually arrive, so a hostile header cannot make us allocate
   more than the input really holds.  */

#include <config.h>
#include "stream.h"
#include "error.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static const unsigned char magic[8] = { 0x89, 'P', 'M', 'X', '\r', '\n', 0x1a, '\n' };
enum { PREAMBLE_SIZE = 64, FRAME_HEADER = 16, TENS_FIXED = 24, RECD_FIXED = 16,
       END_FIXED = 8 };
#define FLAG_CRITICAL 1u

/* ---- Little-endian byte access --------------------------------------- */

static uint16_t get16 (const unsigned char *p) { return (uint16_t) (p[0] | p[1] << 8); }
static uint32_t
get32 (const unsigned char *p)
{
  return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16
         | (uint32_t) p[3] << 24;
}
static uint64_t get64 (const unsigned char *p) { return get32 (p) | (uint64_t) get32 (p + 4) << 32; }
static void put16 (unsigned char *p, uint16_t v) { p[0] = v & 0xff; p[1] = v >> 8; }
static void
put32 (unsigned char *p, uint32_t v)
{
  for (int i = 0; i < 4; i++)
    p[i] = (v >> (8 * i)) & 0xff;
}
static void put64 (unsigned char *p, uint64_t v) { put32 (p, (uint32_t) v); put32 (p + 4, (uint32_t) (v >> 32)); }

static uint64_t
align_up (uint64_t n)
{
  return (n + PMX_ALIGN - 1) & ~(uint64_t) (PMX_ALIGN - 1);
}

/* ---- Data types --------------------------------------------------------- */

static const struct { const char *name; size_t size; } dtypes[] = {
  [PMX_F32] = { "f32", 4 }, [PMX_F16] = { "f16", 2 }, [PMX_BF16] = { "bf16", 2 },
  [PMX_F64] = { "f64", 8 }, [PMX_I8] = { "i8", 1 }, [PMX_U8] = { "u8", 1 },
  [PMX_I16] = { "i16", 2 }, [PMX_I32] = { "i32", 4 }, [PMX_I64] = { "i64", 8 },
};

size_t
pmx_dtype_size (int dtype)
{
  return dtype >= 1 && dtype <= PMX_DTYPE_LAST ? dtypes[dtype].size : 0;
}

const char *
pmx_dtype_name (int dtype)
{
  return dtype >= 1 && dtype <= PMX_DTYPE_LAST ? dtypes[dtype].name : NULL;
}

int
pmx_dtype_parse (const char *name)
{
  for (int d = 1; d <= PMX_DTYPE_LAST; d++)
    if (strcmp (name, dtypes[d].name) == 0)
      return d;
  return -1;
}

int
pmx_dtype_is_float (int dtype)
{
  return dtype == PMX_F32 || dtype == PMX_F16 || dtype == PMX_BF16 || dtype == PMX_F64;
}

static uint32_t f32_bits (float f) { uint32_t u; memcpy (&u, &f, 4); return u; }
static float bits_f32 (uint32_t u) { float f; memcpy (&f, &u, 4); return f; }

float
pmx_f16_to_f32 (uint16_t h)
{
  uint32_t sign = (uint32_t) (h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
  if (exp == 0x1f)
    return bits_f32 (sign | 0x7f800000u | man << 13);
  if (exp == 0)
    {
      float v = ldexpf ((float) man, -24);
      return sign ? -v : v;
    }
  return bits_f32 (sign | (exp + 112) << 23 | man << 13);
}

uint16_t
pmx_f32_to_f16 (float f)
{
  uint32_t u = f32_bits (f), sign = (u >> 16) & 0x8000;
  uint32_t a = u & 0x7fffffffu;
  if (a >= 0x7f800000u)         /* inf or nan */
    return (uint16_t) (sign | 0x7c00 | (a > 0x7f800000u ? 0x200 | ((a >> 13) & 0x3ff) : 0));
  if (a >= 0x477ff000u)         /* rounds to >= 65536: overflow to inf */
    return (uint16_t) (sign | 0x7c00);
  if (a < 0x38800000u)          /* subnormal half or zero */
    {
      float v = bits_f32 (a) * 16777216.0f;      /* in units of 2^-24 */
      return (uint16_t) (sign | (uint32_t) lrintf (v));
    }
  uint32_t r = a - 0x38000000u; /* rebias 127 -> 15, keep 23-bit mantissa */
  r += 0xfff + ((r >> 13) & 1); /* round to nearest even */
  return (uint16_t) (sign | (r >> 13));
}

float
pmx_bf16_to_f32 (uint16_t h)
{
  return bits_f32 ((uint32_t) h << 16);
}

uint16_t
pmx_f32_to_bf16 (float f)
{
  uint32_t u = f32_bits (f);
  if ((u & 0x7fffffffu) > 0x7f800000u)
    return (uint16_t) ((u >> 16) | 0x40);       /* quiet nan */
  u += 0x7fff + ((u >> 16) & 1);
  return (uint16_t) (u >> 16);
}

/* ---- Tensors and records ---------------------------------------------- */

int64_t
pmx_tensor_numel (const pmx_tensor *t)
{
  int64_t n = 1;
  for (int i = 0; i < t->rank; i++)
    n *= t->shape[i];
  return n;
}

char *
pmx_shape_str (const pmx_tensor *t, char *buf, size_t size)
{
  size_t used = 0;
  buf[0] = '\0';
  if (t->rank == 0)
    snprintf (buf, size, "scalar");
  for (int i = 0; i < t->rank && used < size; i++)
    used += (size_t) snprintf (buf + used, size - used, "%s%lld", i ? "x" : "",
                               (long long) t->shape[i]);
  return buf;
}

/* Validate a shape and compute its byte size; -1 with an error if absurd.  */
static int
shape_bytes (int dtype, int rank, const int64_t *shape, uint64_t limit, uint64_t *bytes)
{
  size_t es = pmx_dtype_size (dtype);
  if (!es)
    return pmx_error ("unknown dtype code %d", dtype);
  if (rank < 0 || rank > PMX_MAX_RANK)
    return pmx_error ("rank %d is out of range 0..%d", rank, PMX_MAX_RANK);
  uint64_t n = es;
  for (int i = 0; i < rank; i++)
    {
      if (shape[i] < 0)
        return pmx_error ("dimension %d is negative", i);
      uint64_t d = (uint64_t) shape[i];
      if (d && n > limit / d)
        return pmx_error ("shape is too large (limit %llu bytes)",
                          (unsigned long long) limit);
      n *= d;
    }
  if (rank > 0)
    for (int i = 0; i < rank; i++)
      if (shape[i] == 0)
        n = 0;
  if (n > limit)
    return pmx_error ("shape is too large (limit %llu bytes)", (unsigned long long) limit);
  *bytes = n;
  return 0;
}

static int
valid_name (const char *name, size_t len)
{
  if (len == 0 || len > PMX_NAME_MAX)
    return 0;
  for (size_t i = 0; i < len; i++)
    if ((unsigned char) name[i] <= ' ' || name[i] == 0x7f)
      return 0;
  return 1;
}

void
pmx_record_init (pmx_record *r)
{
  memset (r, 0, sizeof *r);
}

void
pmx_record_reset (pmx_record *r)
{
  r->count = 0;
}

void
pmx_record_free (pmx_record *r)
{
  for (int i = 0; i < PMX_MAX_TENSORS; i++)
    if (r->slot[i])
      {
        free (r->slot[i]->owned);
        free (r->slot[i]);
      }
  memset (r, 0, sizeof *r);
}

pmx_tensor *
pmx_record_at (const pmx_record *r, int i)
{
  return i >= 0 && i < r->count ? r->slot[i] : NULL;
}

pmx_tensor *
pmx_record_get (const pmx_record *r, const char *name)
{
  for (int i = 0; i < r->count; i++)
    if (strcmp (r->slot[i]->name, name) == 0)
      return r->slot[i];
  return NULL;
}

/* Make sure T owns at least N bytes (content not kept) and point data at
   them.  */
static int
tensor_reserve (pmx_tensor *t, size_t n)
{
  if (t->capacity < n || !t->owned)
    {
      size_t cap = align_up (n ? n : 1);
      void *p = NULL;
      if (posix_memalign (&p, PMX_ALIGN, cap) != 0)
        return pmx_error ("out of memory for %zu bytes", n);
      free (t->owned);
      t->owned = p;
      t->capacity = cap;
    }
  t->data = t->owned;
  return 0;
}

/* Grow T's owned buffer to N bytes, keeping the first KEEP bytes.  */
static int
tensor_grow (pmx_tensor *t, size_t n, size_t keep)
{
  if (t->capacity >= n && t->data == t->owned)
    return 0;
  void *p = NULL;
  size_t cap = align_up (n);
  if (posix_memalign (&p, PMX_ALIGN, cap) != 0)
    return pmx_error ("out of memory for %zu bytes", n);
  if (keep)
    memcpy (p, t->data, keep);
  free (t->owned);
  t->owned = p;
  t->data = p;
  t->capacity = cap;
  return 0;
}

/* The next free slot, with its tensor allocated; NULL on error.  */
static pmx_tensor *
record_next_slot (pmx_record *r)
{
  if (r->count >= PMX_MAX_TENSORS)
    {
      pmx_error ("more than %d tensors in a record", PMX_MAX_TENSORS);
      return NULL;
    }
  if (!r->slot[r->count])
    {
      r->slot[r->count] = calloc (1, sizeof (pmx_tensor));
      if (!r->slot[r->count])
        {
          pmx_error ("out of memory");
          return NULL;
        }
    }
  return r->slot[r->count];
}

pmx_tensor *
pmx_record_add (pmx_record *r, const char *name, int dtype, int rank,
                const int64_t *shape)
{
  uint64_t bytes;
  if (!valid_name (name, strlen (name)))
    {
      pmx_error ("invalid tensor name '%s'", name);
      return NULL;
    }
  if (pmx_record_get (r, name))
    {
      pmx_error ("duplicate tensor '%s'", name);
      return NULL;
    }
  if (shape_bytes (dtype, rank, shape, SIZE_MAX / 2, &bytes) < 0)
    {
      pmx_error_prefix ("tensor '%s'", name);
      return NULL;
    }
  pmx_tensor *t = record_next_slot (r);
  if (!t || tensor_reserve (t, (size_t) bytes) < 0)
    return NULL;
  strcpy (t->name, name);
  t->dtype = dtype;
  t->rank = rank;
  for (int i = 0; i < rank; i++)
    t->shape[i] = shape[i];
  t->nbytes = (size_t) bytes;
  r->count++;
  return t;
}

pmx_tensor *
pmx_record_expect (const pmx_record *r, const char *name, int dtype, int rank)
{
  pmx_tensor *t = pmx_record_get (r, name);
  if (!t)
    pmx_error ("no tensor '%s'", name);
  else if (dtype > 0 && t->dtype != (pmx_dtype) dtype)
    pmx_error ("tensor '%s' is %s, expected %s", name, pmx_dtype_name (t->dtype),
               pmx_dtype_name (dtype));
  else if (rank >= 0 && t->rank != rank)
    pmx_error ("tensor '%s' has rank %d, expected %d", name, t->rank, rank);
  else
    return t;
  return NULL;
}

int
pmx_record_remove (pmx_record *r, const char *name)
{
  for (int i = 0; i < r->count; i++)
    if (strcmp (r->slot[i]->name, name) == 0)
      {
        pmx_tensor *t = r->slot[i];
        memmove (&r->slot[i], &r->slot[i + 1], (size_t) (r->count - i - 1) * sizeof t);
        r->slot[--r->count] = t;
        return 0;
      }
  return -1;
}

/* ---- Metadata ----------------------------------------------------------- */

void
pmx_meta_init (pmx_meta *m)
{
  memset (m, 0, sizeof *m);
}

void
pmx_meta_free (pmx_meta *m)
{
  for (int i = 0; i < m->count; i++)
    {
      free (m->key[i]);
      free (m->value[i]);
    }
  free (m->key);
  free (m->value);
  memset (m, 0, sizeof *m);
}

static int
valid_key (const char *k)
{
  size_t n = strlen (k);
  if (n == 0 || n > 64)
    return 0;
  for (size_t i = 0; i < n; i++)
    {
      char c = k[i];
      if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
            || c == '_' || c == '.' || c == '-'))
        return 0;
    }
  return 1;
}

/* Whether S is well-formed UTF-8 (no overlongs, surrogates or values past
   U+10FFFF), so every text form of the metadata stays valid.  */
static int
valid_utf8 (const unsigned char *s)
{
  while (*s)
    {
      unsigned c = *s++, n, min, cp;
      if (c < 0x80)
        continue;
      if ((c & 0xe0) == 0xc0)
        n = 1, min = 0x80, cp = c & 0x1f;
      else if ((c & 0xf0) == 0xe0)
        n = 2, min = 0x800, cp = c & 0x0f;
      else if ((c & 0xf8) == 0xf0)
        n = 3, min = 0x10000, cp = c & 0x07;
      else
        return 0;
      for (unsigned i = 0; i < n; i++, s++)
        {
          if ((*s & 0xc0) != 0x80)
            return 0;
          cp = cp << 6 | (*s & 0x3f);
        }
      if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    }
  return 1;
}

int
pmx_meta_set (pmx_meta *m, const char *key, const char *value)
{
  if (!valid_key (key))
    return pmx_error ("invalid metadata key '%s'", key);
  if (strpbrk (value, "\r\n"))
    return pmx_error ("metadata value for '%s' contains a line break", key);
  if (!valid_utf8 ((const unsigned char *) value))
    return pmx_error ("metadata value for '%s' is not valid UTF-8", key);
  char *v = strdup (value);
  if (!v)
    return pmx_error ("out of memory");
  for (int i = 0; i < m->count; i++)
    if (strcmp (m->key[i], key) == 0)
      {
        free (m->value[i]);
        m->value[i] = v;
        return 0;
      }
  char *k = strdup (key);
  char **nk = realloc (m->key, (size_t) (m->count + 1) * sizeof *nk);
  if (nk)
    m->key = nk;
  char **nv = nk ? realloc (m->value, (size_t) (m->count + 1) * sizeof *nv) : NULL;
  if (nv)
    m->value = nv;
  if (!k || !nk || !nv)
    {
      free (k);
      free (v);
      return pmx_error ("out of memory");
    }
  m->key[m->count] = k;
  m->value[m->count] = v;
  m->count++;
  return 0;
}

int
pmx_meta_setf (pmx_meta *m, const char *key, const char *fmt, ...)
{
  char buf[4096];
  va_list ap;
  va_start (ap, fmt);
  int n = vsnprintf (buf, sizeof buf, fmt, ap);
  va_end (ap);
  if (n < 0 || (size_t) n >= sizeof buf)
    return pmx_error ("metadata value for '%s' is too long", key);
  return pmx_meta_set (m, key, buf);
}

const char *
pmx_meta_get (const pmx_meta *m, const char *key)
{
  for (int i = 0; i < m->count; i++)
    if (strcmp (m->key[i], key) == 0)
      return m->value[i];
  return NULL;
}

int
pmx_meta_get_int (const pmx_meta *m, const char *key, long long lo, long long hi,
                  long long *out)
{
  const char *v = pmx_meta_get (m, key);
  if (!v)
    return 1;
  char *end;
  errno = 0;
  long long x = strtoll (v, &end, 10);
  if (end == v || *end || errno || x < lo || x > hi)
    return pmx_error ("metadata %s=%s: expected a whole number in %lld..%lld",
                      key, v, lo, hi);
  *out = x;
  return 0;
}

int
pmx_meta_copy (pmx_meta *dst, const pmx_meta *src)
{
  for (int i = 0; src && i < src->count; i++)
    if (pmx_meta_set (dst, src->key[i], src->value[i]) < 0)
      return -1;
  return 0;
}

/* Parse META text ("key=value\n" lines) into M.  */
static int
parse_meta (pmx_meta *m, char *text, size_t len)
{
  char *p = text, *end = text + len;
  int line = 0;
  while (p < end)
    {
      char *nl = memchr (p, '\n', (size_t) (end - p));
      if (!nl)
        return pmx_error ("META: last line is not terminated");
      *nl = '\0';
      line++;
      char *eq = strchr (p, '=');
      if (!eq)
        return pmx_error ("META line %d: no '='", line);
      *eq = '\0';
      if (pmx_meta_set (m, p, eq + 1) < 0)
        return pmx_error_prefix ("META line %d", line);
      p = nl + 1;
    }
  return 0;
}

/* ---- Reader ------------------------------------------------------------- */

struct pmx_reader
{
  FILE *f;                      /* or NULL for a memory reader */
  const unsigned char *mem;
  size_t memlen;
  char *name;
  uint64_t pos;                 /* bytes consumed */
  uint64_t limit;
  uint64_t records;
  int ended;
  int truncated;                /* the input ended before its END frame */
  pmx_meta meta;
};

/* Read exactly N bytes into BUF (or skip them if BUF is NULL).  Returns 0,
   or -1 with "truncated" / read-error messages.  */
static int
rd (pmx_reader *r, void *buf, uint64_t n)
{
  if (r->mem)
    {
      if (n > r->memlen - r->pos)
        {
          r->truncated = 1;
          return pmx_error ("unexpected end of stream at byte %llu (truncated)",
                            (unsigned long long) r->memlen);
        }
      if (buf)
        memcpy (buf, r->mem + r->pos, (size_t) n);
      r->pos += n;
      return 0;
    }
  unsigned char scratch[4096];
  while (n > 0)
    {
      size_t want = buf ? (size_t) (n > SIZE_MAX / 2 ? SIZE_MAX / 2 : n)
                        : (size_t) (n < sizeof scratch ? n : sizeof scratch);
      size_t got = fread (buf ? buf : scratch, 1, want, r->f);
      r->pos += got;
      n -= got;
      if (buf)
        buf = (char *) buf + got;
      if (got < want)
        {
          if (ferror (r->f))
            return pmx_error_errno (errno, "read error");
          r->truncated = 1;
          return pmx_error ("unexpected end of stream at byte %llu (truncated)",
                            (unsigned long long) r->pos);
        }
    }
  return 0;
}

static pmx_reader *
reader_new (const char *name)
{
  pmx_reader *r = calloc (1, sizeof *r);
  if (!r || !(r->name = strdup (name ? name : "-")))
    {
      free (r);
      pmx_error ("out of memory");
      return NULL;
    }
  r->limit = PMX_DEFAULT_TENSOR_LIMIT;
  pmx_meta_init (&r->meta);
  return r;
}

static int
frame_header (pmx_reader *r, char kind[5], uint32_t *flags, uint64_t *len)
{
  unsigned char h[FRAME_HEADER];
  uint64_t at = r->pos;
  if (rd (r, h, FRAME_HEADER) < 0)
    return -1;
  memcpy (kind, h, 4);
  kind[4] = '\0';
  for (int i = 0; i < 4; i++)
    if (h[i] < 0x20 || h[i] > 0x7e)
      return pmx_error ("byte %llu: not a frame header (corrupt stream)",
                        (unsigned long long) at);
  *flags = get32 (h + 4);
  *len = get64 (h + 8);
  if ((*len + FRAME_HEADER) % PMX_ALIGN != 0 || *len > UINT64_MAX / 2)
    return pmx_error ("byte %llu: %s frame length %llu is not aligned (corrupt stream)",
                      (unsigned long long) at, kind, (unsigned long long) *len);
  return 0;
}

static int
read_preamble (pmx_reader *r)
{
  unsigned char p[PREAMBLE_SIZE];
  if (rd (r, p, 8) < 0)
    return pmx_error ("%s: not a prumux stream (too short)", r->name);
  if (memcmp (p, magic, 8) != 0)
    {
      if (memcmp (p + 1, magic + 1, 3) == 0)
        return pmx_error ("%s: bad magic (stream mangled by a text-mode transfer?)", r->name);
      return pmx_error ("%s: bad magic (not a prumux stream)", r->name);
    }
  if (rd (r, p + 8, PREAMBLE_SIZE - 8) < 0)
    return pmx_error_prefix ("%s", r->name);
  unsigned major = get16 (p + 8), minor = get16 (p + 10);
  uint32_t bom = get32 (p + 12);
  if (bom == 0x04030201u)
    return pmx_error ("%s: stream is big-endian, which is not supported", r->name);
  if (bom != 0x01020304u)
    return pmx_error ("%s: bad byte-order mark 0x%08x", r->name, (unsigned) bom);
  if (major != PMX_STREAM_MAJOR)
    return pmx_error ("%s: stream format version %u.%u is not supported (this is %d.%d)",
                      r->name, major, minor, PMX_STREAM_MAJOR, PMX_STREAM_MINOR);
  char kind[5];
  uint32_t flags;
  uint64_t len;
  if (frame_header (r, kind, &flags, &len) < 0)
    return pmx_error_prefix ("%s", r->name);
  if (strcmp (kind, "META") != 0)
    return pmx_error ("%s: expected a META frame after the preamble, found '%s'", r->name, kind);
  if (len > PMX_META_MAX)
    return pmx_error ("%s: META frame of %llu bytes exceeds the %u-byte limit",
                      r->name, (unsigned long long) len, PMX_META_MAX);
  char *text = malloc ((size_t) len + 1);
  if (!text)
    return pmx_error ("out of memory");
  if (rd (r, text, len) < 0)
    {
      free (text);
      return pmx_error_prefix ("%s", r->name);
    }
  text[len] = '\0';
  int rc = parse_meta (&r->meta, text, strlen (text));
  free (text);
  return rc < 0 ? pmx_error_prefix ("%s", r->name) : 0;
}

pmx_reader *
pmx_reader_open (FILE *f, const char *name)
{
  pmx_reader *r = reader_new (name);
  if (!r)
    return NULL;
  r->f = f;
  if (read_preamble (r) < 0)
    {
      pmx_reader_close (r);
      return NULL;
    }
  return r;
}

pmx_reader *
pmx_reader_open_mem (const void *buf, size_t len, const char *name)
{
  pmx_reader *r = reader_new (name);
  if (!r)
    return NULL;
  r->mem = buf;
  r->memlen = len;
  if (read_preamble (r) < 0)
    {
      pmx_reader_close (r);
      return NULL;
    }
  return r;
}

const pmx_meta *
pmx_reader_meta (const pmx_reader *r)
{
  return &r->meta;
}

void
pmx_reader_set_limit (pmx_reader *r, uint64_t max_tensor_bytes)
{
  r->limit = max_tensor_bytes;
}

uint64_t
pmx_reader_records (const pmx_reader *r)
{
  return r->records;
}

int
pmx_reader_truncated (const pmx_reader *r)
{
  return r->truncated;
}

void
pmx_reader_close (pmx_reader *r)
{
  if (!r)
    return;
  pmx_meta_free (&r->meta);
  free (r->name);
  free (r);
}

/* Read the body of a TENS frame of payload length LEN into a new tensor of
   REC.  */
static int
read_tensor (pmx_reader *r, pmx_record *rec, uint64_t len)
{
  unsigned char fx[TENS_FIXED + 8 * PMX_MAX_RANK];
  uint64_t frame_start = r->pos - FRAME_HEADER;
  if (len < TENS_FIXED)
    return pmx_error ("TENS frame too short");
  if (rd (r, fx, TENS_FIXED) < 0)
    return -1;
  int dtype = fx[0], rank = fx[1];
  unsigned namelen = get16 (fx + 2);
  uint64_t data_off = get64 (fx + 8), data_bytes = get64 (fx + 16);
  if (!pmx_dtype_size (dtype))
    return pmx_error ("unknown dtype code %d", dtype);
  if (rank > PMX_MAX_RANK)
    return pmx_error ("rank %d exceeds %d", rank, PMX_MAX_RANK);
  if (namelen == 0 || namelen > PMX_NAME_MAX)
    return pmx_error ("tensor name length %u is invalid", namelen);
  uint64_t head = TENS_FIXED + 8 * (uint64_t) rank + namelen;
  if (head > len)
    return pmx_error ("TENS frame too short for its header");
  if (rd (r, fx + TENS_FIXED, 8 * (uint64_t) rank) < 0)
    return -1;
  char name[PMX_NAME_MAX + 1];
  if (rd (r, name, namelen) < 0)
    return -1;
  name[namelen] = '\0';
  if (!valid_name (name, namelen) || memchr (name, '\0', namelen))
    return pmx_error ("invalid tensor name");
  int64_t shape[PMX_MAX_RANK];
  for (int i = 0; i < rank; i++)
    {
      uint64_t d = get64 (fx + TENS_FIXED + 8 * i);
      if (d > INT64_MAX)
        return pmx_error ("tensor '%s': dimension %d is negative", name, i);
      shape[i] = (int64_t) d;
    }
  uint64_t bytes;
  if (shape_bytes (dtype, rank, shape, r->limit, &bytes) < 0)
    return pmx_error_prefix ("tensor '%s'", name);
  if (bytes != data_bytes)
    return pmx_error ("tensor '%s': payload is %llu bytes but the shape needs %llu",
                      name, (unsigned long long) data_bytes, (unsigned long long) bytes);
  if (data_off % PMX_ALIGN || data_off < FRAME_HEADER + head
      || data_off - FRAME_HEADER > len || bytes > len - (data_off - FRAME_HEADER))
    return pmx_error ("tensor '%s': payload offset %llu is invalid", name,
                      (unsigned long long) data_off);
  if (pmx_record_get (rec, name))
    return pmx_error ("duplicate tensor '%s'", name);
  pmx_tensor *t = record_next_slot (rec);
  if (!t)
    return -1;
  strcpy (t->name, name);
  t->dtype = dtype;
  t->rank = rank;
  memcpy (t->shape, shape, sizeof shape[0] * (size_t) rank);
  t->nbytes = (size_t) bytes;
  if (rd (r, NULL, frame_start + data_off - r->pos) < 0)
    return -1;
  if (r->mem && ((uintptr_t) (r->mem + r->pos) % PMX_ALIGN) == 0)
    {
      const void *at = r->mem + r->pos;
      if (rd (r, NULL, bytes) < 0)              /* bounds check, then borrow */
        return pmx_error_prefix ("tensor '%s'", name);
      t->data = (void *) at;
    }
  else
    {
      /* Grow with the data actually read, never straight to the claimed size.  */
      size_t have = 0, step = (size_t) 1 << 20;
      if (tensor_reserve (t, bytes < step ? (size_t) bytes : step) < 0)
        return -1;
      while (have < bytes)
        {
          size_t want = (size_t) bytes - have;
          if (want > t->capacity - have)
            {
              size_t cap = t->capacity * 2 > bytes ? (size_t) bytes : t->capacity * 2;
              if (tensor_grow (t, cap, have) < 0)
                return -1;
              want = t->capacity - have;
              if (want > (size_t) bytes - have)
                want = (size_t) bytes - have;
            }
          if (rd (r, (char *) t->data + have, want) < 0)
            return pmx_error_prefix ("tensor '%s'", name);
          have += want;
        }
    }
  if (rd (r, NULL, frame_start + FRAME_HEADER + len - r->pos) < 0)
    return -1;
  rec->count++;
  return 0;
}

static int
reader_read (pmx_reader *r, pmx_record *rec)
{
  char kind[5];
  uint32_t flags;
  uint64_t len;
  unsigned char buf[RECD_FIXED];
  for (;;)
    {
      if (frame_header (r, kind, &flags, &len) < 0)
        return -1;
      if (strcmp (kind, "END ") == 0)
        {
          if (len < END_FIXED || rd (r, buf, END_FIXED) < 0 || rd (r, NULL, len - END_FIXED) < 0)
            return pmx_error ("END frame is truncated");
          if (get64 (buf) != r->records)
            return pmx_error ("END frame counts %llu records but %llu were read",
                              (unsigned long long) get64 (buf),
                              (unsigned long long) r->records);
          r->ended = 1;
          return 0;
        }
      if (strcmp (kind, "RECD") == 0)
        break;
      if (strcmp (kind, "TENS") == 0 || strcmp (kind, "META") == 0)
        return pmx_error ("%s frame outside a record", kind);
      if (flags & FLAG_CRITICAL)
        return pmx_error ("unknown critical frame '%s' (stream from a newer prumux?)", kind);
      if (rd (r, NULL, len) < 0)    /* an unknown frame: skip it */
        return -1;
    }
  if (len < RECD_FIXED || rd (r, buf, RECD_FIXED) < 0 || rd (r, NULL, len - RECD_FIXED) < 0)
    return pmx_error ("RECD frame is truncated");
  uint64_t seq = get64 (buf);
  uint32_t count = get32 (buf + 8);
  if (seq != r->records)
    return pmx_error ("record number %llu out of sequence", (unsigned long long) seq);
  if (count > PMX_MAX_TENSORS)
    return pmx_error ("%u tensors exceed the limit of %d", (unsigned) count, PMX_MAX_TENSORS);
  rec->seq = seq;
  while ((uint32_t) rec->count < count)
    {
      if (frame_header (r, kind, &flags, &len) < 0)
        return -1;
      if (strcmp (kind, "TENS") == 0)
        {
          if (read_tensor (r, rec, len) < 0)
            return -1;
        }
      else if (strcmp (kind, "RECD") == 0 || strcmp (kind, "END ") == 0
               || strcmp (kind, "META") == 0 || (flags & FLAG_CRITICAL))
        return pmx_error ("expected %u tensors, found a '%s' frame after %d",
                          (unsigned) count, kind, rec->count);
      else if (rd (r, NULL, len) < 0)
        return -1;
    }
  r->records++;
  return 1;
}

int
pmx_reader_read (pmx_reader *r, pmx_record *rec)
{
  pmx_record_reset (rec);
  if (r->ended)
    return 0;
  int rc = reader_read (r, rec);
  if (rc < 0)
    {
      pmx_record_reset (rec);
      return pmx_error_prefix ("%s: record %llu", r->name, (unsigned long long) r->records);
    }
  return rc;
}

/* ---- Writer ------------------------------------------------------------- */

struct pmx_writer
{
  FILE *f;
  char *name;
  uint64_t pos;
  uint64_t records;
  int flush;
  int failed;
};

static const unsigned char zeros[PMX_ALIGN];

static int
wr (pmx_writer *w, const void *buf, size_t n)
{
  if (w->failed)
    return -1;
  if (n && fwrite (buf ? buf : zeros, 1, n, w->f) != n)
    {
      w->failed = 1;
      return pmx_error_errno (errno, "%s: write error", w->name);
    }
  w->pos += n;
  return 0;
}

static int
wr_pad (pmx_writer *w)
{
  size_t n = (size_t) (align_up (w->pos) - w->pos);
  return wr (w, zeros, n);
}

static int
wr_frame_header (pmx_writer *w, const char *kind, uint32_t flags, uint64_t len)
{
  unsigned char h[FRAME_HEADER];
  memcpy (h, kind, 4);
  put32 (h + 4, flags);
  put64 (h + 8, len);
  return wr (w, h, FRAME_HEADER);
}

static int
wr_flush (pmx_writer *w)
{
  if (fflush (w->f) != 0)
    {
      w->failed = 1;
      return pmx_error_errno (errno, "%s: write error", w->name);
    }
  return 0;
}

pmx_writer *
pmx_writer_open (FILE *f, const char *name, const pmx_meta *meta)
{
  pmx_writer *w = calloc (1, sizeof *w);
  if (!w || !(w->name = strdup (name ? name : "-")))
    {
      free (w);
      pmx_error ("out of memory");
      return NULL;
    }
  w->f = f;
  w->flush = 1;
  unsigned char p[PREAMBLE_SIZE] = { 0 };
  memcpy (p, magic, 8);
  put16 (p + 8, PMX_STREAM_MAJOR);
  put16 (p + 10, PMX_STREAM_MINOR);
  put32 (p + 12, 0x01020304u);
  size_t textlen = 0;
  for (int i = 0; meta && i < meta->count; i++)
    textlen += strlen (meta->key[i]) + strlen (meta->value[i]) + 2;
  if (textlen > PMX_META_MAX - PMX_ALIGN)
    {
      pmx_error ("%s: metadata too large", w->name);
      pmx_writer_close (w);
      return NULL;
    }
  int rc = wr (w, p, sizeof p)
           || wr_frame_header (w, "META", 0, align_up (FRAME_HEADER + textlen) - FRAME_HEADER);
  for (int i = 0; !rc && meta && i < meta->count; i++)
    rc = wr (w, meta->key[i], strlen (meta->key[i])) || wr (w, "=", 1)
         || wr (w, meta->value[i], strlen (meta->value[i])) || wr (w, "\n", 1);
  if (rc || wr_pad (w) < 0)
    {
      pmx_writer_close (w);
      return NULL;
    }
  return w;
}

void
pmx_writer_set_flush (pmx_writer *w, int flush_each_record)
{
  w->flush = flush_each_record;
}

static int
wr_tensor (pmx_writer *w, const pmx_tensor *t)
{
  size_t namelen = strlen (t->name);
  uint64_t head = TENS_FIXED + 8 * (uint64_t) t->rank + namelen;
  uint64_t data_off = align_up (FRAME_HEADER + head);
  uint64_t len = align_up (data_off + t->nbytes) - FRAME_HEADER;
  unsigned char fx[TENS_FIXED + 8 * PMX_MAX_RANK] = { 0 };
  fx[0] = (unsigned char) t->dtype;
  fx[1] = (unsigned char) t->rank;
  put16 (fx + 2, (uint16_t) namelen);
  put64 (fx + 8, data_off);
  put64 (fx + 16, t->nbytes);
  for (int i = 0; i < t->rank; i++)
    put64 (fx + TENS_FIXED + 8 * i, (uint64_t) t->shape[i]);
  if (wr_frame_header (w, "TENS", 0, len) < 0
      || wr (w, fx, TENS_FIXED + 8 * (size_t) t->rank) < 0
      || wr (w, t->name, namelen) < 0 || wr_pad (w) < 0
      || wr (w, t->data, t->nbytes) < 0 || wr_pad (w) < 0)
    return -1;
  return 0;
}

int
pmx_writer_write (pmx_writer *w, const pmx_record *rec)
{
  unsigned char b[PMX_ALIGN - FRAME_HEADER] = { 0 };
  put64 (b, w->records);
  put32 (b + 8, (uint32_t) rec->count);
  if (wr_frame_header (w, "RECD", 0, sizeof b) < 0 || wr (w, b, sizeof b) < 0)
    return -1;
  for (int i = 0; i < rec->count; i++)
    {
      const pmx_tensor *t = rec->slot[i];
      uint64_t bytes;
      if (shape_bytes (t->dtype, t->rank, t->shape, UINT64_MAX / 4, &bytes) < 0
          || bytes != t->nbytes)
        return pmx_error ("%s: record %llu: tensor '%s' is inconsistent", w->name,
                          (unsigned long long) w->records, t->name);
      if (wr_tensor (w, t) < 0)
        return -1;
    }
  w->records++;
  return w->flush ? wr_flush (w) : 0;
}

int
pmx_writer_finish (pmx_writer *w)
{
  unsigned char b[PMX_ALIGN - FRAME_HEADER] = { 0 };
  put64 (b, w->records);
  if (wr_frame_header (w, "END ", 0, sizeof b) < 0 || wr (w, b, sizeof b) < 0)
    return -1;
  return wr_flush (w);
}

void
pmx_writer_close (pmx_writer *w)
{
  if (!w)
    return;
  free (w->name);
  free (w);
}
