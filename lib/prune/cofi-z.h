/* cofi-z.h -- the structure masks of CoFi pruning (MUX-PLM-SPEC.md §6.1,
   §6.3): one value z per prunable structure of an encoder,

     head          (L, heads_l)  multiplies each head's context
     head_layer    (L)           the whole attention sublayer
     intermediate  (L, ffn_l)    each FFN intermediate dimension
     mlp           (L)           the whole FFN sublayer
     hidden        (H)           each hidden dimension (all layers)

   z = 0 removes the structure; a nonzero z is kept and, in CoFi's
   deterministic masks, soft (< 1): it is baked into the weights when the
   model is shrunk (§6.9).  Shapes are those of the model being pruned, so a
   layer may have fewer heads or FFN dimensions than another.

   This is the interface between learning the masks (prumux-prune's
   training) and shrinking the model (cutting the tensors), and the form a
   user reads: the masks TSV

     layer <TAB> kind <TAB> index <TAB> z

   with a header line, one row per value, in the order of the table above
   (layer by layer for the per-layer kinds); `layer` is "-" for hidden;
   z printed with %.9g so a round trip is exact.

   Ownership: a pmx_cofi_z owns its arrays.  Errors: NULL / -1 with
   pmx_error set.  */

#ifndef PRUMUX_COFI_Z_H
#define PRUMUX_COFI_Z_H

#include <stdint.h>
#include <stdio.h>

#define PMX_COFI_MAX_LAYERS 64

typedef struct pmx_cofi_z
{
  int layers;                           /* L */
  int hidden;                           /* H */
  int heads[PMX_COFI_MAX_LAYERS];       /* heads of layer l (0: none) */
  int ffn[PMX_COFI_MAX_LAYERS];         /* FFN width of layer l (0: none) */
  float *head[PMX_COFI_MAX_LAYERS];     /* (heads[l]) or NULL when 0 */
  float head_layer[PMX_COFI_MAX_LAYERS];
  float *intermediate[PMX_COFI_MAX_LAYERS]; /* (ffn[l]) or NULL when 0 */
  float mlp[PMX_COFI_MAX_LAYERS];
  float *hidden_z;                      /* (H) */
} pmx_cofi_z;

/* Masks of all ones for a model of LAYERS layers, hidden size HIDDEN and
   per-layer HEADS and FFN widths.  */
pmx_cofi_z *pmx_cofi_z_new (int layers, int hidden, const int *heads,
                            const int *ffn);
void pmx_cofi_z_free (pmx_cofi_z *z);

/* Write the masks TSV (header included) to F; -1 on a write error.  */
int pmx_cofi_z_write_tsv (const pmx_cofi_z *z, FILE *f);

/* Read a masks TSV from F (NAME in messages).  The shape comes from the
   rows; every row of every kind must be present exactly once, with
   indices 0..n-1 and finite z in [0, 1].  */
pmx_cofi_z *pmx_cofi_z_read_tsv (FILE *f, const char *name);

/* CoFi's prunable size of an encoder (MUX-PLM-SPEC.md §6.4): per layer,
   4 H^2 + 4 H for the attention sublayer and 2 H I + 5 H for the FFN
   sublayer, at the unpruned shape (LAYERS, HIDDEN, HEADS heads, FFN
   width).  85,017,600 for BERT-base.  */
double pmx_cofi_prunable_size (int layers, int hidden, int heads, int ffn);

/* The sparsity the masks give, as CoFi's calculate_model_size counts it:
   1 - remaining / PRUNABLE with
     remaining = sum_l kept_heads_l * kept_hidden * 4 * HEAD_DIM
               + sum_l kept_ffn_l * kept_hidden * 2
   where a head (an FFN dimension) is kept when its z and its layer's z
   are nonzero.  */
double pmx_cofi_z_sparsity (const pmx_cofi_z *z, int head_dim,
                            double prunable);

#endif
