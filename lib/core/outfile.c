/* outfile.c -- complete-or-absent output files (outfile.h).  */

#include <config.h>
#include "outfile.h"
#include "error.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_LINKS 40            /* symbolic links followed, as the kernel */

/* Temporary files not yet committed.  Slots are claimed and released with
   atomic operations so that a signal handler (pmx_outfile_remove_pending)
   may empty them at any moment, from any thread.  */
enum { MAX_PENDING = 16 };
static char *pending[MAX_PENDING];

static void
pending_add (char *tmp)
{
  for (int i = 0; i < MAX_PENDING; i++)
    {
      char *none = NULL;
      if (__atomic_compare_exchange_n (&pending[i], &none, tmp, 0,
                                       __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
        return;
    }
  /* More than MAX_PENDING outputs at once: this one is not removed on a
     signal, but still on any error (pmx_outfile_abort).  */
}

static void
pending_drop (char *tmp)
{
  for (int i = 0; i < MAX_PENDING; i++)
    {
      char *p = tmp;
      __atomic_compare_exchange_n (&pending[i], &p, NULL, 0,
                                   __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
    }
}

void
pmx_outfile_remove_pending (void)
{
  for (int i = 0; i < MAX_PENDING; i++)
    {
      char *p = __atomic_exchange_n (&pending[i], NULL, __ATOMIC_SEQ_CST);
      if (p)
        unlink (p);
    }
}

/* The name a dangling symbolic link PATH points to, followed to its end
   (a name that does not exist, or is no link); PATH itself if it is no
   link.  Returns a new string, or NULL with an error.  */
static char *
follow_dangling (const char *path)
{
  char *cur = strdup (path);
  for (int hops = 0; cur; hops++)
    {
      struct stat st;
      if (lstat (cur, &st) < 0 || !S_ISLNK (st.st_mode))
        return cur;
      if (hops == MAX_LINKS)
        {
          pmx_error_errno (ELOOP, "%s", path);
          free (cur);
          return NULL;
        }
      char buf[PATH_MAX];
      ssize_t n = readlink (cur, buf, sizeof buf - 1);
      if (n < 0)
        {
          pmx_error_errno (errno, "%s", path);
          free (cur);
          return NULL;
        }
      buf[n] = '\0';
      /* A relative target is relative to the link's directory.  */
      const char *slash = strrchr (cur, '/');
      size_t dir = buf[0] != '/' && slash ? (size_t) (slash - cur) + 1 : 0;
      char *next = malloc (dir + (size_t) n + 1);
      if (next)
        {
          memcpy (next, cur, dir);
          memcpy (next + dir, buf, (size_t) n + 1);
        }
      free (cur);
      cur = next;
    }
  pmx_error ("out of memory");
  return NULL;
}

static mode_t
umask_value (void)
{
  mode_t m = umask (0);
  umask (m);
  return m;
}

int
pmx_outfile_open (pmx_outfile *o, const char *path)
{
  memset (o, 0, sizeof *o);
  o->fd = -1;
  struct stat st;
  int exists = stat (path, &st) == 0;
  if (!exists && errno != ENOENT)
    return pmx_error_errno (errno, "%s", path);
  if (exists && S_ISDIR (st.st_mode))
    return pmx_error_errno (EISDIR, "%s", path);
  o->name = strdup (path);
  if (!o->name)
    return pmx_error ("out of memory");
  if (exists && (!S_ISREG (st.st_mode) || st.st_nlink > 1))
    {
      /* Not ours to replace: a device or FIFO is written to, a hard-linked
         file rewritten in place.  */
      int flags = O_WRONLY | O_CLOEXEC | (S_ISREG (st.st_mode) ? O_TRUNC : 0);
      o->fd = open (path, flags);
      o->path = strdup (path);
      if (o->fd < 0 || !o->path)
        {
          int e = o->fd < 0 ? errno : ENOMEM;
          pmx_outfile_abort (o);
          return pmx_error_errno (e, "%s", path);
        }
      return 0;
    }
  /* Replace (or create) the file the name leads to, not a link to it.  */
  o->path = exists ? realpath (path, NULL) : follow_dangling (path);
  if (!o->path)
    {
      if (exists)
        pmx_error_errno (errno, "%s", path);
      pmx_outfile_abort (o);
      return -1;
    }
  size_t n = strlen (o->path);
  o->tmp = malloc (n + sizeof ".XXXXXX");
  if (!o->tmp)
    {
      pmx_outfile_abort (o);
      return pmx_error ("out of memory");
    }
  memcpy (o->tmp, o->path, n);
  memcpy (o->tmp + n, ".XXXXXX", sizeof ".XXXXXX");
  o->fd = mkstemp (o->tmp);
  if (o->fd < 0)
    {
      int e = errno;
      free (o->tmp);
      o->tmp = NULL;
      pmx_outfile_abort (o);
      return pmx_error_errno (e, "%s: cannot create a temporary file", path);
    }
  pending_add (o->tmp);
  /* The replacement keeps what the old file had; a new file gets what
     open (O_CREAT, 0666) would give it.  Owner first: chown clears the
     set-id bits that the chmod then restores.  */
  int rc = 0;
  if (exists && geteuid () == 0)
    rc = fchown (o->fd, st.st_uid, st.st_gid);
  if (rc == 0)
    rc = fchmod (o->fd, exists ? st.st_mode & 07777 : 0666 & ~umask_value ());
  if (rc < 0)
    {
      int e = errno;
      pmx_outfile_abort (o);
      return pmx_error_errno (e, "%s: cannot set the owner or mode", path);
    }
  return 0;
}

int
pmx_outfile_sync (const pmx_outfile *o)
{
  /* FIFOs, terminals and some devices cannot be synced: nothing to do.  */
  if (o->fd >= 0 && fsync (o->fd) < 0 && errno != EINVAL && errno != EROFS
      && errno != ENOTSUP)
    return pmx_error_errno (errno, "%s: write error", o->name);
  return 0;
}

int
pmx_outfile_commit (pmx_outfile *o)
{
  int rc = 0;
  if (o->fd >= 0)
    {
      rc = pmx_outfile_sync (o);
      if (close (o->fd) < 0 && rc == 0)
        rc = pmx_error_errno (errno, "%s: write error", o->name);
      o->fd = -1;
    }
  if (rc == 0 && o->tmp && rename (o->tmp, o->path) < 0)
    rc = pmx_error_errno (errno, "%s: cannot rename %s", o->name, o->tmp);
  if (rc == 0 && o->tmp)
    {
      pending_drop (o->tmp);
      free (o->tmp);
      o->tmp = NULL;
    }
  pmx_outfile_abort (o);
  return rc;
}

void
pmx_outfile_abort (pmx_outfile *o)
{
  if (o->fd >= 0)
    close (o->fd);
  if (o->tmp)
    {
      unlink (o->tmp);
      pending_drop (o->tmp);
    }
  free (o->tmp);
  free (o->path);
  free (o->name);
  memset (o, 0, sizeof *o);
  o->fd = -1;
}
