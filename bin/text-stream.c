/* text-stream.c -- text, TSV and JSON forms of a prumux stream (prumux-cat).

   The TSV form, exact and reversible:
       #prumux-stream	1.0
       #meta	KEY	VALUE          (one per metadata pair)
       #record	SEQ
       #tensor	NAME	DTYPE	SHAPE   (SHAPE like 2x4, or "scalar")
       v	v	v	v               (one line per row: the last dimension)
       #end	RECORDS
   Floats are printed with enough digits to read back the same bits.

   The JSON Lines form, for jq and the like: {"meta":{KEY:VALUE,...}}, a
   VALUE that is a short number (see json_number) being a JSON number; then
   per record {"record":SEQ,"tensors":{NAME:{"dtype":..,"shape":[..],
   "data":..},...}}, the data nested by the shape (a scalar is a bare
   number) and non-finite floats null.  */

#include <config.h>
#include "text-stream.h"
#include "cli.h"
#include "error.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static int
selected (const struct text_options *o, const char *name)
{
  if (!o->select)
    return 1;
  for (char **s = o->select; *s; s++)
    if (strcmp (*s, name) == 0)
      return 1;
  return 0;
}

/* Element I of T as a double (floats) or integer, printed into BUF.  */
static void
format_value (char *buf, size_t size, const pmx_tensor *t, int64_t i, int json)
{
  const void *d = t->data;
  double v;
  switch (t->dtype)
    {
    case PMX_F32: v = ((const float *) d)[i]; goto flt;
    case PMX_F64: v = ((const double *) d)[i]; goto flt;
    case PMX_F16: v = pmx_f16_to_f32 (((const uint16_t *) d)[i]); goto flt;
    case PMX_BF16: v = pmx_bf16_to_f32 (((const uint16_t *) d)[i]); goto flt;
    case PMX_I8: snprintf (buf, size, "%d", ((const int8_t *) d)[i]); return;
    case PMX_U8: snprintf (buf, size, "%u", ((const uint8_t *) d)[i]); return;
    case PMX_I16: snprintf (buf, size, "%d", ((const int16_t *) d)[i]); return;
    case PMX_I32: snprintf (buf, size, "%" PRId32, ((const int32_t *) d)[i]); return;
    case PMX_I64: snprintf (buf, size, "%" PRId64, ((const int64_t *) d)[i]); return;
    }
  snprintf (buf, size, "?");
  return;
flt:
  if (json && !isfinite (v))
    snprintf (buf, size, "null");
  else if (isnan (v))
    snprintf (buf, size, "nan");
  else
    snprintf (buf, size, t->dtype == PMX_F64 ? "%.17g" : "%.9g", v);
}

static void
json_string (FILE *out, const char *s)
{
  putc ('"', out);
  for (const unsigned char *p = (const unsigned char *) s; *p; p++)
    {
      if (*p == '"' || *p == '\\')
        fprintf (out, "\\%c", *p);
      else if (*p < 0x20)
        fprintf (out, "\\u%04x", *p);
      else
        putc (*p, out);
    }
  putc ('"', out);
}

/* Whether S is written as a JSON number: JSON's number syntax, and short
   enough (15 characters) that a double holds it and that no identity (a
   32-digit hex model id) can pass for one by chance.  */
static int
json_number (const char *s)
{
  const char *p = s;
  if (strlen (s) > 15)
    return 0;
  if (*p == '-')
    p++;
  if (*p == '0')
    p++;
  else if (*p >= '1' && *p <= '9')
    while (*p >= '0' && *p <= '9')
      p++;
  else
    return 0;
  if (*p == '.')
    {
      if (!(*++p >= '0' && *p <= '9'))
        return 0;
      while (*p >= '0' && *p <= '9')
        p++;
    }
  if (*p == 'e' || *p == 'E')
    {
      p++;
      if (*p == '+' || *p == '-')
        p++;
      if (!(*p >= '0' && *p <= '9'))
        return 0;
      while (*p >= '0' && *p <= '9')
        p++;
    }
  return *p == '\0';
}

