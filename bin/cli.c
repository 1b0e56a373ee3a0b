/* cli.c -- shared program conventions; see cli.h.  */

#include <config.h>
#include "cli.h"
#include "error.h"
#include "model.h"
#include "outfile.h"
#include "pipeline.h"
#include "stream.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

const char *program_name = "prumux";

/* Set once a message about a failure has been printed, so that the
   check of stdout at exit does not report the same write error again.  */
static int failed;

/* Temporary output files are registered in lib/core/outfile.c; remove them when
   the program dies or is killed before committing them.  */
static void
remove_pending (void)
{
  pmx_outfile_remove_pending ();
}

/* Quietly end the program for a reader that went away.  */
static noreturn void
exit_for_epipe (void)
{
  remove_pending ();
  _exit (EXIT_SUCCESS);
}

/* At exit: report a write error on stdout (a full disk shows only here)
   and make sure stderr's messages got out.  stderr is flushed, not
   closed: sanitizers (LeakSanitizer) write their reports after the atexit
   handlers run.  */
static void
close_stdout (void)
{
  int err = 0;
  if (ferror (stdout))
    err = errno ? errno : EIO;
  if (fclose (stdout) != 0 && !err)
    err = errno;
  if (err == EPIPE)
    exit_for_epipe ();
  if (err)
    {
      if (!failed)
        fprintf (stderr, "%s: write error: %s\n", program_name, strerror (err));
      remove_pending ();
      _exit (EXIT_FAILURE);
    }
  if (fflush (stderr) != 0 || ferror (stderr))
    _exit (EXIT_FAILURE);
}

/* SIGINT, SIGTERM, SIGHUP: remove the temporary files, then die of the
   signal as if we had not caught it (the shell sees the real cause).  */
static void
on_fatal_signal (int sig)
{
  remove_pending ();
  signal (sig, SIG_DFL);
  raise (sig);
}

void
cli_init (const char *argv0)
{
  if (argv0 && *argv0)
    {
      const char *slash = strrchr (argv0, '/');
      program_name = slash ? slash + 1 : argv0;
      /* libtool's uninstalled wrappers run "lt-prog".  */
      if (strncmp (program_name, "lt-", 3) == 0)
        program_name += 3;
    }
  signal (SIGPIPE, SIG_IGN);
  static const int fatal[] = { SIGINT, SIGTERM, SIGHUP };
  for (size_t i = 0; i < sizeof fatal / sizeof *fatal; i++)
    {
      /* A signal ignored by our parent (nohup, a background job's SIGINT)
         stays ignored.  */
      struct sigaction old;
      if (sigaction (fatal[i], NULL, &old) == 0 && old.sa_handler != SIG_IGN)
        signal (fatal[i], on_fatal_signal);
    }
  atexit (close_stdout);
}

static void
vmessage (const char *fmt, va_list ap)
{
  fflush (stdout);
  fprintf (stderr, "%s: ", program_name);
  vfprintf (stderr, fmt, ap);
  fputc ('\n', stderr);
}

void
die (const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  vmessage (fmt, ap);
  va_end (ap);
  failed = 1;
  remove_pending ();
  exit (EXIT_FAILURE);
}

void
die_lib (const char *context)
{
  if (pmx_errnum () == EPIPE)
    exit_for_epipe ();
  if (context)
    die ("%s: %s", context, pmx_errmsg ());
  die ("%s", pmx_errmsg ());
}

void
warn (const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  vmessage (fmt, ap);
  va_end (ap);
}

void
usage_error (const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  if (fmt)                      /* NULL: getopt has already said what is wrong */
    vmessage (fmt, ap);
  va_end (ap);
  fprintf (stderr, "Try '%s --help' for more information.\n", program_name);
  failed = 1;
  remove_pending ();
  exit (EXIT_FAILURE);
}

