/* prumux-tokenize -- BERT WordPiece tokenization of text or TSV lines into a
   prumux tensor stream (or id lists), identical to Hugging Face's
   BertTokenizer; with --decode, turn ids back into tokens.  */

#include <config.h>
#include "cli.h"
#include "error.h"
#include "stream.h"
#include "model.h"
#include "pipeline.h"
#include "vocab.h"
#include "wordpiece.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

static void
usage (void)
{
  printf ("Usage: %s [OPTION]... -m MODEL [FILE]...\n"
          "  or:  %s [OPTION]... --vocab=FILE [FILE]...\n", program_name, program_name);
  fputs ("\
Tokenize each line of the FILEs (or standard input) with BERT's WordPiece,\n\
exactly as Hugging Face's BertTokenizer does, and write a prumux stream of\n\
records of token ids ([CLS] A [SEP], or [CLS] A [SEP] B [SEP] for pairs).\n\
\n\
Vocabulary and normalisation:\n\
  -m, --model=MODEL       take the vocabulary, case and accent handling,\n\
                            maximum length and label names from the model\n\
                            archive, and mark the stream as made for it\n\
      --vocab=FILE        the vocabulary (vocab.txt, one token per line)\n\
  -c, --cased             keep case (default: lower-case, for uncased\n\
                            vocabularies)\n\
  -a, --no-strip-accents  keep accents (default: strip them, NFD and drop\n\
                            nonspacing marks, unless --cased)\n\
  -s, --strip-accents     strip accents even with --cased\n\
\n\
Input (one text per line; CRLF accepted; invalid UTF-8 is dropped):\n\
  -f, --fields=A[,B]      the input is TSV: tokenize field A (1-based), or the\n\
                            pair A, B; without this option the whole line is\n\
                            the text, and a line with a tab is warned about\n\
      --whole-line        the whole line is the text, tabs included (no\n\
                            warning)\n\
  -l, --label-field=N     carry field N as the integer tensor 'label'\n\
  -L, --labels=NAMES      label names, comma-separated: a label NAME is\n\
                            stored as its index in this list (default: the\n\
                            model's label names, then integers)\n\
  -g, --group-field=N     field N is each row's grouping key (an owner,\n\
                            a tenant): prumux-mux never multiplexes rows\n\
                            of different keys together (see 'group' below)\n\
  -H, --skip-header       skip the first line of each FILE\n\
\n\
Output:\n\
  -n, --max-length=N      truncate to N tokens, special tokens included\n\
                            (default 128; pairs: 'longest_first')\n\
  -p, --pad=HOW           pad to 'max' length (default) or the 'longest' row\n\
                            of each record\n\
  -b, --batch=N           rows per record (default 64)\n\
  -F, --format=FORMAT     'stream' (default) or 'tsv': one line of\n\
                            space-separated ids per input row, no padding\n\
  -d, --decode            read ids (the tsv form, or a stream) and write their\n\
                            tokens, space-separated, one row per line\n\
  -o, --output=FILE       write to FILE (atomically) instead of standard output\n\
      --force             write the stream even to a terminal\n", stdout);
  fputs (CLI_STANDARD_HELP, stdout);
  fputs ("\
\n\
Records hold row (i64, B: the 0-based number of the input row, headers not\n\
counted), ids and type_ids (i32, B x T), lengths (i32, B) and, with\n\
--label-field, label (i32, B).  A line longer than the maximum length is\n\
truncated after tokenization, in constant memory.\n\
\n\
With --group-field, records also hold group (i64, B), which numbers the\n\
runs of equal keys: it changes exactly where the key text differs from\n\
the previous row's (keys of up to 1024 bytes are compared whole).\n", stdout);
  cli_help_tail ();
}

/* ---- Options --------------------------------------------------------- */

