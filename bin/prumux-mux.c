/* prumux-mux -- the embedding stage and multiplexer: tokens in, encoder
   input out.  The work is in lib/stages/mux.c; this is options and the loop.  */

#include <config.h>
#include "cli.h"
#include "error.h"
#include "model.h"
#include "weights.h"
#include "mux.h"
#include "pipeline.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

static void
usage (void)
{
  printf ("Usage: %s [OPTION]... -m MODEL [FILE]\n", program_name);
  fputs ("\
Embed and multiplex a token stream (from prumux-tokenize) for MODEL, giving\n\
the encoder input stream that prumux-infer reads.  With no FILE, or when\n\
FILE is -, read standard input.\n\
\n\
For a multiplexed model (N > 1 instances), N consecutive rows form one\n\
group, across record boundaries: each row is embedded, multiplied by its\n\
instance key and the N are averaged (gaussian-Hadamard multiplexing, as the\n\
published MUX-PLM code), then embedded again.  Rows are padded to the\n\
model's max_length and type ids are ignored, as the published models were\n\
trained.  A short last group is filled with copies of its first row,\n\
marked row -1, which prumux-demux drops.  For an ordinary model (N = 1)\n\
this is the BERT embedding stage alone.\n\
\n\
Rows of different grouping keys (the 'group' tensor, from prumux-tokenize\n\
--group-field) never share a group: a key change closes the open group,\n\
filled as a last group is.  Each run of k rows of one key takes ceil(k/N)\n\
groups, so keep rows of one key together for speed.\n\
\n\
  -m, --model=FILE        the model archive\n\
  -w, --weights=FILE      take the weights from a tensor stream instead: one\n\
                            record of named tensors, the configuration in its\n\
                            META (as prumux-infer --weights); for tests\n\
  -N, --instances=N       check that MODEL multiplexes N instances\n\
  -j, --threads=N         embed and multiplex on N threads (default: all\n\
                            online CPUs); the output is the same, bit for\n\
                            bit, on any number\n\
  -o, --output=FILE       write the stream to FILE (default: standard output)\n\
      --force             write the stream even to a terminal\n", stdout);
  fputs (CLI_STANDARD_HELP, stdout);
  fputs ("\
\n\
Supported: muxing gaussian_hadamard (with the index_pos, index and mlp\n\
demultiplexers) and none (N = 1).  Not supported: gaussian_attention_v2\n\
and the other variants of the research code.\n", stdout);
  cli_help_tail ();
}

int
main (int argc, char **argv)
{
  enum { OPT_FORCE = 256 };
  static const struct option longopts[] = {
    { "model", required_argument, NULL, 'm' },
    { "weights", required_argument, NULL, 'w' },
    { "instances", required_argument, NULL, 'N' },
    { "threads", required_argument, NULL, 'j' },
    { "output", required_argument, NULL, 'o' },
    { "force", no_argument, NULL, OPT_FORCE },
    CLI_STANDARD_LONGOPTS,
    { NULL, 0, NULL, 0 }
  };
  const char *model_path = NULL, *weights_path = NULL, *out_path = "-";
  long long want_n = 0;
  int force = 0, threads = 0, c;

  cli_init (argv[0]);
  while ((c = getopt_long (argc, argv, "m:w:N:j:o:" CLI_STANDARD_SHORTOPTS, longopts, NULL))
         != -1)
    switch (cli_standard_option (c, usage))
      {
      case 'm': model_path = optarg; break;
      case 'w': weights_path = optarg; break;
      case 'N': want_n = cli_parse_int ("--instances", optarg, 1, 1000); break;
      case 'j': threads = (int) cli_parse_int ("--threads", optarg, 1, 256); break;
      case 'o': out_path = optarg; break;
      case OPT_FORCE: force = 1; break;
      default: usage_error ("invalid usage");
      }
  if (!model_path == !weights_path)
    usage_error ("give exactly one of --model and --weights");
  if (argc - optind > 1)
    usage_error ("extra operand '%s'", argv[optind + 1]);
  const char *in_path = optind < argc ? argv[optind] : "-";
  cli_refuse_tty (out_path, force);

  weights mw;
  weights_open (&mw, model_path, weights_path);
  const pmx_model_config *cfg = &mw.cfg;
  if (!model_path)
    model_path = weights_path;
  int n = cfg->mux_n > 1 ? cfg->mux_n : 1;
  if (want_n && want_n != n)
    die ("%s: the model multiplexes N = %d instances, not %lld", model_path, n, want_n);
  pmx_muxer *mx = pmx_muxer_new (cfg, mw.get, mw.ctx);
  if (!mx || pmx_muxer_set_threads (mx, threads) < 0)
    die_lib (model_path);

  FILE *in = cli_open_input (in_path);
  const char *in_name = strcmp (in_path, "-") ? in_path : "-";
  /* Tokens made for another model with the same tokenizer are as good.  */
  pmx_stage_input want = { .program = program_name, .stage = "tokens", .cfg = cfg,
                           .model_file = model_path, .tokenizer_model = mw.model };
  pmx_reader *r = cli_stage_open (in, in_name, &want);
  const pmx_meta *im = pmx_reader_meta (r);

  pmx_meta meta;
  pmx_meta_init (&meta);
  if (pmx_meta_copy (&meta, im) < 0
      || pmx_meta_setf (&meta, "producer", "%s %s", program_name, PACKAGE_VERSION) < 0
      || pmx_meta_set (&meta, "stage", "embeds") < 0
      || pmx_stage_set_model (&meta, cfg, model_path) < 0
      || pmx_meta_setf (&meta, "mux_n", "%d", n) < 0)
    die_lib (NULL);
  cli_output out;
  FILE *f = cli_output_open (&out, out_path);
  pmx_writer *w = pmx_writer_open (f, out_path, &meta);
  if (!w)
    die_lib (NULL);
  if (strcmp (out_path, "-") != 0)
    pmx_writer_set_flush (w, 0);

  pmx_record rec, res;
  pmx_record_init (&rec);
  pmx_record_init (&res);
  int rc;
  while ((rc = pmx_reader_read (r, &rec)) == 1)
    {
      int got = pmx_mux_stage (mx, &rec, &res);
      if (got < 0)
        {
          pmx_error_prefix ("%s: record %llu", in_name,
                            (unsigned long long) (pmx_reader_records (r) - 1));
          die_lib (NULL);
        }
      if (got && pmx_writer_write (w, &res) < 0)
        die_lib (NULL);
    }
  if (rc < 0)
    cli_stage_read_failed (r, in);
  rc = pmx_mux_flush (mx, &res);
  if (rc < 0)
    die_lib (in_name);
  if (rc && pmx_writer_write (w, &res) < 0)
    die_lib (NULL);
  if (pmx_writer_finish (w) < 0)
    die_lib (NULL);
  pmx_writer_close (w);
  cli_output_commit (&out);
  pmx_reader_close (r);
  cli_close_input (in, in_path);
  pmx_record_free (&rec);
  pmx_record_free (&res);
  pmx_meta_free (&meta);
  pmx_muxer_free (mx);
  weights_close (&mw);
  return EXIT_SUCCESS;
}
