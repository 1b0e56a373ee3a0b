/* weights.h -- where prumux-mux, prumux-infer and prumux-demux get their
   weights: a model archive (-m), or for tests and benchmarks a tensor
   stream (--weights) whose first record holds the named weights and whose
   META gives the configuration.  */

#ifndef PRUMUX_WEIGHTS_H
#define PRUMUX_WEIGHTS_H

#include "model.h"

typedef struct weights
{
  pmx_model *model;             /* from -m, or NULL */
  pmx_record rec;               /* from --weights */
  pmx_model_config cfg;         /* the model's, or built from META */
  pmx_tensor_lookup get;
  const void *ctx;
} weights;

/* Open MODEL_PATH or WEIGHTS_PATH (exactly one is non-NULL); die on error.
   META keys of a weights stream: id, arch, hidden, layers, head_dim,
   mux_n, mux_variant, demux_variant, demux_layers, num_labels, labels
   (comma-separated names), max_length, attend_padding, ln_eps, pooling,
   normalize.  */
void weights_open (weights *w, const char *model_path, const char *weights_path);
void weights_close (weights *w);

#endif
