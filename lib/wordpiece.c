/* wordpiece.c -- BERT normaliser, pre-tokenizer and WordPiece; see
   wordpiece.h.  The hot path is ASCII: a byte class table and a lower-case
   table, then one hash lookup per word for most words.  Everything else
   goes through utf8proc one code point at a time.  */

#include <config.h>
#include "wordpiece.h"
#include "error.h"

#include <string.h>
#include <utf8proc.h>

enum
{
  C_WORD = 0,                   /* part of a word */
  C_DROP,                       /* removed by cleaning */
  C_SPACE,                      /* white space: ends a word */
  C_PUNCT                       /* punctuation: a word of its own */
};

int
pmx_wordpiece_init (pmx_wordpiece *wp, const pmx_vocab *vocab, int lowercase,
                    int strip_accents)
{
  memset (wp, 0, sizeof *wp);
  wp->vocab = vocab;
  wp->lowercase = lowercase != 0;
  wp->strip_accents = strip_accents != 0;
  wp->max_bytes = pmx_vocab_max_bytes (vocab);
#define FIND(s) pmx_vocab_find (vocab, s, sizeof s - 1)
  wp->unk = FIND ("[UNK]");
  wp->cls = FIND ("[CLS]");
  wp->sep = FIND ("[SEP]");
  wp->pad = FIND ("[PAD]");
  wp->mask = FIND ("[MASK]");
#undef FIND
  if (wp->unk < 0)
    return pmx_error ("vocabulary has no [UNK] token");
  /* Hugging Face registers these (when the vocabulary has them) as added
     tokens, which are cut out of the raw text before normalisation.  */
  static const char *const names[] = { "[UNK]", "[SEP]", "[CLS]", "[PAD]",
                                       "[MASK]" };
  const int32_t ids[] = { wp->unk, wp->sep, wp->cls, wp->pad, wp->mask };
  for (int i = 0; i < 5; i++)
    if (ids[i] >= 0)
      {
        strcpy (wp->special_name[wp->nspecial], names[i]);
        wp->special_id[wp->nspecial++] = ids[i];
      }
  for (int c = 0; c < 128; c++)
    {
      unsigned char k = C_WORD;
      if (c == '\t' || c == '\n' || c == '\r' || c == ' ')
        k = C_SPACE;
      else if (c < 32 || c == 127)
        k = C_DROP;
      else if ((c >= 33 && c <= 47) || (c >= 58 && c <= 64)
               || (c >= 91 && c <= 96) || (c >= 123 && c <= 126))
        k = C_PUNCT;
      wp->ascii_class[c] = k;
      wp->ascii_map[c] = (unsigned char)
        (wp->lowercase && c >= 'A' && c <= 'Z' ? c + 32 : c);
    }
  return 0;
}

void
pmx_wp_seq_init (pmx_wp_seq *s, const pmx_wordpiece *wp, int32_t *ids,
                 size_t limit)
{
  s->wp = wp;
  s->ids = ids;
  s->limit = limit;
  s->count = 0;
  s->nchars = 0;
  s->off[0] = 0;
  s->npend = 0;
  s->nsp = 0;
}

static inline void
push (pmx_wp_seq *s, int32_t id)
{
  if (s->count < s->limit)
    s->ids[s->count] = id;
  s->count++;
}

/* WordPiece on the word built so far, then start a new one.  */
static void
flush_word (pmx_wp_seq *s)
{
  size_t nc = s->nchars;
  if (nc == 0)
    return;
  s->nchars = 0;
  const pmx_wordpiece *wp = s->wp;
  if (nc > PMX_WP_MAX_WORD_CHARS)
    {
      push (s, wp->unk);
      return;
    }
  char *base = s->word + 2;
  const uint16_t *off = s->off;
  /* Most words are in the vocabulary whole.  */
  if (off[nc] <= wp->max_bytes)
    {
      int id = pmx_vocab_find (wp->vocab, base, off[nc]);
      if (id >= 0)
        {
          push (s, id);
          return;
        }
    }
  int32_t piece[PMX_WP_MAX_WORD_CHARS];
  size_t np = 0;
  for (size_t start = 0; start < nc;)
    {
      size_t pre = start ? 2 : 0, end = nc;
      /* No token is longer than max_bytes: skip lookups that cannot hit.  */
      while (end > start && off[end] - off[start] + pre > wp->max_bytes)
        end--;
      /* The bytes before this piece are spent: put "##" there.  */
      char *p = base + off[start] - pre;
      if (pre)
        p[0] = p[1] = '#';
      int id = -1;
      for (; end > start; end--)
        if ((id = pmx_vocab_find (wp->vocab, p, off[end] - off[start] + pre))
            >= 0)
          break;
      if (id < 0)
        {
          push (s, wp->unk);
          return;
        }
      piece[np++] = id;
      start = end;
    }
  for (size_t i = 0; i < np; i++)
    push (s, piece[i]);
}