static struct
{
  const char *vocab;
  const char *model;
  int lowercase, strip_accents;  /* strip_accents: -1 = as lowercase */
  int cased_set, max_length_set;  /* given on the command line */
  int labels_from_model;         /* integers are accepted too */
  int tsv_in;                    /* --fields given */
  int field_a, field_b;          /* 1-based; 0 = none */
  int label_field;
  int group_field;
  char **labels;
  int nlabels;
  int skip_header;
  int max_length;
  int pad_longest;
  int batch;
  int tsv;
  int decode;
  const char *output;
  int force;                     /* --force: a stream to a terminal */
  int whole_line;                /* --whole-line: no warning about tabs */
} opt = { .lowercase = 1, .strip_accents = -1, .max_length = 128,
          .batch = 64 };

static void
parse_fields (const char *arg)
{
  char *end;
  errno = 0;
  long a = strtol (arg, &end, 10), b = 0;
  if (*end == ',')
    {
      const char *p = end + 1;
      b = strtol (p, &end, 10);
      if (end == p)
        b = -1;
    }
  if (errno || *end || a < 1 || a > 1000000 || b < 0 || b > 1000000)
    usage_error ("invalid --fields '%s' (expected A or A,B, fields from 1)",
                 arg);
  opt.tsv_in = 1;
  opt.field_a = (int) a;
  opt.field_b = (int) b;
}

static void
parse_labels (char *arg)
{
  int n = 1;
  for (char *p = arg; *p; p++)
    n += *p == ',';
  opt.labels = calloc ((size_t) n, sizeof *opt.labels);
  if (!opt.labels)
    die ("memory exhausted");
  char *p = arg;
  for (int i = 0; i < n; i++)
    {
      char *comma = strchr (p, ',');
      if (comma)
        *comma = '\0';
      if (!*p)
        usage_error ("--labels: empty label name");
      for (int j = 0; j < i; j++)
        if (strcmp (opt.labels[j], p) == 0)
          usage_error ("--labels: '%s' given twice", p);
      opt.labels[i] = p;
      p = comma ? comma + 1 : p + strlen (p);
    }
  opt.nlabels = n;
}

/* ---- Output ------------------------------------------------------------ */

static pmx_wordpiece wp;
static FILE *out;
static pmx_writer *writer;
static pmx_record rec;

/* One record being filled: rows of at most max_length ids.  */
static struct
{
  int n;                        /* rows so far */
  int32_t *ids;                 /* (batch, max_length) */
  int32_t *type_ids;            /* (batch, max_length) */
  int32_t *lengths;             /* (batch) */
  int32_t *label;               /* (batch) */
  int64_t *row;                 /* (batch) */
  int64_t *group;               /* (batch) */
} batch;

static void
batch_alloc (void)
{
  size_t cells = (size_t) opt.batch * (size_t) opt.max_length;
  batch.ids = malloc (cells * sizeof *batch.ids);
  batch.type_ids = malloc (cells * sizeof *batch.type_ids);
  batch.lengths = malloc ((size_t) opt.batch * sizeof *batch.lengths);
  batch.label = malloc ((size_t) opt.batch * sizeof *batch.label);
  batch.row = malloc ((size_t) opt.batch * sizeof *batch.row);
  batch.group = malloc ((size_t) opt.batch * sizeof *batch.group);
  if (!batch.ids || !batch.type_ids || !batch.lengths || !batch.label
      || !batch.row || !batch.group)
    die ("memory exhausted");
}

static void *
add_tensor (const char *name, int dtype, int rank, int64_t d0, int64_t d1)
{
  int64_t shape[2] = { d0, d1 };
  pmx_tensor *t = pmx_record_add (&rec, name, dtype, rank, shape);
  if (!t)
    die_lib (NULL);
  return t->data;
}

