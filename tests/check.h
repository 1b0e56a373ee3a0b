/* check.h -- the failure counter and CHECK of the C unit tests that report
   with a formatted message: CHECK (cond, "fmt", ...) prints FILE:LINE: and
   the message when COND is false, counts the failure and goes on, so one
   run lists every failing case; main returns failures ? 1 : 0.  */

#ifndef PRUMUX_TESTS_CHECK_H
#define PRUMUX_TESTS_CHECK_H

#include <stdio.h>

static int failures;

#define CHECK(cond, ...)                                        \
  do {                                                          \
    if (!(cond))                                                \
      {                                                         \
        fprintf (stderr, "%s:%d: ", __FILE__, __LINE__);        \
        fprintf (stderr, __VA_ARGS__);                          \
        fputc ('\n', stderr);                                   \
        failures++;                                             \
      }                                                         \
  } while (0)

#endif
