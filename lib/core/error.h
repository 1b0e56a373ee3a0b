/* error.h -- how libprumux reports failure.

   Library code never prints and never exits.  A function that fails records
   a message (and the errno that caused it, if any) in a per-thread slot and
   returns -1 or NULL; the program decides what to do with it.  The message is
   complete text without the program name, e.g.
       "-: record 3: tensor 'ids': shape 4x-1 is invalid".  */

#ifndef PRUMUX_ERROR_H
#define PRUMUX_ERROR_H

#include <stdarg.h>

#if defined __GNUC__
# define PMX_PRINTF(f, a) __attribute__ ((format (printf, f, a)))
#else
# define PMX_PRINTF(f, a)
#endif

/* Record a message; always returns -1 so callers can `return pmx_error(...)`.  */
int pmx_error (const char *fmt, ...) PMX_PRINTF (1, 2);

/* Same, and remember ERRNUM; strerror (ERRNUM) is appended as ": text".  */
int pmx_error_errno (int errnum, const char *fmt, ...) PMX_PRINTF (2, 3);

/* Prefix the current message with "context: " (used as errors climb up:
   "record 3: " + "tensor 'x': ...").  Returns -1.  */
int pmx_error_prefix (const char *fmt, ...) PMX_PRINTF (1, 2);

/* The last message recorded by this thread ("" if none).  The pointer stays
   valid until the next pmx_error* call in this thread.  */
const char *pmx_errmsg (void);

/* The errno recorded with the last message, or 0.  Programs use it to tell a
   closed pipe (EPIPE) from a real write error.  */
int pmx_errnum (void);

void pmx_error_clear (void);

#endif
