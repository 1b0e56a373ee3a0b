/* test-mux.c -- run the mux or demux stage of libprumux on a stream, with
   the weights taken from a tensor stream instead of a model archive, so the
   stages can be checked against the PyTorch reference (tests/ref-mux.py)
   on their own.

   usage: test-mux mux|demux WEIGHTS IN OUT [OUTPUTS]
          test-mux metrics CLASSES < "GOLD SCORE..." lines
   WEIGHTS: a stream whose first record holds the named weights and whose
   META gives the configuration (mux_n, mux_variant, demux_variant,
   demux_layers, num_labels, max_length, attend_padding, ln_eps, pooling,
   normalize).  OUTPUTS for demux: logits, embeddings or both.  */

#include <config.h>
#include "mux.h"
#include "demux.h"
#include "error.h"
#include "metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"


static long long
meta_int (const pmx_meta *m, const char *key, long long dflt)
{
  long long v = dflt;
  if (pmx_meta_get_int (m, key, -1000000, 1000000, &v) < 0)
    check_fatal (key);
  return v;
}

static void
meta_str (const pmx_meta *m, const char *key, char *dst, size_t size, const char *dflt)
{
  const char *v = pmx_meta_get (m, key);
  snprintf (dst, size, "%s", v ? v : dflt);
}

/* Score "GOLD SCORE_1 .. SCORE_C" lines from standard input with
   lib/stages/metrics.c and print NAME<TAB>VALUE lines.  */
static int
metrics_main (int classes)
{
  pmx_metrics *m = pmx_metrics_new (classes);
  if (!m)
    check_fatal ("metrics");
  float scores[64];
  double gold;
  while (scanf ("%lf", &gold) == 1)
    {
      for (int c = 0; c < classes && c < 64; c++)
        if (scanf ("%f", &scores[c]) != 1)
          check_fatal ("short line");
      if (pmx_metrics_add (m, gold, scores) < 0)
        check_fatal ("add");
    }
  pmx_metric_values v;
  pmx_metrics_get (m, &v);
  printf ("count\t%lld\nskipped\t%lld\naccuracy\t%.9g\nf1\t%.9g\nmatthews\t%.9g\n"
          "pearson\t%.9g\nspearman\t%.9g\n", (long long) v.count, (long long) v.skipped,
          v.accuracy, v.f1, v.matthews, v.pearson, v.spearman);
  if (classes > 1)
    {
      printf ("macro_f1\t%.9g\n", v.macro_f1);
      const int64_t *cm = pmx_metrics_confusion (m);
      for (int k = 0; k < classes; k++)
        {
          pmx_class_values cv;
          pmx_metrics_class (m, k, &cv);
          printf ("precision_%d\t%.9g\nrecall_%d\t%.9g\nf1_%d\t%.9g\nsupport_%d\t%lld\n",
                  k, cv.precision, k, cv.recall, k, cv.f1, k, (long long) cv.support);
          for (int j = 0; j < classes; j++)
            printf ("confusion_%d_%d\t%lld\n", k, j, (long long) cm[k * classes + j]);
        }
    }
  pmx_metrics_free (m);
  return 0;
}

