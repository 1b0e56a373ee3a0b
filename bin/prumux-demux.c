/* prumux-demux -- the demultiplexer and heads: encoder output in, one
   result per input row out (text or stream), with optional evaluation.
   The work is in lib/stages/demux.c and lib/metrics.c.  */

#include <config.h>
#include "cli.h"
#include "demux.h"
#include "error.h"
#include "metrics.h"
#include "model.h"
#include "pipeline.h"
#include "weights.h"

#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum what { OUT_LABELS, OUT_PROBS, OUT_LOGITS, OUT_EMBEDDINGS };
enum format { FMT_TSV, FMT_JSON, FMT_STREAM };

static void
usage (void)
{
  printf ("Usage: %s [OPTION]... -m MODEL [FILE]\n", program_name);
  fputs ("\
Demultiplex the encoder output stream (from prumux-infer) of MODEL and apply\n\
its head: one result per input row, in input order; the filler rows of a\n\
short last group are dropped.  With no FILE, or when FILE is -, read\n\
standard input.\n\
\n\
  -m, --model=FILE        the model archive\n\
  -w, --weights=FILE      take the weights from a tensor stream instead: one\n\
                            record of named tensors, the configuration in its\n\
                            META (as prumux-infer --weights); for tests\n\
  -o, --output=FILE       write to FILE (atomically; default: standard\n\
                            output)\n\
      --emit=WHAT         labels (default): the predicted label and its\n\
                            probability; probs: the class probabilities;\n\
                            logits: the raw scores; embeddings: the vector\n\
                            the classifier reads (the only output of a model\n\
                            without a classifier)\n\
  -f, --format=FORMAT     tsv (default): tab-separated, one line per row;\n\
                            json: one JSON object per line; stream: a\n\
                            prumux tensor stream (row, label, logits or\n\
                            embeddings)\n\
  -H, --header            name the class scores: tsv: a first line naming\n\
                            the columns (the class names for probs and\n\
                            logits); json: probs and logits as objects\n\
                            keyed by class name\n\
      --row-numbers       tsv: a first column with the row number (the\n\
                            0-based input line number; json always has it)\n\
      --gold              a last column (json: key) with the gold label the\n\
                            stream carries (prumux-tokenize --label-field)\n\
  -e, --eval[=FILE]       score the predictions against the stream's gold\n\
                            labels: accuracy, F1 (two classes), Matthews\n\
                            correlation and macro F1, then per class\n\
                            precision, recall, F1 and support, and the\n\
                            confusion matrix; Pearson and Spearman\n\
                            correlation for a regression head; to FILE or\n\
                            standard error\n\
      --force             -f stream: write the stream even to a terminal\n\
      --pool=POOL         models without multiplexing: cls, mean or pooler\n\
                            (default: the model's)\n\
      --normalize         L2-normalise pooled embeddings\n\
      --no-normalize      do not (default: the model's)\n", stdout);
  fputs (CLI_STANDARD_HELP, stdout);
  fputs ("\
\n\
Demultiplexers: index_pos (RSA-demux, as PruMUX and MUX-BERT), index and\n\
mlp; models without multiplexing: BERT pooler, CLS or mean pooling.\n", stdout);
  cli_help_tail ();
}

/* Write S as a JSON string.  */
static void
json_string (FILE *f, const char *s)
{
  putc ('"', f);
  for (const unsigned char *p = (const unsigned char *) s; *p; p++)
    if (*p == '"' || *p == '\\')
      fprintf (f, "\\%c", *p);
    else if (*p < 0x20)
      fprintf (f, "\\u%04x", *p);
    else
      putc (*p, f);
  putc ('"', f);
}

static void
softmax (const float *x, int C, double *p)
{
  double mx = x[0], s = 0;
  for (int c = 1; c < C; c++)
    if (x[c] > mx)
      mx = x[c];
  for (int c = 0; c < C; c++)
    s += p[c] = exp (x[c] - mx);
  for (int c = 0; c < C; c++)
    p[c] /= s;
}

/* The name of class K: the model's label name, else the number (in BUF).  */
static const char *
class_name (const pmx_model_config *cfg, int k, char *buf, size_t size)
{
  if (cfg->labels && k >= 0 && k < cfg->num_labels)
    return cfg->labels[k];
  snprintf (buf, size, "%d", k);
  return buf;
}

