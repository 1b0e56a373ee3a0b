/* fuzz-safetensors.c -- libFuzzer harness for the safetensors reader
   (pmx_st_open): every tensor it accepts is converted to f32, which reads
   all of its bytes.  Build and run with `make fuzz`.  */

#define _GNU_SOURCE 1
#include <config.h>
#include "safetensors.h"
#include "error.h"
#include "fuzz-file.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput (const unsigned char *data, size_t size);

int
LLVMFuzzerTestOneInput (const unsigned char *data, size_t size)
{
  const char *path = fuzz_file (data, size);
  if (!path)
    return 0;
  pmx_safetensors *st = pmx_st_open (path);
  if (!st)
    return 0;
  for (int i = 0; i < st->count; i++)
    {
      const pmx_st_tensor *t = &st->tensors[i];
      pmx_st_get (st, t->name);
      size_t es = t->dtype ? pmx_dtype_size (t->dtype) : 0;
      if (!es || t->nbytes / es > (1u << 24))
        continue;
      float *out = malloc ((t->nbytes / es + 1) * sizeof *out);
      if (out)
        pmx_st_to_f32 (t, out);
      free (out);
    }
  pmx_st_close (st);
  return 0;
}