void
text_print_header (FILE *out, const pmx_meta *meta, const struct text_options *o)
{
  switch (o->format)
    {
    case FORMAT_TEXT:
      fprintf (out, "prumux stream %d.%d\n", PMX_STREAM_MAJOR, PMX_STREAM_MINOR);
      for (int i = 0; i < meta->count; i++)
        fprintf (out, "meta %s=%s\n", meta->key[i], meta->value[i]);
      break;
    case FORMAT_TSV:
      fprintf (out, "#prumux-stream\t%d.%d\n", PMX_STREAM_MAJOR, PMX_STREAM_MINOR);
      for (int i = 0; i < meta->count; i++)
        fprintf (out, "#meta\t%s\t%s\n", meta->key[i], meta->value[i]);
      break;
    case FORMAT_JSON:
      fputs ("{\"meta\":{", out);
      for (int i = 0; i < meta->count; i++)
        {
          if (i)
            putc (',', out);
          json_string (out, meta->key[i]);
          putc (':', out);
          if (json_number (meta->value[i]))
            fputs (meta->value[i], out);
          else
            json_string (out, meta->value[i]);
        }
      fputs ("}}\n", out);
      break;
    }
}

static void
print_tensor_text (FILE *out, const pmx_tensor *t, const struct text_options *o)
{
  char shape[256], v[64];
  fprintf (out, "  %s %s %s", t->name, pmx_dtype_name (t->dtype),
           pmx_shape_str (t, shape, sizeof shape));
  if (!o->no_data)
    {
      int64_t n = pmx_tensor_numel (t);
      int64_t show = o->max_values > 0 && n > o->max_values ? o->max_values : n;
      fputs (" [", out);
      for (int64_t i = 0; i < show; i++)
        {
          format_value (v, sizeof v, t, i, 0);
          fprintf (out, "%s%s", i ? " " : "", v);
        }
      if (show < n)
        fprintf (out, " ... (%" PRId64 " values)", n);
      putc (']', out);
    }
  putc ('\n', out);
}

static void
print_tensor_tsv (FILE *out, const pmx_tensor *t, const struct text_options *o)
{
  char shape[256], v[64];
  fprintf (out, "#tensor\t%s\t%s\t%s\n", t->name, pmx_dtype_name (t->dtype),
           pmx_shape_str (t, shape, sizeof shape));
  if (o->no_data)
    return;
  int64_t n = pmx_tensor_numel (t);
  int64_t cols = t->rank ? t->shape[t->rank - 1] : 1;
  for (int64_t i = 0; cols > 0 && i < n; i++)
    {
      format_value (v, sizeof v, t, i, 0);
      fputs (v, out);
      putc ((i + 1) % cols ? '\t' : '\n', out);
    }
}

/* The elements of T from *I on, nested as dimensions DIM.. of its shape
   (row-major); *I advances past them.  */
static void
print_json_nested (FILE *out, const pmx_tensor *t, int dim, int64_t *i)
{
  char v[64];
  if (dim == t->rank)
    {
      format_value (v, sizeof v, t, (*i)++, 1);
      fputs (v, out);
      return;
    }
  putc ('[', out);
  for (int64_t k = 0; k < t->shape[dim]; k++)
    {
      if (k)
        putc (',', out);
      print_json_nested (out, t, dim + 1, i);
    }
  putc (']', out);
}

static void
print_tensor_json (FILE *out, const pmx_tensor *t, const struct text_options *o)
{
  json_string (out, t->name);
  fprintf (out, ":{\"dtype\":\"%s\",\"shape\":[", pmx_dtype_name (t->dtype));
  for (int i = 0; i < t->rank; i++)
    fprintf (out, "%s%" PRId64, i ? "," : "", t->shape[i]);
  putc (']', out);
  if (!o->no_data)
    {
      int64_t i = 0;
      fputs (",\"data\":", out);
      print_json_nested (out, t, 0, &i);
    }
  putc ('}', out);
}