/* What each output line holds besides its payload (--row-numbers, --gold).  */
typedef struct row_extras
{
  int row_numbers;
  const pmx_tensor *gold;       /* the record's 'label', or NULL */
} row_extras;

/* Start the line of ROW: JSON's opening with the row number, or the TSV
   row-number column.  */
static void
row_begin (FILE *f, enum format fmt, const row_extras *x, int64_t row)
{
  if (fmt == FMT_JSON)
    fprintf (f, "{\"row\":%lld,", (long long) row);
  else if (x->row_numbers)
    fprintf (f, "%lld\t", (long long) row);
}

/* End the line of row B of the record: the gold label, if asked (its name
   for a classifier, the value for a regression; empty, or JSON null, when
   the row has none), and the newline.  */
static void
row_end (FILE *f, enum format fmt, const row_extras *x, int64_t b,
         const pmx_model_config *cfg, int classes)
{
  if (x->gold)
    {
      const pmx_tensor *t = x->gold;
      double g = t->dtype == PMX_F32 ? ((const float *) t->data)[b]
        : t->dtype == PMX_I32 ? ((const int32_t *) t->data)[b]
        : t->dtype == PMX_I64 ? (double) ((const int64_t *) t->data)[b] : NAN;
      char buf[32];
      const char *name = NULL;
      if (classes == 1 && !isnan (g))
        {
          snprintf (buf, sizeof buf, "%.7g", g);
          name = buf;
        }
      else if (classes > 1 && g >= 0 && g == floor (g) && g < 1e9)
        name = class_name (cfg, (int) g, buf, sizeof buf);
      if (fmt == FMT_JSON)
        {
          fputs (",\"gold\":", f);
          if (!name)
            fputs ("null", f);
          else if (classes == 1)
            fputs (name, f);
          else
            json_string (f, name);
        }
      else
        fprintf (f, "\t%s", name ? name : "");
    }
  fputs (fmt == FMT_JSON ? "}\n" : "\n", f);
}

/* N values under KEY: a JSON array, or with CFG (json --header, per-class
   scores) an object keyed by the class names; TSV columns otherwise.  */
static void
print_vector (FILE *f, enum format fmt, const char *key, const float *v,
              const double *dv, int n, const pmx_model_config *cfg)
{
  int named = fmt == FMT_JSON && cfg;
  char buf[32];
  if (fmt == FMT_JSON)
    fprintf (f, "\"%s\":%c", key, named ? '{' : '[');
  for (int j = 0; j < n; j++)
    {
      if (j)
        putc (fmt == FMT_JSON ? ',' : '\t', f);
      if (named)
        {
          json_string (f, class_name (cfg, j, buf, sizeof buf));
          putc (':', f);
        }
      fprintf (f, "%.7g", dv ? dv[j] : (double) v[j]);
    }
  if (fmt == FMT_JSON)
    putc (named ? '}' : ']', f);
}

/* --header: the names of the TSV columns, for D values of WHAT.  */
static void
print_header (FILE *f, enum what what, const row_extras *x, int gold,
              const pmx_model_config *cfg, int classes, int D)
{
  char buf[32];
  if (x->row_numbers)
    fputs ("row\t", f);
  if (what == OUT_EMBEDDINGS)
    for (int j = 0; j < D; j++)
      fprintf (f, "%semb_%d", j ? "\t" : "", j);
  else if (what == OUT_LABELS)
    fputs (classes == 1 ? "score" : "label\tprobability", f);
  else if (classes == 1)
    fputs ("score", f);
  else
    for (int k = 0; k < classes; k++)
      fprintf (f, "%s%s", k ? "\t" : "", class_name (cfg, k, buf, sizeof buf));
  fputs (gold ? "\tgold\n" : "\n", f);
}

/* --eval's report: NAME<TAB>VALUE lines, then, for a classifier, the
   per-class table and the confusion matrix (gold rows, predicted
   columns), each after a blank line.  */
