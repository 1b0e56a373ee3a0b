/* test-tokenize.c -- the streaming tokenizer gives the same ids however the
   text is cut into pieces (inside UTF-8 sequences, inside special tokens),
   and whatever LIMIT is; pmx_vocab_load_mem equals pmx_vocab_load.

   Usage: test-tokenize VOCAB TEXTFILE
   Every line of TEXTFILE is encoded whole, byte by byte, and in pieces of
   2, 3, 5 and 7 bytes, in all four normalisation modes.  Exit 0 if all
   agree, 1 with a message on the first difference.  */

#include <config.h>
#include "error.h"
#include "vocab.h"
#include "wordpiece.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

enum { LIMIT = 4096 };

static size_t
encode_split (const pmx_wordpiece *wp, const char *text, size_t n,
              size_t piece, int32_t *ids, size_t limit)
{
  pmx_wp_seq s;
  pmx_wp_seq_init (&s, wp, ids, limit);
  for (size_t i = 0; i < n; i += piece)
    pmx_wp_seq_feed (&s, text + i, n - i < piece ? n - i : piece);
  return pmx_wp_seq_finish (&s);
}

int
main (int argc, char **argv)
{
  if (argc != 3)
    {
      fprintf (stderr, "usage: test-tokenize VOCAB TEXTFILE\n");
      return 2;
    }
  check_program = "test-tokenize";
  pmx_vocab *v = pmx_vocab_load (argv[1]);
  if (!v)
    check_fatal (argv[1]);

  /* The same vocabulary from memory.  */
  FILE *f = fopen (argv[1], "rb");
  static char vbuf[1 << 22];
  size_t vlen = f ? fread (vbuf, 1, sizeof vbuf, f) : 0;
  if (f)
    fclose (f);
  pmx_vocab *vm = pmx_vocab_load_mem (vbuf, vlen, "mem");
  if (!vm || pmx_vocab_size (vm) != pmx_vocab_size (v))
    {
      fprintf (stderr, "test-tokenize: pmx_vocab_load_mem differs\n");
      return 1;
    }
  for (int id = 0; id < pmx_vocab_size (v); id++)
    {
      size_t n;
      const char *t = pmx_vocab_token (v, id, &n);
      if (pmx_vocab_find (vm, t, n) != pmx_vocab_find (v, t, n))
        {
          fprintf (stderr, "test-tokenize: lookup of '%s' differs\n", t);
          return 1;
        }
    }
  if (pmx_vocab_token (v, -1, NULL) || pmx_vocab_token (v, pmx_vocab_size (v), NULL))
    {
      fprintf (stderr, "test-tokenize: out-of-range id accepted\n");
      return 1;
    }

  FILE *in = fopen (argv[2], "rb");
  if (!in)
    {
      perror (argv[2]);
      return 1;
    }
  static int32_t whole[LIMIT], cut[LIMIT];
  char *line = NULL;
  size_t cap = 0;
  ssize_t len;
  long lineno = 0, checks = 0;
  static const size_t pieces[] = { 1, 2, 3, 5, 7 };
  while ((len = getline (&line, &cap, in)) >= 0)
    {
      lineno++;
      for (int mode = 0; mode < 4; mode++)
        {
          pmx_wordpiece wp;
          if (pmx_wordpiece_init (&wp, mode & 1 ? vm : v, mode & 1,
                                  mode >> 1) < 0)
            {
              fprintf (stderr, "test-tokenize: %s\n", pmx_errmsg ());
              return 1;
            }
          size_t nw = pmx_wordpiece_encode (&wp, line, (size_t) len, whole,
                                            LIMIT);
          if (nw > LIMIT)
            nw = LIMIT;
          for (size_t k = 0; k < sizeof pieces / sizeof *pieces; k++)
            {
              size_t lim = k == 1 ? nw / 2 : LIMIT;
              size_t nc = encode_split (&wp, line, (size_t) len, pieces[k],
                                        cut, lim);
              if (nc > LIMIT)
                nc = LIMIT;
              size_t keep = nc < lim ? nc : lim;
              if (nc != nw || memcmp (whole, cut, keep * sizeof *cut) != 0)
                {
                  fprintf (stderr, "test-tokenize: %s:%ld: mode %d: pieces"
                           " of %zu bytes give %zu ids, whole line %zu\n",
                           argv[2], lineno, mode, pieces[k], nc, nw);
                  return 1;
                }
              checks++;
            }
        }
    }
  free (line);
  fclose (in);
  printf ("test-tokenize: %ld lines, %ld comparisons, all equal\n", lineno,
          checks);
  pmx_vocab_free (v);
  pmx_vocab_free (vm);
  return 0;
}
