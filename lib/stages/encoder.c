/* encoder.c -- the encoder's front end (encoder.h): the device by name,
   the checks every backend shares, and the stream stage.  The layers
   themselves run in a backend (backend.h; cpu-encoder.c).  */

#include <config.h>
#include "encoder.h"
#include "backend.h"
#include "error.h"
#include "kernels.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pmx_encoder
{
  pmx_device dev;
  void *impl;                   /* the backend's encoder, owned */
  int H;
  int attend_padding;
};

/* ---- Devices -------------------------------------------------------------- */

static const pmx_backend *const backends[] = {
  &pmx_cpu_backend,
#ifdef HAVE_CUDA
  &pmx_cuda_backend,
#endif
};
enum { NBACKENDS = sizeof backends / sizeof backends[0] };

/* The devices of this build, for messages.  */
#ifdef HAVE_CUDA
# define DEVICES PMX_DEVICES ", cuda:K, cuda:K:tf32"
#else
# define DEVICES PMX_DEVICES
#endif

int
pmx_device_open (const char *name, pmx_device *dev)
{
  if (!name || !*name)
    name = "cpu";
  const char *colon = strchr (name, ':');
  size_t n = colon ? (size_t) (colon - name) : strlen (name);
  const char *variant = colon ? colon + 1 : NULL;
  for (int i = 0; i < NBACKENDS; i++)
    if (strlen (backends[i]->name) == n && !strncmp (name, backends[i]->name, n))
      {
        dev->backend = backends[i];
        if (!(dev->handle = backends[i]->device (variant)))
          return pmx_error_prefix ("device '%s'", name);
        return 0;
      }
  if (n == 4 && !strncmp (name, "cuda", 4))
    return pmx_error ("device '%s': this prumux was built without CUDA (devices: %s)",
                      name, DEVICES);
  return pmx_error ("unknown device '%s' (devices: %s)", name, DEVICES);
}

int
pmx_encoder_device_check (const char *device)
{
  pmx_device dev;
  return pmx_device_open (device, &dev);
}

/* ---- The encoder ---------------------------------------------------------- */

pmx_encoder *
pmx_encoder_new (const pmx_model_config *cfg, pmx_tensor_lookup get, const void *ctx,
                 const char *device, int threads)
{
  if (cfg->hidden < 1 || cfg->layers < 0 || cfg->layers > 1000 || cfg->head_dim < 1
      || !(cfg->ln_eps > 0))
    {
      pmx_error ("bad encoder configuration (hidden %d, layers %d, head_dim %d, "
                 "ln_eps %g)", cfg->hidden, cfg->layers, cfg->head_dim, cfg->ln_eps);
      return NULL;
    }
  pmx_encoder *e = calloc (1, sizeof *e);
  if (!e)
    {
      pmx_error ("out of memory");
      return NULL;
    }
  if (pmx_device_open (device, &e->dev) < 0
      || !(e->impl = e->dev.backend->encoder_new (e->dev.handle, cfg, get, ctx,
                                                  threads)))
    {
      free (e);
      return NULL;
    }
  e->H = cfg->hidden;
  e->attend_padding = cfg->attend_padding;
  return e;
}

void
pmx_encoder_free (pmx_encoder *e)
{
  if (!e)
    return;
  e->dev.backend->encoder_free (e->impl);
  free (e);
}

int
pmx_encoder_hidden (const pmx_encoder *e)
{
  return e->H;
}

const char *
pmx_encoder_device (const pmx_encoder *e)
{
  return e->dev.backend->device_name (e->dev.handle);
}

const char *
pmx_encoder_describe (const pmx_encoder *e)
{
  return e->dev.backend->encoder_describe (e->impl);
}

void
pmx_encoder_set_chunk (pmx_encoder *e, int tokens)
{
  if (e->dev.backend->encoder_set_chunk)
    e->dev.backend->encoder_set_chunk (e->impl, tokens);
}

int
pmx_encoder_forward (pmx_encoder *e, const float *x, int G, int T,
                     const int32_t *lengths, const int32_t *positions, int P,
                     float *out)
{
  if (G < 0 || T < 1 || P < 1 || !positions)
    return pmx_error ("bad encoder call: %d sequences of %d tokens, %d positions",
                      G, T, P);
  for (int p = 0; p < P; p++)
    if (positions[p] < 0 || positions[p] >= T)
      return pmx_error ("position %d is out of range 0..%d", (int) positions[p], T - 1);
  if (lengths)
    for (int g = 0; g < G; g++)
      if (lengths[g] < 1 || lengths[g] > T)
        return pmx_error ("sequence %d: length %d is out of range 1..%d", g,
                          (int) lengths[g], T);
  return e->dev.backend->encoder_forward (e->impl, x, G, T, lengths, positions, P, out);
}

/* ---- The stream stage ----------------------------------------------------- */

int
pmx_encoder_stage (pmx_encoder *e, const pmx_record *in, const int32_t *positions,
                   int P, pmx_record *out)
{
  const pmx_tensor *x = pmx_record_expect (in, "embeds", PMX_F32, 3);
  if (!x)
    return -1;
  int64_t G = x->shape[0], T = x->shape[1];
  if (x->shape[2] != e->H)
    return pmx_error ("tensor 'embeds' has hidden size %lld, the model %d",
                      (long long) x->shape[2], e->H);
  if (T < 1 || T > 65536 || G > INT32_MAX / (T > P ? T : P))
    return pmx_error ("tensor 'embeds': bad shape %lldx%lldx%d", (long long) G,
                      (long long) T, e->H);
  const int32_t *lengths = NULL;
  if (!e->attend_padding)
    {
      const pmx_tensor *lt = pmx_record_expect (in, "lengths", PMX_I32, 1);
      if (!lt)
        return pmx_error_prefix ("the model masks padding");
      if (lt->shape[0] != G)
        return pmx_error ("tensor 'lengths' has %lld rows, 'embeds' %lld",
                          (long long) lt->shape[0], (long long) G);
      lengths = lt->data;
    }
  pmx_record_reset (out);
  for (int i = 0; i < in->count; i++)
    {
      const pmx_tensor *t = pmx_record_at (in, i);
      if (!strcmp (t->name, "embeds") || !strcmp (t->name, "hidden")
          || !strcmp (t->name, "positions"))
        continue;
      pmx_tensor *c = pmx_record_add (out, t->name, t->dtype, t->rank, t->shape);
      if (!c)
        return -1;
      memcpy (c->data, t->data, t->nbytes);
    }
  int64_t hshape[3] = { G, P, e->H }, pshape[1] = { P };
  pmx_tensor *h = pmx_record_add (out, "hidden", PMX_F32, 3, hshape);
  pmx_tensor *pt = pmx_record_add (out, "positions", PMX_I32, 1, pshape);
  if (!h || !pt)
    return -1;
  memcpy (pt->data, positions, (size_t) P * sizeof (int32_t));
  if (pmx_encoder_forward (e, x->data, (int) G, (int) T, lengths, positions, P,
                           h->data) < 0)
    return -1;
  /* A NaN or infinity here would turn every later score into NaN: say so
     now, naming the sequence.  */
  size_t per = (size_t) P * (size_t) e->H;
  for (int64_t g = 0; g < G; g++)
    if (pmx_count_nonfinite ((const float *) h->data + g * per, per))
      return pmx_error ("sequence %lld: the encoder's output is not finite"
                        " (NaN or infinity): the input or the model overflows",
                        (long long) g);
  return 0;
}
