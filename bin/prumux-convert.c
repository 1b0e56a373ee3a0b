/* prumux-convert -- import a Hugging Face model directory as a model
   archive (.pmx).  */

#include <config.h>
#include "cli.h"
#include "error.h"
#include "hfimport.h"
#include "model.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

static void
usage (void)
{
  printf ("Usage: %s [OPTION]... DIR -o FILE\n", program_name);
  printf ("Convert the Hugging Face model directory DIR (config.json,\n"
          "model.safetensors, vocab.txt, tokenizer and sentence-transformers\n"
          "files) into the model archive FILE.\n"
          "\n"
          "Reads BERT encoders and classifiers, sentence-transformers BERT models,\n"
          "MUX-PLM and PruMUX multiplexed checkpoints, and CoFi/PruMUX structurally\n"
          "pruned checkpoints (per-layer shapes are taken from the weights).\n"
          "F16, BF16 and F64 weights are stored as f32.\n"
          "\nOptions:\n"
          "  -o, --output=FILE       write the archive to FILE (required)\n"
          "  -L, --labels=LIST       comma-separated label names, in class order\n"
          "                            (default: id2label of config.json)\n"
          "  -p, --pooling=MODE      sentence embedding pooling: cls, mean or pooler\n"
          "                            (default: from the checkpoint)\n"
          "  -n, --max-length=N      tokenizer maximum length in tokens (default:\n"
          "                            from the checkpoint; 128 for MUX models)\n"
          "      --vocab=FILE        the vocabulary to store (default: DIR/vocab.txt)\n"
          "  -T, --task=NAME         task name recorded in the archive\n"
          "                            (default: finetuning_task of config.json)\n"
          "  -z, --compress=METHOD   none (default), gzip, zstd or xz; a compressed\n"
          "                            archive is smaller but cannot be mapped\n"
          "  -v, --verbose           report what was kept, dropped and converted\n"
          CLI_STANDARD_HELP);
  cli_help_tail ();
}

int
main (int argc, char **argv)
{
  cli_init (argv[0]);
  enum { OPT_VOCAB = 256 };
  static const struct option longopts[] = {
    {"output", required_argument, NULL, 'o'},
    {"labels", required_argument, NULL, 'L'},
    {"pooling", required_argument, NULL, 'p'},
    {"max-length", required_argument, NULL, 'n'},
    {"task", required_argument, NULL, 'T'},
    {"vocab", required_argument, NULL, OPT_VOCAB},
    {"compress", required_argument, NULL, 'z'},
    {"verbose", no_argument, NULL, 'v'},
    CLI_STANDARD_LONGOPTS,
    {NULL, 0, NULL, 0}
  };
  pmx_hf_options opt = {0};
  const char *output = NULL;
  int compress = PMX_COMPRESS_NONE, verbose = 0, c;
  while ((c = getopt_long (argc, argv, "o:L:l:p:n:T:t:z:v" CLI_STANDARD_SHORTOPTS, longopts,
                           NULL)) != -1)
    switch (cli_standard_option (c, usage))
      {
      case 'o':
        output = optarg;
        break;
      case 'L':
      case 'l':                 /* -l: before 0.1.0 */
        opt.labels = optarg;
        break;
      case 'p':
        if (strcmp (optarg, "cls") && strcmp (optarg, "mean")
            && strcmp (optarg, "pooler"))
          usage_error ("--pooling must be cls, mean or pooler, not '%s'", optarg);
        opt.pooling = optarg;
        break;
      case 'n':
        opt.max_length = (int) cli_parse_int ("--max-length", optarg, 2, 1 << 20);
        break;
      case 'T':
      case 't':                 /* -t: before 0.1.0 */
        opt.task = optarg;
        break;
      case OPT_VOCAB:
        opt.vocab = optarg;
        break;
      case 'z':
        compress = cli_parse_compress (optarg);
        break;
      case 'v':
        verbose = 1;
        break;
      default:
        usage_error ("invalid usage");
      }
  if (argc - optind != 1)
    usage_error (argc - optind < 1 ? "missing model directory DIR"
                 : "only one model directory DIR is converted at a time");
  if (!output)
    usage_error ("missing --output=FILE");
  if (strcmp (output, "-") == 0)
    usage_error ("an archive cannot be written to standard output");
  const char *dir = argv[optind];

  pmx_model_config cfg;
  pmx_hf_tensors ts;
  char *vocab;
  size_t vocab_len;
  pmx_hf_report rep;
  if (pmx_hf_import (dir, &opt, &cfg, &ts, &vocab, &vocab_len, &rep) < 0)
    die_lib (NULL);
  if (pmx_model_save_records (output, &cfg, ts.recs, ts.nrecs, vocab,
                              vocab_len, compress) < 0)
    die_lib (NULL);
  if (verbose)
    fprintf (stderr, "%s: %s: %s%s%s, %d tensors kept, %d dropped, %d aliases"
             " folded, %d converted to f32; id %s\n", program_name, output,
             rep.architecture[0] ? rep.architecture : "BERT",
             cfg.mux_n > 1 ? " multiplexed" : "",
             cfg.num_labels ? " classifier" : "", rep.kept, rep.dropped,
             rep.aliases, rep.converted, cfg.id);
  free (vocab);
  pmx_hf_tensors_free (&ts);
  pmx_model_config_free (&cfg);
  return EXIT_SUCCESS;
}
