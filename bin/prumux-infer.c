/* prumux-infer -- run the BERT encoder layers over a stream of encoder
   inputs (stage embeds) and write the last hidden states (stage hidden).  */

#include <config.h>
#include "cli.h"
#include "encoder.h"
#include "error.h"
#include "model.h"
#include "stream.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

/* The model archive reader (lib/model.c) may be absent from a build of the
   encoder alone; the program then still works with --weights.  */
#pragma weak pmx_model_open
#pragma weak pmx_model_close
#pragma weak pmx_model_config_of
#pragma weak pmx_model_tensor

static void
usage (void)
{
  printf ("Usage: %s -m MODEL [OPTION]... [FILE]\n", program_name);
  printf ("Run the BERT encoder layers of MODEL over a prumux stream of encoder\n"
          "inputs (stage embeds, from prumux-embed or prumux-mux) read from FILE\n"
          "or standard input, and write the last hidden states (stage hidden).\n"
          "\n"
          "  -m, --model=MODEL       the model archive (.pmx)\n"
          "  -w, --weights=FILE      take the encoder weights from a stream instead:\n"
          "                            one record of named tensors, the configuration\n"
          "                            in its META (hidden, layers, head_dim, ln_eps,\n"
          "                            attend_padding, id, pooling, mux_n,\n"
          "                            demux_variant); for tests and benchmarks\n"
          "  -p, --positions=WHICH   the positions to keep per sequence: 'auto' (what\n"
          "                            the model's head reads; the default), 'all',\n"
          "                            or a comma-separated list such as 0,1,2\n"
          "  -t, --threads=N         use N threads (default: all online CPUs)\n"
          "  -o, --output=FILE       write to FILE (atomically) instead of stdout\n"
          "      --help              display this help and exit\n"
          "      --version           output version information and exit\n"
          "\n"
          "'auto' keeps position 0 for an index_pos demultiplexer and for cls or\n"
          "pooler pooling, positions 0..N for an index demultiplexer of width N,\n"
          "and all positions for mean pooling or a token-level head.\n"
          "\n"
          "Input records need 'embeds' (G, T, H) and, unless the model attends to\n"
          "padding, 'lengths' (G); the output holds 'hidden' (G, P, H) and\n"
          "'positions' (P), rows at padded positions being zero.  Other tensors are\n"
          "copied through.  The input's model= must be the model's identity.\n");
  cli_help_tail ();
}

/* The configuration of a --weights stream, from its META.  */
static void
weights_config (const pmx_meta *m, const char *path, pmx_model_config *cfg)
{
  memset (cfg, 0, sizeof *cfg);
  struct { const char *key; int *dst; long long lo, hi, def; } ints[] = {
    { "hidden", &cfg->hidden, 1, 1 << 16, -1 },
    { "layers", &cfg->layers, 0, 1000, -1 },
    { "head_dim", &cfg->head_dim, 1, 4096, 64 },
    { "attend_padding", &cfg->attend_padding, 0, 1, 0 },
    { "mux_n", &cfg->mux_n, 1, 1024, 1 },
  };
  for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
    {
      long long v = ints[i].def;
      int r = pmx_meta_get_int (m, ints[i].key, ints[i].lo, ints[i].hi, &v);
      if (r < 0)
        die_lib (path);
      if (v < 0)
        die ("%s: META has no '%s'", path, ints[i].key);
      *ints[i].dst = (int) v;
    }
  const char *eps = pmx_meta_get (m, "ln_eps");
  cfg->ln_eps = eps ? strtod (eps, NULL) : 1e-12;
  if (!(cfg->ln_eps > 0 && cfg->ln_eps < 1))
    die ("%s: bad ln_eps '%s'", path, eps);
  struct { const char *key; char *dst; size_t size; const char *def; } strs[] = {
    { "id", cfg->id, sizeof cfg->id, "" },
    { "pooling", cfg->pooling, sizeof cfg->pooling, "cls" },
    { "demux_variant", cfg->demux_variant, sizeof cfg->demux_variant, "none" },
    { "arch", cfg->arch, sizeof cfg->arch, "bert" },
  };
  for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
    {
      const char *v = pmx_meta_get (m, strs[i].key);
      v = v ? v : strs[i].def;
      if (strlen (v) >= strs[i].size)
        die ("%s: META '%s' is too long", path, strs[i].key);
      strcpy (strs[i].dst, v);
    }
}

static const pmx_tensor *
record_lookup (const void *ctx, const char *name)
{
  return pmx_record_get (ctx, name);
}

