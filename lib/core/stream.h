/* stream.h -- the prumux tensor stream: records of named tensors.

   Every prumux program reads and writes this one format (prumux-stream(5)
   documents it byte by byte), and model archives keep their weights in it.
   A stream is: a 64-byte preamble, one META frame (key=value text), any number
   of records (a RECD frame followed by its TENS frames), and an END frame.
   Everything is little-endian and every frame starts at a multiple of 64, so
   tensor payloads can be used in place from a mapped file.

   Ownership: a pmx_record owns its tensors' buffers (unless they are borrowed
   from a memory reader's buffer) and reuses them from one record to the next,
   so a read loop runs in constant memory.  Readers and writers do not own the
   FILE they are given.  Nothing here is thread-safe on a shared object.  */

#ifndef PRUMUX_STREAM_H
#define PRUMUX_STREAM_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define PMX_STREAM_MAJOR 1
#define PMX_STREAM_MINOR 0
#define PMX_ALIGN 64            /* frame and payload alignment, bytes */
#define PMX_STREAM_MAGIC "\x89PMX\r\n\x1a\n" /* a stream's first 8 bytes */
#define PMX_MAX_RANK 8
#define PMX_NAME_MAX 255        /* tensor name bytes, without NUL */
#define PMX_MAX_TENSORS 256     /* tensors in one record */
#define PMX_META_MAX (1u << 20) /* bytes of META text */
#define PMX_DEFAULT_TENSOR_LIMIT ((uint64_t) 1 << 32) /* 4 GiB per tensor */

typedef enum pmx_dtype
{
  PMX_F32 = 1, PMX_F16 = 2, PMX_BF16 = 3, PMX_F64 = 4,
  PMX_I8 = 5, PMX_U8 = 6, PMX_I16 = 7, PMX_I32 = 8, PMX_I64 = 9
} pmx_dtype;
#define PMX_DTYPE_LAST PMX_I64

/* Bytes per element, or 0 for an invalid code.  */
size_t pmx_dtype_size (int dtype);
/* "f32", "i64", ... or NULL for an invalid code.  */
const char *pmx_dtype_name (int dtype);
/* The code for a name, or -1.  */
int pmx_dtype_parse (const char *name);
int pmx_dtype_is_float (int dtype);

/* Half-precision conversions (round to nearest even).  */
float pmx_f16_to_f32 (uint16_t h);
uint16_t pmx_f32_to_f16 (float f);
float pmx_bf16_to_f32 (uint16_t h);
uint16_t pmx_f32_to_bf16 (float f);

typedef struct pmx_tensor
{
  char name[PMX_NAME_MAX + 1];
  pmx_dtype dtype;
  int rank;
  int64_t shape[PMX_MAX_RANK];
  void *data;                   /* PMX_ALIGN-aligned, nbytes long */
  size_t nbytes;
  size_t capacity;              /* private: bytes owned at data; 0 = borrowed */
  void *owned;                  /* private: the owned buffer, kept for reuse */
} pmx_tensor;

/* Element count (product of the shape; 1 for rank 0).  */
int64_t pmx_tensor_numel (const pmx_tensor *t);
/* "2x128x768" into BUF (at least 8*24 bytes); returns BUF.  */
char *pmx_shape_str (const pmx_tensor *t, char *buf, size_t size);

typedef struct pmx_record
{
  uint64_t seq;                 /* record number in its stream, from 0 */
  int count;                    /* tensors in use */
  pmx_tensor *slot[PMX_MAX_TENSORS]; /* private: slots, reused */
} pmx_record;

void pmx_record_init (pmx_record *r);
/* Forget the tensors but keep their buffers for the next record.  */
void pmx_record_reset (pmx_record *r);
void pmx_record_free (pmx_record *r);
/* Add a tensor with uninitialised data.  Fails (NULL) on a duplicate or
   invalid name, a bad dtype or shape, too many tensors, or no memory.  */
pmx_tensor *pmx_record_add (pmx_record *r, const char *name, int dtype,
                            int rank, const int64_t *shape);
