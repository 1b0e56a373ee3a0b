/* mux-weights.h -- prumux-mux and prumux-demux: where the weights come
   from.  A model archive (-m), or for tests and benchmarks a tensor stream
   (--weights) whose first record holds the named weights and whose META
   gives the configuration, as prumux-infer --weights reads it.  */

#ifndef PRUMUX_MUX_WEIGHTS_H
#define PRUMUX_MUX_WEIGHTS_H

#include "embed.h"
#include "model.h"

typedef struct mux_weights
{
  pmx_model *model;             /* from -m, or NULL */
  pmx_record rec;               /* from --weights */
  pmx_model_config cfg;         /* the model's, or built from META */
  pmx_tensor_lookup get;
  const void *ctx;
} mux_weights;

/* Open MODEL_PATH or WEIGHTS_PATH (exactly one is non-NULL); die on error.
   META keys of a weights stream: id, hidden, mux_n, mux_variant,
   demux_variant, demux_layers, num_labels, labels (comma-separated names),
   max_length, attend_padding, ln_eps, pooling, normalize.  */
void mux_weights_open (mux_weights *w, const char *model_path,
                       const char *weights_path);
void mux_weights_close (mux_weights *w);

#endif
