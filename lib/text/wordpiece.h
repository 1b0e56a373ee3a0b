/* wordpiece.h -- BERT tokenization exactly as Hugging Face's BertTokenizer
   (tokenizers' BertNormalizer + BertPreTokenizer + WordPiece):

   0. the special tokens [UNK] [SEP] [CLS] [PAD] [MASK] written in the raw
      text (case and all) are those tokens, as Hugging Face's added tokens;
   1. clean: drop NUL, U+FFFD and control characters (categories Cc, Cf,
      Co, Cs as tokenizers classifies them, except tab, LF, CR); white
      space becomes a separator;
   2. CJK ideographs become words of their own;
   3. if strip_accents: NFD, then drop nonspacing marks (Mn);
   4. if lowercase: lower-case mapping (U+0130 gives "i" U+0307);
   5. split on white space, and isolate every punctuation character (ASCII
      punctuation and Unicode P*) as a word;
   6. WordPiece: greedy longest match first, "##" before word-inner pieces;
      a word longer than 100 characters or with an unmatched piece is [UNK].

   Input is bytes: invalid UTF-8 is dropped, as U+FFFD would be after
   decoding with errors='replace' (so are surrogates, which UTF-8 cannot
   encode).  The Unicode data (categories, white space, NFD, lower-case
   mappings) is that of the Hugging Face tokenizers version named by
   PMX_WP_TOKENIZERS_VERSION, generated from it for every code point by
   tests/gen-wordpiece-tables.py into wordpiece-tables.h: tokenizers'
   tables are older than current Unicode (and than each other), so a
   character assigned since may be punctuation to a Unicode library and a
   letter, or unassigned and dropped, to tokenizers.

   Per code point the result equals tokenizers' exactly; one difference
   remains across characters: NFD's canonical reordering of combining
   marks, which only matters when accents are stripped, and then only for
   the few marks that are not nonspacing (Mc with a nonzero combining
   class, such as U+1D165) standing next to each other.

   Text is fed in pieces of any size (a piece may end inside a UTF-8
   sequence), so a line of any length is encoded in constant memory: only
   the first LIMIT ids are kept, but all are counted (pair truncation needs
   the true lengths).  Encoding never allocates and cannot fail.

   Ownership: a pmx_wordpiece borrows its vocabulary, which must outlive it;
   it is read-only after creation and may be shared between threads, each
   thread using its own pmx_wp_seq.  */

#ifndef PRUMUX_WORDPIECE_H
#define PRUMUX_WORDPIECE_H

#include <stddef.h>
#include <stdint.h>
#include "vocab.h"

#define PMX_WP_MAX_WORD_CHARS 100 /* max_input_chars_per_word */

typedef struct pmx_wordpiece
{
  const pmx_vocab *vocab;
  int lowercase;
  int strip_accents;
  /* Special tokens, looked up by name; -1 if the vocabulary lacks one
     ([UNK] is required).  */
  int32_t unk, cls, sep, pad, mask;
  /* Private.  */
  int nspecial;                 /* special tokens matched in raw text */
  char special_name[5][8];
  int32_t special_id[5];
  size_t max_bytes;             /* longest token in the vocabulary */
  unsigned char ascii_class[128];
  unsigned char ascii_map[128];
} pmx_wordpiece;

/* Set WP up for VOCAB.  -1 with an error if the vocabulary has no [UNK].  */
int pmx_wordpiece_init (pmx_wordpiece *wp, const pmx_vocab *vocab,
                        int lowercase, int strip_accents);

/* The state of one text being encoded.  Fields are private except IDS and
   COUNT.  */
typedef struct pmx_wp_seq
{
  const pmx_wordpiece *wp;
  int32_t *ids;                 /* (limit) the first ids, caller's buffer */
  size_t limit;
  size_t count;                 /* ids produced so far (may exceed limit) */
  /* The word being built: normalised UTF-8 at word + 2 (two bytes of room
     for the "##" prefix), char boundaries in off.  */
  size_t nchars;
  char word[2 + 4 * (PMX_WP_MAX_WORD_CHARS + 1)];
  uint16_t off[PMX_WP_MAX_WORD_CHARS + 2];
  unsigned char pend[4];        /* an incomplete UTF-8 sequence */
  int npend;
  char sp[8];                   /* raw bytes that may start a special token */
  int nsp;
} pmx_wp_seq;

/* Start encoding into IDS (room for LIMIT ids).  */
void pmx_wp_seq_init (pmx_wp_seq *s, const pmx_wordpiece *wp, int32_t *ids,
                      size_t limit);
/* Encode the next N bytes of the text.  */
void pmx_wp_seq_feed (pmx_wp_seq *s, const char *text, size_t n);
/* End of the text.  Returns the number of ids the whole text gives.  */
size_t pmx_wp_seq_finish (pmx_wp_seq *s);

/* All in one: encode TEXT (N bytes) into IDS, keeping at most LIMIT;
   returns the total number of ids (no [CLS]/[SEP] are added).  */
size_t pmx_wordpiece_encode (const pmx_wordpiece *wp, const char *text,
                             size_t n, int32_t *ids, size_t limit);

/* A pair of texts of *NA and *NB ids truncated to M ids in all (specials
   not counted), as Hugging Face's 'longest_first' strategy (the fast
   tokenizers; BertTokenizerFast): *NA and *NB are lowered to the lengths
   kept, never raised.  Pairs that fit are left as they are.  */
void pmx_wordpiece_truncate_pair (size_t m, size_t *na, size_t *nb);

#endif
