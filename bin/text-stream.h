/* text-stream.h -- prumux-cat's text forms of a stream.

   "tsv" is exact and reversible (text_encode turns it back into a binary
   stream); "text" is for people; "json" is JSON Lines for other tools.
   All functions die() on error: they are program code, not library code.  */

#ifndef PRUMUX_TEXT_STREAM_H
#define PRUMUX_TEXT_STREAM_H

#include <stdio.h>
#include "stream.h"

enum text_format { FORMAT_TEXT, FORMAT_TSV, FORMAT_JSON };

struct text_options
{
  enum text_format format;
  int no_data;                  /* shapes only */
  long long max_values;         /* text format: values shown per tensor, 0 = all */
  char **select;                /* NULL-terminated tensor names, or NULL = all */
};

void text_print_header (FILE *out, const pmx_meta *meta, const struct text_options *o);
void text_print_record (FILE *out, const pmx_record *rec, const struct text_options *o);
void text_print_end (FILE *out, unsigned long long records, const struct text_options *o);

/* Read the TSV form from IN (named NAME in messages) and write a binary
   stream to OUT (named OUT_NAME).  Record numbers and the count on the
   '#end' line must be right, nothing but empty lines may follow it, and a
   number too large for its dtype is an error.  */
void text_encode (FILE *in, const char *name, FILE *out, const char *out_name);

#endif