/* Write the rows gathered so far as one record.  */
static void
batch_flush (void)
{
  int b = batch.n, lmax = opt.max_length;
  if (b == 0)
    return;
  int t = lmax;
  if (opt.pad_longest)
    {
      t = 1;
      for (int i = 0; i < b; i++)
        if (batch.lengths[i] > t)
          t = batch.lengths[i];
    }
  pmx_record_reset (&rec);
  int64_t *row = add_tensor ("row", PMX_I64, 1, b, 0);       // (B)
  int32_t *ids = add_tensor ("ids", PMX_I32, 2, b, t);       // (B, T)
  int32_t *type = add_tensor ("type_ids", PMX_I32, 2, b, t); // (B, T)
  int32_t *len = add_tensor ("lengths", PMX_I32, 1, b, 0);   // (B)
  memcpy (row, batch.row, (size_t) b * sizeof *row);
  memcpy (len, batch.lengths, (size_t) b * sizeof *len);
  for (int i = 0; i < b; i++)
    {
      int n = batch.lengths[i];
      memcpy (ids + (size_t) i * t, batch.ids + (size_t) i * lmax,
              (size_t) n * sizeof *ids);
      memcpy (type + (size_t) i * t, batch.type_ids + (size_t) i * lmax,
              (size_t) n * sizeof *type);
      for (int j = n; j < t; j++)
        {
          ids[(size_t) i * t + j] = wp.pad;
          type[(size_t) i * t + j] = 0;
        }
    }
  if (opt.label_field)
    {
      int32_t *lab = add_tensor ("label", PMX_I32, 1, b, 0); // (B)
      memcpy (lab, batch.label, (size_t) b * sizeof *lab);
    }
  if (opt.group_field)
    {
      int64_t *grp = add_tensor ("group", PMX_I64, 1, b, 0); // (B)
      memcpy (grp, batch.group, (size_t) b * sizeof *grp);
    }
  if (pmx_writer_write (writer, &rec) < 0)
    die_lib (NULL);
  batch.n = 0;
}

/* Print one row's ids as text.  */
static void
print_ids (const int32_t *ids, int n)
{
  for (int i = 0; i < n; i++)
    {
      char buf[16], *p = buf + sizeof buf;
      uint32_t v = (uint32_t) ids[i];
      do
        *--p = (char) ('0' + v % 10);
      while (v /= 10);
      if (i)
        putc_unlocked (' ', out);
      fwrite (p, 1, (size_t) (buf + sizeof buf - p), out);
    }
  putc_unlocked ('\n', out);
}

/* ---- Rows ------------------------------------------------------------- */

/* The text of a row being read: the sequences of fields A and B.  */
static pmx_wp_seq seq_a, seq_b;
static int32_t *ids_a, *ids_b;
/* A label name, as long as a model archive keeps (PMX_LABEL_MAX).  */
enum { LABEL_MAX = 64 };
static char label_buf[LABEL_MAX + 2];
static size_t label_len;
static int64_t rows;            /* data rows so far, all files */
/* The grouping key of the row being read and of the previous row, and the
   number of the previous row's run of equal keys (-1 before the first).  */
enum { GROUP_MAX = 1024 };
static char group_buf[2][GROUP_MAX + 2];
static size_t group_len[2];
static int group_cur;           /* group_buf[group_cur] is being read */
static int64_t group_run = -1;

/* The run number of the key just read.  */
static int64_t
group_key (const char *file, long long line)
{
  char *s = group_buf[group_cur];
  size_t n = group_len[group_cur];
  if (n && s[n - 1] == '\r')
    n--;
  if (n > GROUP_MAX)
    die ("%s:%lld: grouping key longer than %d bytes", file, line, GROUP_MAX);
  int prev = !group_cur;
  if (group_run < 0 || n != group_len[prev] || memcmp (s, group_buf[prev], n))
    group_run++;
  group_len[group_cur] = n;
  group_cur = prev;             /* this key is the previous one next time */
  return group_run;
}