/* Append one normalised character (N UTF-8 bytes) to the word.  */
static inline void
append (pmx_wp_seq *s, const unsigned char *u, size_t n)
{
  size_t nc = s->nchars;
  if (nc <= PMX_WP_MAX_WORD_CHARS)
    {
      char *w = s->word + 2 + s->off[nc];
      for (size_t i = 0; i < n; i++)
        w[i] = (char) u[i];
      s->off[nc + 1] = (uint16_t) (s->off[nc] + n);
    }
  s->nchars = nc + 1;
}

static void
isolate (pmx_wp_seq *s, const unsigned char *u, size_t n)
{
  flush_word (s);
  append (s, u, n);
  flush_word (s);
}

static int
is_space_category (int cat)
{
  return cat == UTF8PROC_CATEGORY_ZS || cat == UTF8PROC_CATEGORY_ZL
    || cat == UTF8PROC_CATEGORY_ZP;
}

static int
is_punct_category (int cat)
{
  return cat >= UTF8PROC_CATEGORY_PC && cat <= UTF8PROC_CATEGORY_PO;
}

/* A normalised character goes to the pre-tokenizer.  */
static void
pretokenize (pmx_wp_seq *s, int32_t c)
{
  unsigned char u[4];
  if (c < 0x80)
    {
      u[0] = (unsigned char) c;
      switch (s->wp->ascii_class[c])
        {
        case C_SPACE:
          flush_word (s);
          return;
        case C_PUNCT:
          isolate (s, u, 1);
          return;
        default:
          append (s, u, 1);
          return;
        }
    }
  size_t n = (size_t) utf8proc_encode_char (c, u);
  int cat = utf8proc_category (c);
  if (is_space_category (cat))
    flush_word (s);
  else if (is_punct_category (cat))
    isolate (s, u, n);
  else
    append (s, u, n);
}

