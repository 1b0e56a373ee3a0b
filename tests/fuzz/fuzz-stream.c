/* fuzz-stream.c -- libFuzzer (or AFL++ in libFuzzer mode) harness for the
   stream reader.  Each input is read twice: through a FILE (the pipe path,
   growing buffers) and from memory (the archive path, borrowed tensors).
   Build and run with `make fuzz` (clang's -fsanitize=fuzzer).  */

#include <config.h>
#include "stream.h"

#include <stdlib.h>
#include <string.h>

static void
drain (pmx_reader *r)
{
  pmx_record rec;
  pmx_record_init (&rec);
  while (pmx_reader_read (r, &rec) > 0)
    for (int i = 0; i < rec.count; i++)
      {
        const pmx_tensor *t = pmx_record_at (&rec, i);
        volatile unsigned char sink = 0;
        if (t->nbytes)          /* touch both ends: ASan checks the bounds */
          sink ^= ((const unsigned char *) t->data)[0]
                  ^ ((const unsigned char *) t->data)[t->nbytes - 1];
        (void) sink;
      }
  pmx_record_free (&rec);
  pmx_reader_close (r);
}

int LLVMFuzzerTestOneInput (const unsigned char *data, size_t size);

int
LLVMFuzzerTestOneInput (const unsigned char *data, size_t size)
{
  FILE *f = fmemopen ((void *) data, size, "rb");
  if (f)
    {
      pmx_reader *r = pmx_reader_open (f, "fuzz");
      /* Keep memory bounded for the fuzzer's RSS limit.  */
      if (r)
        {
          pmx_reader_set_limit (r, 1 << 24);
          drain (r);
        }
      fclose (f);
    }
  void *copy = NULL;
  if (posix_memalign (&copy, PMX_ALIGN, size ? size : 1) == 0)
    {
      memcpy (copy, data, size);
      pmx_reader *r = pmx_reader_open_mem (copy, size, "fuzz");
      if (r)
        drain (r);
      free (copy);
    }
  return 0;
}
