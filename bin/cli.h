/* cli.h -- what every prumux program shares: its name in messages, die(),
   GNU --version text, inputs, atomic outputs and the check at exit that
   everything written reached its destination.

   Conventions (all programs): errors go to stderr as "program: context:
   message"; exit status 0 on success, 1 on any failure, usage errors
   included.  A reader that goes away (EPIPE) ends the program quietly with
   status 0, as `prog | head` expects.  */

#ifndef PRUMUX_CLI_H
#define PRUMUX_CLI_H

#include <stdio.h>
#include <stdnoreturn.h>

#include "outfile.h"

extern const char *program_name;

/* Set program_name from ARGV0, ignore SIGPIPE (writes then fail with EPIPE,
   which we turn into a quiet exit 0), remove temporary outputs on SIGINT,
   SIGTERM and SIGHUP, and arrange for stdout to be checked when the
   program exits.  */
void cli_init (const char *argv0);

noreturn void die (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));
/* Die with the library's last message (pmx_errmsg), prefixed by "CONTEXT: "
   if CONTEXT is not NULL.  A closed pipe (EPIPE) exits 0 without a word.  */
noreturn void die_lib (const char *context);
void warn (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));
/* "program: MESSAGE" + "Try 'program --help' for more information.", exit 1.
   A NULL FMT prints only the second line (after getopt's own message).  */
noreturn void usage_error (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));

/* GNU --version text, then exit 0.  */
noreturn void cli_version (void);
/* Print the common tail of --help (report bugs, home page), exit 0.  */
noreturn void cli_help_tail (void);

/* Open PATH for reading ("-" or NULL is stdin); die on failure.  */
FILE *cli_open_input (const char *path);
/* Close an input opened above, dying on a read error.  */
void cli_close_input (FILE *f, const char *path);

/* Atomic output (lib/outfile.h says how each kind of PATH is written):
   data goes to a temporary file beside PATH, which replaces PATH only when
   cli_output_commit succeeds; FIFOs and devices are written straight
   through.  "-" or NULL is stdout (written directly).  A die() before the
   commit, or SIGINT, SIGTERM or SIGHUP, removes the temporary file.  */
typedef struct cli_output
{
  FILE *f;
  char *path;                   /* NULL for stdout; else PATH as given */
  pmx_outfile out;
} cli_output;
FILE *cli_output_open (cli_output *o, const char *path);
void cli_output_commit (cli_output *o);

/* Parse a whole decimal number in [LO, HI] for option OPT; usage_error
   otherwise.  */
long long cli_parse_int (const char *opt, const char *arg, long long lo, long long hi);
double cli_parse_double (const char *opt, const char *arg);
/* Die on a write error already seen on F (EPIPE exits quietly).  */
void cli_check_write (FILE *f, const char *what);

#endif