int
main (int argc, char **argv)
{
  check_program = "test-mux";
  if (argc == 3 && !strcmp (argv[1], "metrics"))
    return metrics_main (atoi (argv[2]));
  if (argc < 5 || (strcmp (argv[1], "mux") && strcmp (argv[1], "demux")))
    {
      fprintf (stderr, "usage: test-mux mux|demux WEIGHTS IN OUT [OUTPUTS]\n");
      return 2;
    }
  int mux = !strcmp (argv[1], "mux");
  FILE *wf = fopen (argv[2], "rb");
  if (!wf)
    {
      perror (argv[2]);
      return 1;
    }
  pmx_reader *wr = pmx_reader_open (wf, argv[2]);
  if (!wr)
    check_fatal (argv[2]);
  pmx_record weights;
  pmx_record_init (&weights);
  if (pmx_reader_read (wr, &weights) != 1)
    check_fatal (argv[2]);
  const pmx_meta *wm = pmx_reader_meta (wr);

  pmx_model_config cfg;
  memset (&cfg, 0, sizeof cfg);
  cfg.mux_n = (int) meta_int (wm, "mux_n", 1);
  cfg.demux_layers = (int) meta_int (wm, "demux_layers", 3);
  cfg.num_labels = (int) meta_int (wm, "num_labels", 0);
  cfg.max_length = (int) meta_int (wm, "max_length", 0);
  cfg.attend_padding = (int) meta_int (wm, "attend_padding", 0);
  cfg.normalize = (int) meta_int (wm, "normalize", 0);
  cfg.hidden = (int) meta_int (wm, "hidden", 0);
  const char *eps = pmx_meta_get (wm, "ln_eps");
  cfg.ln_eps = eps ? strtod (eps, NULL) : 1e-12;
  meta_str (wm, "mux_variant", cfg.mux_variant, sizeof cfg.mux_variant, "none");
  meta_str (wm, "demux_variant", cfg.demux_variant, sizeof cfg.demux_variant, "none");
  meta_str (wm, "pooling", cfg.pooling, sizeof cfg.pooling, "");

  FILE *in = fopen (argv[3], "rb"), *out = fopen (argv[4], "wb");
  if (!in || !out)
    {
      perror ("open");
      return 1;
    }
  pmx_reader *r = pmx_reader_open (in, argv[3]);
  if (!r)
    check_fatal (argv[3]);
  pmx_writer *w = pmx_writer_open (out, argv[4], pmx_reader_meta (r));
  if (!w)
    check_fatal (argv[4]);
  pmx_record rec, res;
  pmx_record_init (&rec);
  pmx_record_init (&res);
  int rc;
  if (mux)
    {
      pmx_muxer *mx = pmx_muxer_new (&cfg, pmx_record_lookup, &weights);
      if (!mx)
        check_fatal ("muxer");
      while ((rc = pmx_reader_read (r, &rec)) == 1)
        {
          int got = pmx_mux_stage (mx, &rec, &res);
          if (got < 0)
            check_fatal ("mux");
          if (got && pmx_writer_write (w, &res) < 0)
            check_fatal ("write");
        }
      if (rc < 0)
        check_fatal ("read");
      rc = pmx_mux_flush (mx, &res);
      if (rc < 0)
        check_fatal ("flush");
      if (rc && pmx_writer_write (w, &res) < 0)
        check_fatal ("write");
      pmx_muxer_free (mx);
    }
  else
    {
      pmx_demuxer *dx = pmx_demuxer_new (&cfg, pmx_record_lookup, &weights);
      if (!dx)
        check_fatal ("demuxer");
      if (argc > 5)
        {
          int what = !strcmp (argv[5], "logits") ? PMX_DEMUX_LOGITS
            : !strcmp (argv[5], "embeddings") ? PMX_DEMUX_EMBEDDINGS
            : PMX_DEMUX_LOGITS | PMX_DEMUX_EMBEDDINGS;
          if (pmx_demuxer_set_outputs (dx, what) < 0)
            check_fatal ("outputs");
        }
      while ((rc = pmx_reader_read (r, &rec)) == 1)
        {
          if (pmx_demux_stage (dx, &rec, &res) < 0)
            check_fatal ("demux");
          if (pmx_writer_write (w, &res) < 0)
            check_fatal ("write");
        }
      if (rc < 0)
        check_fatal ("read");
      pmx_demuxer_free (dx);
    }
  if (pmx_writer_finish (w) < 0)
    check_fatal ("finish");
  pmx_writer_close (w);
  pmx_reader_close (r);
  pmx_reader_close (wr);
  pmx_record_free (&rec);
  pmx_record_free (&res);
  pmx_record_free (&weights);
  fclose (in);
  fclose (wf);
  return fclose (out) == 0 ? 0 : 1;
}
