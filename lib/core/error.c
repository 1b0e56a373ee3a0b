/* error.c -- the per-thread error slot behind error.h.  */

#include <config.h>
#include "error.h"

#include <stdio.h>
#include <string.h>

enum { ERRBUF_SIZE = 1024 };

static _Thread_local char errbuf[ERRBUF_SIZE];
static _Thread_local int errnum_saved;

static void
set_message (int errnum, const char *fmt, va_list ap)
{
  vsnprintf (errbuf, sizeof errbuf, fmt, ap);
  errnum_saved = errnum;
  if (errnum)
    {
      size_t n = strlen (errbuf);
      snprintf (errbuf + n, sizeof errbuf - n, ": %s", strerror (errnum));
    }
}

int
pmx_error (const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  set_message (0, fmt, ap);
  va_end (ap);
  return -1;
}

int
pmx_error_errno (int errnum, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  set_message (errnum, fmt, ap);
  va_end (ap);
  return -1;
}

int
pmx_error_prefix (const char *fmt, ...)
{
  char prefix[ERRBUF_SIZE], old[ERRBUF_SIZE];
  va_list ap;
  va_start (ap, fmt);
  vsnprintf (prefix, sizeof prefix, fmt, ap);
  va_end (ap);
  memcpy (old, errbuf, sizeof old);
  size_t n = strnlen (prefix, sizeof errbuf - 3);
  memcpy (errbuf, prefix, n);
  memcpy (errbuf + n, ": ", 2);
  n += 2;
  size_t m = strnlen (old, sizeof errbuf - 1 - n);
  memcpy (errbuf + n, old, m);
  errbuf[n + m] = '\0';
  return -1;
}

const char *
pmx_errmsg (void)
{
  return errbuf;
}

int
pmx_errnum (void)
{
  return errnum_saved;
}

void
pmx_error_clear (void)
{
  errbuf[0] = '\0';
  errnum_saved = 0;
}
