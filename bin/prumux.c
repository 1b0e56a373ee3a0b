/* prumux -- the front-end of the family, as git is to git-*: `prumux CMD
   ARGS...` runs prumux-CMD ARGS..., `prumux help CMD` shows its manual.  */

#include <config.h>
#include "cli.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The programs of the family, in the order of a pipeline.  */
static const struct command
{
  const char *name;
  const char *summary;
} commands[] = {
  {"tokenize", "split text into WordPiece token ids (a prumux stream)"},
  {"mux", "embed and multiplex a token stream for a model"},
  {"infer", "run the BERT encoder layers over a stream"},
  {"demux", "demultiplex encoder outputs and apply the model's head"},
  {"cat", "show, check or build prumux tensor streams"},
  {"convert", "import a Hugging Face model directory as a model archive"},
  {"export", "write a model archive out as a Hugging Face model directory"},
  {"model", "show what a model archive holds"},
  {"train", "train or fine-tune a (multiplexed) classifier"},
  {"prune", "prune a classifier with CoFi (structured pruning)"},
  {"fit", "choose a multiplexing width and sparsity for an accuracy budget"},
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

static int
known (const char *name)
{
  for (size_t i = 0; i < NCOMMANDS; i++)
    if (strcmp (commands[i].name, name) == 0)
      return 1;
  return 0;
}

/* Call FN with the command name of every prumux-NAME executable on PATH
   that the table lacks (a program added later, or a user's own), each
   once.  */
static void
each_other_command (void (*fn) (const char *name))
{
  const char *path = getenv ("PATH");
  char *copy = strdup (path ? path : "");
  char **seen = NULL;
  size_t nseen = 0;
  if (!copy)
    die ("memory exhausted");
  for (char *save, *dir = strtok_r (copy, ":", &save); dir;
       dir = strtok_r (NULL, ":", &save))
    {
      DIR *d = opendir (*dir ? dir : ".");
      struct dirent *e;
      while (d && (e = readdir (d)))
        {
          const char *name = e->d_name + strlen ("prumux-");
          if (strncmp (e->d_name, "prumux-", 7) != 0 || !*name || known (name)
              || strspn (name, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen (name))
            continue;
          char full[4096];
          snprintf (full, sizeof full, "%s/%s", *dir ? dir : ".", e->d_name);
          if (access (full, X_OK) != 0)
            continue;
          size_t i = 0;
          while (i < nseen && strcmp (seen[i], name) != 0)
            i++;
          if (i < nseen)
            continue;
          char **s = realloc (seen, sizeof *s * (nseen + 1));
          if (!s || !(s[nseen] = strdup (name)))
            die ("memory exhausted");
          seen = s;
          fn (seen[nseen++]);
        }
      if (d)
        closedir (d);
    }
  for (size_t i = 0; i < nseen; i++)
    free (seen[i]);
  free (seen);
  free (copy);
}

static void
print_other (const char *name)
{
  printf ("  %-10s (prumux-%s, found on PATH)\n", name, name);
}

static void
print_name (const char *name)
{
  puts (name);
}

static void
usage (void)
{
  printf ("Usage: %s COMMAND [ARG]...\n"
          "  or:  %s help COMMAND\n"
          "  or:  %s OPTION\n", program_name, program_name, program_name);
  printf ("Run the prumux program prumux-COMMAND with the ARGs: 'prumux tokenize\n"
          "-m model.pmx' is 'prumux-tokenize -m model.pmx'.  'prumux help COMMAND'\n"
          "shows its manual page.\n"
          "\nCommands:\n");
  for (size_t i = 0; i < NCOMMANDS; i++)
    printf ("  %-10s %s\n", commands[i].name, commands[i].summary);
  each_other_command (print_other);
  printf ("\nprumux-COMMAND is looked for on PATH, then in %s.\n"
          "\nOptions:\n"
          "      --commands   list the command names, one a line\n"
          "      --help       display this help and exit\n"
          "      --version    output version information and exit\n", BINDIR);
  cli_help_tail ();
}

/* A command name is a word of lower-case letters, digits and '-': never a
   path.  */
static void
check_name (const char *name)
{
  if (!*name || *name == '-'
      || strspn (name, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen (name))
    usage_error ("'%s' is not a prumux command", name);
}

int
main (int argc, char **argv)
{
  cli_init (argv[0]);
  if (argc < 2)
    usage_error ("missing COMMAND");
  const char *cmd = argv[1];
  if (strcmp (cmd, "--help") == 0)
    usage ();
  if (strcmp (cmd, "--version") == 0)
    cli_version ();
  if (strcmp (cmd, "--commands") == 0)
    {
      for (size_t i = 0; i < NCOMMANDS; i++)
        puts (commands[i].name);
      each_other_command (print_name);
      cli_check_write (stdout, "standard output");
      return EXIT_SUCCESS;
    }
  if (strcmp (cmd, "help") == 0)
    {
      if (argc == 2)
        usage ();
      if (argc > 3)
        usage_error ("'help' takes one COMMAND");
      check_name (argv[2]);
      char page[300];
      snprintf (page, sizeof page, "prumux-%s", argv[2]);
      fflush (stdout);
      execlp ("man", "man", page, (char *) NULL);
      die ("cannot run man: %s (the manual page is %s(1))", strerror (errno), page);
    }
  check_name (cmd);

  /* prumux-CMD, with argv[0] set to that name so its messages carry it.  */
  char prog[300];
  snprintf (prog, sizeof prog, "prumux-%s", cmd);
  argv[1] = prog;
  fflush (stdout);
  execvp (prog, argv + 1);
  int err = errno;
  char full[sizeof BINDIR + sizeof prog + 1];
  snprintf (full, sizeof full, "%s/%s", BINDIR, prog);
  if (err == ENOENT)
    {
      execv (full, argv + 1);
      err = errno;
    }
  if (err == ENOENT)
    usage_error ("'%s' is not a prumux command (no %s on PATH or in %s)", cmd,
                 prog, BINDIR);
  die ("%s: %s", prog, strerror (err));
}