static int
parse_label (const char *file, long long line)
{
  char *s = label_buf;
  size_t n = label_len;
  if (n && s[n - 1] == '\r')
    n--;
  if (n > LABEL_MAX)
    die ("%s:%lld: label too long", file, line);
  s[n] = '\0';
  if (opt.labels)
    {
      for (int i = 0; i < opt.nlabels; i++)
        if (strcmp (opt.labels[i], s) == 0)
          return i;
      if (!opt.labels_from_model)
        die ("%s:%lld: label '%s' is not one of --labels", file, line, s);
    }
  if (opt.labels_from_model)
    {
      /* A model's labels: a name, or a class index.  */
      char *end;
      errno = 0;
      long v = strtol (s, &end, 10);
      if (end == s || *end || errno || v < 0 || v >= opt.nlabels)
        die ("%s:%lld: label '%s' is neither a label of the model nor a class"
             " number below %d", file, line, s, opt.nlabels);
      return (int) v;
    }
  char *end;
  errno = 0;
  long v = strtol (s, &end, 10);
  if (end == s || *end || errno || v < INT32_MIN || v > INT32_MAX)
    die ("%s:%lld: label '%s' is not an integer (name the labels with"
         " --labels)", file, line, s);
  return (int) v;
}

static void
row_start (void)
{
  size_t m = (size_t) opt.max_length - (opt.field_b ? 3 : 2);
  pmx_wp_seq_init (&seq_a, &wp, ids_a, m);
  if (opt.field_b)
    pmx_wp_seq_init (&seq_b, &wp, ids_b, m);
  label_len = 0;
  group_len[group_cur] = 0;
}

static void
row_end (const char *file, long long line, int fields)
{
  int need = opt.field_a;
  if (opt.field_b > need)
    need = opt.field_b;
  if (opt.label_field > need)
    need = opt.label_field;
  if (opt.group_field > need)
    need = opt.group_field;
  if (fields < need)
    die ("%s:%lld: %d field%s, but field %d is needed", file, line, fields,
         fields == 1 ? "" : "s", need);

  size_t na = pmx_wp_seq_finish (&seq_a), nb = 0;
  int32_t *ids = batch.ids + (size_t) batch.n * (size_t) opt.max_length;
  int32_t *type = batch.type_ids + (size_t) batch.n * (size_t) opt.max_length;
  size_t n = 0;
  if (opt.field_b)
    {
      nb = pmx_wp_seq_finish (&seq_b);
      pmx_wordpiece_truncate_pair ((size_t) opt.max_length - 3, &na, &nb);
    }
  else if (na > (size_t) opt.max_length - 2)
    na = (size_t) opt.max_length - 2;
  ids[n++] = wp.cls;
  memcpy (ids + n, ids_a, na * sizeof *ids);
  n += na;
  ids[n++] = wp.sep;
  size_t first = n;
  if (opt.field_b)
    {
      memcpy (ids + n, ids_b, nb * sizeof *ids);
      n += nb;
      ids[n++] = wp.sep;
    }
  if (opt.tsv)
    {
      print_ids (ids, (int) n);
      rows++;
      return;
    }
  for (size_t i = 0; i < n; i++)
    type[i] = i < first ? 0 : 1;
  batch.lengths[batch.n] = (int32_t) n;
  batch.row[batch.n] = rows++;
  if (opt.label_field)
    batch.label[batch.n] = parse_label (file, line);
  if (opt.group_field)
    batch.group[batch.n] = group_key (file, line);
  if (++batch.n == opt.batch)
    batch_flush ();
}

/* Send bytes of field FIELD (1-based) where they belong.  */
static inline void
field_bytes (int field, const char *p, size_t n)
{
  if (field == opt.field_a)
    pmx_wp_seq_feed (&seq_a, p, n);
  if (field == opt.field_b)
    pmx_wp_seq_feed (&seq_b, p, n);
  if (field == opt.label_field)
    {
      size_t room = sizeof label_buf - 1 - label_len;
      if (n > room)
        n = room;
      memcpy (label_buf + label_len, p, n);
      label_len += n;
    }
  if (field == opt.group_field)
    {
      /* One byte past GROUP_MAX is kept, to tell a key that is too long.  */
      size_t room = GROUP_MAX + 1 - group_len[group_cur];
      if (n > room)
        n = room;
      memcpy (group_buf[group_cur] + group_len[group_cur], p, n);
      group_len[group_cur] += n;
    }
}

enum { CHUNK = 1 << 18 };

/* Read FILE line by line in chunks, so a line of any length takes
   constant memory.  */