void
text_print_record (FILE *out, const pmx_record *rec, const struct text_options *o)
{
  int first = 1;
  switch (o->format)
    {
    case FORMAT_TEXT:
      fprintf (out, "record %" PRIu64 "\n", rec->seq);
      break;
    case FORMAT_TSV:
      fprintf (out, "#record\t%" PRIu64 "\n", rec->seq);
      break;
    case FORMAT_JSON:
      fprintf (out, "{\"record\":%" PRIu64 ",\"tensors\":{", rec->seq);
      break;
    }
  for (int i = 0; i < rec->count; i++)
    {
      const pmx_tensor *t = pmx_record_at (rec, i);
      if (!selected (o, t->name))
        continue;
      if (o->format == FORMAT_TEXT)
        print_tensor_text (out, t, o);
      else if (o->format == FORMAT_TSV)
        print_tensor_tsv (out, t, o);
      else
        {
          if (!first)
            putc (',', out);
          print_tensor_json (out, t, o);
        }
      first = 0;
    }
  if (o->format == FORMAT_JSON)
    fputs ("}}\n", out);
  cli_check_write (out, "standard output");
}

void
text_print_end (FILE *out, unsigned long long records, const struct text_options *o)
{
  if (o->format == FORMAT_TEXT)
    fprintf (out, "end (%llu records)\n", records);
  else if (o->format == FORMAT_TSV)
    fprintf (out, "#end\t%llu\n", records);
}

/* ---- TSV back to a binary stream --------------------------------------- */

struct parser
{
  FILE *in;
  const char *name;
  unsigned long long lineno;
  char *line;
  size_t cap;
};

static noreturn void
parse_error (const struct parser *p, const char *fmt, const char *arg)
{
  die ("%s:%llu: %s%s%s", p->name, p->lineno, fmt, arg ? ": " : "", arg ? arg : "");
}

/* Next line without its newline, or NULL at end of input.  */
static char *
next_line (struct parser *p)
{
  ssize_t n = getline (&p->line, &p->cap, p->in);
  if (n < 0)
    {
      if (ferror (p->in))
        die ("%s: read error: %s", p->name, strerror (errno));
      return NULL;
    }
  p->lineno++;
  if (n > 0 && p->line[n - 1] == '\n')
    p->line[--n] = '\0';
  if (n > 0 && p->line[n - 1] == '\r')
    p->line[--n] = '\0';
  return p->line;
}

/* Split LINE at tabs into at most MAX fields; returns the count.  */
static int
split_tabs (char *line, char **field, int max)
{
  int n = 0;
  while (n < max)
    {
      field[n++] = line;
      char *tab = strchr (line, '\t');
      if (!tab)
        break;
      *tab = '\0';
      line = tab + 1;
    }
  return n;
}

static void
parse_shape (const struct parser *p, const char *s, int *rank, int64_t *shape)
{
  *rank = 0;
  if (strcmp (s, "scalar") == 0)
    return;
  for (;;)
    {
      char *end;
      errno = 0;
      long long d = strtoll (s, &end, 10);
      if (end == s || d < 0 || errno || (*end && *end != 'x'))
        parse_error (p, "invalid shape", s);
      if (*rank == PMX_MAX_RANK)
        parse_error (p, "too many dimensions", NULL);
      shape[(*rank)++] = d;
      if (!*end)
        return;
      s = end + 1;
    }
}

/* Store the value S as element I of DATA, of type DTYPE.  A number too
   large for the type is an error, not an infinity ("inf" is written out
   when one is meant).  */