/* The CJK Unified Ideographs blocks, as BERT's _is_chinese_char.  */
static int
is_cjk (int32_t c)
{
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF)
    || (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F)
    || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF)
    || (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

static void
lower_and_pretokenize (pmx_wp_seq *s, int32_t c)
{
  if (s->wp->lowercase)
    {
      /* The one unconditional multi-character lower-case mapping.  */
      if (c == 0x130)
        {
          pretokenize (s, 'i');
          pretokenize (s, 0x307);
          return;
        }
      c = utf8proc_tolower (c);
    }
  pretokenize (s, c);
}

/* A decoded non-ASCII code point.  */
static void
code_point (pmx_wp_seq *s, int32_t c)
{
  if (c == 0xFFFD)
    return;
  int cat = utf8proc_category (c);
  switch (cat)
    {
    case UTF8PROC_CATEGORY_CC:
    case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_CO:
    case UTF8PROC_CATEGORY_CS:
      return;
    default:
      break;
    }
  if (is_space_category (cat))
    {
      flush_word (s);
      return;
    }
  int cjk = is_cjk (c);
  if (cjk)
    flush_word (s);
  if (s->wp->strip_accents)
    {
      utf8proc_int32_t d[32];
      int last = 0;
      utf8proc_ssize_t n = utf8proc_decompose_char (c, d, 32,
                                                    UTF8PROC_DECOMPOSE,
                                                    &last);
      if (n < 0 || n > 32)
        {
          d[0] = c;
          n = 1;
        }
      for (utf8proc_ssize_t i = 0; i < n; i++)
        if (utf8proc_category (d[i]) != UTF8PROC_CATEGORY_MN)
          lower_and_pretokenize (s, d[i]);
    }
  else
    lower_and_pretokenize (s, c);
  if (cjk)
    flush_word (s);
}

/* Decode a complete sequence of N bytes (lead byte checked); -1 if it is
   not a valid scalar value (overlong, surrogate, too large).  */
static int32_t
decode (const unsigned char *p, int n)
{
  int32_t c;
  switch (n)
    {
    case 2:
      c = ((p[0] & 0x1F) << 6) | (p[1] & 0x3F);
      return c >= 0x80 ? c : -1;
    case 3:
      c = ((p[0] & 0x0F) << 12) | ((p[1] & 0x3F) << 6) | (p[2] & 0x3F);
      return c >= 0x800 && (c < 0xD800 || c > 0xDFFF) ? c : -1;
    default:
      c = ((p[0] & 0x07) << 18) | ((p[1] & 0x3F) << 12)
        | ((p[2] & 0x3F) << 6) | (p[3] & 0x3F);
      return c >= 0x10000 && c <= 0x10FFFF ? c : -1;
    }
}

/* Length of a sequence from its lead byte, or 0 for a byte that cannot
   start one.  */
static inline int
seq_len (unsigned char b)
{
  if (b >= 0xC2 && b <= 0xDF)
    return 2;
  if (b >= 0xE0 && b <= 0xEF)
    return 3;
  if (b >= 0xF0 && b <= 0xF4)
    return 4;
  return 0;
}

/* One ASCII byte of raw text: the fast path.  */
static inline void
ascii_byte (pmx_wp_seq *s, unsigned char b)
{
  const pmx_wordpiece *wp = s->wp;
  switch (wp->ascii_class[b])
    {
    case C_WORD:
      {
        size_t nc = s->nchars;
        if (nc <= PMX_WP_MAX_WORD_CHARS)
          {
            uint16_t o = s->off[nc];
            s->word[2 + o] = (char) wp->ascii_map[b];
            s->off[nc + 1] = (uint16_t) (o + 1);
          }
        s->nchars = nc + 1;
      }
      break;
    case C_SPACE:
      flush_word (s);
      break;
    case C_PUNCT:
      isolate (s, &b, 1);
      break;
    default:
      break;
    }
}

/* Extend a possible special token by B.  Returns 1 if B was taken (the
   token may now be complete and emitted), 0 if the match failed.  */
static int
special_byte (pmx_wp_seq *s, unsigned char b)
{
  const pmx_wordpiece *wp = s->wp;
  size_t n = (size_t) s->nsp;
  if (n + 1 >= sizeof s->sp)
    return 0;
  for (int i = 0; i < wp->nspecial; i++)
    {
      const char *name = wp->special_name[i];
      if (strncmp (name, s->sp, n) == 0 && name[n] == (char) b)
        {
          if (name[n + 1] == '\0')
            {
              s->nsp = 0;
              flush_word (s);
              push (s, wp->special_id[i]);
            }
          else
            s->sp[s->nsp++] = (char) b;
          return 1;
        }
    }
  return 0;
}

/* A possible special token did not match: its bytes are ordinary text
   (ASCII without '[' after the first, so no new match starts inside).  */
static void
replay_special (pmx_wp_seq *s)
{
  int n = s->nsp;
  s->nsp = 0;
  for (int i = 0; i < n; i++)
    ascii_byte (s, (unsigned char) s->sp[i]);
}

void
pmx_wp_seq_feed (pmx_wp_seq *s, const char *text, size_t n)
{
  const unsigned char *p = (const unsigned char *) text, *end = p + n;
  const pmx_wordpiece *wp = s->wp;

  /* Finish a sequence left incomplete by the previous piece.  Invalid
     bytes are dropped one at a time, so a valid character is never
     swallowed (the result equals decoding with errors='replace' and
     cleaning away the U+FFFDs).  */
  while (s->npend && p < end)
    {
      if ((*p & 0xC0) != 0x80)
        {
          s->npend = 0;       /* the lead and its continuations: invalid */
          break;
        }
      s->pend[s->npend++] = *p++;
      int len = seq_len (s->pend[0]);
      if (s->npend == len)
        {
          int32_t c = decode (s->pend, len);
          s->npend = 0;
          if (c >= 0)
            code_point (s, c);
        }
    }

  while (p < end)
    {
      unsigned char b = *p;
      if (s->nsp)
        {
          if (special_byte (s, b))
            {
              p++;
              continue;
            }
          replay_special (s);
        }
      if (b < 0x80)
        {
          if (b == '[' && wp->nspecial)
            {
              s->sp[0] = '[';
              s->nsp = 1;
            }
          else
            ascii_byte (s, b);
          p++;
          continue;
        }
      int len = seq_len (b);
      if (len == 0)
        {
          p++;
          continue;
        }
      int have = 1;
      while (have < len && p + have < end && (p[have] & 0xC0) == 0x80)
        have++;
      if (have < len)
        {
          if (p + have == end)
            {
              /* Cut by the end of this piece: keep for the next one.  */
              memcpy (s->pend, p, (size_t) have);
              s->npend = have;
              return;
            }
          p++;                  /* invalid lead: drop it */
          continue;
        }
      int32_t c = decode (p, len);
      if (c < 0)
        {
          p++;
          continue;
        }
      code_point (s, c);
      p += len;
    }
}

size_t
pmx_wp_seq_finish (pmx_wp_seq *s)
{
  s->npend = 0;
  if (s->nsp)
    replay_special (s);
  flush_word (s);
  return s->count;
}

size_t
pmx_wordpiece_encode (const pmx_wordpiece *wp, const char *text, size_t n,
                      int32_t *ids, size_t limit)
{
  pmx_wp_seq s;
  pmx_wp_seq_init (&s, wp, ids, limit);
  pmx_wp_seq_feed (&s, text, n);
  return pmx_wp_seq_finish (&s);
}

/* Hugging Face tokenizers' truncate_encodings (utils/truncation.rs), the
   LongestFirst strategy with a pair: the shorter text keeps its length if
   that is at most half of M and the longer one takes the rest; else both
   are cut to half of M, the longer one (the second on a tie) getting the
   odd id.  */
void
pmx_wordpiece_truncate_pair (size_t m, size_t *na, size_t *nb)
{
  size_t n1 = *na, n2 = *nb;
  if (n1 + n2 <= m)
    return;
  int swap = n1 > n2;
  if (swap)
    {
      size_t t = n1;
      n1 = n2;
      n2 = t;
    }
  if (n1 > m)
    n2 = n1;
  else
    n2 = n1 > m - n1 ? n1 : m - n1;
  if (n1 + n2 > m)
    {
      n1 = m / 2;
      n2 = n1 + m % 2;
    }
  if (swap)
    {
      size_t t = n1;
      n1 = n2;
      n2 = t;
    }
  if (n1 < *na)
    *na = n1;
  if (n2 < *nb)
    *nb = n2;
}
