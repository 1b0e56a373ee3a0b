/* outfile.h -- writing a named output file so that it is complete or absent
   (every writer of the library and the programs: -o, model archives,
   training checkpoints and state).

   What is at PATH decides how it is written, as sort -o and cp decide:
     - nothing, or a regular file with one name: a temporary file beside it
       (PATH.XXXXXX) replaces it by rename only when all is written, so no
       reader ever sees half a file.  A replaced file keeps its permission
       bits (and, for root, its owner and group).
     - a symbolic link is followed: the file it names is the one written
       (or created, for a dangling link); the link stays a link.
     - anything that is not a regular file (a FIFO, a terminal, /dev/null,
       /dev/full) is opened and written straight through, never replaced.
     - a regular file with other hard links is truncated and written in
       place, so every name sees the new contents (not atomic: an error
       leaves it partly written, as with cp).
   A directory is refused.

   Temporary files not yet committed are remembered so that a program can
   remove them when it dies or is killed (pmx_outfile_remove_pending, safe
   in a signal handler).  */

#ifndef PRUMUX_OUTFILE_H
#define PRUMUX_OUTFILE_H

typedef struct pmx_outfile
{
  int fd;                       /* write here; -1 once closed */
  char *name;                   /* the path as given, for messages */
  char *path;                   /* the file finally written (links followed) */
  char *tmp;                    /* the temporary file, or NULL (in place) */
} pmx_outfile;

/* Open PATH for writing as described above.  Returns 0, or -1 with an
   error naming PATH (O is then empty, nothing was created).  */
int pmx_outfile_open (pmx_outfile *o, const char *path);

/* Flush O's data to the device (fsync; a no-op where the file cannot be
   synced, e.g. a FIFO).  Returns 0 or -1 with an error naming the path.  */
int pmx_outfile_sync (const pmx_outfile *o);

/* Finish O: sync and close the descriptor unless the caller has already
   done so and set O->fd to -1 (callers that wrapped it in a FILE), then
   move the temporary file into place.  Returns 0, or -1 with an error and
   the temporary file removed.  Either way O is released.  */
int pmx_outfile_commit (pmx_outfile *o);

/* Give up O: close it (if open) and remove the temporary file.  */
void pmx_outfile_abort (pmx_outfile *o);

/* Remove every temporary file not yet committed or aborted.  Uses only
   async-signal-safe calls (unlink), so a fatal-signal handler may call it;
   the pmx_outfile structures themselves are left alone.  */
void pmx_outfile_remove_pending (void);

#endif
