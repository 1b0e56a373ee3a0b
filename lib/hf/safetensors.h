/* safetensors.h -- read and write Hugging Face .safetensors files.

   The format: an 8-byte little-endian header length N, N bytes of JSON
   ({"name": {"dtype": "F32", "shape": [..], "data_offsets": [b, e]}, ...,
   "__metadata__": {...}}), then the byte buffer the offsets index.

   The file is mapped read-only; every header field is checked (header size
   cap, known dtypes, shapes that match the byte ranges, offsets inside the
   file, ranges that cover the buffer without holes or overlaps), so a
   hostile file gives an error, never a crash.

   Ownership: tensor data points into the mapping and stays valid until
   pmx_st_close.  Data is not aligned: read it with pmx_st_to_f32.

   The writer produces what the reader accepts and what the Rust and
   Python safetensors libraries write: the header padded with spaces to a
   multiple of 8 bytes, "__metadata__": {"format": "pt"}, F32 data
   little-endian, back to back in the order given.  */

#ifndef PRUMUX_SAFETENSORS_H
#define PRUMUX_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "stream.h"

#define PMX_ST_HEADER_MAX (100u << 20) /* bytes of JSON header accepted */

typedef struct pmx_st_tensor
{
  char name[PMX_NAME_MAX + 1];
  char dtype_name[16];          /* as written: "F32", "BF16", "I64", ... */
  int dtype;                    /* PMX_F32, ... or 0 if prumux has no such
                                   type (BOOL, F8_E4M3, ...) */
  int rank;
  int64_t shape[PMX_MAX_RANK];
  const unsigned char *data;    /* into the mapping; unaligned */
  size_t nbytes;
} pmx_st_tensor;

typedef struct pmx_safetensors
{
  int count;
  pmx_st_tensor *tensors;       /* sorted by data offset (file order) */
  void *map;                    /* private */
  void *meta;                   /* private: the __metadata__ object */
  size_t size;                  /* private */
} pmx_safetensors;

/* Map and check PATH.  NULL with an error ("PATH: ...") on failure.  */
pmx_safetensors *pmx_st_open (const char *path);
void pmx_st_close (pmx_safetensors *st);
/* The tensor called NAME, or NULL.  */
const pmx_st_tensor *pmx_st_get (const pmx_safetensors *st, const char *name);
/* The string KEY of the header's "__metadata__", or NULL.  */
const char *pmx_st_metadata (const pmx_safetensors *st, const char *key);
/* Convert a floating-point tensor (F32, F16, BF16, F64) to f32 in OUT
   (numel floats).  -1 with an error for any other dtype.  */
int pmx_st_to_f32 (const pmx_st_tensor *t, float *out);

/* One tensor to write: its name in the file and its f32 data.  */
typedef struct pmx_st_out
{
  const char *name;
  const pmx_tensor *t;          /* PMX_F32 */
} pmx_st_out;

/* Write the N tensors of TS to F (PATH names it in errors).  Names must be
   unique and tensors f32.  METADATA, NULL or a NULL-terminated list of
   key, value strings, is added to "__metadata__" ("format": "pt").  -1
   with an error ("PATH: ...") on failure; F is left open either way.  */
int pmx_st_write (FILE *f, const char *path, const pmx_st_out *ts, int n,
                  const char *const *metadata);

#endif
