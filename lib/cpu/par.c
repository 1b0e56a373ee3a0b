/* par.c -- a training step's parallelism (par.h).  */

#include <config.h>
#include "par.h"
#include "error.h"

#include <stdlib.h>

pmx_par *
pmx_par_new (int threads)
{
  pmx_par *par = calloc (1, sizeof *par);
  if (!par || !(par->ws = calloc ((size_t) (threads > 0 ? threads : 1),
                                  sizeof *par->ws)))
    {
      free (par);
      pmx_error ("out of memory");
      return NULL;
    }
  if (!(par->pool = pmx_pool_new (threads)))
    {
      free (par->ws);
      free (par);
      return NULL;
    }
  par->threads = threads;
  return par;
}

void
pmx_par_free (pmx_par *par)
{
  if (!par)
    return;
  pmx_pool_free (par->pool);
  for (int i = 0; i < par->threads; i++)
    pmx_sgemm_ws_free (&par->ws[i]);
  free (par->ws);
  free (par);
}

int
pmx_par_threads (const pmx_par *par)
{
  return par && par->threads > 1 ? par->threads : 1;
}

pmx_sgemm_ws *
pmx_par_ws (const pmx_par *par, int thread)
{
  return par ? &par->ws[thread] : NULL;
}

void
pmx_par_tasks (const pmx_par *par, int tasks, pmx_task_fn fn, void *arg)
{
  pmx_pool_run (par ? par->pool : NULL, fn, arg, tasks);
}

/* ---- Products ------------------------------------------------------------ */

/* A block's least work, in multiply-adds, and the most blocks of one
   product: each block packs its own copy of the other operand, so blocks
   cost more than their share below about a million multiply-adds, and 8
   blocks balanced 2 threads as well as 16 while packing half as much
   (measured on training's products, 2-core AMD Zen 4: 2^18 and 16 blocks
   trained the MiniLM-size model 5 % slower, 2^22 left the small model's
   products of 256 rows unsplit, 12 % slower at N = 5).  So a product uses
   at most 8 threads.  */
enum { MIN_BLOCK_MACS = 1 << 20, MAX_BLOCKS = 8 };

typedef struct sgemm_job
{
  const pmx_par *par;
  int transa, transb, M, N, K, lda, ldb, ldc;
  float alpha, beta;
  const float *A, *B;
  float *C;
  int by_rows, step;            /* blocks of STEP rows, or of STEP columns */
} sgemm_job;

static void
sgemm_task (void *arg, int task, int thread)
{
  const sgemm_job *j = arg;
  pmx_sgemm_ws *ws = pmx_par_ws (j->par, thread);
  int b0 = task * j->step;
  if (j->by_rows)
    {
      int m = j->M - b0 < j->step ? j->M - b0 : j->step;
      pmx_sgemm (j->transa, j->transb, m, j->N, j->K, j->alpha,
                 j->transa ? j->A + b0 : j->A + (size_t) b0 * j->lda, j->lda, j->B,
                 j->ldb, j->beta, j->C + (size_t) b0 * j->ldc, j->ldc, ws);
    }
  else
    {
      int n = j->N - b0 < j->step ? j->N - b0 : j->step;
      pmx_sgemm (j->transa, j->transb, j->M, n, j->K, j->alpha, j->A, j->lda,
                 j->transb ? j->B + (size_t) b0 * j->ldb : j->B + b0, j->ldb, j->beta,
                 j->C + b0, j->ldc, ws);
    }
}

/* The block size along a dimension of LEN, in multiples of ALIGN, for
   products of OTHER multiply-adds per unit of LEN: at most MAX_BLOCKS
   blocks, none under MIN_BLOCK_MACS.  The shapes alone decide it.  */
static int
block_step (int len, int align, double other)
{
  long step = (len + MAX_BLOCKS - 1) / MAX_BLOCKS;
  long least = other > 0 ? (long) (MIN_BLOCK_MACS / other) + 1 : len;
  step = step > least ? step : least;
  step = (step + align - 1) / align * align;
  return step < len ? (int) step : len;
}

void
pmx_sgemm_par (const pmx_par *par, int transa, int transb, int M, int N, int K,
               float alpha, const float *A, int lda, const float *B, int ldb,
               float beta, float *C, int ldc)
{
  if (M <= 0 || N <= 0)
    return;
  sgemm_job j = { par, transa, transb, M, N, K, lda, ldb, ldc, alpha, beta, A, B, C,
                  M >= N, 0 };
  /* Rows in multiples of 24 (whole micro-panels of every kernel's tile),
     columns in multiples of 32 (whole pairs of 16-wide panels).  */
  j.step = j.by_rows ? block_step (M, 24, (double) N * K)
    : block_step (N, 32, (double) M * K);
  int len = j.by_rows ? M : N;
  pmx_par_tasks (par, (len + j.step - 1) / j.step, sgemm_task, &j);
}

/* ---- Loops --------------------------------------------------------------- */

typedef struct for_job
{
  size_t n, chunk;
  pmx_range_fn fn;
  void *arg;
} for_job;

static void
for_task (void *arg, int task, int thread)
{
  const for_job *j = arg;
  size_t i0 = (size_t) task * j->chunk;
  size_t i1 = j->n - i0 < j->chunk ? j->n : i0 + j->chunk;
  j->fn (j->arg, i0, i1, thread);
}

void
pmx_par_for (const pmx_par *par, size_t n, size_t chunk, pmx_range_fn fn, void *arg)
{
  if (n == 0)
    return;
  chunk = chunk ? chunk : n;
  for_job j = { n, chunk, fn, arg };
  pmx_par_tasks (par, (int) ((n + chunk - 1) / chunk), for_task, &j);
}