static void
store_value (const struct parser *p, int dtype, void *data, int64_t i,
             const char *s)
{
  char *end;
  errno = 0;
  if (pmx_dtype_is_float (dtype))
    {
      double v = strtod (s, &end);
      if (end == s || *end)
        parse_error (p, "not a number", s);
      if (errno == ERANGE && isinf (v))
        parse_error (p, "value out of range for the dtype", s);
      int inf = 0;
      switch (dtype)
        {
        case PMX_F32:
          ((float *) data)[i] = (float) v;
          inf = isinf (((float *) data)[i]);
          break;
        case PMX_F64: ((double *) data)[i] = v; break;
        case PMX_F16:
          ((uint16_t *) data)[i] = pmx_f32_to_f16 ((float) v);
          inf = isinf (pmx_f16_to_f32 (((uint16_t *) data)[i]));
          break;
        default:
          ((uint16_t *) data)[i] = pmx_f32_to_bf16 ((float) v);
          inf = isinf (pmx_bf16_to_f32 (((uint16_t *) data)[i]));
          break;
        }
      if (inf && isfinite (v))
        parse_error (p, "value out of range for the dtype", s);
      return;
    }
  long long v = strtoll (s, &end, 10);
  if (end == s || *end || errno)
    parse_error (p, "not an integer", s);
  long long lo = 0, hi = 0;
  switch (dtype)
    {
    case PMX_I8: lo = INT8_MIN; hi = INT8_MAX; break;
    case PMX_U8: lo = 0; hi = UINT8_MAX; break;
    case PMX_I16: lo = INT16_MIN; hi = INT16_MAX; break;
    case PMX_I32: lo = INT32_MIN; hi = INT32_MAX; break;
    default: lo = INT64_MIN; hi = INT64_MAX; break;
    }
  if (v < lo || v > hi)
    parse_error (p, "value out of range for the dtype", s);
  switch (dtype)
    {
    case PMX_I8: ((int8_t *) data)[i] = (int8_t) v; break;
    case PMX_U8: ((uint8_t *) data)[i] = (uint8_t) v; break;
    case PMX_I16: ((int16_t *) data)[i] = (int16_t) v; break;
    case PMX_I32: ((int32_t *) data)[i] = (int32_t) v; break;
    default: ((int64_t *) data)[i] = v; break;
    }
}

/* Read the data lines of tensor NAME (DTYPE, RANK, SHAPE) and add it to
   REC.  The values go to a buffer that grows as lines arrive, as the
   binary reader's do: a huge declared shape costs nothing until its data
   is really there (and a shape past the stream's per-tensor limit is
   refused at once).  */
static void
read_tensor (struct parser *p, pmx_record *rec, const char *name, int dtype,
             int rank, const int64_t *shape)
{
  size_t es = pmx_dtype_size (dtype);
  uint64_t n = 1;
  for (int k = 0; k < rank; k++)
    {
      if (shape[k] != 0 && n > PMX_DEFAULT_TENSOR_LIMIT / es / (uint64_t) shape[k])
        parse_error (p, "tensor larger than the stream's limit", name);
      n *= (uint64_t) shape[k];
    }
  int64_t cols = rank ? shape[rank - 1] : 1;
  char *buf = NULL;
  size_t cap = 0;
  for (uint64_t i = 0; cols > 0 && i < n; i += (uint64_t) cols)
    {
      char *line = next_line (p);
      if (!line)
        parse_error (p, "input ends inside tensor", name);
      int64_t j = 0;
      char *s = line;
      for (;;)
        {
          char *tab = strchr (s, '\t');
          if (tab)
            *tab = '\0';
          if (j == cols)
            parse_error (p, "too many values in row of", name);
          if ((i + (uint64_t) j + 1) * es > cap)
            {
              size_t nc = cap ? 2 * cap : 4096;
              if (nc > n * es)
                nc = n * es;
              char *nb = realloc (buf, nc);
              if (!nb)
                die ("memory exhausted");
              buf = nb;
              cap = nc;
            }
          store_value (p, dtype, buf, (int64_t) i + j, s);
          j++;
          if (!tab)
            break;
          s = tab + 1;
        }
      if (j != cols)
        parse_error (p, "too few values in row of", name);
    }
  pmx_tensor *t = pmx_record_add (rec, name, dtype, rank, shape);
  if (!t)
    parse_error (p, pmx_errmsg (), NULL);
  if (t->nbytes)
    memcpy (t->data, buf, t->nbytes);
  free (buf);
}

