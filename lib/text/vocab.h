/* vocab.h -- a WordPiece vocabulary: vocab.txt, one token per line, the
   line number (from 0) being the token's id.

   Loading follows Hugging Face (tokenizers' WordPiece::read_file and
   transformers' load_vocab): trailing white space of each line is removed
   (ASCII white space only: BERT vocabularies hold no other),
   and when a token occurs twice the later line wins the lookup (every line
   keeps its id, so pmx_vocab_size is the number of lines).

   Lookups go through an open-addressing hash table and never allocate, so
   they may be made from several threads on one loaded vocabulary.
   Ownership: the vocabulary copies the text it is given.  */

#ifndef PRUMUX_VOCAB_H
#define PRUMUX_VOCAB_H

#include <stddef.h>
#include <stdint.h>

typedef struct pmx_vocab pmx_vocab;

/* Load vocab.txt from PATH.  NULL with an error ("PATH: ...") if it cannot
   be read, is empty or has more than 2^31 - 1 lines.  */
pmx_vocab *pmx_vocab_load (const char *path);
/* Load from TEXT (LEN bytes, e.g. the vocab.txt of a model archive); NAME
   is used in error messages.  */
pmx_vocab *pmx_vocab_load_mem (const char *text, size_t len, const char *name);
void pmx_vocab_free (pmx_vocab *v);

/* Number of ids (lines).  */
int pmx_vocab_size (const pmx_vocab *v);
/* Bytes of the longest token.  */
size_t pmx_vocab_max_bytes (const pmx_vocab *v);
/* The id of the token S (N bytes), or -1.  */
int pmx_vocab_find (const pmx_vocab *v, const char *s, size_t n);
/* The token with id ID (N bytes, NUL-terminated), or NULL if ID is out of
   range.  */
const char *pmx_vocab_token (const pmx_vocab *v, int id, size_t *n);

#endif