void
cli_version (void)
{
  printf ("%s (%s) %s\n", program_name, PACKAGE_NAME, PACKAGE_VERSION);
  printf ("Copyright (C) 2026 the prumux authors.\n"
          "License GPLv3+: GNU GPL version 3 or later"
          " <https://gnu.org/licenses/gpl.html>.\n"
          "This is free software: you are free to change and redistribute it.\n"
          "There is NO WARRANTY, to the extent permitted by law.\n");
  exit (EXIT_SUCCESS);
}

int
cli_standard_option (int c, void (*usage) (void))
{
  if (c == 'h')
    usage ();
  if (c == 'V')
    cli_version ();
  return c;
}

void
cli_help_tail (void)
{
  /* No bug address or home page: the project has none published yet
     (configure.ac's AC_INIT gives none), and a made-up one misleads.  */
  printf ("\nExit status is 0 on success and 1 on any error.\n");
  exit (EXIT_SUCCESS);
}

static int
is_stdio (const char *path)
{
  return path == NULL || strcmp (path, "-") == 0;
}

FILE *
cli_open_input (const char *path)
{
  if (is_stdio (path))
    return stdin;
  FILE *f = fopen (path, "rb");
  if (!f)
    die ("%s: %s", path, strerror (errno));
  return f;
}

void
cli_close_input (FILE *f, const char *path)
{
  int bad = ferror (f);
  int err = errno;
  if (f != stdin && fclose (f) != 0 && !bad)
    {
      bad = 1;
      err = errno;
    }
  if (bad)
    die ("%s: read error: %s", is_stdio (path) ? "-" : path, strerror (err));
}

FILE *
cli_output_open (cli_output *o, const char *path)
{
  memset (o, 0, sizeof *o);
  if (is_stdio (path))
    {
      o->f = stdout;
      return o->f;
    }
  if (pmx_outfile_open (&o->out, path) < 0)
    die ("%s", pmx_errmsg ());
  o->path = o->out.name;
  o->f = fdopen (o->out.fd, "wb");
  if (!o->f)
    die ("%s: %s", path, strerror (errno));
  return o->f;
}

void
cli_output_commit (cli_output *o)
{
  if (o->f == stdout)
    {
      if (fflush (stdout) != 0 || ferror (stdout))
        {
          if (errno == EPIPE)
            exit_for_epipe ();
          die ("write error: %s", strerror (errno));
        }
      return;
    }
  int bad = ferror (o->f) || fflush (o->f) != 0;
  int err = errno;
  if (!bad && pmx_outfile_sync (&o->out) < 0)
    die ("%s", pmx_errmsg ());
  if (fclose (o->f) != 0 && !bad)
    {
      bad = 1;
      err = errno;
    }
  o->out.fd = -1;               /* closed with o->f */
  if (bad)
    die ("%s: write error: %s", o->path, strerror (err ? err : EIO));
  if (pmx_outfile_commit (&o->out) < 0)
    die ("%s", pmx_errmsg ());
  memset (o, 0, sizeof *o);
}

FILE *
cli_open_log (const char *path, const char *header, const char *output,
              long long start)
{
  FILE *log = fopen (path, "a");
  if (!log)
    die ("%s: %s", path, strerror (errno));
  if (ftell (log) == 0)
    fputs (header, log);
  else
    {
      /* Another run appended: say where it starts, as a comment line
         (awk '/^#/', pandas' comment='#').  */
      char when[32];
      time_t t = time (NULL);
      strftime (when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime (&t));
      fprintf (log, "# run of %s %s at %s, output %s", program_name,
               PACKAGE_VERSION, when, output);
      if (start > 0)
        fprintf (log, ", resumed after step %lld", start);
      fputc ('\n', log);
    }
  return log;
}

