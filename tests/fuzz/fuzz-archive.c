/* fuzz-archive.c -- libFuzzer harness for the model archive reader
   (pmx_model_open: tar, gzip/zstd/xz, config.json, vocab.txt, the tensor
   stream, the checks against the configuration).  Opened archives are
   verified and every tensor is touched at both ends.  Build and run with
   `make fuzz`.  */

#define _GNU_SOURCE 1
#include <config.h>
#include "model.h"
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
  pmx_model *m = pmx_model_open (path);
  if (!m)
    return 0;
  pmx_model_verify (m);
  volatile unsigned char sink = 0;
  for (int i = 0; i < pmx_model_tensor_count (m); i++)
    {
      const pmx_tensor *t = pmx_model_tensor_at (m, i);
      if (t->nbytes)
        sink ^= ((const unsigned char *) t->data)[0]
                ^ ((const unsigned char *) t->data)[t->nbytes - 1];
    }
  (void) sink;
  free (pmx_model_config_json (m));
  pmx_model_close (m);
  return 0;
}
