/* layers.c -- the description of the encoder's layers that every backend
   builds from (backend.h): each layer's weights found by name, checked,
   and its shape (heads, FFN width, or an identity sublayer) read from them
   (MUX-PLM-SPEC.md section 3; CoFi-pruned models).  */

#include <config.h>
#include "backend.h"
#include "error.h"

#include <stdio.h>
#include <string.h>

typedef struct loader
{
  pmx_tensor_lookup get;
  const void *ctx;
  int layer;
} loader;

static const pmx_tensor *
find (const loader *ld, const char *suffix)
{
  char name[PMX_NAME_MAX + 1];
  snprintf (name, sizeof name, "encoder.layer.%d.%s", ld->layer, suffix);
  return ld->get (ld->ctx, name);
}

/* The data of tensor SUFFIX if it is f32 of shape (D0) or (D0, D1) (D1 < 0:
   rank 1); NULL with an error otherwise.  */
static const float *
expect (const loader *ld, const char *suffix, int64_t d0, int64_t d1)
{
  const pmx_tensor *t = find (ld, suffix);
  int rank = d1 < 0 ? 1 : 2;
  char shape[192];
  if (!t)
    pmx_error ("encoder.layer.%d.%s: missing", ld->layer, suffix);
  else if (t->dtype != PMX_F32)
    pmx_error ("encoder.layer.%d.%s: dtype %s, expected f32", ld->layer, suffix,
               pmx_dtype_name (t->dtype));
  else if (t->rank != rank || t->shape[0] != d0 || (rank == 2 && t->shape[1] != d1))
    {
      if (rank == 1)
        pmx_error ("encoder.layer.%d.%s: shape %s, expected %lld", ld->layer, suffix,
                   pmx_shape_str (t, shape, sizeof shape), (long long) d0);
      else
        pmx_error ("encoder.layer.%d.%s: shape %s, expected %lldx%lld", ld->layer,
                   suffix, pmx_shape_str (t, shape, sizeof shape), (long long) d0,
                   (long long) d1);
    }
  else
    return t->data;
  return NULL;
}

static int
load_attention (pmx_layer_weights *w, const loader *ld, int H, int dh)
{
  static const char *const names[] = {
    "attention.self.query.weight", "attention.self.key.weight",
    "attention.self.value.weight", "attention.output.dense.weight"
  };
  int present = 0;
  for (int i = 0; i < 4; i++)
    present += find (ld, names[i]) != NULL;
  if (present == 0)
    return 0;                   /* fully pruned: identity, no LayerNorm */
  for (int i = 0; i < 4; i++)
    if (!find (ld, names[i]))
      return pmx_error ("encoder.layer.%d.%s: missing (the layer has other "
                        "attention weights)", ld->layer, names[i]);
  const pmx_tensor *q = find (ld, names[0]);
  int64_t A = q->rank == 2 ? q->shape[0] : -1;
  if (A <= 0 || A % dh != 0 || A > (int64_t) 1 << 20)
    return pmx_error ("encoder.layer.%d.%s: %lld rows is not a whole number of "
                      "%d-wide heads", ld->layer, names[0], (long long) A, dh);
  if (!(w->wq = expect (ld, names[0], A, H))
      || !(w->bq = expect (ld, "attention.self.query.bias", A, -1))
      || !(w->wk = expect (ld, names[1], A, H))
      || !(w->bk = expect (ld, "attention.self.key.bias", A, -1))
      || !(w->wv = expect (ld, names[2], A, H))
      || !(w->bv = expect (ld, "attention.self.value.bias", A, -1))
      || !(w->wo = expect (ld, names[3], H, A))
      || !(w->bo = expect (ld, "attention.output.dense.bias", H, -1))
      || !(w->ln1_g = expect (ld, "attention.output.LayerNorm.weight", H, -1))
      || !(w->ln1_b = expect (ld, "attention.output.LayerNorm.bias", H, -1)))
    return -1;
  w->A = (int) A;
  w->heads = (int) (A / dh);
  return 0;
}

static int
load_ffn (pmx_layer_weights *w, const loader *ld, int H)
{
  const pmx_tensor *up = find (ld, "intermediate.dense.weight");
  const pmx_tensor *down = find (ld, "output.dense.weight");
  if (!up && !down)
    return 0;                   /* fully pruned: identity */
  if (!up || !down)
    return pmx_error ("encoder.layer.%d.%s: missing (the layer has the other "
                      "FFN weight)", ld->layer,
                      up ? "output.dense.weight" : "intermediate.dense.weight");
  int64_t F = up->rank == 2 ? up->shape[0] : -1;
  if (F <= 0 || F > (int64_t) 1 << 24)
    return pmx_error ("encoder.layer.%d.intermediate.dense.weight: bad shape",
                      ld->layer);
  if (!(w->w1 = expect (ld, "intermediate.dense.weight", F, H))
      || !(w->b1 = expect (ld, "intermediate.dense.bias", F, -1))
      || !(w->w2 = expect (ld, "output.dense.weight", H, F))
      || !(w->b2 = expect (ld, "output.dense.bias", H, -1))
      || !(w->ln2_g = expect (ld, "output.LayerNorm.weight", H, -1))
      || !(w->ln2_b = expect (ld, "output.LayerNorm.bias", H, -1)))
    return -1;
  w->F = (int) F;
  return 0;
}

int
pmx_layer_weights_load (pmx_layer_weights *w, pmx_tensor_lookup get, const void *ctx,
                        int layer, int H, int dh)
{
  loader ld = { get, ctx, layer };
  memset (w, 0, sizeof *w);
  return load_attention (w, &ld, H, dh) < 0 || load_ffn (w, &ld, H) < 0 ? -1 : 0;
}
