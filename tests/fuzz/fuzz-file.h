/* fuzz-file.h -- for the libFuzzer harnesses whose reader takes a path:
   the input is put in an anonymous memory file, named /proc/self/fd/N.  */

#ifndef FUZZ_FILE_H
#define FUZZ_FILE_H

#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

/* Write SIZE bytes of DATA to the harness's memory file (made on the first
   call, reused after) and return its path, or NULL.  */
static const char *
fuzz_file (const void *data, size_t size)
{
  static int fd = -1;
  static char path[64];
  if (fd < 0)
    {
      fd = memfd_create ("fuzz", 0);
      if (fd < 0)
        return NULL;
      snprintf (path, sizeof path, "/proc/self/fd/%d", fd);
    }
  if (ftruncate (fd, 0) < 0 || pwrite (fd, data, size, 0) != (ssize_t) size)
    return NULL;
  return path;
}

#endif
