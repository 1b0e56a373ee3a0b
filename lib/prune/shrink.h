/* shrink.h -- physical shrinking of a model by CoFi masks, exactly as
   CoFi's update_params then prune_model_with_z (MUX-PLM-SPEC.md §6.9):

   (a) the soft z are baked into the weights (W is (out, in)), in CoFi's
       order of multiplication, so the result is that of the published
       code bit for bit:
         intermediate_z  output.dense columns;  mlp_z  output.dense rows
                         and bias
         head_z          value rows and bias (each head's head_dim rows)
         head_layer_z    attention.output.dense rows and bias
         hidden_z        embedding tables' columns; query, key, value and
                         intermediate columns; attention.output.dense rows
                         and bias; output.dense rows (not its bias); the
                         pooler's columns (without a pooler, N = 1:
                         the classifier's columns, by the pooler's
                         rule); PruMUX: instance_embedding's
                         columns and demux dense_1's columns by
                         [hidden_z ; hidden_z]
   (b) the structures whose z is 0 are cut:
         heads with head_z * head_layer_z = 0: their query, key, value rows
           and attention.output.dense columns; no head left: no attention
           tensors (the encoder runs the sublayer as identity)
         FFN dimensions with intermediate_z * mlp_z = 0: intermediate rows
           and output.dense columns; none left: no FFN tensors
         hidden dimensions with hidden_z = 0, everywhere: embedding tables
           and LayerNorm, every layer's inputs, outputs and LayerNorms,
           instance_embedding and demux_instance_embedding columns, demux
           dense_1 input columns [e_i[index] ; h[index]] (its output, and
           the demux after it, keep their width), the pooler's input (its
           output and the classifier keep theirs: pooler.dense becomes
           (H, H'), as CoFi's checkpoints have it); without a pooler
           (N = 1, cls or mean pooling) the classifier's input columns
           likewise)
       A fully pruned sublayer's LayerNorm, which CoFi leaves unsliced and
       unused, is dropped (a .pmx has no tensors for such a sublayer).

   As in CoFi, a sublayer whose structure masks are all 0 while its layer
   mask is not is removed, although the masked model still adds its
   output bias (CoFi issue #36: rare with learnt masks).

   The masked forward with soft hidden_z is not exactly the shrunk model
   (CoFi scales the residual stream and output.dense's bias by hidden_z,
   update_params does not): shrinking follows CoFi's update_params, which
   is what the published pruned models are.

   Errors: -1 / NULL with pmx_error set.  */

#ifndef PRUMUX_SHRINK_H
#define PRUMUX_SHRINK_H

#include "cofi-z.h"
#include "model.h"

/* Masks of all ones of M's shape (layers, hidden, per-layer heads and FFN
   widths from its tensors).  */
pmx_cofi_z *pmx_model_cofi_z (const pmx_model *m);

/* CoFi's prunable size of M's unpruned shape (hidden = heads * head_dim;
   pmx_cofi_prunable_size), against which pmx_cofi_z_sparsity counts.  */
double pmx_model_prunable (const pmx_model *m);

/* Shrink M by Z (M's shape) into *RECS (NRECS records of tensors, in M's
   order; the caller frees each with pmx_record_free, then the array) and
   CFG (M's configuration with the pruned hidden size and the sparsity;
   its labels are M's: valid while M is open, not to be freed).  */
int pmx_shrink (const pmx_model *m, const pmx_cofi_z *z,
                pmx_model_config *cfg, pmx_record **recs, int *nrecs);

/* pmx_shrink, then write the result to PATH (pmx_model_save_records:
   atomic; COMPRESS as there).  The written identity goes to ID (33 bytes)
   when not NULL.  */
int pmx_shrink_save (const pmx_model *m, const pmx_cofi_z *z,
                     const char *path, int compress, char *id);

#endif
