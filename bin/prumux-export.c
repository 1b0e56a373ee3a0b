/* prumux-export -- write a model archive (.pmx) out as a Hugging Face model
   directory: the inverse of prumux-convert.  */

#include <config.h>
#include "cli.h"
#include "error.h"
#include "hfexport.h"
#include "model.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

static void
usage (void)
{
  printf ("Usage: %s [OPTION]... FILE -o DIR\n", program_name);
  printf ("Write the model archive FILE out as the Hugging Face model directory\n"
          "DIR: config.json, model.safetensors, vocab.txt and the tokenizer files,\n"
          "and the sentence-transformers files for a model that pools by mean or\n"
          "normalises.  prumux-convert reads DIR back into the same archive.\n"
          "\n"
          "BERT encoders and classifiers are written as transformers' BertModel and\n"
          "BertForSequenceClassification; multiplexed models as MUX-PLM's\n"
          "MuxedBertForSequenceClassification (index_pos, index and mlp\n"
          "demultiplexers); structurally pruned models with CoFi's shapes.\n"
          "\nOptions:\n"
          "  -o, --output=DIR        write the directory DIR (required; it must not\n"
          "                            exist, or be empty)\n"
          "  -v, --verbose           report what was written\n"
          CLI_STANDARD_HELP);
  cli_help_tail ();
}

int
main (int argc, char **argv)
{
  cli_init (argv[0]);
  static const struct option longopts[] = {
    {"output", required_argument, NULL, 'o'},
    {"verbose", no_argument, NULL, 'v'},
    CLI_STANDARD_LONGOPTS,
    {NULL, 0, NULL, 0}
  };
  const char *output = NULL;
  int verbose = 0, c;
  while ((c = getopt_long (argc, argv, "o:v" CLI_STANDARD_SHORTOPTS, longopts, NULL))
         != -1)
    switch (cli_standard_option (c, usage))
      {
      case 'o':
        output = optarg;
        break;
      case 'v':
        verbose = 1;
        break;
      default:
        usage_error (NULL);
      }
  if (argc - optind != 1)
    usage_error (argc - optind < 1 ? "missing model archive FILE"
                 : "only one model archive FILE is exported at a time");
  if (!output)
    usage_error ("missing --output=DIR");
  if (strcmp (output, "-") == 0)
    usage_error ("a model directory cannot be written to standard output");
  const char *path = argv[optind];

  pmx_model *m = pmx_model_open (path);
  if (!m)
    die_lib (NULL);
  const pmx_model_config *cfg = pmx_model_config_of (m);
  /* What an import of the directory cannot restore, said before writing
     it: the directory is still written (it is what the published code
     loads), but prumux-convert needs the option named.  */
  int default_len = cfg->max_position < 128 ? cfg->max_position : 128;
  if (strcmp (cfg->mux_variant, "none") != 0 && cfg->max_length != default_len)
    warn ("%s: multiplexed models are read back with %d tokens; convert the"
          " export with --max-length=%d", path, default_len, cfg->max_length);
  if (strcmp (cfg->mux_variant, "none") == 0 && cfg->attend_padding)
    warn ("%s: attend_padding is not exported (transformers always masks"
          " padding)", path);
  if (strcmp (cfg->pooling, "pooler") == 0 && !cfg->num_labels)
    warn ("%s: an encoder without a classifier is read back with CLS pooling;"
          " convert the export with --pooling=pooler", path);

  pmx_hf_export_report rep;
  if (pmx_hf_export (m, output, &rep) < 0)
    die_lib (NULL);
  if (verbose)
    fprintf (stderr, "%s: %s: %s, %d tensors (%d shared-module names), %d"
             " files%s\n", program_name, output, rep.architecture, rep.tensors,
             rep.aliases, rep.files,
             rep.sentence_transformers ? ", sentence-transformers layout" : "");
  pmx_model_close (m);
  return EXIT_SUCCESS;
}