static void
print_eval (FILE *ef, const pmx_metrics *metrics, const pmx_model_config *cfg, int C)
{
  pmx_metric_values v;
  pmx_metrics_get (metrics, &v);
  fprintf (ef, "rows\t%lld\n", (long long) v.count);
  if (v.skipped)
    fprintf (ef, "unlabelled\t%lld\n", (long long) v.skipped);
  if (v.regression)
    {
      fprintf (ef, "pearson\t%.6f\nspearman\t%.6f\n", v.pearson, v.spearman);
      return;
    }
  fprintf (ef, "accuracy\t%.6f\n", v.accuracy);
  if (C == 2)
    fprintf (ef, "f1\t%.6f\n", v.f1);
  fprintf (ef, "matthews\t%.6f\nmacro_f1\t%.6f\n", v.matthews, v.macro_f1);
  char buf[32];
  fputs ("\nclass\tprecision\trecall\tf1\tsupport\n", ef);
  for (int k = 0; k < C; k++)
    {
      pmx_class_values cv;
      pmx_metrics_class (metrics, k, &cv);
      fprintf (ef, "%s\t%.6f\t%.6f\t%.6f\t%lld\n", class_name (cfg, k, buf, sizeof buf),
               cv.precision, cv.recall, cv.f1, (long long) cv.support);
    }
  const int64_t *cm = pmx_metrics_confusion (metrics);
  fputs ("\ngold\\predicted", ef);
  for (int k = 0; k < C; k++)
    fprintf (ef, "\t%s", class_name (cfg, k, buf, sizeof buf));
  putc ('\n', ef);
  for (int g = 0; g < C; g++)
    {
      fputs (class_name (cfg, g, buf, sizeof buf), ef);
      for (int k = 0; k < C; k++)
        fprintf (ef, "\t%lld", (long long) cm[(size_t) g * C + k]);
      putc ('\n', ef);
    }
}

/* WHAT of --emit=NAME: 0, or -1 for an unknown NAME.  */
static int
emit_parse (const char *name, int *what)
{
  static const char *const names[] = { "labels", "probs", "logits", "embeddings" };
  static const int values[] = { OUT_LABELS, OUT_PROBS, OUT_LOGITS, OUT_EMBEDDINGS };
  for (int i = 0; i < 4; i++)
    if (!strcmp (name, names[i]))
      {
        *what = values[i];
        return 0;
      }
  return -1;
}

