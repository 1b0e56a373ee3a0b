/* prumux-model -- show what a model archive (.pmx) holds; shrink it by
   CoFi masks.  */

#include <config.h>
#include "cli.h"
#include "error.h"
#include "model.h"
#include "shrink.h"

#include <getopt.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static void
usage (void)
{
  printf ("Usage: %s [OPTION]... COMMAND FILE\n", program_name);
  printf ("  or:  %s shrink -M MASKS -o OUTPUT FILE\n", program_name);
  printf ("Show the contents of the model archive FILE (see prumux-model(5)),\n"
          "or shrink it by CoFi structure masks.\n\n"
          "Commands:\n"
          "  info      the configuration, per-layer structure and tensor totals\n"
          "  tensors   the tensor table: name, dtype, shape, elements\n"
          "  vocab     the vocabulary (vocab.txt), one token a line\n"
          "  verify    recompute the identity from the contents and check it\n"
          "  masks     masks of all ones of FILE's shape, as a masks TSV\n"
          "            (layer, kind, index, z) to edit for 'shrink'\n"
          "  shrink    cut FILE by the masks of -M as CoFi does: soft z baked\n"
          "            into the weights, heads, FFN dimensions and hidden\n"
          "            dimensions with z = 0 removed; writes -o\n"
          "\nOptions:\n"
          "  -f, --format=FORMAT     output 'text' (default) or 'json'\n"
          "  -M, --masks=FILE        the masks TSV for 'shrink' ('-': stdin)\n"
          "  -o, --output=FILE       the archive 'shrink' writes\n"
          "  -z, --compress=METHOD   none (default), gzip, zstd or xz, for 'shrink'\n"
          CLI_STANDARD_HELP);
  cli_help_tail ();
}

static void
totals (const pmx_model *m, long long *params, long long *bytes)
{
  *params = *bytes = 0;
  for (int i = 0; i < pmx_model_tensor_count (m); i++)
    {
      const pmx_tensor *t = pmx_model_tensor_at (m, i);
      *params += pmx_tensor_numel (t);
      *bytes += (long long) t->nbytes;
    }
}

static const char *
yes (int b)
{
  return b ? "yes" : "no";
}

static void
info_text (const char *path, const pmx_model *m)
{
  const pmx_model_config *c = pmx_model_config_of (m);
  long long params, bytes;
  totals (m, &params, &bytes);
  size_t vlen;
  const char *vocab = pmx_model_vocab (m, &vlen);
  long tokens = 0;
  for (size_t i = 0; i < vlen; i++)
    tokens += vocab[i] == '\n';
  if (vlen && vocab[vlen - 1] != '\n')
    tokens++;
#define ROW(k, ...) (printf ("%-15s ", k ":"), printf (__VA_ARGS__), putchar ('\n'))
  ROW ("file", "%s", path);
  ROW ("id", "%s", c->id);
  ROW ("storage", "%s", pmx_model_storage (m));
  ROW ("arch", "%s", c->arch);
  ROW ("task", "%s", c->task);
  ROW ("vocab_size", "%d", c->vocab_size);
  if (vocab)
    ROW ("vocab", "%ld tokens", tokens);
  else
    ROW ("vocab", "%s", "none");
  ROW ("hidden", "%d", c->hidden);
  ROW ("layers", "%d", c->layers);
  ROW ("heads", "%d", c->heads);
  ROW ("head_dim", "%d", c->head_dim);
  ROW ("intermediate", "%d", c->intermediate);
  if (c->sparsity > 0)
    ROW ("sparsity", "%.6f", c->sparsity);
  else
    ROW ("sparsity", "%s", "not pruned");
  ROW ("max_position", "%d", c->max_position);
  ROW ("type_vocab", "%d", c->type_vocab);
  ROW ("ln_eps", "%g", c->ln_eps);
  ROW ("mux_n", "%d", c->mux_n);
  ROW ("mux_variant", "%s", c->mux_variant);
  ROW ("demux_variant", "%s", c->demux_variant);
  ROW ("demux_layers", "%d", c->demux_layers);
  ROW ("num_labels", "%d", c->num_labels);
  printf ("%-15s ", "labels:");
  for (int i = 0; i < c->num_labels; i++)
    printf ("%s%s", i ? "," : "", c->labels[i]);
  putchar ('\n');
  ROW ("pooling", "%s", c->pooling);
  ROW ("normalize", "%s", yes (c->normalize));
  ROW ("attend_padding", "%s", yes (c->attend_padding));
  ROW ("max_length", "%d", c->max_length);
  ROW ("lowercase", "%s", yes (c->lowercase));
  ROW ("strip_accents", "%s", yes (c->strip_accents));
  ROW ("tensors", "%d", pmx_model_tensor_count (m));
  ROW ("parameters", "%lld", params);
  ROW ("bytes", "%lld", bytes);
  for (int l = 0; l < c->layers; l++)
    {
      int h, f;
      pmx_model_layer_shape (m, l, &h, &f);
      printf ("layer %-9d heads %d, ffn %d, hidden %d\n", l, h, f,
              c->hidden);
    }
#undef ROW
}

