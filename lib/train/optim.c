/* optim.c -- AdamW, schedules and clipping (see optim.h).  */

#include <config.h>
#include "optim.h"
#include "error.h"
#include "kernels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

pmx_adamw *
pmx_adamw_new (const pmx_tmodel *model)
{
  pmx_adamw *o = calloc (1, sizeof *o);
  if (o)
    {
      o->n = model->total;
      o->m = calloc (o->n ? o->n : 1, sizeof (float));
      o->v = calloc (o->n ? o->n : 1, sizeof (float));
    }
  if (!o || !o->m || !o->v)
    {
      pmx_adamw_free (o);
      pmx_error ("optimizer: out of memory");
      return NULL;
    }
  o->beta1 = 0.9f;
  o->beta2 = 0.999f;
  o->eps = 1e-8f;
  return o;
}

void
pmx_adamw_free (pmx_adamw *o)
{
  if (!o)
    return;
  free (o->m);
  free (o->v);
  free (o);
}

int
pmx_adamw_trains (const pmx_adamw *o, const pmx_tparam *p)
{
  return !p->frozen && !(o->freeze_embeddings && p->embedding);
}

/* Adam's bias corrections at step T, as torch computes them in float: the
   step size LR / (1 - beta1^t) and sqrt (1 - beta2^t).  */
static void
bias_corrections (float lr, float beta1, float beta2, int64_t t, float *step_size,
                  float *bc2_sqrt)
{
  *step_size = lr / (1.0f - powf (beta1, (float) t));
  *bc2_sqrt = sqrtf (1.0f - powf (beta2, (float) t));
}

void
pmx_adamw_step (pmx_adamw *o, pmx_tmodel *model, float lr)
{
  o->t++;
  /* As torch.optim.AdamW (single-tensor path): decay first, then the
     bias-corrected Adam update, in float.  */
  float step_size, bc2_sqrt;
  bias_corrections (lr, o->beta1, o->beta2, o->t, &step_size, &bc2_sqrt);
  for (int k = 0; k < model->nparams; k++)
    {
      const pmx_tparam *p = &model->param[k];
      if (!pmx_adamw_trains (o, p))
        continue;
      float *x = model->params + p->offset, *g = model->grads + p->offset;
      float *m = o->m + p->offset, *v = o->v + p->offset;
      float decay = p->decay ? 1.0f - lr * o->weight_decay : 1.0f;
      pmx_adamw_update (x, g, m, v, p->size, decay, o->beta1, o->beta2, step_size,
                        bc2_sqrt, o->eps);
    }
}

void
pmx_adam_update (float *x, const float *g, float *m, float *v, size_t n,
                 int64_t t, float lr, float beta1, float beta2, float eps)
{
  float step_size, bc2_sqrt;
  bias_corrections (lr, beta1, beta2, t, &step_size, &bc2_sqrt);
  pmx_adamw_update (x, g, m, v, n, 1.0f, beta1, beta2, step_size, bc2_sqrt, eps);
}

double
pmx_clip_grad_norm (const pmx_adamw *o, pmx_tmodel *model, float max_norm)
{
  double ss = 0;
  for (int k = 0; k < model->nparams; k++)
    {
      const pmx_tparam *p = &model->param[k];
      if (!pmx_adamw_trains (o, p))
        continue;
      ss += pmx_sum_squares (model->grads + p->offset, p->size);
    }
  double norm = sqrt (ss);
  if (max_norm > 0 && norm > max_norm)
    {
      float coef = (float) (max_norm / (norm + 1e-6));
      for (int k = 0; k < model->nparams; k++)
        {
          const pmx_tparam *p = &model->param[k];
          if (!pmx_adamw_trains (o, p))
            continue;
          float *g = model->grads + p->offset;
          for (size_t i = 0; i < p->size; i++)
            g[i] *= coef;
        }
    }
  return norm;
}

float
pmx_lr_at (float base, int64_t step, int64_t warmup, int64_t total, int decay)
{
  if (step < warmup)
    return base * (float) step / (float) warmup;
  if (!decay)
    return base;
  if (step >= total)
    return 0.0f;
  return base * (float) (total - step) / (float) (total - warmup > 0
                                                  ? total - warmup : 1);
}
