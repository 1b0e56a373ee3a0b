/* prumux.h -- the public interface of libprumux, in one include:
   pkg-config --cflags --libs libprumux.  */
#ifndef PRUMUX_H
#define PRUMUX_H
#include "error.h"      /* how failures are reported */
#include "stream.h"     /* the tensor stream */
#include "model.h"      /* model archives */
#include "pipeline.h"   /* the stages, and the check of an input stream */
#include "vocab.h"      /* vocabularies */
#include "wordpiece.h"  /* BERT WordPiece tokenization */
#include "embed.h"      /* the embedding stage */
#include "mux.h"        /* the multiplexer */
#include "encoder.h"    /* the BERT encoder */
#include "demux.h"      /* demultiplexers and heads */
#include "metrics.h"    /* evaluation metrics */
#include "fit.h"        /* Auto-PruMUX */
#include "train-ops.h"  /* training: forward and backward of each op */
#include "train-model.h" /* training: the trainable model */
#include "optim.h"      /* training: AdamW, schedules, clipping */
#include "train-data.h" /* training: examples and batches */
#include "train-io.h"   /* training: checkpoints and resumable state */
#include "cofi-z.h"     /* pruning: CoFi structure masks */
#include "l0.h"         /* pruning: hard-concrete masks (CoFi's L0Module) */
#include "shrink.h"     /* pruning: cutting a model by its masks */
#include "distill.h"    /* pruning: distillation losses */
#include "train-prune.h" /* pruning: one CoFi pruning step */
#endif
