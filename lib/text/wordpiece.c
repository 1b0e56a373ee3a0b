/* wordpiece.c -- BERT normaliser, pre-tokenizer and WordPiece; see
   wordpiece.h.  The hot path is ASCII: a byte class table and a lower-case
   table, then one hash lookup per word for most words.  Everything else
   goes one code point at a time through tables generated from Hugging
   Face tokenizers itself (wordpiece-tables.h), whose Unicode data is
   older than any current library's.  */

#include <config.h>
#include "wordpiece.h"
#include "error.h"

#include <string.h>

enum
{
  C_WORD = 0,                   /* part of a word */
  C_DROP,                       /* removed by cleaning */
  C_SPACE,                      /* white space: ends a word */
  C_PUNCT                       /* punctuation: a word of its own */
};

/* The fields of a code point's byte in the generated tables; the values
   are the generator's (tests/gen-wordpiece-tables.py).  */
enum
{
  CLASS_KEEP = 0, CLASS_DROP = 1, CLASS_SPACE = 2, CLASS_CJK = 3, /* & 3 */
  PRE_WORD = 0, PRE_SPACE = 1, PRE_PUNCT = 2,     /* >> 2 & 3 */
  F_STRIP = 0x10,               /* accent stripping changes it: wp_strip_map */
  F_STRIP_EMPTY = 0x20,         /* accent stripping removes it */
  F_LOWER = 0x40                /* lower-casing changes it: wp_lower_map */
};

#include "wordpiece-tables.h"

/* The data of code point C: class | pretok << 2 | flags (see
   wordpiece-tables.h).  */
static inline unsigned
cp_data (int32_t c)
{
  return wp_blocks[wp_block_index[c >> 8]][c & 0xFF];
}

/* Look C up in MAP (N entries sorted by code point): the code points it
   becomes, at most 3, 0-ended if fewer.  */
static const uint32_t *
map_find (const uint32_t (*map)[4], size_t n, int32_t c)
{
  size_t lo = 0, hi = n;
  while (lo < hi)
    {
      size_t mid = lo + (hi - lo) / 2;
      if (map[mid][0] < (uint32_t) c)
        lo = mid + 1;
      else
        hi = mid;
    }
  return lo < n && map[lo][0] == (uint32_t) c ? map[lo] + 1 : NULL;
}

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
  /* The ASCII fast path's tables, from the generated ones (no ASCII
     character changes under accent stripping).  */
  for (int c = 0; c < 128; c++)
    {
      unsigned d = cp_data (c);
      unsigned char k = C_WORD;
      if ((d & 3) == CLASS_DROP)
        k = C_DROP;
      else if ((d & 3) == CLASS_SPACE || (d >> 2 & 3) == PRE_SPACE)
        k = C_SPACE;
      else if ((d >> 2 & 3) == PRE_PUNCT)
        k = C_PUNCT;
      wp->ascii_class[c] = k;
      const uint32_t *m = NULL;
      if (wp->lowercase && (d & F_LOWER))
        m = map_find (wp_lower_map, sizeof wp_lower_map
                      / sizeof wp_lower_map[0], c);
      wp->ascii_map[c] = (unsigned char) (m ? m[0] : (uint32_t) c);
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

/* A normalised character goes to the pre-tokenizer.  */
static void
pretokenize (pmx_wp_seq *s, int32_t c)
{
  unsigned char u[4];
  size_t n;
  if (c < 0x80)
    {
      u[0] = (unsigned char) c;
      n = 1;
    }
  else if (c < 0x800)
    {
      u[0] = (unsigned char) (0xC0 | c >> 6);
      u[1] = (unsigned char) (0x80 | (c & 0x3F));
      n = 2;
    }
  else if (c < 0x10000)
    {
      u[0] = (unsigned char) (0xE0 | c >> 12);
      u[1] = (unsigned char) (0x80 | (c >> 6 & 0x3F));
      u[2] = (unsigned char) (0x80 | (c & 0x3F));
      n = 3;
    }
  else
    {
      u[0] = (unsigned char) (0xF0 | c >> 18);
      u[1] = (unsigned char) (0x80 | (c >> 12 & 0x3F));
      u[2] = (unsigned char) (0x80 | (c >> 6 & 0x3F));
      u[3] = (unsigned char) (0x80 | (c & 0x3F));
      n = 4;
    }
  switch (cp_data (c) >> 2 & 3)
    {
    case PRE_SPACE:
      flush_word (s);
      break;
    case PRE_PUNCT:
      isolate (s, u, n);
      break;
    default:
      append (s, u, n);
      break;
    }
}

static void
lower_and_pretokenize (pmx_wp_seq *s, int32_t c)
{
  const uint32_t *m;
  if (s->wp->lowercase && (cp_data (c) & F_LOWER)
      && (m = map_find (wp_lower_map, sizeof wp_lower_map
                        / sizeof wp_lower_map[0], c)))
    for (int i = 0; i < 3 && m[i]; i++)
      pretokenize (s, (int32_t) m[i]);
  else
    pretokenize (s, c);
}

/* A decoded non-ASCII code point: Hugging Face's cleaning, CJK padding,
   accent stripping and lower-casing, in that order, by the generated
   tables.  */
static void
code_point (pmx_wp_seq *s, int32_t c)
{
  unsigned d = cp_data (c);
  switch (d & 3)
    {
    case CLASS_DROP:
      return;
    case CLASS_SPACE:
      flush_word (s);
      return;
    case CLASS_CJK:
      flush_word (s);
      break;
    default:
      break;
    }
  if (!s->wp->strip_accents)
    lower_and_pretokenize (s, c);
  else if (d & F_STRIP_EMPTY)
    ;                           /* a nonspacing mark: removed */
  else if (c >= 0xAC00 && c <= 0xD7A3)
    {
      /* Hangul syllables decompose by the Unicode algorithm into a
         leading consonant, a vowel and maybe a trailing consonant.  */
      int32_t i = c - 0xAC00;
      lower_and_pretokenize (s, 0x1100 + i / 588);
      lower_and_pretokenize (s, 0x1161 + i % 588 / 28);
      if (i % 28)
        lower_and_pretokenize (s, 0x11A7 + i % 28);
    }
  else
    {
      const uint32_t *m;
      if ((d & F_STRIP)
          && (m = map_find (wp_strip_map, sizeof wp_strip_map
                            / sizeof wp_strip_map[0], c)))
        for (int i = 0; i < 3 && m[i]; i++)
          lower_and_pretokenize (s, (int32_t) m[i]);
      else
        lower_and_pretokenize (s, c);
    }
  if ((d & 3) == CLASS_CJK)
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
