/* distill.h -- CoFi's distillation losses (MUX-PLM-SPEC.md §6.6), forward
   and backward, on arrays: the student's and the teacher's logits and
   hidden states as pmx_tmodel_acts gives them.

     L_pred  = T^2 KL (softmax (t / T) || softmax (s / T)), summed over the
               classes and averaged over the B rows (PyTorch's kl_div with
               "batchmean" on log_softmax (s / T));
     L_layer = layer distillation, version 4: each chosen teacher layer k
               is compared with the student layers through the
               layer_transformation y_j = s_j W^T + b (an H x H map, the
               identity at first, trained with the model); MSE (t_k, y_j)
               is the mean over all elements; from the last chosen teacher
               layer backwards each takes the student layer j of least
               MSE among those below the previous choice (starting at L_s)
               that still exist (head_layer_z != 0); L_layer is the sum of
               the chosen MSEs.

   The teacher layers are CoFi's [2, 5, 8, 11] of hidden_states[1:] for 12
   layers; for other depths, every third layer counted back from the last
   (L-1, L-4, ...), which gives the same for 12.  Where no student layer
   qualifies, CoFi reuses the previous choice (and indexes out of range
   for the first): here the first falls back to the last student layer.

   Backward: every function ADDS SCALE times its gradient to the gradient
   buffers given (NULL: not wanted).  Nothing here allocates except where
   said, prints or fails.  */

#ifndef PRUMUX_DISTILL_H
#define PRUMUX_DISTILL_H

#include <stddef.h>

typedef struct pmx_par pmx_par;         /* lib/cpu/par.h */

#define PMX_DISTILL_MAX_LAYERS 64

/* L_pred of student logits S and teacher logits T (B, C) at temperature
   TEMP; DS (B, C) += SCALE * dL_pred/dS.  */
double pmx_distill_pred (const float *s, const float *t, int B, int C,
                         double temp, float *ds, double scale);

/* The teacher layers (0-based indices of layer outputs) of a teacher of
   LAYERS layers, ascending, into OUT; returns their count.  */
int pmx_distill_teacher_layers (int layers, int *out);

/* L_layer.  S[j] (R, HS) is the output of student layer j (j < LS), T[k]
   (R, HT) that of teacher layer TL[k] (k < NT, from
   pmx_distill_teacher_layers); W (HT, HS), B (HT) the
   layer_transformation (HS < HT once the student's hidden size is pruned).
   EXISTS (LS) says which student layers may be chosen (NULL: all).
   SCRATCH holds (LS + 1) * R * HT floats.  ALIGN (NT), if not NULL, gets
   the student layer chosen for each teacher layer.  DS[j] (R, HS), DW,
   DB += SCALE * the gradients (DS or any DS[j] may be NULL).  On PAR's
   threads (NULL: the caller's alone), with the same bits.  */
double pmx_distill_layers (const pmx_par *par, const float *const *s, int LS,
                           const float *const *t, int NT, const float *W,
                           const float *b, const int *exists, size_t R,
                           int HS, int HT, float *scratch, int *align,
                           float *const *ds, float *dW, float *db,
                           double scale);

#endif