void
text_encode (FILE *in, const char *name, FILE *out, const char *out_name)
{
  struct parser p = { .in = in, .name = name };
  unsigned long long records = 0;
  pmx_meta meta;
  pmx_record rec;
  pmx_writer *w = NULL;
  int in_record = 0;
  char *f[5];

  pmx_meta_init (&meta);
  pmx_record_init (&rec);
  char *line = next_line (&p);
  if (!line || split_tabs (line, f, 5) != 2 || strcmp (f[0], "#prumux-stream") != 0)
    parse_error (&p, "expected '#prumux-stream<TAB>VERSION'", NULL);
  if (atoi (f[1]) != PMX_STREAM_MAJOR)
    parse_error (&p, "unsupported version", f[1]);
  while ((line = next_line (&p)))
    {
      int n = split_tabs (line, f, 5);
      if (strcmp (f[0], "#meta") == 0)
        {
          if (w)
            parse_error (&p, "#meta after the first record", NULL);
          if (n != 3)
            parse_error (&p, "expected '#meta<TAB>KEY<TAB>VALUE'", NULL);
          if (pmx_meta_set (&meta, f[1], f[2]) < 0)
            parse_error (&p, pmx_errmsg (), NULL);
        }
      else if (strcmp (f[0], "#record") == 0 || strcmp (f[0], "#end") == 0)
        {
          /* "#record SEQ" counts from 0; "#end N" says how many there
             were: both are checked, so a cut or spliced text shows.  */
          char *end = f[1];
          unsigned long long seq = 0;
          errno = 0;
          if (n == 2 && f[1][0] >= '0' && f[1][0] <= '9')
            seq = strtoull (f[1], &end, 10);
          if (n != 2 || end == f[1] || *end || errno)
            parse_error (&p, "expected a record number after", f[0]);
          if (seq != records)
            {
              char msg[96];
              snprintf (msg, sizeof msg, "%s says %llu, but %llu record%s came"
                        " before", f[0], seq, records, records == 1 ? "" : "s");
              parse_error (&p, msg, NULL);
            }
          if (!w && !(w = pmx_writer_open (out, out_name, &meta)))
            die_lib (NULL);
          if (in_record && pmx_writer_write (w, &rec) < 0)
            die_lib (NULL);
          pmx_record_reset (&rec);
          in_record = strcmp (f[0], "#record") == 0;
          records += in_record;
          if (!in_record)
            {
              /* Nothing may follow the end: it would be lost.  */
              while ((line = next_line (&p)))
                if (line[0] != '\0')
                  parse_error (&p, "content after '#end'", NULL);
              if (pmx_writer_finish (w) < 0)
                die_lib (NULL);
              pmx_writer_close (w);
              pmx_meta_free (&meta);
              pmx_record_free (&rec);
              free (p.line);
              return;
            }
        }
      else if (strcmp (f[0], "#tensor") == 0)
        {
          if (!in_record)
            parse_error (&p, "#tensor outside a record", NULL);
          if (n != 4)
            parse_error (&p, "expected '#tensor<TAB>NAME<TAB>DTYPE<TAB>SHAPE'", NULL);
          int dt = pmx_dtype_parse (f[2]);
          if (dt < 0)
            parse_error (&p, "unknown dtype", f[2]);
          int rank;
          int64_t shape[PMX_MAX_RANK];
          parse_shape (&p, f[3], &rank, shape);
          /* The name lives in the line buffer, which the data lines reuse.  */
          char tname[PMX_NAME_MAX + 1];
          if (strlen (f[1]) > PMX_NAME_MAX)
            parse_error (&p, "tensor name too long", NULL);
          strcpy (tname, f[1]);
          if (pmx_record_get (&rec, tname))
            parse_error (&p, "duplicate tensor", tname);
          read_tensor (&p, &rec, tname, dt, rank, shape);
        }
      else if (line[0] != '\0')
        parse_error (&p, "unexpected line", f[0]);
    }
  parse_error (&p, "missing '#end' line (truncated input)", NULL);
}
