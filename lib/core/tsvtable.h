/* tsvtable.h -- a small reader for tab-separated tables with a header.

   The whole input is read into memory and split into lines and fields.
   A leading UTF-8 byte order mark is skipped.  Blank lines and lines whose
   first character is '#' are skipped (comments);
   the first other line is the header.  A trailing '\r' is removed from every
   line (files written on Windows).  Every data row must have exactly as many
   fields as the header.

   Ownership: pmx_tsv_read returns a table the caller frees with
   pmx_tsv_free; the field pointers point into the table's own buffer.
   Errors: NULL after pmx_error ("NAME:LINE: message").  */

#ifndef PRUMUX_TSVTABLE_H
#define PRUMUX_TSVTABLE_H

#include <stddef.h>
#include <stdio.h>

typedef struct pmx_tsv
{
  char *name;                   /* the input's name in messages */
  size_t ncols;
  char **header;                /* (ncols) column names */
  size_t header_line;           /* 1-based line number of the header */
  size_t nrows;
  char ***rows;                 /* (nrows, ncols) fields */
  size_t *line;                 /* (nrows) 1-based line number of each row */
  char *buf;                    /* owns every string above */
} pmx_tsv;

/* Read F to its end.  NAME is used in messages ("-" for stdin).  */
pmx_tsv *pmx_tsv_read (FILE *f, const char *name);

/* Index of column NAME in the header, or -1.  */
int pmx_tsv_column (const pmx_tsv *t, const char *name);

void pmx_tsv_free (pmx_tsv *t);

#endif
