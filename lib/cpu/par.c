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
                                  sizeof *par->ws))
      || !(par->shared = calloc (1, sizeof *par->shared)))
    {
      if (par)
        free (par->ws);
      free (par);
      pmx_error ("out of memory");
      return NULL;
    }
  if (!(par->pool = pmx_pool_new (threads)))
    {
      free (par->shared);
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
  pmx_sgemm_ws_free (par->shared);
  free (par->shared);
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
  /* Blocks of rows (BY_ROWS) or of columns: TASKS blocks of whole units
     of ALIGN rows or columns, UNITS in all, the first UNITS % TASKS
     blocks a unit longer (block_start).  */
  int by_rows, align, units, tasks;
  /* The operand every block reads whole (op(B) for blocks of rows, op(A)
     for blocks of columns), packed once for KIND; NULL if not shared.  */
  pmx_gemm_kind kind;
  const float *shared;
  const float *bias;            /* NULL: none; with beta 0 */
} sgemm_job;

/* Where block TASK of J starts: blocks of equal numbers of units, the
   longer ones first, so that no block is much shorter than the others (a
   product of 1280 rows in blocks of 168 ended with one of 104: one of 2
   threads ran 4 full blocks while the other waited, 5 % of the product's
   time).  */
static int
block_start (const sgemm_job *j, int task)
{
  int per = j->units / j->tasks, extra = j->units % j->tasks;
  return (task * per + (task < extra ? task : extra)) * j->align;
}

static void
sgemm_task (void *arg, int task, int thread)
{
  const sgemm_job *j = arg;
  pmx_sgemm_ws *ws = pmx_par_ws (j->par, thread);
  int all = j->by_rows ? j->M : j->N;
  int b0 = block_start (j, task), b1 = block_start (j, task + 1);
  int len = (b1 < all ? b1 : all) - b0;
  int m = j->by_rows ? len : j->M, n = j->by_rows ? j->N : len;
  const float *A = j->A, *B = j->B;
  float *C = j->by_rows ? j->C + (size_t) b0 * j->ldc : j->C + b0;
  if (j->by_rows)
    A = j->transa ? A + b0 : A + (size_t) b0 * j->lda;
  else
    B = j->transb ? B + (size_t) b0 * j->ldb : B + b0;
  const float *bias = j->bias && !j->by_rows ? j->bias + b0 : j->bias;
  /* Each block on the kernel pmx_sgemm would pick for it alone (a short
     last block may fall under its threshold), so sharing changes no bit.  */
  pmx_gemm_kind kind = pmx_sgemm_kind_for ((double) m * n * j->K);
  int shared = j->shared && kind == j->kind;
  pmx_sgemm_pre_bias (kind, j->transa, j->transb, m, n, j->K, j->alpha, A, j->lda,
                      shared && !j->by_rows ? j->shared : NULL, B, j->ldb,
                      shared && j->by_rows ? j->shared : NULL, j->beta, C, j->ldc, ws,
                      bias);
}

/* Panels of the shared operand, packed by the pool's threads in tasks of
   PER panels.  */
typedef struct pack_job
{
  const sgemm_job *j;
  int panels, per;
} pack_job;

static void
pack_task (void *arg, int task, int thread)
{
  const pack_job *p = arg;
  const sgemm_job *j = p->j;
  (void) thread;
  int p0 = task * p->per, p1 = p0 + p->per < p->panels ? p0 + p->per : p->panels;
  if (j->by_rows)
    pmx_sgemm_pack (j->kind, 'B', j->transb, j->N, j->K, 1.0f, j->B, j->ldb, p0, p1,
                    (float *) j->shared);
  else
    pmx_sgemm_pack (j->kind, 'A', j->transa, j->M, j->K, j->alpha, j->A, j->lda, p0,
                    p1, (float *) j->shared);
}

/* Pack the operand that all of J's blocks read whole into PAR's
   shared buffer, where they run on our kernels: every block would
   otherwise pack a copy of it (in a training step of the MiniLM-size
   model on one Zen 4 thread, the packs took 9.9 % of the time, 5.1 %
   shared).  Nothing is shared where A is read in place, or where there is
   no memory for it.  */
