/* prumux-infer -- run the BERT encoder layers over a stream of encoder
   inputs (stage embeds) and write the last hidden states (stage hidden).  */

#include <config.h>
#include "cli.h"
#include "encoder.h"
#include "error.h"
#include "model.h"
#include "stream.h"
#include "demux.h"
#include "mux.h"
#include "pipeline.h"
#include "weights.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static void
usage (void)
{
  printf ("Usage: %s -m MODEL [OPTION]... [FILE]\n", program_name);
  printf ("Run the BERT encoder layers of MODEL over a prumux stream of encoder\n"
          "inputs (stage embeds, from prumux-mux) read from FILE\n"
          "or standard input, and write the last hidden states (stage hidden).\n"
          "\n"
          "  -m, --model=MODEL       the model archive (.pmx)\n"
          "  -w, --weights=FILE      take the encoder weights from a stream instead:\n"
          "                            one record of named tensors, the configuration\n"
          "                            in its META (hidden, layers, head_dim, ln_eps,\n"
          "                            attend_padding, id, pooling, mux_n,\n"
          "                            demux_variant); for tests and benchmarks\n"
          "  -i, --from-ids          read a token stream (prumux-tokenize) and run the\n"
          "                            embedding and multiplexing stage in this process,\n"
          "                            as prumux-mux would\n"
          "  -p, --positions=WHICH   the positions to keep per sequence: 'auto' (what\n"
          "                            the model's head reads; the default), 'all',\n"
          "                            or a comma-separated list such as 0,1,2\n"
          "  -j, --threads=N         use N threads (default: all online CPUs)\n"
          "      --device=NAME       run the encoder on NAME: 'cpu' (the default:\n"
          "                            the best kernels of this CPU, 'cpu:avx512'\n"
          "                            or 'cpu:avx2', else 'cpu:blas'), 'cpu:avx512',\n"
          "                            'cpu:avx2' (packed-weight kernels),\n"
          "                            'cpu:blas' (OpenBLAS for the dense layers),\n"
          "                            or, in a build with CUDA, 'cuda:K' (GPU K,\n"
          "                            fp32; 'cuda' is 'cuda:0') or 'cuda:K:tf32'\n"
          "                            (TF32 matrix products: faster, less exact)\n"
          "      --gemm=KERNEL       the older spelling of --device=cpu:KERNEL\n"
          "  -v, --verbose           say on standard error which device and kernels\n"
          "                            run, and on how many threads, and at the end\n"
          "                            the peak resident memory\n"
          "  -o, --output=FILE       write to FILE (atomically) instead of stdout\n"
          "      --force             write the stream even to a terminal\n"
          "      --progress          report progress on standard error: records,\n"
          "                            rows and rows per second, once a second and\n"
          "                            at the end (the default when standard error\n"
          "                            is a terminal)\n"
          "      --no-progress       do not\n"
          CLI_STANDARD_HELP
          "\n"
          "'auto' keeps position 0 for an index_pos demultiplexer and for cls or\n"
          "pooler pooling, positions 0..N for an index demultiplexer of width N,\n"
          "and all positions for mean pooling or a token-level head.\n"
          "\n"
          "The 'cpu:avx512' and 'cpu:avx2' kernels repack the encoder's weights when the\n"
          "model is loaded (as much memory again as the weights) and give the same\n"
          "output, bit for bit, whatever the number of threads.\n"
          "\n"
          "Without --device, the environment variable PRUMUX_DEVICE names the device\n"
          "(default 'cpu').  On a GPU the encoder's weights are copied to the GPU once,\n"
          "and --threads applies only to --from-ids's embedding and multiplexing.\n"
          "\n"
          "Input records need 'embeds' (G, T, H) and, unless the model attends to\n"
          "padding, 'lengths' (G); the output holds 'hidden' (G, P, H) and\n"
          "'positions' (P), rows at padded positions being zero.  Other tensors are\n"
          "copied through.  The input's model= must be the model's identity.\n");
  cli_help_tail ();
}