double
cli_now (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

void
cli_progress_bar (long long step, long long total, double loss, double rate,
                  double eta)
{
  int width = 30, fill = total ? (int) (width * step / total) : width;
  char bar[64];
  for (int i = 0; i < width; i++)
    bar[i] = i < fill ? '=' : i == fill ? '>' : ' ';
  bar[width] = 0;
  fprintf (stderr, "\r[%s] %3d%% %lld/%lld loss %.4f %.1f ex/s ETA %d:%02d  ",
           bar, (int) (100 * step / (total ? total : 1)), step, total, loss,
           rate, (int) eta / 60, (int) eta % 60);
}

void
cli_refuse_tty (const char *path, int force)
{
  if (!force && is_stdio (path) && isatty (STDOUT_FILENO))
    die ("standard output is a terminal: not writing a binary stream to it;"
         " redirect it to a file or a pipe, or use --force");
}

long long
cli_parse_int (const char *opt, const char *arg, long long lo, long long hi)
{
  char *end;
  errno = 0;
  long long v = strtoll (arg, &end, 10);
  if (end == arg || *end || errno == ERANGE)
    usage_error ("invalid number for %s: '%s'", opt, arg);
  if (v < lo || v > hi)
    usage_error ("%s must be between %lld and %lld, not %lld", opt, lo, hi, v);
  return v;
}

double
cli_parse_double (const char *opt, const char *arg)
{
  char *end;
  errno = 0;
  double v = strtod (arg, &end);
  if (end == arg || *end || errno == ERANGE || !isfinite (v))
    usage_error ("invalid number for %s: '%s'", opt, arg);
  return v;
}

double
cli_parse_nonneg (const char *opt, const char *arg)
{
  double x = cli_parse_double (opt, arg);
  if (!(x >= 0) || !isfinite (x))
    usage_error ("%s: '%s' is not a number >= 0", opt, arg);
  return x;
}

int
cli_parse_compress (const char *arg)
{
  static const char *const names[] = { "none", "gzip", "zstd", "xz" };
  static const int methods[] = { PMX_COMPRESS_NONE, PMX_COMPRESS_GZIP,
    PMX_COMPRESS_ZSTD, PMX_COMPRESS_XZ };
  for (int i = 0; i < 4; i++)
    if (strcmp (arg, names[i]) == 0)
      return methods[i];
  usage_error ("--compress must be none, gzip, zstd or xz, not '%s'", arg);
}

void
cli_check_write (FILE *f, const char *what)
{
  if (ferror (f))
    {
      if (errno == EPIPE)
        exit_for_epipe ();
      die ("%s: write error: %s", what, strerror (errno));
    }
}

/* ---- The input of a stage program ---------------------------------------- */

static int
is_pipe (FILE *f)
{
  struct stat st;
  return fstat (fileno (f), &st) == 0 && (S_ISFIFO (st.st_mode) || S_ISSOCK (st.st_mode));
}

pmx_reader *
cli_stage_open (FILE *in, const char *name, const pmx_stage_input *want)
{
  int empty;
  pmx_reader *r = pmx_stage_open (in, name, want, &empty);
  if (r)
    return r;
  if (empty && is_pipe (in) && is_pipe (stdout))
    {
      /* Say it once: the stages after this one read a stream cut short
         and stay quiet (cli_stage_read_failed).  */
      char msg[1024];
      snprintf (msg, sizeof msg, "%s", pmx_errmsg ());
      pmx_meta m;
      pmx_meta_init (&m);
      pmx_writer *w = NULL;
      if (pmx_meta_setf (&m, "producer", "%s %s", program_name, PACKAGE_VERSION) == 0
          && pmx_meta_set (&m, "error", "empty input") == 0)
        w = pmx_writer_open (stdout, "-", &m);
      pmx_writer_close (w);
      pmx_meta_free (&m);
      die ("%s", msg);
    }
  die_lib (NULL);
}

void
cli_stage_read_failed (const pmx_reader *r, FILE *in)
{
  if (pmx_reader_truncated (r) && is_pipe (in))
    {
      remove_pending ();
      exit (EXIT_FAILURE);
    }
  die_lib (NULL);
}