static void
share_operand (const pmx_par *par, sgemm_job *j)
{
  if (!par || j->tasks < 2 || j->K <= 0)
    return;
  double first = (double) block_start (j, 1) * (j->by_rows ? j->N : j->M) * j->K;
  j->kind = pmx_sgemm_kind_for (first);
  if (j->kind == PMX_GEMM_NONE
      || (!j->by_rows && pmx_sgemm_a_direct (j->transa, j->alpha, j->lda)))
    return;
  int operand = j->by_rows ? 'B' : 'A', len = j->by_rows ? j->N : j->M;
  if (pmx_sgemm_ws_reserve (par->shared, pmx_sgemm_packed_size (j->kind, operand, len,
                                                                 j->K)) != 0)
    return;
  pack_job p = { j, pmx_sgemm_panels (j->kind, operand, len), 0 };
  p.per = (int) pmx_par_chunk (par, (size_t) p.panels, 1);
  j->shared = par->shared->buf;
  pmx_par_tasks (par, (p.panels + p.per - 1) / p.per, pack_task, &p);
}

/* Cut a dimension of LEN into blocks of whole units of ALIGN, for
   products of OTHER multiply-adds per row or column of LEN: at most
   MAX_BLOCKS blocks, none under MIN_BLOCK_MACS.  The shapes alone decide
   it.  */
static void
cut_blocks (sgemm_job *j, int len, int align, double other)
{
  long units = (len + align - 1) / align;
  long least = other > 0 ? (long) (MIN_BLOCK_MACS / (other * align)) + 1 : units;
  long tasks = units / least;
  tasks = tasks < MAX_BLOCKS ? tasks : MAX_BLOCKS;
  j->align = align;
  j->units = (int) units;
  j->tasks = tasks > 1 ? (int) tasks : 1;
}

/* pmx_sgemm_par and pmx_sgemm_par_bias.  */
static void
sgemm_par (const pmx_par *par, int transa, int transb, int M, int N, int K,
           float alpha, const float *A, int lda, const float *B, int ldb, float beta,
           float *C, int ldc, const float *bias)
{
  if (M <= 0 || N <= 0)
    return;
  sgemm_job j = { .par = par, .transa = transa, .transb = transb, .M = M, .N = N,
                  .K = K, .lda = lda, .ldb = ldb, .ldc = ldc, .alpha = alpha,
                  .beta = beta, .A = A, .B = B, .C = C, .by_rows = M >= N,
                  .kind = PMX_GEMM_NONE, .bias = bias };
  /* Rows in multiples of 24 (whole micro-panels of every kernel's tile),
     columns in multiples of 32 (whole pairs of 16-wide panels).  */
  if (j.by_rows)
    cut_blocks (&j, M, 24, (double) N * K);
  else
    cut_blocks (&j, N, 32, (double) M * K);
  share_operand (par, &j);
  pmx_par_tasks (par, j.tasks, sgemm_task, &j);
}

void
pmx_sgemm_par (const pmx_par *par, int transa, int transb, int M, int N, int K,
               float alpha, const float *A, int lda, const float *B, int ldb,
               float beta, float *C, int ldc)
{
  sgemm_par (par, transa, transb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, NULL);
}

void
pmx_sgemm_par_bias (const pmx_par *par, int transa, int transb, int M, int N, int K,
                    float alpha, const float *A, int lda, const float *B, int ldb,
                    float *C, int ldc, const float *bias)
{
  sgemm_par (par, transa, transb, M, N, K, alpha, A, lda, B, ldb, 0.0f, C, ldc, bias);
}

/* ---- Loops --------------------------------------------------------------- */

size_t
pmx_par_chunk (const pmx_par *par, size_t n, size_t least)
{
  size_t parts = 4 * (size_t) pmx_par_threads (par);
  size_t per = (n + parts - 1) / parts;
  return per < least ? least : per;
}

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
