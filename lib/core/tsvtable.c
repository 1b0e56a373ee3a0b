/* tsvtable.c -- tab-separated tables with a header; see tsvtable.h.  */

#include <config.h>
#include "tsvtable.h"
#include "error.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Read all of F into a NUL-terminated buffer.  */
static char *
slurp (FILE *f, const char *name, size_t *len)
{
  size_t cap = 1 << 16, n = 0;
  char *buf = malloc (cap);
  if (!buf)
    {
      pmx_error ("%s: memory exhausted", name);
      return NULL;
    }
  for (;;)
    {
      if (cap - n < 2)
        {
          char *nb = realloc (buf, cap *= 2);
          if (!nb)
            {
              free (buf);
              pmx_error ("%s: memory exhausted", name);
              return NULL;
            }
          buf = nb;
        }
      size_t got = fread (buf + n, 1, cap - n - 1, f);
      n += got;
      if (got == 0)
        break;
    }
  if (ferror (f))
    {
      free (buf);
      pmx_error_errno (errno ? errno : EIO, "%s: read error", name);
      return NULL;
    }
  buf[n] = '\0';
  *len = n;
  return buf;
}

static int
is_comment_or_blank (const char *s)
{
  if (*s == '#')
    return 1;
  for (; *s; s++)
    if (*s != ' ' && *s != '\t')
      return 0;
  return 1;
}

/* Split LINE in place on tabs; store at most MAX pointers in F.  Returns the
   number of fields.  */
static size_t
split (char *line, char **f, size_t max)
{
  size_t n = 0;
  for (;;)
    {
      char *tab = strchr (line, '\t');
      if (n < max)
        f[n] = line;
      n++;
      if (!tab)
        return n;
      *tab = '\0';
      line = tab + 1;
    }
}

static size_t
count_fields (const char *line)
{
  size_t n = 1;
  for (; *line; line++)
    n += *line == '\t';
  return n;
}

pmx_tsv *
pmx_tsv_read (FILE *f, const char *name)
{
  size_t len;
  char *buf = slurp (f, name, &len);
  if (!buf)
    return NULL;
  if (memchr (buf, '\0', len))
    {
      free (buf);
      pmx_error ("%s: contains a NUL byte; not a text table", name);
      return NULL;
    }
  pmx_tsv *t = calloc (1, sizeof *t);
  size_t maxlines = 1;
  for (size_t i = 0; i < len; i++)
    maxlines += buf[i] == '\n';
  if (t)
    {
      t->buf = buf;
      t->name = strdup (name);
      t->rows = calloc (maxlines, sizeof *t->rows);
      t->line = calloc (maxlines, sizeof *t->line);
    }
  if (!t || !t->name || !t->rows || !t->line)
    {
      if (!t)
        free (buf);
      pmx_tsv_free (t);
      pmx_error ("%s: memory exhausted", name);
      return NULL;
    }

  /* A UTF-8 byte order mark (as spreadsheets write) is not part of the
     first column's name.  */
  char *p = buf;
  if (len >= 3 && memcmp (p, "\xEF\xBB\xBF", 3) == 0)
    p += 3;
  for (size_t lineno = 1; *p; lineno++)
    {
      char *line = p;
      char *nl = strchr (p, '\n');
      if (nl)
        {
          *nl = '\0';
          p = nl + 1;
        }
      else
        p += strlen (p);
      size_t ll = strlen (line);
      if (ll && line[ll - 1] == '\r')
        line[--ll] = '\0';
      if (is_comment_or_blank (line))
        continue;
      size_t nf = count_fields (line);
      if (!t->header)
        {
          t->ncols = nf;
          t->header_line = lineno;
          t->header = calloc (nf, sizeof *t->header);
          if (!t->header)
            goto nomem;
          split (line, t->header, nf);
          for (size_t c = 0; c < nf; c++)
            {
              if (!*t->header[c])
                {
                  pmx_error ("%s:%zu: column %zu of the header has no name",
                             name, lineno, c + 1);
                  goto fail;
                }
              for (size_t d = 0; d < c; d++)
                if (strcmp (t->header[c], t->header[d]) == 0)
                  {
                    pmx_error ("%s:%zu: column '%s' appears twice in the header",
                               name, lineno, t->header[c]);
                    goto fail;
                  }
            }
          continue;
        }
      if (nf != t->ncols)
        {
          pmx_error ("%s:%zu: %zu fields, but the header has %zu",
                     name, lineno, nf, t->ncols);
          goto fail;
        }
      char **row = calloc (nf, sizeof *row);
      if (!row)
        goto nomem;
      split (line, row, nf);
      t->rows[t->nrows] = row;
      t->line[t->nrows++] = lineno;
    }
  if (!t->header)
    {
      pmx_error ("%s: empty table (no header line)", name);
      goto fail;
    }
  return t;

nomem:
  pmx_error ("%s: memory exhausted", name);
fail:
  pmx_tsv_free (t);
  return NULL;
}

int
pmx_tsv_column (const pmx_tsv *t, const char *name)
{
  for (size_t c = 0; c < t->ncols; c++)
    if (strcmp (t->header[c], name) == 0)
      return (int) c;
  return -1;
}

void
pmx_tsv_free (pmx_tsv *t)
{
  if (!t)
    return;
  for (size_t r = 0; r < t->nrows; r++)
    free (t->rows[r]);
  free (t->rows);
  free (t->line);
  free (t->header);
  free (t->name);
  free (t->buf);
  free (t);
}
