/* test-truncate.c -- Hugging Face's 'longest_first' truncation of a pair
   (pmx_wordpiece_truncate_pair, lib/text/wordpiece.c).

   Usage: test-truncate [CASES]
   Without CASES, a table of cases worked out by hand from tokenizers'
   truncate_encodings (utils/truncation.rs).  CASES is a file of lines
   "N1 N2 M KEPT1 KEPT2" written by the tokenizers package itself
   (tests/truncate-hf.sh); every line must agree.  */

#include <config.h>
#include "wordpiece.h"

#include <stdio.h>

#include "check.h"

static int
check (size_t n1, size_t n2, size_t m, size_t want1, size_t want2)
{
  size_t a = n1, b = n2;
  pmx_wordpiece_truncate_pair (m, &a, &b);
  CHECK (a == want1 && b == want2, "(%zu, %zu) to %zu: kept (%zu, %zu), expected (%zu, %zu)",
         n1, n2, m, a, b, want1, want2);
  return a == want1 && b == want2;
}

int
main (int argc, char **argv)
{
  if (argc == 1)
    {
      check (3, 4, 10, 3, 4);   /* fits */
      check (5, 5, 10, 5, 5);   /* fits exactly */
      check (5, 5, 7, 3, 4);    /* a tie: the second gets the odd id */
      check (6, 5, 7, 4, 3);    /* the longer gets the odd id */
      check (2, 20, 10, 2, 8);  /* the short one kept, the long one the rest */
      check (20, 2, 10, 8, 2);
      check (4, 9, 10, 4, 6);
      check (6, 7, 10, 5, 5);   /* the shorter is over half: halves */
      check (12, 15, 10, 5, 5); /* both longer than M */
      check (12, 15, 9, 4, 5);
      check (15, 12, 9, 5, 4);
      check (0, 20, 5, 0, 5);   /* an empty text */
      check (20, 0, 5, 5, 0);
      check (1, 1, 0, 0, 0);    /* nothing left (max_length 3) */
      return failures ? 1 : 0;
    }
  FILE *f = fopen (argv[1], "r");
  if (!f)
    {
      perror (argv[1]);
      return 99;
    }
  size_t n1, n2, m, k1, k2;
  long cases = 0;
  int got;
  while ((got = fscanf (f, "%zu %zu %zu %zu %zu", &n1, &n2, &m, &k1, &k2)) == 5)
    {
      check (n1, n2, m, k1, k2);
      cases++;
    }
  fclose (f);
  CHECK (got == EOF && cases > 0, "%s: bad line after %ld cases", argv[1], cases);
  printf ("test-truncate: %ld cases from %s\n", cases, argv[1]);
  return failures ? 1 : 0;
}
