/* vocab.c -- WordPiece vocabulary with a hash table; see vocab.h.  */

#include <config.h>
#include "vocab.h"
#include "error.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pmx_vocab
{
  int size;                     /* ids */
  size_t max_bytes;             /* longest token */
  char *text;                   /* all tokens, each NUL-terminated */
  uint32_t *off;                /* (size + 1) offsets into text */
  /* Open addressing, linear probing; mask + 1 slots, a power of two at
     least twice the number of ids.  A slot holds id + 1 (0 = empty) and
     the token's hash, so most misses never touch the text.  */
  uint32_t mask;
  int32_t *slot_id;
  uint32_t *slot_hash;
};

/* A fast hash for short byte strings: 8 bytes at a time, multiply-mix.
   Quality matters less than speed here; the table compares bytes anyway.  */
static inline uint32_t
hash_bytes (const char *s, size_t n)
{
  uint64_t h = 0x9e3779b97f4a7c15ull ^ (n * 0xff51afd7ed558ccdull);
  while (n >= 8)
    {
      uint64_t w;
      memcpy (&w, s, 8);
      h = (h ^ w) * 0xbf58476d1ce4e5b9ull;
      h ^= h >> 29;
      s += 8;
      n -= 8;
    }
  if (n)
    {
      uint64_t w = 0;
      memcpy (&w, s, n);
      h = (h ^ w) * 0x94d049bb133111ebull;
    }
  h ^= h >> 32;
  h *= 0xd6e8feb86659fd93ull;
  return (uint32_t) (h ^ (h >> 32));
}

int
pmx_vocab_size (const pmx_vocab *v)
{
  return v->size;
}

size_t
pmx_vocab_max_bytes (const pmx_vocab *v)
{
  return v->max_bytes;
}

const char *
pmx_vocab_token (const pmx_vocab *v, int id, size_t *n)
{
  if (id < 0 || id >= v->size)
    return NULL;
  if (n)
    *n = v->off[id + 1] - v->off[id] - 1;
  return v->text + v->off[id];
}

int
pmx_vocab_find (const pmx_vocab *v, const char *s, size_t n)
{
  uint32_t h = hash_bytes (s, n);
  for (uint32_t i = h & v->mask;; i = (i + 1) & v->mask)
    {
      int32_t id = v->slot_id[i];
      if (id == 0)
        return -1;
      id--;
      if (v->slot_hash[i] == h && v->off[id + 1] - v->off[id] - 1 == n
          && memcmp (v->text + v->off[id], s, n) == 0)
        return id;
    }
}

/* Insert ID; a token seen before now maps to ID (the later line wins).  */
static void
insert (pmx_vocab *v, int id)
{
  const char *s = v->text + v->off[id];
  size_t n = v->off[id + 1] - v->off[id] - 1;
  uint32_t h = hash_bytes (s, n);
  for (uint32_t i = h & v->mask;; i = (i + 1) & v->mask)
    {
      int32_t old = v->slot_id[i];
      if (old == 0 || (v->slot_hash[i] == h
                       && v->off[old] - v->off[old - 1] - 1 == n
                       && memcmp (v->text + v->off[old - 1], s, n) == 0))
        {
          v->slot_id[i] = id + 1;
          v->slot_hash[i] = h;
          return;
        }
    }
}

void
pmx_vocab_free (pmx_vocab *v)
{
  if (!v)
    return;
  free (v->text);
  free (v->off);
  free (v->slot_id);
  free (v->slot_hash);
  free (v);
}

static int
is_trailing_space (unsigned char c)
{
  return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v'
    || c == '\f';
}

pmx_vocab *
pmx_vocab_load_mem (const char *text, size_t len, const char *name)
{
  /* Count lines: a final line without a newline still counts, an empty
     text has none.  */
  size_t lines = 0;
  for (size_t i = 0; i < len; i++)
    if (text[i] == '\n')
      lines++;
  if (len && text[len - 1] != '\n')
    lines++;
  if (lines == 0)
    {
      pmx_error ("%s: empty vocabulary", name);
      return NULL;
    }
  if (lines > INT_MAX - 1 || len > UINT32_MAX - lines - 1)
    {
      pmx_error ("%s: vocabulary too large", name);
      return NULL;
    }

  pmx_vocab *v = calloc (1, sizeof *v);
  if (!v)
    goto nomem;
  v->size = (int) lines;
  v->text = malloc (len + lines + 1);
  v->off = malloc ((lines + 1) * sizeof *v->off);
  uint32_t slots = 16;
  while (slots < 2 * lines)
    slots *= 2;
  v->mask = slots - 1;
  v->slot_id = calloc (slots, sizeof *v->slot_id);
  v->slot_hash = calloc (slots, sizeof *v->slot_hash);
  if (!v->text || !v->off || !v->slot_id || !v->slot_hash)
    goto nomem;

  size_t pos = 0, at = 0;
  for (size_t id = 0; id < lines; id++)
    {
      const char *nl = memchr (text + pos, '\n', len - pos);
      size_t end = nl ? (size_t) (nl - text) : len;
      size_t n = end - pos;
      while (n && is_trailing_space ((unsigned char) text[pos + n - 1]))
        n--;
      if (memchr (text + pos, '\0', n))
        {
          pmx_error ("%s:%zu: NUL byte in token", name, id + 1);
          pmx_vocab_free (v);
          return NULL;
        }
      v->off[id] = (uint32_t) at;
      memcpy (v->text + at, text + pos, n);
      at += n;
      v->text[at++] = '\0';
      if (n > v->max_bytes)
        v->max_bytes = n;
      pos = end + 1;
    }
  v->off[lines] = (uint32_t) at;
  for (int id = 0; id < v->size; id++)
    insert (v, id);
  return v;

nomem:
  pmx_vocab_free (v);
  pmx_error_errno (ENOMEM, "%s", name);
  return NULL;
}

pmx_vocab *
pmx_vocab_load (const char *path)
{
  FILE *f = fopen (path, "rb");
  if (!f)
    {
      pmx_error_errno (errno, "%s", path);
      return NULL;
    }
  char *buf = NULL;
  size_t len = 0, cap = 0;
  for (;;)
    {
      if (cap - len < 65536)
        {
          size_t ncap = cap ? 2 * cap : 1 << 20;
          char *nb = realloc (buf, ncap);
          if (!nb)
            {
              free (buf);
              fclose (f);
              pmx_error_errno (ENOMEM, "%s", path);
              return NULL;
            }
          buf = nb;
          cap = ncap;
        }
      size_t got = fread (buf + len, 1, cap - len, f);
      len += got;
      if (got == 0)
        break;
    }
  int err = ferror (f) ? errno : 0;
  fclose (f);
  if (err)
    {
      free (buf);
      pmx_error_errno (err, "%s: read error", path);
      return NULL;
    }
  pmx_vocab *v = pmx_vocab_load_mem (buf, len, path);
  free (buf);
  return v;
}