static const pmx_tensor *
model_lookup (const void *ctx, const char *name)
{
  return pmx_model_tensor (ctx, name);
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

/* What the model's head reads (see --help).  */
static void
positions_auto (positions *p, const pmx_model_config *cfg)
{
  if (!strcmp (cfg->demux_variant, "index_pos"))
    positions_add (p, 0);
  else if (!strcmp (cfg->demux_variant, "index"))
    for (int i = 0; i <= cfg->mux_n; i++)
      positions_add (p, i);
  else if (strcmp (cfg->demux_variant, "none") && cfg->demux_variant[0])
    p->all = 1;
  else if (!strcmp (cfg->pooling, "cls") || !strcmp (cfg->pooling, "pooler"))
    positions_add (p, 0);
  else
    p->all = 1;
}

int
main (int argc, char **argv)
{
  enum { OPT_HELP = 256, OPT_VERSION };
  static const struct option longopts[] = {
    { "model", required_argument, NULL, 'm' },
    { "weights", required_argument, NULL, 'w' },
    { "positions", required_argument, NULL, 'p' },
    { "threads", required_argument, NULL, 't' },
    { "output", required_argument, NULL, 'o' },
    { "help", no_argument, NULL, OPT_HELP },
    { "version", no_argument, NULL, OPT_VERSION },
    { NULL, 0, NULL, 0 }
  };
  const char *model_path = NULL, *weights_path = NULL, *output = NULL;
  const char *positions_arg = "auto";
  int threads = 0, c;
  cli_init (argv[0]);
  while ((c = getopt_long (argc, argv, "m:w:p:t:o:", longopts, NULL)) != -1)
    switch (c)
      {
      case 'm': model_path = optarg; break;
      case 'w': weights_path = optarg; break;
      case 'p': positions_arg = optarg; break;
      case 't': threads = (int) cli_parse_int ("--threads", optarg, 1, 256); break;
      case 'o': output = optarg; break;
      case OPT_HELP: usage (); break;
      case OPT_VERSION: cli_version (); break;
      default: usage_error ("invalid option");
      }
  if (!model_path == !weights_path)
    usage_error ("give exactly one of --model and --weights");
  if (argc - optind > 1)
    usage_error ("extra operand '%s'", argv[optind + 1]);
  const char *input = optind < argc ? argv[optind] : "-";

  /* The weights.  */
  pmx_model_config cfg;
  pmx_model *model = NULL;
  pmx_record wrec;
  pmx_record_init (&wrec);
  pmx_encoder *enc;
  if (model_path)
    {
      if (!pmx_model_open)
        die ("%s: this build cannot read model archives; use --weights", model_path);
      if (!(model = pmx_model_open (model_path)))
        die_lib (NULL);
      cfg = *pmx_model_config_of (model);
      enc = pmx_encoder_new (&cfg, model_lookup, model, threads);
      if (!enc)
        die_lib (model_path);
    }
  else
    {
      FILE *wf = cli_open_input (weights_path);
      pmx_reader *wr = pmx_reader_open (wf, weights_path);
      if (!wr)
        die_lib (NULL);
      weights_config (pmx_reader_meta (wr), weights_path, &cfg);
      int r = pmx_reader_read (wr, &wrec);
      if (r < 0)
        die_lib (NULL);
      if (r == 0)
        die ("%s: no record of weights", weights_path);
      pmx_reader_close (wr);
      cli_close_input (wf, weights_path);
      enc = pmx_encoder_new (&cfg, record_lookup, &wrec, threads);
      if (!enc)
        die_lib (weights_path);
    }

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
  pmx_reader *r = pmx_reader_open (in, in_name);
  if (!r)
    die_lib (NULL);
  const pmx_meta *meta = pmx_reader_meta (r);
  const char *stage = pmx_meta_get (meta, "stage");
  if (stage && strcmp (stage, "embeds"))
    die ("%s: stream stage is '%s', expected 'embeds'", in_name, stage);
  const char *id = pmx_meta_get (meta, "model");
  if (!id)
    die ("%s: stream has no model= identity (expected %s)", in_name,
         cfg.id[0] ? cfg.id : "the model's");
  if (strcmp (id, cfg.id))
    die ("%s: stream was made for model %s, not %s", in_name, id, cfg.id);
  pmx_meta om;
  pmx_meta_init (&om);
  if (pmx_meta_copy (&om, meta) < 0
      || pmx_meta_setf (&om, "producer", "prumux-infer %s", PACKAGE_VERSION) < 0
      || pmx_meta_set (&om, "stage", "hidden") < 0)
    die_lib (NULL);
  cli_output o;
  FILE *out = cli_output_open (&o, output);
  pmx_writer *w = pmx_writer_open (out, output ? output : "-", &om);
  if (!w)
    die_lib (NULL);

  pmx_record rec, res;
  pmx_record_init (&rec);
  pmx_record_init (&res);
  int got;
  while ((got = pmx_reader_read (r, &rec)) > 0)
    {
      if (pos.all)
        {
          const pmx_tensor *x = pmx_record_expect (&rec, "embeds", PMX_F32, 3);
          if (!x)
            die ("%s: record %llu: %s", in_name, (unsigned long long) rec.seq,
                 pmx_errmsg ());
          if (x->shape[1] > 65536)
            die ("%s: record %llu: sequence length %lld is too long", in_name,
                 (unsigned long long) rec.seq, (long long) x->shape[1]);
          pos.n = 0;
          for (int64_t t = 0; t < x->shape[1]; t++)
            positions_add (&pos, t);
        }
      if (pmx_encoder_stage (enc, &rec, pos.v, pos.n, &res) < 0)
        die ("%s: record %llu: %s", in_name, (unsigned long long) rec.seq,
             pmx_errmsg ());
      if (pmx_writer_write (w, &res) < 0)
        die_lib (NULL);
    }
  if (got < 0)
    die_lib (NULL);
  if (pmx_writer_finish (w) < 0)
    die_lib (NULL);
  pmx_writer_close (w);
  cli_output_commit (&o);
  pmx_reader_close (r);
  cli_close_input (in, input);

  pmx_record_free (&rec);
  pmx_record_free (&res);
  pmx_meta_free (&om);
  free (pos.v);
  pmx_encoder_free (enc);
  pmx_record_free (&wrec);
  if (model)
    pmx_model_close (model);
  return EXIT_SUCCESS;
}
