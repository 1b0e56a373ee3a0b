/* prumux-cat -- show a prumux tensor stream as text, TSV or JSON, or turn
   the TSV form back into a stream.  */

#include <config.h>
#include "cli.h"
#include "error.h"
#include "stream.h"
#include "text-stream.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

static void
usage (void)
{
  printf ("Usage: %s [OPTION]... [FILE]\n", program_name);
  fputs ("\
Show the prumux tensor stream in FILE (or standard input) as readable text,\n\
as exact TSV, or as JSON Lines; with --encode, read that TSV form and write\n\
the binary stream.\n\
\n\
  -f, --format=FORMAT     text (default), tsv or json\n\
  -t, --tensor=NAMES      show only the tensors named in the comma-separated\n\
                            list\n\
  -H, --header            show only the stream header (metadata), not records\n\
  -n, --no-data           show names, types and shapes, not values\n\
      --max-values=N      text format: show at most N values per tensor\n\
                            (default 8; 0 shows all)\n\
  -e, --encode            read the TSV form and write a binary stream\n\
  -c, --check             read the whole stream, print nothing, and report\n\
                            whether it is valid through the exit status\n\
  -o, --output=FILE       write to FILE (atomically) instead of standard\n\
                            output\n", stdout);
  fputs (CLI_STANDARD_HELP, stdout);
  fputs ("\
\n\
The TSV form is exact: 'prumux-cat -f tsv | prumux-cat -e' reproduces the\n\
stream's records and metadata.  prumux-stream(5) describes the format.\n", stdout);
  cli_help_tail ();
}

static char **
split_names (char *list)
{
  size_t n = 1;
  for (char *p = list; *p; p++)
    n += *p == ',';
  char **v = calloc (n + 1, sizeof *v);
  if (!v)
    die ("memory exhausted");
  size_t i = 0;
  for (char *tok = strtok (list, ","); tok; tok = strtok (NULL, ","))
    v[i++] = tok;
  return v;
}

int
main (int argc, char **argv)
{
  static const struct option longopts[] = {
    { "format", required_argument, NULL, 'f' },
    { "tensor", required_argument, NULL, 't' },
    { "header", no_argument, NULL, 'H' },
    { "no-data", no_argument, NULL, 'n' },
    { "max-values", required_argument, NULL, 'm' },
    { "encode", no_argument, NULL, 'e' },
    { "check", no_argument, NULL, 'c' },
    { "output", required_argument, NULL, 'o' },
    CLI_STANDARD_LONGOPTS,
    { NULL, 0, NULL, 0 }
  };
  struct text_options opt = { .format = FORMAT_TEXT, .max_values = 8 };
  int header_only = 0, encode = 0, check = 0, c;
  const char *output = NULL;

  cli_init (argv[0]);
  while ((c = getopt_long (argc, argv, "f:t:Hnm:eco:" CLI_STANDARD_SHORTOPTS,
                           longopts, NULL)) != -1)
    switch (cli_standard_option (c, usage))
      {
      case 'f':
        if (strcmp (optarg, "text") == 0)
          opt.format = FORMAT_TEXT;
        else if (strcmp (optarg, "tsv") == 0)
          opt.format = FORMAT_TSV;
        else if (strcmp (optarg, "json") == 0)
          opt.format = FORMAT_JSON;
        else
          usage_error ("invalid format '%s' (expected text, tsv or json)", optarg);
        break;
      case 't': opt.select = split_names (optarg); break;
      case 'H': header_only = 1; break;
      case 'n': opt.no_data = 1; break;
      case 'm':                 /* -m: before 0.1.0; -m is --model elsewhere */
        opt.max_values = cli_parse_int ("--max-values", optarg, 0, INT64_MAX); break;
      case 'e': encode = 1; break;
      case 'c': check = 1; break;
      case 'o': output = optarg; break;
      default: usage_error ("invalid option");
      }
  if (argc - optind > 1)
    usage_error ("extra operand '%s'", argv[optind + 1]);
  const char *input = optind < argc ? argv[optind] : "-";

  FILE *in = cli_open_input (input);
  cli_output o;
  FILE *out = cli_output_open (&o, output);

  if (encode)
    text_encode (in, input, out);
  else
    {
      pmx_reader *r = pmx_reader_open (in, input);
      if (!r)
        die_lib (NULL);
      if (!check)
        text_print_header (out, pmx_reader_meta (r), &opt);
      if (!header_only)
        {
          pmx_record rec;
          int rc;
          pmx_record_init (&rec);
          while ((rc = pmx_reader_read (r, &rec)) > 0)
            if (!check)
              text_print_record (out, &rec, &opt);
          if (rc < 0)
            die_lib (NULL);
          if (!check)
            text_print_end (out, pmx_reader_records (r), &opt);
          pmx_record_free (&rec);
        }
      pmx_reader_close (r);
    }
  cli_close_input (in, input);
  cli_output_commit (&o);
  free (opt.select);
  return EXIT_SUCCESS;
}