/* Positions: a fixed list, or -1 for "all" (0..T-1 of each record).  */
typedef struct positions
{
  int all;
  int n;
  int32_t *v;
} positions;

static void
positions_add (positions *p, long long v)
{
  int32_t *q = realloc (p->v, ((size_t) p->n + 1) * sizeof *q);
  if (!q)
    die ("memory exhausted");
  p->v = q;
  p->v[p->n++] = (int32_t) v;
}

static void
positions_parse (positions *p, const char *arg)
{
  const char *s = arg;
  if (!*s)
    usage_error ("empty --positions");
  while (*s)
    {
      char *end;
      long long v = strtoll (s, &end, 10);
      if (end == s || v < 0 || v > 65535 || (*end && *end != ','))
        usage_error ("invalid --positions '%s': expected auto, all, or a list of "
                     "positions such as 0,1,2", arg);
      positions_add (p, v);
      s = *end ? end + 1 : end;
      if (*end && !*s)
        usage_error ("invalid --positions '%s': trailing comma", arg);
    }
}

/* What the model's head reads (see --help): the demultiplexer's own rule.  */
static void
positions_auto (positions *p, const pmx_model_config *cfg)
{
  int32_t v[4096];
  int n = pmx_head_positions (cfg, v, 4096);
  if (n < 0)
    die_lib (NULL);
  if (n == 0 || n > 4096)
    p->all = 1;
  for (int i = 0; i < n && i < 4096; i++)
    positions_add (p, v[i]);
}

/* Progress on standard error (--progress): records and rows done and the
   rate, at most once a second, and a last line at the end.  On a terminal
   the line is rewritten in place.  */
typedef struct progress
{
  int on, tty;
  unsigned long long records, rows;
  double start, last;
} progress;