/* The tensor called NAME, or NULL (no error is recorded).  */
pmx_tensor *pmx_record_get (const pmx_record *r, const char *name);
/* The tensor called NAME if it has dtype DTYPE and rank RANK (-1: any);
   otherwise NULL with an error such as "no tensor 'ids'".  */
pmx_tensor *pmx_record_expect (const pmx_record *r, const char *name,
                               int dtype, int rank);
/* Remove the tensor called NAME (keeping its buffer).  Returns 0, or -1 if
   there is no such tensor.  */
int pmx_record_remove (pmx_record *r, const char *name);
pmx_tensor *pmx_record_at (const pmx_record *r, int i);

/* Stream metadata: an ordered list of key=value pairs.  Keys are
   [A-Za-z0-9_.-]{1,64}; values are UTF-8 without NUL, CR or LF.  */
typedef struct pmx_meta
{
  int count;
  char **key;
  char **value;
} pmx_meta;

void pmx_meta_init (pmx_meta *m);
void pmx_meta_free (pmx_meta *m);
/* Add or replace.  -1 on an invalid key or value, or no memory.  */
int pmx_meta_set (pmx_meta *m, const char *key, const char *value);
int pmx_meta_setf (pmx_meta *m, const char *key, const char *fmt, ...)
  __attribute__ ((format (printf, 3, 4)));
const char *pmx_meta_get (const pmx_meta *m, const char *key);
/* Parse KEY as a whole number in [lo, hi]; returns 0 and stores it, 1 if the
   key is absent (OUT untouched), -1 with an error if it is malformed.  */
int pmx_meta_get_int (const pmx_meta *m, const char *key, long long lo,
                      long long hi, long long *out);
int pmx_meta_copy (pmx_meta *dst, const pmx_meta *src);

/* ---- Reading ---------------------------------------------------------- */

typedef struct pmx_reader pmx_reader;

/* Read and check the preamble and META frame from F.  NAME is used in error
   messages ("-" for standard input).  NULL on error.  */
pmx_reader *pmx_reader_open (FILE *f, const char *name);
/* Read a stream held in memory.  Tensors of records read from it borrow
   their data from BUF (when BUF is PMX_ALIGN-aligned), which must outlive
   them.  */
pmx_reader *pmx_reader_open_mem (const void *buf, size_t len, const char *name);
const pmx_meta *pmx_reader_meta (const pmx_reader *r);
/* Largest tensor payload accepted (default PMX_DEFAULT_TENSOR_LIMIT).  */
void pmx_reader_set_limit (pmx_reader *r, uint64_t max_tensor_bytes);
/* Read the next record into REC.  Returns 1 for a record, 0 at the END frame,
   -1 on error ("NAME: record 3: ...").  A stream that stops before END is
   an error.  */
int pmx_reader_read (pmx_reader *r, pmx_record *rec);
/* Records read so far.  */
uint64_t pmx_reader_records (const pmx_reader *r);
/* 1 if the input ended before its END frame (the last error said so): in a
   pipe, the sign that the program writing it failed.  */
int pmx_reader_truncated (const pmx_reader *r);
void pmx_reader_close (pmx_reader *r);

/* ---- Writing ---------------------------------------------------------- */

typedef struct pmx_writer pmx_writer;

/* Write the preamble and META (copied from META, may be NULL) to F.  */
pmx_writer *pmx_writer_open (FILE *f, const char *name, const pmx_meta *meta);
/* Write one record and flush, so pipelines keep moving.  Records are
   numbered by the writer.  -1 on a write error (pmx_errnum () tells EPIPE).  */
int pmx_writer_write (pmx_writer *w, const pmx_record *rec);
/* Write the END frame and flush.  */
int pmx_writer_finish (pmx_writer *w);
void pmx_writer_close (pmx_writer *w);
/* Disable the flush after every record (for files and archives).  */
void pmx_writer_set_flush (pmx_writer *w, int flush_each_record);

#endif
