/* test-stream.c -- unit tests of lib/core/stream.c: round trips of every dtype
   and rank, metadata, in-memory reading, size limits, half-precision
   conversion, and every truncation and many corruptions of a small stream
   (which must fail cleanly: run under ASan/UBSan in CI).  */

#include <config.h>
#include "stream.h"
#include "error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

/* A deterministic generator, so failures reproduce.  */
static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t
next_rand (void)
{
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

/* Write RECS records built by fill() into a memory buffer.  */
static char *
build_stream (size_t *len, int nrec, void (*fill) (pmx_record *, int))
{
  char *buf = NULL;
  FILE *f = open_memstream (&buf, len);
  pmx_meta meta;
  pmx_meta_init (&meta);
  CHECK (pmx_meta_set (&meta, "producer", "test-stream") == 0);
  CHECK (pmx_meta_setf (&meta, "mux_n", "%d", 5) == 0);
  pmx_writer *w = pmx_writer_open (f, "mem", &meta);
  CHECK (w != NULL);
  pmx_record rec;
  pmx_record_init (&rec);
  for (int i = 0; i < nrec; i++)
    {
      pmx_record_reset (&rec);
      fill (&rec, i);
      CHECK (pmx_writer_write (w, &rec) == 0);
    }
  CHECK (pmx_writer_finish (w) == 0);
  pmx_writer_close (w);
  pmx_record_free (&rec);
  pmx_meta_free (&meta);
  fclose (f);
  return buf;
}

/* Every dtype at ranks 0..4 with pseudo-random shapes and contents.  */
static void
fill_all_dtypes (pmx_record *rec, int seq)
{
  for (int dt = 1; dt <= PMX_DTYPE_LAST; dt++)
    for (int rank = 0; rank <= 4; rank++)
      {
        int64_t shape[PMX_MAX_RANK];
        char name[64];
        for (int i = 0; i < rank; i++)
          shape[i] = (int64_t) ((next_rand () % 4) + (seq == 1 && i == 0 ? 0 : 1));
        snprintf (name, sizeof name, "%s.r%d", pmx_dtype_name (dt), rank);
        pmx_tensor *t = pmx_record_add (rec, name, dt, rank, shape);
        CHECK (t != NULL);
        unsigned char *p = t->data;
        for (size_t i = 0; i < t->nbytes; i++)
          p[i] = (unsigned char) next_rand ();
        CHECK (((uintptr_t) t->data % PMX_ALIGN) == 0);
      }
}

static void
test_roundtrip (void)
{
  size_t len;
  uint64_t saved = rng;
  char *buf = build_stream (&len, 3, fill_all_dtypes);
  CHECK (len % PMX_ALIGN == 0);

  /* Rebuild the expected records with the same generator state.  */
  pmx_record want[3];
  rng = saved;
  for (int i = 0; i < 3; i++)
    {
      pmx_record_init (&want[i]);
      fill_all_dtypes (&want[i], i);
    }

  for (int pass = 0; pass < 2; pass++)
    {
      /* pass 0 reads through a FILE, pass 1 from memory (borrowed data).  */
      FILE *f = pass == 0 ? fmemopen (buf, len, "rb") : NULL;
      void *aligned = NULL;
      if (pass == 1)
        {
          CHECK (posix_memalign (&aligned, PMX_ALIGN, len) == 0);
          memcpy (aligned, buf, len);
        }
      pmx_reader *r = pass == 0 ? pmx_reader_open (f, "mem")
                                : pmx_reader_open_mem (aligned, len, "mem");
      CHECK (r != NULL);
      if (!r)
        return;
      const pmx_meta *m = pmx_reader_meta (r);
      CHECK (m->count == 2);
      CHECK (strcmp (pmx_meta_get (m, "producer"), "test-stream") == 0);
      long long n = 0;
      CHECK (pmx_meta_get_int (m, "mux_n", 1, 100, &n) == 0 && n == 5);
      CHECK (pmx_meta_get_int (m, "absent", 1, 100, &n) == 1);
      CHECK (pmx_meta_get_int (m, "producer", 1, 100, &n) == -1);
      pmx_record rec;
      pmx_record_init (&rec);
      for (int i = 0; i < 3; i++)
        {
          CHECK (pmx_reader_read (r, &rec) == 1);
          CHECK (rec.seq == (uint64_t) i);
          CHECK (rec.count == want[i].count);
          for (int k = 0; k < rec.count && k < want[i].count; k++)
            {
              const pmx_tensor *a = pmx_record_at (&rec, k), *b = pmx_record_at (&want[i], k);
              CHECK (strcmp (a->name, b->name) == 0);
              CHECK (a->dtype == b->dtype && a->rank == b->rank && a->nbytes == b->nbytes);
              CHECK (memcmp (a->shape, b->shape, sizeof a->shape[0] * (size_t) a->rank) == 0);
              CHECK (memcmp (a->data, b->data, a->nbytes) == 0);
              CHECK (((uintptr_t) a->data % PMX_ALIGN) == 0);
              if (pass == 1)
                CHECK (a->nbytes == 0 || ((char *) a->data >= (char *) aligned
                                          && (char *) a->data < (char *) aligned + len));
            }
        }
      CHECK (pmx_reader_read (r, &rec) == 0);
      CHECK (pmx_reader_read (r, &rec) == 0);
      CHECK (pmx_reader_records (r) == 3);
      pmx_reader_close (r);
      pmx_record_free (&rec);
      if (f)
        fclose (f);
      free (aligned);
    }
  for (int i = 0; i < 3; i++)
    pmx_record_free (&want[i]);
  free (buf);
}

static void
fill_small (pmx_record *rec, int seq)
{
  int64_t shape[2] = { 2, 3 };
  pmx_tensor *t = pmx_record_add (rec, "ids", PMX_I32, 2, shape);
  for (int i = 0; i < 6; i++)
    ((int32_t *) t->data)[i] = seq * 10 + i;
  t = pmx_record_add (rec, "row", PMX_I64, 1, shape);
  ((int64_t *) t->data)[0] = 2 * seq;
  ((int64_t *) t->data)[1] = 2 * seq + 1;
}

/* Read a whole stream from memory through a FILE; 0 if valid.  */
static int
read_all (const char *buf, size_t len)
{
  FILE *f = fmemopen ((void *) buf, len, "rb");
  pmx_reader *r = pmx_reader_open (f, "x");
  int rc = -1;
  if (r)
    {
      pmx_record rec;
      pmx_record_init (&rec);
      while ((rc = pmx_reader_read (r, &rec)) > 0)
        ;
      pmx_record_free (&rec);
      pmx_reader_close (r);
    }
  fclose (f);
  return rc;
}

static void
test_truncation_and_corruption (void)
{
  size_t len;
  char *buf = build_stream (&len, 3, fill_small);
  CHECK (read_all (buf, len) == 0);
  /* Every proper prefix must fail, with a message.  */
  for (size_t cut = 1; cut < len; cut++)
    {
      pmx_error_clear ();
      int rc = read_all (buf, cut);
      if (rc != -1 || pmx_errmsg ()[0] == '\0')
        {
          fprintf (stderr, "prefix of %zu bytes: rc %d\n", cut, rc);
          failures++;
        }
    }
  /* Random corruption: any result is fine except a crash or a hang.  */
  char *copy = malloc (len);
  int rejected = 0;
  for (int iter = 0; iter < 20000; iter++)
    {
      memcpy (copy, buf, len);
      int flips = 1 + (int) (next_rand () % 4);
      for (int k = 0; k < flips; k++)
        {
          size_t at = (size_t) (next_rand () % len);
          switch (next_rand () % 3)
            {
            case 0: copy[at] ^= (char) (1u << (next_rand () % 8)); break;
            case 1: copy[at] = (char) next_rand (); break;
            default: copy[at] = (char) 0xff; break;
            }
        }
      rejected += read_all (copy, len) < 0;
    }
  CHECK (rejected > 1000);  /* most corruptions are caught */
  free (copy);
  free (buf);
}

static void
test_limits_and_validation (void)
{
  pmx_record rec;
  pmx_record_init (&rec);
  int64_t shape[3] = { 2, -1, 3 };
  CHECK (pmx_record_add (&rec, "neg", PMX_F32, 3, shape) == NULL);
  CHECK (strstr (pmx_errmsg (), "negative") != NULL);
  int64_t huge[3] = { INT64_MAX, INT64_MAX, 2 };
  CHECK (pmx_record_add (&rec, "huge", PMX_F32, 3, huge) == NULL);
  CHECK (pmx_record_add (&rec, "bad name", PMX_F32, 0, shape) == NULL);
  CHECK (pmx_record_add (&rec, "", PMX_F32, 0, shape) == NULL);
  CHECK (pmx_record_add (&rec, "x", 42, 0, shape) == NULL);
  CHECK (pmx_record_add (&rec, "x", PMX_F32, 9, shape) == NULL);
  CHECK (pmx_record_add (&rec, "x", PMX_F32, 0, shape) != NULL);
  CHECK (pmx_record_add (&rec, "x", PMX_F32, 0, shape) == NULL);    /* duplicate */
  CHECK (pmx_record_expect (&rec, "x", PMX_I32, -1) == NULL);
  CHECK (strstr (pmx_errmsg (), "expected i32") != NULL);
  CHECK (pmx_record_expect (&rec, "y", -1, -1) == NULL);
  CHECK (pmx_record_expect (&rec, "x", PMX_F32, 0) != NULL);
  CHECK (pmx_record_remove (&rec, "x") == 0 && rec.count == 0);
  pmx_record_free (&rec);

  pmx_meta m;
  pmx_meta_init (&m);
  CHECK (pmx_meta_set (&m, "bad key", "v") == -1);
  CHECK (pmx_meta_set (&m, "k", "line\nbreak") == -1);
  CHECK (pmx_meta_set (&m, "k", "caf\xc3\xa9 \xe4\xb8\xad \xf0\x9f\x98\x80") == 0);
  CHECK (pmx_meta_set (&m, "k", "bad \xc3") == -1);
  CHECK (pmx_meta_set (&m, "k", "overlong \xc0\xaf") == -1);
  CHECK (pmx_meta_set (&m, "k", "surrogate \xed\xa0\x80") == -1);
  CHECK (pmx_meta_set (&m, "k", "a") == 0 && pmx_meta_set (&m, "k", "b") == 0);
  CHECK (m.count == 1 && strcmp (pmx_meta_get (&m, "k"), "b") == 0);
  pmx_meta_free (&m);

  /* A tensor above the reader's limit is refused before allocation.  */
  size_t len;
  char *buf = build_stream (&len, 1, fill_small);
  FILE *f = fmemopen (buf, len, "rb");
  pmx_reader *r = pmx_reader_open (f, "lim");
  pmx_reader_set_limit (r, 8);
  pmx_record_init (&rec);
  CHECK (pmx_reader_read (r, &rec) == -1);
  CHECK (strstr (pmx_errmsg (), "lim: record 0: tensor 'ids'") != NULL);
  pmx_record_free (&rec);
  pmx_reader_close (r);
  fclose (f);
  free (buf);
}

static void
test_half_precision (void)
{
  /* Every f16 value survives f16 -> f32 -> f16 (NaNs stay NaN).  */
  for (uint32_t h = 0; h < 65536; h++)
    {
      float f = pmx_f16_to_f32 ((uint16_t) h);
      uint16_t back = pmx_f32_to_f16 (f);
      if (isnan (f) ? !isnan (pmx_f16_to_f32 (back)) : back != h)
        {
          fprintf (stderr, "f16 0x%04x -> %g -> 0x%04x\n", (unsigned) h, f, back);
          failures++;
          break;
        }
      float b = pmx_bf16_to_f32 ((uint16_t) h);
      if (!isnan (b) && pmx_f32_to_bf16 (b) != h)
        {
          fprintf (stderr, "bf16 0x%04x round trip failed\n", (unsigned) h);
          failures++;
          break;
        }
    }
  CHECK (pmx_f16_to_f32 (0x3c00) == 1.0f);
  CHECK (pmx_f16_to_f32 (0xc000) == -2.0f);
  CHECK (pmx_f32_to_f16 (65504.0f) == 0x7bff);
  CHECK (pmx_f32_to_f16 (1e6f) == 0x7c00);
  CHECK (pmx_f32_to_f16 (1.0f + 1.0f / 2048) == 0x3c00);    /* ties to even */
  CHECK (pmx_f32_to_f16 (5.9604645e-8f) == 0x0001);         /* smallest subnormal */
  CHECK (pmx_f32_to_bf16 (1.0f) == 0x3f80);
  CHECK (pmx_f32_to_bf16 (1.00390625f) == 0x3f80);          /* ties to even */
}

int
main (void)
{
  test_roundtrip ();
  test_truncation_and_corruption ();
  test_limits_and_validation ();
  test_half_precision ();
  if (failures)
    fprintf (stderr, "%d check(s) failed\n", failures);
  return failures ? 1 : 0;
}
