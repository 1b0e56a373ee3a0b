/* par.h -- the parallelism of a training step (prumux-train, prumux-prune):
   one thread pool (threads.h) and a GEMM workspace for each of its threads,
   with the products and loops the step runs on them.

   OpenBLAS's own threads are left at one: with them, the two cores of a
   small model's step spent a third of their time in OpenBLAS's spinning
   workers, and where OpenBLAS runs no kernel native to the CPU the products
   run on our single-threaded kernels (gemm.h), so that a thread count had
   no effect on them at all.

   Work is cut into blocks whose bounds depend on the shapes only, never on
   the thread count, and each block is computed as it would be alone: a
   step gives the same bits with 1 thread or 8.  A product is cut into at
   most 8 blocks (par.c says why).  A NULL pmx_par (or one thread) runs
   everything in the caller.  */

#ifndef PRUMUX_PAR_H
#define PRUMUX_PAR_H

#include <stddef.h>

#include "gemm.h"
#include "threads.h"

typedef struct pmx_par
{
  pmx_pool *pool;
  int threads;
  pmx_sgemm_ws *ws;             /* one per thread */
  pmx_sgemm_ws *shared;         /* a product's operand packed once for all
                                   its blocks (par.c, share_operand) */
} pmx_par;

/* A pmx_par of THREADS threads (the caller included), owned by the
   caller; NULL with an error (THREADS < 1, out of memory, a thread that
   cannot start).  pmx_par_free accepts NULL.  */
pmx_par *pmx_par_new (int threads);
void pmx_par_free (pmx_par *par);
int pmx_par_threads (const pmx_par *par);   /* 1 for NULL */
/* The GEMM workspace of THREAD (NULL for a NULL PAR: pmx_sgemm allocates
   its own).  */
pmx_sgemm_ws *pmx_par_ws (const pmx_par *par, int thread);

/* pmx_sgemm's contract, its blocks of C spread over PAR's threads.  */
void pmx_sgemm_par (const pmx_par *par, int transa, int transb, int M, int N, int K,
                    float alpha, const float *A, int lda, const float *B, int ldb,
                    float beta, float *C, int ldc);
/* The same with BETA 0 and BIAS added to each row of C (NULL: none), as
   pmx_sgemm_pre_bias does it.  */
void pmx_sgemm_par_bias (const pmx_par *par, int transa, int transb, int M, int N,
                         int K, float alpha, const float *A, int lda, const float *B,
                         int ldb, float *C, int ldc, const float *bias);

/* FN (ARG, t, thread) for the tasks t = 0..TASKS-1, spread over PAR's
   threads (each task must write only what is its own).  */
void pmx_par_tasks (const pmx_par *par, int tasks, pmx_task_fn fn, void *arg);

/* FN (ARG, i0, i1, thread) over [0, N) in blocks of CHUNK (the last may be
   shorter), spread over PAR's threads.  */
typedef void (*pmx_range_fn) (void *arg, size_t i0, size_t i1, int thread);
void pmx_par_for (const pmx_par *par, size_t n, size_t chunk, pmx_range_fn fn,
                  void *arg);

/* A CHUNK for pmx_par_for (or a task size) that gives about four tasks to
   each of PAR's threads, and at least LEAST items a task; for work whose
   results do not depend on how it is cut.  */
size_t pmx_par_chunk (const pmx_par *par, size_t n, size_t least);

/* Columns a task of a sum over rows cut by columns (bias, LayerNorm
   weight, embedding table and mask gradients): each column is summed over
   the rows in row order, as a single thread would.  64 (256 bytes of a
   row, four cache lines) rather than 32: a bias gradient of 1280 rows took
   0.10 ms instead of 0.20 at 384 columns, 0.48 instead of 0.83 at 1536
   (2-core Zen 4, 2 threads; 128 was slower at 1536).  */
enum { PMX_PAR_COLS = 64 };

#endif