static void
tokenize_file (const char *file)
{
  FILE *in = cli_open_input (file);
  const char *name = strcmp (file, "-") == 0 ? "-" : file;
  static char buf[CHUNK];
  long long line = 1;
  int field = 1, in_line = 0, skipping = opt.skip_header;
  if (!skipping)
    row_start ();
  size_t got;
  while ((got = fread (buf, 1, sizeof buf, in)) > 0)
    {
      const char *p = buf, *end = buf + got;
      while (p < end)
        {
          in_line = 1;
          /* The next delimiter: LF, or tab as well for TSV.  */
          const char *q = p;
          if (opt.tsv_in)
            while (q < end && *q != '\n' && *q != '\t')
              q++;
          else
            {
              q = memchr (p, '\n', (size_t) (end - p));
              if (!q)
                q = end;
              /* A labelled TSV given without --fields would have its label
                 tokenized as text, silently: say so, once.  */
              if (!opt.whole_line && !skipping && memchr (p, '\t', (size_t) (q - p)))
                {
                  warn ("%s:%lld: warning: the line has tab-separated fields, but"
                        " without --fields the whole line is the text; give"
                        " --fields (and --label-field), or --whole-line", name, line);
                  opt.whole_line = 1;
                }
            }
          if (!skipping && q > p)
            field_bytes (opt.tsv_in ? field : 1, p, (size_t) (q - p));
          if (q == end)
            break;
          if (*q == '\t')
            field++;
          else
            {
              if (skipping)
                skipping = 0;
              else
                row_end (name, line, field);
              line++;
              field = 1;
              in_line = 0;
              row_start ();
            }
          p = q + 1;
        }
    }
  if (in_line && !skipping)
    row_end (name, line, field);
  cli_close_input (in, file);
}

/* ---- Decoding ------------------------------------------------------- */

static void
print_tokens (const pmx_vocab *v, const int32_t *ids, int64_t n,
              const char *where)
{
  for (int64_t i = 0; i < n; i++)
    {
      size_t len;
      const char *tok = pmx_vocab_token (v, ids[i], &len);
      if (!tok)
        die ("%s: id %ld is not in the vocabulary (size %d)", where,
             (long) ids[i], pmx_vocab_size (v));
      if (i)
        putc_unlocked (' ', out);
      fwrite (tok, 1, len, out);
    }
  putc_unlocked ('\n', out);
}

static void
decode_file (const pmx_vocab *v, const char *file)
{
  FILE *in = cli_open_input (file);
  const char *name = strcmp (file, "-") == 0 ? "-" : file;
  int c = getc (in);
  if (c == EOF)
    {
      cli_close_input (in, file);
      return;
    }
  ungetc (c, in);
  if (c == 0x89)
    {
      /* A stream: the rows of 'ids', cut to 'lengths' when present.  */
      pmx_reader *r = pmx_reader_open (in, name);
      if (!r)
        die_lib (NULL);
      pmx_record in_rec;
      pmx_record_init (&in_rec);
      int got;
      while ((got = pmx_reader_read (r, &in_rec)) > 0)
        {
          const pmx_tensor *ids = pmx_record_expect (&in_rec, "ids",
                                                     PMX_I32, 2);
          if (!ids)
            die_lib (name);
          const pmx_tensor *len = pmx_record_get (&in_rec, "lengths");
          int64_t b = ids->shape[0], t = ids->shape[1];
          if (len && (len->dtype != PMX_I32 || len->rank != 1
                      || len->shape[0] != b))
            die ("%s: record %lu: 'lengths' does not match 'ids'", name,
                 (unsigned long) in_rec.seq);
          for (int64_t i = 0; i < b; i++)
            {
              int64_t n = len ? ((const int32_t *) len->data)[i] : t;
              if (n < 0 || n > t)
                die ("%s: record %lu: length %ld out of range", name,
                     (unsigned long) in_rec.seq, (long) n);
              print_tokens (v, (const int32_t *) ids->data + i * t, n, name);
            }
          cli_check_write (out, "output");
        }
      if (got < 0)
        die_lib (NULL);
      pmx_record_free (&in_rec);
      pmx_reader_close (r);
    }
  else
    {
      /* The tsv form: space-separated ids per line.  */
      char *line = NULL;
      size_t cap = 0;
      ssize_t n;
      long long lineno = 0;
      int32_t *ids = NULL;
      size_t idcap = 0;
      char where[64];
      while ((n = getline (&line, &cap, in)) >= 0)
        {
          lineno++;
          snprintf (where, sizeof where, "line %lld", lineno);
          size_t count = 0;
          char *p = line;
          for (;;)
            {
              while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
                p++;
              if (!*p)
                break;
              char *end;
              errno = 0;
              long id = strtol (p, &end, 10);
              if (end == p || errno || id < 0 || id > INT32_MAX
                  || (*end && *end != ' ' && *end != '\t' && *end != '\r'
                      && *end != '\n'))
                die ("%s:%lld: not a list of token ids", name, lineno);
              if (count == idcap)
                {
                  idcap = idcap ? 2 * idcap : 256;
                  ids = realloc (ids, idcap * sizeof *ids);
                  if (!ids)
                    die ("memory exhausted");
                }
              ids[count++] = (int32_t) id;
              p = end;
            }
          char ctx[300];
          snprintf (ctx, sizeof ctx, "%s:%lld", name, lineno);
          print_tokens (v, ids, (int64_t) count, ctx);
        }
      free (line);
      free (ids);
    }
  cli_close_input (in, file);
}

