/* train-prune.h -- one step of CoFi structured pruning (MUX-PLM-SPEC.md
   §6.5-§6.7), as prumux-prune takes it and the test suite checks it
   against PyTorch:

     the teacher's forward (no dropout, no gradient);
     a fresh hard-concrete sample z of the masks (lib/prune/l0.h);
     the student's forward under z (dropout on);
     loss = alpha_ce L_pred + alpha_layer L_layer (lib/train/distill.h)
            + lambda1 (s - t) + lambda2 (s - t)^2, s the expected sparsity,
            t the target;
     its gradient with respect to the student's weights (the
     layer_transformation included), the log alphas and the lambdas;
   then the updates: the student's gradient norm clipped, AdamW on the
   student (embeddings frozen), AdamW on the log alphas at REG_LR, AdamW
   ascent on the lambdas (learning rate -REG_LR), the log alphas clamped
   (without an L0 module, only the student's update).

   The student is a pmx_tmodel with a layer_transformation and m->open
   set.  Ownership: the pruner borrows the models and the
   L0 module and owns the rest.  Errors: NULL / -1 with pmx_error set.  */

#ifndef PRUMUX_TRAIN_PRUNE_H
#define PRUMUX_TRAIN_PRUNE_H

#include "cofi-z.h"
#include "distill.h"
#include "l0.h"
#include "optim.h"
#include "stream.h"
#include "train-model.h"

typedef struct pmx_pruner
{
  pmx_tmodel *teacher, *student;        /* borrowed */
  pmx_l0 *l0;                           /* borrowed */
  pmx_adamw *opt;                       /* the student's optimizer */
  float *l0_m, *l0_v;                   /* the log alphas' moments */
  float lam_m[2], lam_v[2];             /* the lambdas' */
  pmx_cofi_z *z, *dz;                   /* the last sample; dL/dz */
  int tl[PMX_DISTILL_MAX_LAYERS], nt;   /* the teacher layers distilled */
  float *scratch;
  size_t scratch_n;
  float temperature, alpha_ce, alpha_layer, clip, reg_lr;
  uint64_t seed;                        /* of the student's dropout */
} pmx_pruner;

/* What one step measured.  */
typedef struct pmx_prune_stats
{
  double loss, pred, layer, lagrangian, expected_sparsity, target, grad_norm;
} pmx_prune_stats;

/* A pruner with CoFi's defaults: temperature 2, alpha_ce 0.1,
   alpha_layer 0.9, clip 1, reg_lr 0.01.  */
pmx_pruner *pmx_pruner_new (pmx_tmodel *teacher, pmx_tmodel *student,
                            pmx_l0 *l0, uint64_t seed);
void pmx_pruner_free (pmx_pruner *p);

/* The forward and backward of step STEP on batch B towards the target
   sparsity TARGET, with the masks' noise NOISE (l0->n values in (0, 1);
   NULL: drawn, advancing l0->draws): leaves the gradients in the student,
   l0->grad and l0->lambda_grad (zeroed first).  */
int pmx_prune_grads (pmx_pruner *p, const pmx_tbatch *b, int64_t step,
                     double target, const float *noise, pmx_prune_stats *st);

/* A step of the fine-tuning that follows pruning (no masks, no L0
   module: L0 may be NULL in pmx_pruner_new): the distillation losses'
   gradients, every student layer alignable.  */
int pmx_finetune_grads (pmx_pruner *p, const pmx_tbatch *b, int64_t step,
                        pmx_prune_stats *st);

/* The updates of step STEP (0-based) at the student's learning rate LR;
   sets st->grad_norm (before clipping).  */
void pmx_prune_update (pmx_pruner *p, int64_t step, float lr,
                       pmx_prune_stats *st);

/* The state of a pruning run at PATH (atomically), for --resume: the
   student and its AdamW moments (pmx_train_state_save_x), the log alphas,
   the multipliers, their moments, and the noise drawn so far (META, kept
   by the caller, gets l0_draws).  pmx_pruner_load reads it back into P
   (the same shapes) and META (initialised by the caller).  */
int pmx_pruner_save (const pmx_pruner *p, const char *path,
                     pmx_meta *meta);
int pmx_pruner_load (pmx_pruner *p, const char *path, pmx_meta *meta);

/* The distillation of the teacher's last forward into the student's over
   the same batch (no masks: every student layer can be aligned, as in
   CoFi's fine-tuning of a pruned model; Z: a layer whose head_layer_z is
   0 cannot): adds the gradients, stores the two losses; -1 without
   memory.  */
int pmx_prune_distil (pmx_pruner *p, const pmx_cofi_z *z, double *pred,
                       double *layer);

#endif