static void
info_json (const char *path, const pmx_model *m)
{
  long long params, bytes;
  totals (m, &params, &bytes);
  char *text = pmx_model_config_json (m);
  if (!text)
    die_lib (path);
  json_t *o = json_loads (text, 0, NULL);
  free (text);
  if (!o)
    die ("%s: cannot show the configuration", path);
  json_object_set_new (o, "file", json_string (path));
  json_object_set_new (o, "storage", json_string (pmx_model_storage (m)));
  json_object_set_new (o, "tensors", json_integer (pmx_model_tensor_count (m)));
  json_object_set_new (o, "parameters", json_integer (params));
  json_object_set_new (o, "bytes", json_integer (bytes));
  if (json_dumpf (o, stdout, JSON_INDENT (2) | JSON_REAL_PRECISION (15)) < 0)
    die ("write error");
  putchar ('\n');
  json_decref (o);
}

static void
tensors_out (const pmx_model *m, int json)
{
  json_t *arr = json ? json_array () : NULL;
  for (int i = 0; i < pmx_model_tensor_count (m); i++)
    {
      const pmx_tensor *t = pmx_model_tensor_at (m, i);
      if (json)
        {
          json_t *sh = json_array ();
          for (int k = 0; k < t->rank; k++)
            json_array_append_new (sh, json_integer (t->shape[k]));
          json_array_append_new (arr, json_pack ("{s:s, s:s, s:o, s:I}",
                                                 "name", t->name, "dtype",
                                                 pmx_dtype_name (t->dtype),
                                                 "shape", sh, "elements",
                                                 (json_int_t) pmx_tensor_numel (t)));
        }
      else
        {
          char sh[8 * 24];
          printf ("%s\t%s\t%s\t%lld\n", t->name, pmx_dtype_name (t->dtype),
                  pmx_shape_str (t, sh, sizeof sh),
                  (long long) pmx_tensor_numel (t));
        }
    }
  if (json)
    {
      if (json_dumpf (arr, stdout, JSON_INDENT (2)) < 0)
        die ("write error");
      putchar ('\n');
      json_decref (arr);
    }
}

int
main (int argc, char **argv)
{
  cli_init (argv[0]);
  static const struct option longopts[] = {
    {"format", required_argument, NULL, 'f'},
    {"masks", required_argument, NULL, 'M'},
    {"output", required_argument, NULL, 'o'},
    {"compress", required_argument, NULL, 'z'},
    CLI_STANDARD_LONGOPTS,
    {NULL, 0, NULL, 0}
  };
  int json = 0, c, compress = PMX_COMPRESS_NONE;
  const char *masks = NULL, *output = NULL;
  while ((c = getopt_long (argc, argv, "f:M:o:z:" CLI_STANDARD_SHORTOPTS, longopts,
                           NULL)) != -1)
    switch (cli_standard_option (c, usage))
      {
      case 'M':
        masks = optarg;
        break;
      case 'o':
        output = optarg;
        break;
      case 'z':
        compress = cli_parse_compress (optarg);
        break;
      case 'f':
        if (strcmp (optarg, "json") == 0)
          json = 1;
        else if (strcmp (optarg, "text") == 0)
          json = 0;
        else
          usage_error ("--format must be 'text' or 'json', not '%s'", optarg);
        break;
      default:
        usage_error ("invalid usage");
      }
  if (argc - optind != 2)
    usage_error (argc - optind < 2 ? "missing COMMAND or FILE" : "too many arguments");
  const char *cmd = argv[optind], *path = argv[optind + 1];
  if (strcmp (cmd, "info") && strcmp (cmd, "tensors") && strcmp (cmd, "vocab")
      && strcmp (cmd, "verify") && strcmp (cmd, "masks")
      && strcmp (cmd, "shrink"))
    usage_error ("unknown command '%s'", cmd);
  int shrink = strcmp (cmd, "shrink") == 0;
  if (shrink && !masks)
    usage_error ("shrink: missing --masks=FILE");
  if (shrink && !output)
    usage_error ("shrink: missing --output=FILE");
  if (shrink && strcmp (output, "-") == 0)
    usage_error ("an archive cannot be written to standard output");
  if (!shrink && (masks || output))
    usage_error ("--masks and --output go with 'shrink' only");
  pmx_model *m = pmx_model_open (path);
  if (!m)
    die_lib (NULL);
  if (strcmp (cmd, "info") == 0)
    (json ? info_json : info_text) (path, m);
  else if (strcmp (cmd, "tensors") == 0)
    tensors_out (m, json);
  else if (strcmp (cmd, "vocab") == 0)
    {
      size_t len;
      const char *v = pmx_model_vocab (m, &len);
      if (!v)
        die ("%s: the archive has no vocabulary", path);
      fwrite (v, 1, len, stdout);
    }
  else if (strcmp (cmd, "masks") == 0)
    {
      pmx_cofi_z *z = pmx_model_cofi_z (m);
      if (!z)
        die_lib (path);
      if (pmx_cofi_z_write_tsv (z, stdout) < 0)
        die_lib (NULL);
      pmx_cofi_z_free (z);
    }
  else if (shrink)
    {
      FILE *f = cli_open_input (masks);
      const char *mname = strcmp (masks, "-") ? masks : "-";
      pmx_cofi_z *z = pmx_cofi_z_read_tsv (f, mname);
      if (!z)
        die_lib (NULL);
      cli_close_input (f, masks);
      if (pmx_shrink_save (m, z, output, compress, NULL) < 0)
        die_lib (path);
      pmx_cofi_z_free (z);
    }
  else
    {
      if (pmx_model_verify (m) < 0)
        die_lib (path);
      printf ("%s: OK %s\n", path, pmx_model_config_of (m)->id);
    }
  pmx_model_close (m);
  return EXIT_SUCCESS;
}
