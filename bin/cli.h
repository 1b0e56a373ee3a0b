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

/* The options every program has, from the shared table of option letters
   (prumux(7)): -h, --help and -V, --version.  A program puts
   CLI_STANDARD_SHORTOPTS in its getopt string, CLI_STANDARD_LONGOPTS in
   its long options, CLI_STANDARD_HELP last in the option list of its
   --help, and switches on what cli_standard_option returns:
     switch (cli_standard_option (c, usage))  */
#define CLI_STANDARD_SHORTOPTS "hV"
#define CLI_STANDARD_LONGOPTS \
  { "help", no_argument, NULL, 'h' }, { "version", no_argument, NULL, 'V' }
#define CLI_STANDARD_HELP \
  "  -h, --help              display this help and exit\n" \
  "  -V, --version           output version information and exit\n"
/* C is 'h': call USAGE (which prints --help and exits); 'V': print the
   version and exit; anything else: return C.  */
int cli_standard_option (int c, void (*usage) (void));

/* GNU --version text, then exit 0.  */
noreturn void cli_version (void);
/* Print the common tail of --help (report bugs, home page), exit 0.  */
noreturn void cli_help_tail (void);

/* Open PATH for reading ("-" or NULL is stdin); die on failure.  */
FILE *cli_open_input (const char *path);
/* Close an input opened above, dying on a read error.  */
void cli_close_input (FILE *f, const char *path);

/* Atomic output (lib/core/outfile.h says how each kind of PATH is written):
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

/* A metrics log (--log of prumux-train and prumux-prune), opened to
   append: a new file gets the HEADER line (column names, tab-separated,
   newline included); a file another run wrote gets a comment line saying
   where this run starts ("# run of PROGRAM VERSION at TIME, output OUTPUT",
   ", resumed after step START" when START > 0), the columns being the same.
   Dies on failure; the caller closes it (fclose, checked).  */
FILE *cli_open_log (const char *path, const char *header, const char *output,
                    long long start);

/* Seconds on a monotonic clock.  */
double cli_now (void);
/* The progress bar of a run on a terminal (standard error), redrawn in
   place: STEP of TOTAL, the mean LOSS, RATE examples/s and ETA seconds
   left.  A line printed after it starts with a newline.  */
void cli_progress_bar (long long step, long long total, double loss, double rate,
                       double eta);

/* A binary stream written to a terminal garbles it and helps nobody: die,
   as gzip does, when PATH ("-" or NULL: standard output) is a terminal,
   unless FORCE (the programs' --force).  Call it before any work.  */
void cli_refuse_tty (const char *path, int force);

/* Parse a whole decimal number in [LO, HI] for option OPT; usage_error
   otherwise.  */
long long cli_parse_int (const char *opt, const char *arg, long long lo, long long hi);
double cli_parse_double (const char *opt, const char *arg);
/* A finite number >= 0 for option OPT; usage_error otherwise.  */
double cli_parse_nonneg (const char *opt, const char *arg);
/* --compress=METHOD: none, gzip, zstd or xz as PMX_COMPRESS_* (model.h);
   usage_error otherwise.  */
int cli_parse_compress (const char *arg);
/* Die on a write error already seen on F (EPIPE exits quietly).  */
void cli_check_write (FILE *f, const char *what);

/* The input of a stage program (pipeline.h).

   When one stage of a pipe fails, it says why; the stages after it should
   not each add a line.  So: an empty input gets one line ("-: empty input
   (did the stage before fail?)"), and when standard output is a pipe the
   program leaves there the start of a stream, cut short, before it exits
   1; a stage whose piped input is cut short exits 1 without a word, as
   the program writing it has failed and said why.  A named file or a
   redirected regular file always gets its full message.  */
struct pmx_stage_input;
struct pmx_reader;
/* pmx_stage_open, dying as above on failure.  */
struct pmx_reader *cli_stage_open (FILE *in, const char *name,
                                   const struct pmx_stage_input *want);
/* Die after pmx_reader_read failed on R, reading IN: quietly if IN is a
   pipe that was cut short.  */
noreturn void cli_stage_read_failed (const struct pmx_reader *r, FILE *in);

#endif
