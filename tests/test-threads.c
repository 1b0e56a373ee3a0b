/* test-threads.c -- the thread pool (lib/cpu/threads.h) under stress:
   tens of thousands of jobs of 1 to 40 tasks, back to back (workers still
   spinning) and after pauses (workers asleep), on pools of 2, 3 and 8
   threads.  Every task of every job must run exactly once, on a thread
   number below the pool's size, and a job must be over (all its tasks
   done) when pmx_pool_run returns.  */

#include <config.h>
#include "threads.h"
#include "error.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "check.h"

enum { MAX_TASKS = 40 };

typedef struct job
{
  atomic_int runs[MAX_TASKS];
  atomic_int bad_thread;
  int size;
} job;

static void
task (void *arg, int t, int thread)
{
  job *j = arg;
  atomic_fetch_add (&j->runs[t], 1);
  if (thread < 0 || thread >= j->size)
    atomic_store (&j->bad_thread, 1);
}

static void
pause_us (long us)
{
  struct timespec ts = { 0, us * 1000 };
  nanosleep (&ts, NULL);
}

int
main (void)
{
  static const int sizes[] = { 2, 3, 8 };
  unsigned rng = 12345;
  for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++)
    {
      pmx_pool *p = pmx_pool_new (sizes[s]);
      if (!p)
        check_fatal ("pmx_pool_new");
      CHECK (pmx_pool_size (p) == sizes[s], "pool of %d has size %d", sizes[s],
             pmx_pool_size (p));
      int jobs = 20000, wrong = 0;
      for (int i = 0; i < jobs && !wrong; i++)
        {
          job j = { .size = sizes[s] };
          rng = rng * 1103515245u + 12345u;
          int n = 1 + (int) (rng >> 16) % MAX_TASKS;
          for (int t = 0; t < MAX_TASKS; t++)
            atomic_init (&j.runs[t], 0);
          atomic_init (&j.bad_thread, 0);
          /* Now and then a pause long enough for the workers to sleep.  */
          if (i % 500 == 0)
            pause_us (2000);
          pmx_pool_run (p, task, &j, n);
          for (int t = 0; t < MAX_TASKS; t++)
            wrong += atomic_load (&j.runs[t]) != (t < n);
          wrong += atomic_load (&j.bad_thread);
          CHECK (!wrong, "pool of %d, job %d of %d tasks: a task ran not exactly"
                 " once or on a thread out of range", sizes[s], i, n);
        }
      pmx_pool_free (p);
      if (!wrong)
        printf ("pool of %d: %d jobs, every task once\n", sizes[s], jobs);
    }
  /* A pool freed at once, its workers maybe not yet waiting.  */
  for (int i = 0; i < 50; i++)
    {
      pmx_pool *p = pmx_pool_new (3);
      if (!p)
        check_fatal ("pmx_pool_new");
      pmx_pool_free (p);
    }
  CHECK (pmx_pool_new (0) == NULL, "a pool of 0 threads was made");
  return check_status ();
}