static double
now_seconds (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (double) ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
progress_report (progress *p, const pmx_record *rec, int final)
{
  if (!p->on)
    return;
  if (rec)
    {
      /* Input rows (fillers included): the row tensor, else the sequences.  */
      const pmx_tensor *row = pmx_record_get (rec, "row");
      const pmx_tensor *x = pmx_record_get (rec, "embeds");
      p->records++;
      p->rows += row && row->rank >= 1 ? (unsigned long long) row->shape[0]
        : x && x->rank >= 1 ? (unsigned long long) x->shape[0] : 0;
    }
  double t = now_seconds ();
  if (!final && t - p->last < 1)
    return;
  p->last = t;
  double rate = t > p->start ? p->rows / (t - p->start) : 0;
  fprintf (stderr, "%s: %llu records, %llu rows, %.1f rows/s%s", program_name,
           p->records, p->rows, rate,
           /* On a terminal, blanks clear what a longer line left.  */
           !p->tty ? "\n" : final ? "   \n" : "   \r");
  fflush (stderr);
}

/* Run the encoder over one embeds record REC and write the result.  */
static void
encode_record (pmx_encoder *enc, const pmx_record *rec, positions *pos,
               pmx_record *res, pmx_writer *w, const char *in_name, uint64_t seq)
{
  if (pos->all)
    {
      const pmx_tensor *x = pmx_record_expect (rec, "embeds", PMX_F32, 3);
      if (!x)
        die ("%s: record %llu: %s", in_name, (unsigned long long) seq, pmx_errmsg ());
      if (x->shape[1] > 65536)
        die ("%s: record %llu: sequence length %lld is too long", in_name,
             (unsigned long long) seq, (long long) x->shape[1]);
      pos->n = 0;
      for (int64_t t = 0; t < x->shape[1]; t++)
        positions_add (pos, t);
    }
  if (pmx_encoder_stage (enc, rec, pos->v, pos->n, res) < 0)
    die ("%s: record %llu: %s", in_name, (unsigned long long) seq, pmx_errmsg ());
  if (pmx_writer_write (w, res) < 0)
    die_lib (NULL);
}

int
main (int argc, char **argv)
{
  enum { OPT_GEMM = 256, OPT_DEVICE, OPT_FORCE, OPT_PROGRESS, OPT_NO_PROGRESS };
  static const struct option longopts[] = {
    { "model", required_argument, NULL, 'm' },
    { "weights", required_argument, NULL, 'w' },
    { "from-ids", no_argument, NULL, 'i' },
    { "positions", required_argument, NULL, 'p' },
    { "threads", required_argument, NULL, 'j' },
    { "device", required_argument, NULL, OPT_DEVICE },
    { "gemm", required_argument, NULL, OPT_GEMM },
    { "verbose", no_argument, NULL, 'v' },
    { "output", required_argument, NULL, 'o' },
    { "force", no_argument, NULL, OPT_FORCE },
    { "progress", no_argument, NULL, OPT_PROGRESS },
    { "no-progress", no_argument, NULL, OPT_NO_PROGRESS },
    CLI_STANDARD_LONGOPTS,
    { NULL, 0, NULL, 0 }
  };
  const char *model_path = NULL, *weights_path = NULL, *output = NULL;
  const char *positions_arg = "auto";
  int threads = 0, from_ids = 0, verbose = 0, force = 0, c;
  progress prog = { .on = -1 };
  /* PRUMUX_DEVICE: the default device, so that a whole test suite or
     pipeline can be run on a GPU without editing its commands.  */
  const char *device = getenv ("PRUMUX_DEVICE");
  char gemm_device[64];
  if (!device || !*device)
    device = "cpu";
  cli_init (argv[0]);
  while ((c = getopt_long (argc, argv, "m:w:ip:j:t:o:v" CLI_STANDARD_SHORTOPTS, longopts,
                           NULL)) != -1)
    switch (cli_standard_option (c, usage))
      {
      case 'm': model_path = optarg; break;
      case 'w': weights_path = optarg; break;
      case 'i': from_ids = 1; break;
      case 'p': positions_arg = optarg; break;
      case 'j':
      case 't':                 /* -t: before 0.1.0 (-j everywhere now) */
        threads = (int) cli_parse_int ("--threads", optarg, 1, 256); break;
      case 'o': output = optarg; break;
      case OPT_FORCE: force = 1; break;
      case OPT_PROGRESS: prog.on = 1; break;
      case OPT_NO_PROGRESS: prog.on = 0; break;
      case 'v': verbose = 1; break;
      case OPT_DEVICE: device = optarg; break;
      case OPT_GEMM:            /* before --device (0.1.0): best, avx512, ... */
        snprintf (gemm_device, sizeof gemm_device, "cpu:%s", optarg);
        device = strcmp (optarg, "best") ? gemm_device : "cpu";
        break;
      default: usage_error ("invalid option");
      }
  if (!model_path == !weights_path)
    usage_error ("give exactly one of --model and --weights");
  if (argc - optind > 1)
    usage_error ("extra operand '%s'", argv[optind + 1]);
  const char *input = optind < argc ? argv[optind] : "-";
  cli_refuse_tty (output, force);
  prog.tty = isatty (STDERR_FILENO);
  if (prog.on < 0)
    prog.on = prog.tty;

  if (pmx_encoder_device_check (device) < 0)
    die ("%s", pmx_errmsg ());

  /* The weights.  */
  weights wt;
  weights_open (&wt, model_path, weights_path);
  pmx_model_config cfg = wt.cfg;
  if (weights_path && cfg.hidden <= 0)
    die ("%s: META has no 'hidden'", weights_path);
  if (weights_path && cfg.layers <= 0)
    die ("%s: META has no 'layers'", weights_path);
  pmx_encoder *enc = pmx_encoder_new (&cfg, wt.get, wt.ctx, device, threads);
  if (!enc)
    die_lib (model_path ? model_path : weights_path);
  if (verbose)
    fprintf (stderr, "%s: %s\n", program_name, pmx_encoder_describe (enc));

  positions pos = { 0, 0, NULL };
  if (!strcmp (positions_arg, "all"))
    pos.all = 1;
  else if (!strcmp (positions_arg, "auto"))
    positions_auto (&pos, &cfg);
  else
    positions_parse (&pos, positions_arg);

  /* The stream.  */
  FILE *in = cli_open_input (input);
  const char *in_name = strcmp (input, "-") ? input : "-";
  /* Token streams made with --vocab carry no model; encoder inputs must.
     Tokens made for another model with the same tokenizer are as good.  */
  pmx_stage_input want = { .program = program_name,
                           .stage = from_ids ? "tokens" : "embeds",
                           .alternative = "or run prumux-infer --from-ids",
                           .option = from_ids ? "--from-ids" : NULL,
                           .cfg = &cfg, .model_file = model_path ? model_path : weights_path,
                           .require_model = !from_ids,
                           .tokenizer_model = from_ids ? wt.model : NULL };
  pmx_reader *r = cli_stage_open (in, in_name, &want);
  const pmx_meta *meta = pmx_reader_meta (r);
  pmx_muxer *mx = NULL;
  if (from_ids && (!(mx = pmx_muxer_new (&cfg, wt.get, wt.ctx))
                   || pmx_muxer_set_threads (mx, threads) < 0))
    die_lib (model_path ? model_path : weights_path);
  pmx_meta om;
  pmx_meta_init (&om);
  if (pmx_meta_copy (&om, meta) < 0
      || pmx_meta_setf (&om, "producer", "prumux-infer %s", PACKAGE_VERSION) < 0
      || pmx_meta_set (&om, "stage", "hidden") < 0
      || (from_ids && (pmx_stage_set_model (&om, &cfg, model_path ? model_path
                                                       : weights_path) < 0
                       || pmx_meta_setf (&om, "mux_n", "%d",
                                         pmx_muxer_instances (mx)) < 0)))
    die_lib (NULL);
  cli_output o;
  FILE *out = cli_output_open (&o, output);
  pmx_writer *w = pmx_writer_open (out, output ? output : "-", &om);
  if (!w)
    die_lib (NULL);

  pmx_record rec, res, emb;
  pmx_record_init (&rec);
  pmx_record_init (&res);
  pmx_record_init (&emb);
  prog.start = prog.last = now_seconds ();
  int got;
  while ((got = pmx_reader_read (r, &rec)) > 0)
    {
      if (!mx)
        {
          encode_record (enc, &rec, &pos, &res, w, in_name, rec.seq);
          progress_report (&prog, &rec, 0);
        }
      else
        {
          int m = pmx_mux_stage (mx, &rec, &emb);
          if (m < 0)
            die ("%s: record %llu: %s", in_name, (unsigned long long) rec.seq,
                 pmx_errmsg ());
          if (m)
            {
              encode_record (enc, &emb, &pos, &res, w, in_name, rec.seq);
              progress_report (&prog, &emb, 0);
            }
        }
    }
  if (got == 0 && mx)
    {
      int m = pmx_mux_flush (mx, &emb);
      if (m < 0)
        die_lib (in_name);
      if (m)
        {
          encode_record (enc, &emb, &pos, &res, w, in_name, pmx_reader_records (r));
          progress_report (&prog, &emb, 0);
        }
    }
  if (got < 0)
    cli_stage_read_failed (r, in);
  if (pmx_writer_finish (w) < 0)
    die_lib (NULL);
  pmx_writer_close (w);
  cli_output_commit (&o);
  progress_report (&prog, NULL, 1);
  pmx_reader_close (r);
  cli_close_input (in, input);

  pmx_record_free (&rec);
  pmx_record_free (&res);
  pmx_record_free (&emb);
  pmx_muxer_free (mx);
  pmx_meta_free (&om);
  free (pos.v);
  pmx_encoder_free (enc);
  weights_close (&wt);
  if (verbose)
    {
      /* What a user sizing a batch job wants: the process's peak.  */
      struct rusage ru;
      if (getrusage (RUSAGE_SELF, &ru) == 0)
        fprintf (stderr, "%s: peak resident memory %.1f MiB\n", program_name,
                 ru.ru_maxrss / 1024.0);
    }
  return EXIT_SUCCESS;
}
