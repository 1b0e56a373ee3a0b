/* optim.h -- AdamW, learning-rate schedules and gradient clipping for a
   pmx_tmodel, computed as torch.optim.AdamW, transformers'
   get_linear_schedule_with_warmup and torch.nn.utils.clip_grad_norm_ do.

   A parameter is trained unless its table entry is frozen (the fixed
   instance keys) or it is an embeddings.* tensor and FREEZE_EMBEDDINGS is
   set (MUX-PLM-SPEC.md §6.7).  Weight decay applies only to entries marked
   decay (matrices and embedding tables, not biases or LayerNorms).

   Ownership: the optimizer owns its moment buffers, which have the
   model's flat layout (so a checkpoint stores them as two flat tensors).
   Errors: NULL with pmx_error set.  */

#ifndef PRUMUX_OPTIM_H
#define PRUMUX_OPTIM_H

#include <stddef.h>
#include <stdint.h>
#include "train-model.h"

typedef struct pmx_adamw
{
  float beta1, beta2, eps, weight_decay;
  int freeze_embeddings;
  int64_t t;                    /* steps taken */
  size_t n;                     /* floats in m and v (= model total) */
  float *m, *v;                 /* first and second moments */
} pmx_adamw;

/* Defaults: betas (0.9, 0.999), eps 1e-8, weight decay 0.  */
pmx_adamw *pmx_adamw_new (const pmx_tmodel *model);
void pmx_adamw_free (pmx_adamw *o);

/* Whether the optimizer updates table entry P.  */
int pmx_adamw_trains (const pmx_adamw *o, const pmx_tparam *p);

/* One update of every trained parameter with learning rate LR.  */
void pmx_adamw_step (pmx_adamw *o, pmx_tmodel *model, float lr);

/* One AdamW update without weight decay of N values X with gradients G and
   moments M, V, at step T (1-based), with learning rate LR (negative:
   gradient ascent), in pmx_adamw_step's arithmetic.  For parameters kept
   outside a pmx_tmodel (CoFi's log alphas and Lagrange multipliers).  */
void pmx_adam_update (float *x, const float *g, float *m, float *v, size_t n,
                      int64_t t, float lr, float beta1, float beta2,
                      float eps);

/* The global L2 norm of the trained parameters' gradients; if it exceeds
   MAX_NORM (> 0), scale them by MAX_NORM / (norm + 1e-6).  Returns the
   norm before clipping.  */
double pmx_clip_grad_norm (const pmx_adamw *o, pmx_tmodel *model,
                           float max_norm);

/* pmx_clip_grad_norm and then pmx_adamw_step in one pass over the
   gradients (the clipping factor applied as each is read: the same
   bits), which it leaves 0, so that the next pmx_tmodel_zero_grad has
   nothing to do: the two passes of scaling and zeroing saved.  Returns
   the norm before clipping.  */
double pmx_adamw_clip_step (pmx_adamw *o, pmx_tmodel *model, float lr, float max_norm);

/* The learning rate of optimizer step STEP (0-based) of TOTAL: linear
   warm-up over WARMUP steps from 0, then linear decay to 0 at TOTAL; or,
   with DECAY = 0, constant after the warm-up.  */
float pmx_lr_at (float base, int64_t step, int64_t warmup, int64_t total,
                 int decay);

#endif