int
main (int argc, char **argv)
{
  enum { OPT_EMIT = 256, OPT_OUTPUT, OPT_POOL, OPT_NORMALIZE, OPT_NO_NORMALIZE,
    OPT_ROW_NUMBERS, OPT_GOLD, OPT_FORCE };
  static const struct option longopts[] = {
    { "model", required_argument, NULL, 'm' },
    { "weights", required_argument, NULL, 'w' },
    { "output", required_argument, NULL, OPT_OUTPUT },
    { "output-file", required_argument, NULL, 'o' },    /* before 0.1.0 */
    { "emit", required_argument, NULL, OPT_EMIT },
    { "format", required_argument, NULL, 'f' },
    { "eval", optional_argument, NULL, 'e' },
    { "header", no_argument, NULL, 'H' },
    { "row-numbers", no_argument, NULL, OPT_ROW_NUMBERS },
    { "gold", no_argument, NULL, OPT_GOLD },
    { "force", no_argument, NULL, OPT_FORCE },
    { "pool", required_argument, NULL, OPT_POOL },
    { "normalize", no_argument, NULL, OPT_NORMALIZE },
    { "no-normalize", no_argument, NULL, OPT_NO_NORMALIZE },
    CLI_STANDARD_LONGOPTS,
    { NULL, 0, NULL, 0 }
  };
  const char *model_path = NULL, *weights_path = NULL, *out_path = "-";
  const char *eval_path = NULL, *pool = NULL;
  int what = -1, eval = 0, normalize = -1, header = 0, want_gold = 0, force = 0, c;
  row_extras extras = { 0, NULL };
  enum format fmt = FMT_TSV;

  cli_init (argv[0]);
  while ((c = getopt_long (argc, argv, "m:w:o:f:e::H" CLI_STANDARD_SHORTOPTS, longopts,
                           NULL)) != -1)
    switch (cli_standard_option (c, usage))
      {
      case 'm': model_path = optarg; break;
      case 'w': weights_path = optarg; break;
      case 'o': out_path = optarg; break;
      case OPT_OUTPUT:
        /* Before 0.1.0, --output said what to write (now --emit): a
           script's --output=embeddings still means that; -o labels or
           --output=./labels write to a file of that name.  */
        if (emit_parse (optarg, &what) < 0)
          out_path = optarg;
        break;
      case OPT_EMIT:
        if (emit_parse (optarg, &what) < 0)
          usage_error ("invalid --emit '%s' (labels, probs, logits, embeddings)", optarg);
        break;
      case 'f':
        if (!strcmp (optarg, "tsv")) fmt = FMT_TSV;
        else if (!strcmp (optarg, "json")) fmt = FMT_JSON;
        else if (!strcmp (optarg, "stream")) fmt = FMT_STREAM;
        else usage_error ("invalid --format '%s' (tsv, json, stream)", optarg);
        break;
      case 'e': eval = 1; eval_path = optarg; break;
      case 'H': header = 1; break;
      case OPT_ROW_NUMBERS: extras.row_numbers = 1; break;
      case OPT_GOLD: want_gold = 1; break;
      case OPT_FORCE: force = 1; break;
      case OPT_POOL: pool = optarg; break;
      case OPT_NORMALIZE: normalize = 1; break;
      case OPT_NO_NORMALIZE: normalize = 0; break;
      default: usage_error ("invalid usage");
      }
  if (!model_path == !weights_path)
    usage_error ("give exactly one of --model and --weights");
  if (argc - optind > 1)
    usage_error ("extra operand '%s'", argv[optind + 1]);
  const char *in_path = optind < argc ? argv[optind] : "-";
  if (fmt == FMT_STREAM)
    cli_refuse_tty (out_path, force);

  weights mw;
  weights_open (&mw, model_path, weights_path);
  const pmx_model_config *cfg = &mw.cfg;
  if (!model_path)
    model_path = weights_path;
  pmx_demuxer *dx = pmx_demuxer_new (cfg, mw.get, mw.ctx);
  if (!dx)
    die_lib (model_path);
  if ((pool || normalize >= 0) && pmx_demuxer_set_pool (dx, pool, normalize) < 0)
    die_lib (model_path);
  int C = pmx_demuxer_classes (dx);
  if (what < 0)
    what = C > 0 ? OUT_LABELS : OUT_EMBEDDINGS;
  if (what != OUT_EMBEDDINGS && C == 0)
    die ("%s: the model has no classifier; use --emit=embeddings", model_path);
  if (eval && C == 0)
    die ("%s: the model has no classifier to evaluate", model_path);
  int flags = (what == OUT_EMBEDDINGS ? PMX_DEMUX_EMBEDDINGS : PMX_DEMUX_LOGITS)
    | (eval ? PMX_DEMUX_LOGITS : 0);
  if (pmx_demuxer_set_outputs (dx, flags) < 0)
    die_lib (model_path);

  FILE *in = cli_open_input (in_path);
  const char *in_name = in_path;
  pmx_stage_input want = { .program = program_name, .stage = "hidden", .cfg = cfg,
                           .model_file = model_path };
  pmx_reader *r = cli_stage_open (in, in_name, &want);
  const pmx_meta *im = pmx_reader_meta (r);

  pmx_metrics *metrics = NULL;
  if (eval && !(metrics = pmx_metrics_new (C)))
    die_lib (NULL);

  cli_output out;
  FILE *f = cli_output_open (&out, out_path);
  pmx_writer *w = NULL;
  pmx_meta meta;
  pmx_meta_init (&meta);
  if (fmt == FMT_STREAM)
    {
      if (pmx_meta_copy (&meta, im) < 0
          || pmx_meta_setf (&meta, "producer", "%s %s", program_name, PACKAGE_VERSION) < 0
          || pmx_meta_set (&meta, "stage", "logits") < 0
          || pmx_stage_set_model (&meta, cfg, model_path) < 0
          || !(w = pmx_writer_open (f, out_path, &meta)))
        die_lib (NULL);
      if (strcmp (out_path, "-") != 0)
        pmx_writer_set_flush (w, 0);
    }

  pmx_record rec, res;
  pmx_record_init (&rec);
  pmx_record_init (&res);
  double *probs = malloc ((size_t) (C > 0 ? C : 1) * sizeof *probs);
  if (!probs)
    die ("memory exhausted");
  int rc, saw_label = 0;
  while ((rc = pmx_reader_read (r, &rec)) == 1)
    {
      if (pmx_demux_stage (dx, &rec, &res) < 0)
        {
          pmx_error_prefix ("%s: record %llu", in_name,
                            (unsigned long long) (pmx_reader_records (r) - 1));
          die_lib (NULL);
        }
      const pmx_tensor *rows = pmx_record_get (&res, "row");
      const pmx_tensor *logits = pmx_record_get (&res, "logits");
      const pmx_tensor *emb = pmx_record_get (&res, "embeddings");
      const pmx_tensor *label = pmx_record_get (&res, "label");
      int64_t R = rows->shape[0];
      if (want_gold && !(extras.gold = label))
        die ("%s: --gold: the stream has no gold labels ('label')", in_name);
      /* json --header: per-class scores keyed by class name.  */
      const pmx_model_config *names = header && fmt == FMT_JSON && C > 1 ? cfg : NULL;
      if (header && fmt == FMT_TSV)
        {
          print_header (f, what, &extras, want_gold, cfg, C, emb ? (int) emb->shape[1] : 0);
          header = 0;
        }
      if (metrics)
        {
          if (!label)
            die ("%s: --eval: the stream has no gold labels ('label')", in_name);
          saw_label = 1;
          for (int64_t b = 0; b < R; b++)
            {
              double gold = label->dtype == PMX_F32 ? ((const float *) label->data)[b]
                : label->dtype == PMX_I32 ? ((const int32_t *) label->data)[b]
                : label->dtype == PMX_I64 ? (double) ((const int64_t *) label->data)[b]
                : NAN;
              if (pmx_metrics_add (metrics, gold, (const float *) logits->data + b * C) < 0)
                die_lib (in_name);
            }
        }
      if (w)
        {
          if (what == OUT_EMBEDDINGS && logits)
            pmx_record_remove (&res, "logits");
          if (pmx_writer_write (w, &res) < 0)
            die_lib (NULL);
          continue;
        }
      for (int64_t b = 0; b < R; b++)
        {
          int64_t row = ((const int64_t *) rows->data)[b];
          const float *lg = logits ? (const float *) logits->data + b * C : NULL;
          row_begin (f, fmt, &extras, row);
          switch (what)
            {
            case OUT_EMBEDDINGS:
              {
                int D = (int) emb->shape[1];
                print_vector (f, fmt, "embedding", (const float *) emb->data + b * D,
                              NULL, D, NULL);
                break;
              }
            case OUT_LOGITS:
              print_vector (f, fmt, "logits", lg, NULL, C, names);
              break;
            case OUT_PROBS:
              if (C == 1)
                print_vector (f, fmt, "probs", lg, NULL, C, names);
              else
                {
                  softmax (lg, C, probs);
                  print_vector (f, fmt, "probs", NULL, probs, C, names);
                }
              break;
            case OUT_LABELS:
              if (C == 1)
                {
                  /* A regression head: the value is the prediction.  */
                  fprintf (f, fmt == FMT_JSON ? "\"score\":%.7g" : "%.7g", lg[0]);
                  break;
                }
              softmax (lg, C, probs);
              int best = 0;
              for (int k = 1; k < C; k++)
                if (lg[k] > lg[best])
                  best = k;
              char num[32];
              const char *name = class_name (cfg, best, num, sizeof num);
              if (fmt == FMT_JSON)
                {
                  fputs ("\"label\":", f);
                  json_string (f, name);
                  fprintf (f, ",\"score\":%.6f", probs[best]);
                }
              else
                fprintf (f, "%s\t%.6f", name, probs[best]);
              break;
            }
          row_end (f, fmt, &extras, b, cfg, C);
        }
      cli_check_write (f, out_path);
    }
  if (rc < 0)
    cli_stage_read_failed (r, in);
  if (w)
    {
      if (pmx_writer_finish (w) < 0)
        die_lib (NULL);
      pmx_writer_close (w);
    }
  cli_output_commit (&out);

  if (metrics)
    {
      if (!saw_label)
        die ("%s: --eval: the stream has no gold labels ('label')", in_name);
      cli_output eo;
      FILE *ef = eval_path ? cli_output_open (&eo, eval_path) : stderr;
      print_eval (ef, metrics, cfg, C);
      if (eval_path)
        cli_output_commit (&eo);
      pmx_metrics_free (metrics);
    }
  pmx_reader_close (r);
  cli_close_input (in, in_path);
  free (probs);
  pmx_record_free (&rec);
  pmx_record_free (&res);
  pmx_meta_free (&meta);
  pmx_demuxer_free (dx);
  weights_close (&mw);
  return EXIT_SUCCESS;
}
