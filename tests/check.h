/* check.h -- what every C test shares (include it last):

   CHECK (cond) or CHECK (cond, "fmt", ...): when COND is false, print
     FILE:LINE: and the message (or the condition and the library's last
     error), count the failure and go on, so one run lists every failing
     case; main returns check_status ().
   CHECK_NEAR (got, want, tol): |GOT - WANT| <= TOL, both printed if not.
   check_fatal (what): the test cannot go on (a file it needs, a library
     call it builds on): "PROG: WHAT: the library's error", exit 1.  */

#ifndef PRUMUX_TESTS_CHECK_H
#define PRUMUX_TESTS_CHECK_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include "error.h"

static int failures;

static inline int
check_status (void)
{
  return failures ? 1 : 0;
}

#define CHECK_REPORT_(...)                                      \
  do {                                                          \
    fprintf (stderr, "%s:%d: ", __FILE__, __LINE__);            \
    fprintf (stderr, __VA_ARGS__);                              \
    fputc ('\n', stderr);                                       \
    failures++;                                                 \
  } while (0)

/* CHECK with a message, and without (the condition is the message).  */
#define CHECK_MSG_(cond, ...)                                   \
  do { if (!(cond)) CHECK_REPORT_ (__VA_ARGS__); } while (0)
#define CHECK_COND_(cond)                                       \
  do { if (!(cond))                                             \
         CHECK_REPORT_ ("check failed: %s%s%s%s", #cond,        \
                        *pmx_errmsg () ? " (" : "", pmx_errmsg (), \
                        *pmx_errmsg () ? ")" : ""); } while (0)
/* The 13th argument: CHECK_COND_ for one argument, else CHECK_MSG_.  */
#define CHECK_PICK_(a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, m, ...) m
#define CHECK(...)                                                      \
  CHECK_PICK_ (__VA_ARGS__, CHECK_MSG_, CHECK_MSG_, CHECK_MSG_, CHECK_MSG_, \
               CHECK_MSG_, CHECK_MSG_, CHECK_MSG_, CHECK_MSG_, CHECK_MSG_, \
               CHECK_MSG_, CHECK_MSG_, CHECK_COND_, unused) (__VA_ARGS__)

#define CHECK_NEAR(got, want, tol)                                      \
  do {                                                                  \
    double g_ = (got), w_ = (want);                                     \
    if (!(fabs (g_ - w_) <= (tol)))                                     \
      CHECK_REPORT_ ("%s = %.12g, expected %.12g (tolerance %g)", #got, \
                     g_, w_, (double) (tol));                           \
  } while (0)

/* The name this test reports under, set by main (default "test").  */
static const char *check_program = "test";

static void check_fatal (const char *what) __attribute__ ((noreturn, unused));
static void
check_fatal (const char *what)
{
  fprintf (stderr, "%s: %s: %s\n", check_program, what, pmx_errmsg ());
  exit (1);
}

#endif