/* ---- Main ------------------------------------------------------------ */

int
main (int argc, char **argv)
{
  enum { OPT_FORCE = 256, OPT_WHOLE_LINE, OPT_VOCAB };
  static const struct option longopts[] = {
    { "model", required_argument, NULL, 'm' },
    { "vocab", required_argument, NULL, OPT_VOCAB },
    { "cased", no_argument, NULL, 'c' },
    { "no-strip-accents", no_argument, NULL, 'a' },
    { "strip-accents", no_argument, NULL, 's' },
    { "fields", required_argument, NULL, 'f' },
    { "label-field", required_argument, NULL, 'l' },
    { "labels", required_argument, NULL, 'L' },
    { "group-field", required_argument, NULL, 'g' },
    { "skip-header", no_argument, NULL, 'H' },
    { "max-length", required_argument, NULL, 'n' },
    { "pad", required_argument, NULL, 'p' },
    { "batch", required_argument, NULL, 'b' },
    { "format", required_argument, NULL, 'F' },
    { "decode", no_argument, NULL, 'd' },
    { "output", required_argument, NULL, 'o' },
    { "force", no_argument, NULL, OPT_FORCE },
    { "whole-line", no_argument, NULL, OPT_WHOLE_LINE },
    CLI_STANDARD_LONGOPTS,
    { NULL, 0, NULL, 0 }
  };
  int c;
  cli_init (argv[0]);
  while ((c = getopt_long (argc, argv, "m:v:casf:l:L:g:Hn:p:b:F:do:"
                           CLI_STANDARD_SHORTOPTS, longopts, NULL)) != -1)
    switch (cli_standard_option (c, usage))
      {
      case 'm': opt.model = optarg; break;
      case 'v':                 /* -v: before 0.1.0 (-v is --verbose elsewhere) */
      case OPT_VOCAB: opt.vocab = optarg; break;
      case 'c': opt.lowercase = 0; opt.cased_set = 1; break;
      case 'a': opt.strip_accents = 0; break;
      case 's': opt.strip_accents = 1; break;
      case 'f': parse_fields (optarg); break;
      case 'l':
        opt.label_field = (int) cli_parse_int ("--label-field", optarg, 1,
                                               1000000);
        break;
      case 'L': parse_labels (optarg); break;
      case 'g':
        opt.group_field = (int) cli_parse_int ("--group-field", optarg, 1,
                                               1000000);
        break;
      case 'H': opt.skip_header = 1; break;
      case 'n':
        opt.max_length = (int) cli_parse_int ("--max-length", optarg, 2,
                                              1 << 20);
        opt.max_length_set = 1;
        break;
      case 'p':
        if (strcmp (optarg, "max") == 0)
          opt.pad_longest = 0;
        else if (strcmp (optarg, "longest") == 0)
          opt.pad_longest = 1;
        else
          usage_error ("invalid --pad '%s' (expected max or longest)",
                       optarg);
        break;
      case 'b':
        opt.batch = (int) cli_parse_int ("--batch", optarg, 1, 1 << 20);
        break;
      case 'F':
        if (strcmp (optarg, "stream") == 0)
          opt.tsv = 0;
        else if (strcmp (optarg, "tsv") == 0)
          opt.tsv = 1;
        else
          usage_error ("invalid --format '%s' (expected stream or tsv)",
                       optarg);
        break;
      case 'd': opt.decode = 1; break;
      case 'o': opt.output = optarg; break;
      case OPT_FORCE: opt.force = 1; break;
      case OPT_WHOLE_LINE: opt.whole_line = 1; break;
      default: usage_error ("invalid option");
      }
  if (!opt.vocab && !opt.model)
    usage_error ("no vocabulary given (--model=MODEL or --vocab=FILE)");
  if (opt.vocab && opt.model)
    usage_error ("give only one of --model and --vocab");
  if (opt.whole_line && opt.tsv_in)
    usage_error ("give only one of --fields and --whole-line");
  if (!opt.tsv && !opt.decode)
    cli_refuse_tty (opt.output, opt.force);
  /* The model's settings, unless the command line says otherwise.  */
  pmx_model *model = NULL;
  const pmx_model_config *cfg = NULL;
  if (opt.model)
    {
      if (!(model = pmx_model_open (opt.model)))
        die_lib (NULL);
      cfg = pmx_model_config_of (model);
      if (!opt.cased_set)
        opt.lowercase = cfg->lowercase;
      if (opt.strip_accents < 0)
        opt.strip_accents = cfg->strip_accents;
      if (!opt.max_length_set)
        opt.max_length = pmx_model_token_length (cfg, opt.max_length);
      if (!opt.labels && cfg->num_labels > 0)
        {
          opt.labels = cfg->labels;
          opt.nlabels = cfg->num_labels;
          opt.labels_from_model = 1;
        }
    }
  if (cfg && !opt.decode)
    {
      /* Refuse here what prumux-mux would refuse later: rows longer than
         the model's fixed row length (a multiplexed model, or one that
         attends to padding, pads every row to max_length) or than its
         positions.  */
      int fixed = (cfg->mux_n > 1 || cfg->attend_padding) && cfg->max_length > 0;
      if (fixed && opt.max_length > cfg->max_length)
        die ("--max-length %d: the model %s takes rows of at most %d tokens"
             " (its max_length; it pads every row to it)", opt.max_length,
             opt.model, cfg->max_length);
      if (cfg->max_position > 0 && opt.max_length > cfg->max_position)
        die ("--max-length %d: the model %s has only %d positions",
             opt.max_length, opt.model, cfg->max_position);
    }
  if (opt.label_field && !opt.tsv_in)
    usage_error ("--label-field needs --fields");
  if (opt.group_field && !opt.tsv_in)
    usage_error ("--group-field needs --fields");
  if (opt.labels && !opt.label_field && !opt.labels_from_model)
    usage_error ("--labels needs --label-field");
  if (opt.field_b && opt.max_length < 3)
    usage_error ("--max-length must be at least 3 for pairs");
  if ((long long) opt.batch * opt.max_length > (1LL << 28))
    usage_error ("--batch times --max-length is too large");
  if (!opt.tsv_in)
    opt.field_a = 1;
  if (opt.strip_accents < 0)
    opt.strip_accents = opt.lowercase;

  pmx_vocab *vocab;
  if (model)
    {
      size_t len;
      const char *text = pmx_model_vocab (model, &len);
      if (!text)
        die ("%s: the model has no vocabulary", opt.model);
      vocab = pmx_vocab_load_mem (text, len, opt.model);
    }
  else
    vocab = pmx_vocab_load (opt.vocab);
  if (!vocab)
    die_lib (NULL);
  const char *vocab_name = opt.model ? opt.model : opt.vocab;

  cli_output o;
  out = cli_output_open (&o, opt.output);
  static char outbuf[1 << 16];
  setvbuf (out, outbuf, _IOFBF, sizeof outbuf);

  if (opt.decode)
    {
      if (optind == argc)
        decode_file (vocab, "-");
      for (int i = optind; i < argc; i++)
        decode_file (vocab, argv[i]);
      cli_output_commit (&o);
      pmx_vocab_free (vocab);
      if (model)
        pmx_model_close (model);
      return EXIT_SUCCESS;
    }

  if (pmx_wordpiece_init (&wp, vocab, opt.lowercase, opt.strip_accents) < 0)
    die_lib (vocab_name);
  if (wp.cls < 0 || wp.sep < 0 || wp.pad < 0)
    die ("%s: vocabulary lacks [CLS], [SEP] or [PAD]", vocab_name);

  ids_a = malloc ((size_t) opt.max_length * sizeof *ids_a);
  ids_b = malloc ((size_t) opt.max_length * sizeof *ids_b);
  if (!ids_a || !ids_b)
    die ("memory exhausted");

  if (!opt.tsv)
    {
      /* The tokenizer's identity: a stage that reads tokens for another
         model with the same tokenizer accepts the stream.  */
      char tokenizer[33];
      if (pmx_tokenizer_id (vocab, opt.lowercase, opt.strip_accents,
                            opt.max_length, tokenizer) < 0)
        die_lib (NULL);
      pmx_meta meta;
      pmx_meta_init (&meta);
      if (pmx_meta_setf (&meta, "producer", "%s %s", "prumux-tokenize",
                         PACKAGE_VERSION) < 0
          || pmx_meta_set (&meta, "stage", "tokens") < 0
          || pmx_meta_setf (&meta, "max_length", "%d", opt.max_length) < 0
          || pmx_meta_setf (&meta, "vocab_size", "%d",
                            pmx_vocab_size (vocab)) < 0
          || pmx_meta_setf (&meta, "lowercase", "%d", opt.lowercase) < 0
          || pmx_meta_setf (&meta, "strip_accents", "%d",
                            opt.strip_accents) < 0
          || pmx_meta_set (&meta, "pad", opt.pad_longest ? "longest" : "max")
             < 0
          || pmx_meta_set (&meta, "tokenizer", tokenizer) < 0
          || (cfg && pmx_stage_set_model (&meta, cfg, opt.model) < 0))
        die_lib (NULL);
      if (opt.labels)
        {
          size_t len = 1;
          for (int i = 0; i < opt.nlabels; i++)
            len += strlen (opt.labels[i]) + 1;
          char *list = malloc (len), *p = list;
          if (!list)
            die ("memory exhausted");
          for (int i = 0; i < opt.nlabels; i++)
            p += sprintf (p, "%s%s", i ? "," : "", opt.labels[i]);
          if (pmx_meta_set (&meta, "labels", list) < 0)
            die_lib ("--labels");
          free (list);
        }
      writer = pmx_writer_open (out, opt.output ? opt.output : "-", &meta);
      if (!writer)
        die_lib (NULL);
      if (opt.output)
        pmx_writer_set_flush (writer, 0);
      pmx_meta_free (&meta);
      pmx_record_init (&rec);
    }
  batch_alloc ();

  if (optind == argc)
    tokenize_file ("-");
  for (int i = optind; i < argc; i++)
    tokenize_file (argv[i]);

  if (!opt.tsv)
    {
      batch_flush ();
      if (pmx_writer_finish (writer) < 0)
        die_lib (NULL);
      pmx_writer_close (writer);
      pmx_record_free (&rec);
    }
  cli_check_write (out, "output");
  cli_output_commit (&o);
  pmx_vocab_free (vocab);
  if (model)
    pmx_model_close (model);
  return EXIT_SUCCESS;
}
