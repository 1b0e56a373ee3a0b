/* prumux-prune -- CoFi structured pruning of a BERT or MUX-BERT model
   (the "Pru" of PruMUX, MUX-PLM-SPEC.md §6): learn hard-concrete masks
   over heads, attention sublayers, FFN dimensions, FFN sublayers and
   hidden dimensions under a Lagrangian that pulls the expected sparsity
   to a target, distilling from the unpruned model, then cut the model to
   its masks and write the smaller archive.

   The loop is thin, as prumux-train's: batches from lib/train/train-data.h (the
   same batches for the same seed), the masked model from
   lib/train/train-model.h, the masks from lib/prune/l0.h, the losses from
   lib/train/distill.h, the updates from lib/train/optim.h, the cutting from
   lib/prune/shrink.h, and checkpoints from lib/train-io.h.  Everything random
   (data order, dropout, the masks' noise) follows from --seed and the
   step, so a resumed run ends bit for bit where an unbroken one does.  */

#include <config.h>
#include "cli.h"
#include "cofi-z.h"
#include "distill.h"
#include "error.h"
#include "l0.h"
#include "model.h"
#include "optim.h"
#include "shrink.h"
#include "train-data.h"
#include "train-io.h"
#include "train-model.h"
#include "train-ops.h"
#include "train-prune.h"

#include <cblas.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>


static volatile sig_atomic_t interrupted;

static void
on_signal (int sig)
{
  (void) sig;
  interrupted = 1;
}

/* The full-size student written for shrinking, removed at exit.  */
static char *full_path;

static void
remove_full (void)
{
  if (full_path)
    unlink (full_path);
}

static void
usage (void)
{
  printf ("\
Usage: %s [OPTION]... --model=TEACHER --train=FILE --sparsity=S --output=FILE\n",
          program_name);
  fputs ("\
Prune a fine-tuned BERT or MUX-BERT classifier with CoFi: learn masks over\n\
attention heads and sublayers, FFN dimensions and sublayers, and hidden\n\
dimensions that remove the fraction S of the encoder's prunable weights,\n\
distilling from the unpruned model, and write the physically smaller model,\n\
which prumux-mux, prumux-infer and prumux-demux run unchanged.\n\
\n\
Model and data:\n\
  -m, --model=TEACHER     the model to prune (a model archive with labels);\n\
                            it is also the teacher, at its own N\n\
  -t, --train=FILE        training examples (a token stream)\n\
  -d, --dev=FILE          development examples with 'label': accuracy under\n\
                            the deterministic masks at every evaluation\n\
  -S, --sparsity=S        the target sparsity, in [0, 1)\n\
\n\
Pruning:\n\
  -b, --batch=N           rows per step, a multiple of n (default 32)\n\
  -e, --epochs=X          passes over the training data (default 1)\n\
  -s, --steps=N           steps (overrides --epochs)\n\
      --lr=X              learning rate of the model, decaying linearly to 0\n\
                            (default 5e-5)\n\
      --reg-lr=X          learning rate of the masks' log alphas, and of\n\
                            the Lagrange multipliers' ascent (default 0.01)\n\
      --warmup-epochs=X   epochs over which the target sparsity rises\n\
                            linearly from 0 (default: half of the epochs)\n\
      --alpha-ce=X        weight of the logits' distillation (default 0.1)\n\
      --alpha-layer=X     weight of the layer distillation (default 0.9)\n\
      --temperature=X     distillation temperature (default 2)\n\
      --clip=X            clip the model's gradient norm to X (default 1)\n\
      --dropout=X         dropout probability (default 0.1)\n\
      --seed=N            seed of the data order, dropout and masks (42)\n\
      --finetune-epochs=X then fine-tune the pruned model by distillation\n\
                            for X epochs (default 0)\n\
      --finetune-lr=X     its constant learning rate (default: --lr)\n\
  -j, --threads=N         threads of a step (default 1); the results do\n\
                            not depend on N\n\
\n\
Output:\n\
  -o, --output=FILE       the pruned model archive; the state of the run\n\
                            goes to FILE.state\n\
      --masks=FILE        write the final masks, tab-separated (layer,\n\
                            kind, index, z)\n\
  -r, --resume            continue from FILE.state (same options)\n\
  -P, --pause-after=N     save the state and stop after N steps of this run\n\
  -E, --eval-every=N      evaluate and save the state every N steps\n\
                            (default: each epoch)\n\
      --log=FILE          append metrics to FILE, tab-separated: a header\n\
                            line when FILE is new, a '# run' line when a\n\
                            run is appended\n\
      --progress-every=N  off a terminal, a progress line every N steps\n\
                            (default: every 5% of the run; 0: none)\n\
  -q, --quiet             no progress on standard error\n\
  -v, --verbose           say on standard error how many threads a step runs\n\
                            on and which kernels its matrix products use\n", stdout);
  fputs (CLI_STANDARD_HELP, stdout);
  fputs ("\
\n\
Each step distils the teacher's logits (KL at the temperature) and layers\n\
(CoFi's layer distillation, version 4) into the student under a fresh\n\
sample of the masks, adds the Lagrangian lambda1 (s - t) + lambda2 (s - t)^2\n\
of the expected sparsity s and the target t, and takes AdamW steps: the\n\
model (embeddings frozen), the log alphas, and gradient ascent on the\n\
lambdas.  At the end CoFi's deterministic masks are baked into the weights\n\
and the pruned structures cut.  Progress goes to standard error; an\n\
interrupt (Ctrl-C) saves the state at the end of the current step.\n\
", stdout);
  cli_help_tail ();
}

/* ---- Options ------------------------------------------------------------ */

typedef struct options
{
  const char *model, *train, *dev, *output, *masks, *log;
  double sparsity, epochs, warmup_epochs, finetune_epochs;
  long long steps, seed, pause_after;
  long long progress_every;     /* -1: the default, 5% of the run */
  float lr, reg_lr, alpha_ce, alpha_layer, temperature, clip, dropout;
  float finetune_lr;
  int batch, threads, eval_every, resume, quiet, verbose;
} options;

enum
{
  OPT_REG_LR = 256, OPT_WARMUP, OPT_ALPHA_CE, OPT_ALPHA_LAYER, OPT_TEMP,
  OPT_CLIP, OPT_DROPOUT, OPT_SEED, OPT_FT_EPOCHS, OPT_FT_LR, OPT_MASKS,
  OPT_LR, OPT_LOG, OPT_PROGRESS_EVERY
};

static const struct option long_options[] = {
  {"model", required_argument, NULL, 'm'},
  {"train", required_argument, NULL, 't'},
  {"dev", required_argument, NULL, 'd'},
  {"sparsity", required_argument, NULL, 'S'},
  {"batch", required_argument, NULL, 'b'},
  {"epochs", required_argument, NULL, 'e'},
  {"steps", required_argument, NULL, 's'},
  {"lr", required_argument, NULL, OPT_LR},
  {"reg-lr", required_argument, NULL, OPT_REG_LR},
  {"warmup-epochs", required_argument, NULL, OPT_WARMUP},
  {"alpha-ce", required_argument, NULL, OPT_ALPHA_CE},
  {"alpha-layer", required_argument, NULL, OPT_ALPHA_LAYER},
  {"temperature", required_argument, NULL, OPT_TEMP},
  {"clip", required_argument, NULL, OPT_CLIP},
  {"dropout", required_argument, NULL, OPT_DROPOUT},
  {"seed", required_argument, NULL, OPT_SEED},
  {"finetune-epochs", required_argument, NULL, OPT_FT_EPOCHS},
  {"finetune-lr", required_argument, NULL, OPT_FT_LR},
  {"threads", required_argument, NULL, 'j'},
  {"output", required_argument, NULL, 'o'},
  {"masks", required_argument, NULL, OPT_MASKS},
  {"resume", no_argument, NULL, 'r'},
  {"pause-after", required_argument, NULL, 'P'},
  {"eval-every", required_argument, NULL, 'E'},
  {"log", required_argument, NULL, OPT_LOG},
  {"progress-every", required_argument, NULL, OPT_PROGRESS_EVERY},
  {"quiet", no_argument, NULL, 'q'},
  {"verbose", no_argument, NULL, 'v'},
  CLI_STANDARD_LONGOPTS,
  {NULL, 0, NULL, 0}
};

/* ---- Data --------------------------------------------------------------- */

static pmx_tdata *
read_data (const char *path, const pmx_train_config *c, int need_label)
{
  FILE *f = cli_open_input (path);
  pmx_tdata *d = pmx_tdata_read (f, path);
  if (!d)
    die_lib (NULL);
  cli_close_input (f, path);
  if (d->vocab_size && d->vocab_size != c->vocab)
    die ("%s: tokenized with a vocabulary of %d, the model has %d", path,
         d->vocab_size, c->vocab);
  for (int64_t i = 0; i < d->off[d->rows]; i++)
    if (d->ids[i] < 0 || d->ids[i] >= c->vocab)
      die ("%s: token id %d is outside the vocabulary (%d)", path, d->ids[i],
           c->vocab);
  if (need_label)
    {
      if (!d->has_label)
        die ("%s: no 'label' (prumux-tokenize --label-field)", path);
      for (int i = 0; i < d->rows; i++)
        if (d->label[i] < 0 || d->label[i] >= c->num_labels)
          die ("%s: row %d: label %d is not one of the model's %d", path, i,
               d->label[i], c->num_labels);
    }
  return d;
}

/* ---- Fine-tuning -------------------------------------------------------- */

/* Fine-tune the pruned archive at O->output (rewritten) by distillation
   from TEACHER, as CoFi's second stage does: no masks, a constant learning
   rate, the layer_transformation starting from the pruning's LT_W, LT_B
   (HT x H) with its input columns cut to the kept hidden dimensions of Z.
   Its batches continue the pruning's (micro-batches FIRST, FIRST + 1,
   ...).  Reports the dev accuracy on DEV (may be NULL).  */
static void
finetune (const options *o, pmx_tmodel *teacher, pmx_batcher *tb,
          pmx_batcher *db, long long first, long long steps,
          const float *lt_w, const float *lt_b, const pmx_cofi_z *z)
{
  pmx_model *pm = pmx_model_open (o->output);
  if (!pm)
    die_lib (NULL);
  pmx_model_config acfg = *pmx_model_config_of (pm);
  size_t vlen = 0;
  const char *vocab = pmx_model_vocab (pm, &vlen);
  pmx_record extra;
  pmx_record_init (&extra);
  pmx_tmodel *s0 = pmx_tmodel_from_archive (pm, 0, o->dropout,
                                            (uint64_t) o->seed, &extra);
  if (!s0)
    die_lib (o->output);
  pmx_train_config c = s0->cfg;
  int HT = teacher->cfg.hidden, H = c.hidden;
  c.layer_transformation = 1;
  c.lt_out = HT;
  pmx_tmodel *m = pmx_tmodel_new (&c);
  if (!m || pmx_tmodel_set_threads (m, o->threads) < 0)
    die_lib (NULL);
  pmx_tmodel_copy (m, s0);
  pmx_tmodel_free (s0);
  m->open = 1;
  for (int r = 0, k = 0; r < HT; r++, k = 0)
    {
      for (int j = 0; j < z->hidden; j++)
        if (z->hidden_z[j] != 0 && k < H)
          m->w.lt_w[(size_t) r * H + k++] = lt_w[(size_t) r * z->hidden + j];
      m->w.lt_b[r] = lt_b[r];
    }
  pmx_pruner *p = pmx_pruner_new (teacher, m, NULL, (uint64_t) o->seed);
  if (!p)
    die_lib (NULL);
  p->temperature = o->temperature;
  p->alpha_ce = o->alpha_ce;
  p->alpha_layer = o->alpha_layer;
  p->clip = o->clip;
  double sum = 0;
  for (long long step = 0; step < steps && !interrupted; step++)
    {
      uint64_t u = (uint64_t) (first + step);
      pmx_batcher_train_rows (tb, u);
      pmx_tbatch b = pmx_batcher_fill (tb, tb->B, u, 0, 0, 0, 1);
      pmx_prune_stats st;
      if (pmx_finetune_grads (p, &b, first + step, &st) < 0)
        die_lib ("fine-tuning");
      pmx_prune_update (p, first + step, o->finetune_lr, &st);
      sum += st.loss;
    }
  if (interrupted)
    die ("interrupted during fine-tuning; the pruned model in %s is not"
         " fine-tuned", o->output);
  pmx_eval r = { 0, 0, 0, 0, 0, 0, 0 };
  if (db)
    {
      db->B = tb->B;
      if (pmx_evaluate (m, db, NULL, 1, 0, 0, &r) < 0)
        die_lib ("evaluation");
    }
  if (pmx_tmodel_save (m, o->output, &acfg, &extra, vocab, vlen) < 0)
    die_lib (NULL);
  if (!o->quiet)
    {
      fprintf (stderr, "%s: fine-tuned %lld steps, loss %.4f", program_name,
               steps, steps ? sum / steps : 0.0);
      if (db && r.have_task)
        fprintf (stderr, " dev_accuracy %.4f", r.accuracy);
      fprintf (stderr, ": %s\n", o->output);
    }
  pmx_pruner_free (p);
  pmx_tmodel_free (m);
  pmx_record_free (&extra);
  pmx_model_close (pm);
}

/* ---- Main --------------------------------------------------------------- */

int
main (int argc, char **argv)
{
  cli_init (argv[0]);
  options o;
  memset (&o, 0, sizeof o);
  o.sparsity = -1;
  o.progress_every = -1;
  o.batch = 32;
  o.threads = 1;
  o.epochs = 1;
  o.warmup_epochs = -1;
  o.lr = 5e-5f;
  o.reg_lr = 0.01f;
  o.alpha_ce = 0.1f;
  o.alpha_layer = 0.9f;
  o.temperature = 2;
  o.clip = 1;
  o.dropout = 0.1f;
  o.seed = 42;
  o.finetune_lr = -1;
  int c;
  while ((c = getopt_long (argc, argv, "m:t:d:S:b:e:s:j:o:rP:E:qv"
                           CLI_STANDARD_SHORTOPTS, long_options, NULL)) != -1)
    switch (cli_standard_option (c, usage))
      {
      case 'm': o.model = optarg; break;
      case 't': o.train = optarg; break;
      case 'd': o.dev = optarg; break;
      case 'S':
        o.sparsity = cli_parse_double ("--sparsity", optarg);
        if (!(o.sparsity >= 0 && o.sparsity < 1))
          usage_error ("--sparsity: %s is not in [0, 1)", optarg);
        break;
      case 'b': o.batch = (int) cli_parse_int ("--batch", optarg, 1, 1 << 20); break;
      case 'e': o.epochs = cli_parse_nonneg ("--epochs", optarg); break;
      case 's': o.steps = cli_parse_int ("--steps", optarg, 1, 1LL << 40); break;
      case OPT_LR: o.lr = (float) cli_parse_nonneg ("--lr", optarg); break;
      case OPT_REG_LR: o.reg_lr = (float) cli_parse_nonneg ("--reg-lr", optarg); break;
      case OPT_WARMUP: o.warmup_epochs = cli_parse_nonneg ("--warmup-epochs", optarg); break;
      case OPT_ALPHA_CE: o.alpha_ce = (float) cli_parse_nonneg ("--alpha-ce", optarg); break;
      case OPT_ALPHA_LAYER: o.alpha_layer = (float) cli_parse_nonneg ("--alpha-layer", optarg); break;
      case OPT_TEMP:
        o.temperature = (float) cli_parse_nonneg ("--temperature", optarg);
        if (!(o.temperature > 0))
          usage_error ("--temperature: must be above 0");
        break;
      case OPT_CLIP: o.clip = (float) cli_parse_nonneg ("--clip", optarg); break;
      case OPT_DROPOUT:
        o.dropout = (float) cli_parse_nonneg ("--dropout", optarg);
        if (o.dropout >= 1)
          usage_error ("--dropout: must be below 1");
        break;
      case OPT_SEED: o.seed = cli_parse_int ("--seed", optarg, 0, 1LL << 62); break;
      case OPT_FT_EPOCHS: o.finetune_epochs = cli_parse_nonneg ("--finetune-epochs", optarg); break;
      case OPT_FT_LR: o.finetune_lr = (float) cli_parse_nonneg ("--finetune-lr", optarg); break;
      case 'j': o.threads = (int) cli_parse_int ("--threads", optarg, 1, 1024); break;
      case 'o': o.output = optarg; break;
      case OPT_MASKS: o.masks = optarg; break;
      case 'r': o.resume = 1; break;
      case 'P': o.pause_after = cli_parse_int ("--pause-after", optarg, 1, 1LL << 40); break;
      case 'E': o.eval_every = (int) cli_parse_int ("--eval-every", optarg, 1, 1 << 30); break;
      case OPT_LOG: o.log = optarg; break;
      case OPT_PROGRESS_EVERY:
        o.progress_every = cli_parse_int ("--progress-every", optarg, 0, 1LL << 40);
        break;
      case 'q': o.quiet = 1; break;
      case 'v': o.verbose = 1; break;
      default: usage_error (NULL);
      }
  if (optind < argc)
    usage_error ("extra operand '%s'", argv[optind]);
  if (!o.model || !o.train || !o.output || o.sparsity < 0)
    usage_error ("--model, --train, --sparsity and --output are required");
  if (o.finetune_lr < 0)
    o.finetune_lr = o.lr;
  /* The models' own threads run the steps (par.h); OpenBLAS runs inside
     them, one thread each.  */
  openblas_set_num_threads (1);

  /* The teacher, and the student: the same model with a
     layer_transformation.  */
  pmx_model *pm = pmx_model_open (o.model);
  if (!pm)
    die_lib (NULL);
  const pmx_model_config *pc = pmx_model_config_of (pm);
  if (pc->num_labels < 1)
    die ("%s: pruning distils a classifier: the model has no labels", o.model);
  if (pc->sparsity > 0 && o.sparsity <= pc->sparsity)
    die ("%s: already pruned to sparsity %.4f; a target of %.4f would not"
         " prune it further", o.model, pc->sparsity, o.sparsity);
  pmx_model_config acfg = *pc;
  size_t vocab_len = 0;
  const char *pv = pmx_model_vocab (pm, &vocab_len);
  pmx_record extra;
  pmx_record_init (&extra);
  pmx_tmodel *teacher = pmx_tmodel_from_archive (pm, 0, 0, (uint64_t) o.seed,
                                                 NULL);
  pmx_tmodel *s0 = teacher ? pmx_tmodel_from_archive (pm, 0, o.dropout,
                                                      (uint64_t) o.seed,
                                                      &extra) : NULL;
  if (!s0)
    die_lib (o.model);
  pmx_train_config scfg = s0->cfg;
  scfg.layer_transformation = 1;
  pmx_tmodel *m = pmx_tmodel_new (&scfg);
  if (!m)
    die_lib (NULL);
  pmx_tmodel_init_from (m, (uint64_t) o.seed, s0);    /* identity transformation */
  pmx_tmodel_free (s0);
  m->open = 1;
  if (pmx_tmodel_set_threads (m, o.threads) < 0
      || pmx_tmodel_set_threads (teacher, o.threads) < 0)
    die_lib (NULL);
  if (o.verbose)
    {
      char what[160];
      pmx_tmodel_describe (m, what, sizeof what);
      fprintf (stderr, "%s: %s\n", program_name, what);
    }
  const pmx_train_config *mc = &m->cfg;
  int N = mc->mux_n;
  if (o.batch % N)
    die ("--batch: %d rows is not a multiple of n = %d", o.batch, N);
  int max_len = acfg.max_length;
  if (max_len < 2 || max_len > mc->max_pos)
    max_len = mc->max_pos;

  /* Data.  */
  pmx_tdata *train = read_data (o.train, mc, 0);
  pmx_tdata *dev = o.dev ? read_data (o.dev, mc, 1) : NULL;
  if (train->rows < o.batch)
    die ("%s: %d examples, fewer than one batch of %d", o.train, train->rows,
         o.batch);
  int64_t per_epoch = train->rows / o.batch;
  long long total = o.steps ? o.steps : (long long) ceil (o.epochs * per_epoch);
  if (total < 1)
    die ("no steps to prune (--epochs or --steps)");
  double warm_epochs = o.warmup_epochs >= 0 ? o.warmup_epochs
    : (o.steps ? (double) total / per_epoch : o.epochs) / 2;
  long long warmup = (long long) (warm_epochs * per_epoch);
  int eval_every = o.eval_every ? o.eval_every : (int) per_epoch;

  /* The masks.  */
  pmx_cofi_z *shape = pmx_cofi_z_new (mc->layers, mc->hidden, mc->heads,
                                      mc->ffn);
  if (!shape)
    die_lib (NULL);
  int heads0 = pc->heads > 0 ? pc->heads : 1;
  pmx_l0 *l0 = pmx_l0_new (shape, pmx_l0_head_weight (heads0 * pc->head_dim,
                                                      heads0),
                           pmx_model_prunable (pm), (uint64_t) o.seed);
  pmx_cofi_z *zdet = l0 ? pmx_l0_z_new (l0) : NULL;
  pmx_pruner *pr = zdet ? pmx_pruner_new (teacher, m, l0, (uint64_t) o.seed)
    : NULL;
  if (!pr)
    die_lib (NULL);
  pmx_cofi_z_free (shape);
  pr->temperature = o.temperature;
  pr->alpha_ce = o.alpha_ce;
  pr->alpha_layer = o.alpha_layer;
  pr->clip = o.clip;
  pr->reg_lr = o.reg_lr;

  /* The options that must not change across --resume.  */
  char fingerprint[512];
  snprintf (fingerprint, sizeof fingerprint,
            "seed=%lld batch=%d steps=%lld lr=%.9g reg_lr=%.9g warmup=%lld"
            " sparsity=%.9g alpha=%.9g/%.9g T=%.9g clip=%.9g dropout=%.9g"
            " rows=%d", o.seed, o.batch, total, o.lr, o.reg_lr, warmup,
            o.sparsity, o.alpha_ce, o.alpha_layer, o.temperature, o.clip,
            o.dropout, train->rows);
  size_t olen = strlen (o.output);
  char *state_path = malloc (olen + 7);
  full_path = malloc (olen + 6);
  if (!state_path || !full_path)
    die ("out of memory");
  memcpy (state_path, o.output, olen);
  memcpy (state_path + olen, ".state", 7);
  memcpy (full_path, o.output, olen);
  memcpy (full_path + olen, ".full", 6);
  long long start = 0;
  if (o.resume)
    {
      pmx_meta meta;
      pmx_meta_init (&meta);
      if (pmx_pruner_load (pr, state_path, &meta) < 0)
        die_lib (NULL);
      const char *fp = pmx_meta_get (&meta, "options");
      if (!fp || strcmp (fp, fingerprint))
        die ("%s: the state was saved with other options (%s)", state_path,
             fp ? fp : "none");
      if (pmx_meta_get_int (&meta, "step", 0, total, &start) != 0)
        die ("%s: no valid step", state_path);
      pmx_meta_free (&meta);
    }

  FILE *log = NULL;
  if (o.log)
    log = cli_open_log (o.log, "step\tepoch\tlr\tloss\tpred_loss\tlayer_loss"
                        "\tlagrangian\texpected_sparsity\ttarget\tlambda1\tlambda2"
                        "\tsparsity\tdev_accuracy\texamples_per_s\n", o.output, start);
  signal (SIGINT, on_signal);
  signal (SIGTERM, on_signal);

  int32_t cls_id, mask_id;
  if (pmx_tdata_special_ids (pv, vocab_len, &cls_id, &mask_id) < 0)
    die_lib (o.model);
  if (mc->muxed && (cls_id < 0 || cls_id >= mc->vocab))
    die ("%s: a multiplexed model needs a vocabulary with [CLS]", o.model);
  pmx_batcher tb, db;
  if (pmx_batcher_init (&tb, train, o.batch, mc, max_len, (uint64_t) o.seed,
                        cls_id, -1) < 0
      || (dev && pmx_batcher_init (&db, dev, o.batch, mc, max_len,
                                   (uint64_t) o.seed, cls_id, -1) < 0))
    die_lib (NULL);
  double prunable = pmx_model_prunable (pm);

  /* On a terminal a bar, off it a line every PROGRESS_EVERY steps
     (prumux-train's progress).  */
  int tty = isatty (2) && !o.quiet;
  long long progress_every = o.quiet || tty ? 0 : o.progress_every >= 0 ? o.progress_every
    : (total + 19) / 20;
  double t0 = cli_now (), sum[4] = { 0, 0, 0, 0 }, s_hat = 0, target = 0, lag = 0;
  long long sum_n = 0, done_here = 0;
  int status = EXIT_SUCCESS, stopped = 0;
  float lr = o.lr;
  for (long long step = start; step < total; step++)
    {
      pmx_batcher_train_rows (&tb, (uint64_t) step);
      pmx_tbatch b = pmx_batcher_fill (&tb, o.batch, (uint64_t) step, 0, 0, 0,
                                       1);
      pmx_prune_stats ps;
      target = pmx_l0_target (o.sparsity, 0, step, warmup);
      if (pmx_prune_grads (pr, &b, step, target, NULL, &ps) < 0)
        die_lib (NULL);
      lr = pmx_lr_at (o.lr, step, 0, total, 1);
      pmx_prune_update (pr, step, lr, &ps);
      double lp = ps.pred, ll = ps.layer;
      lag = ps.lagrangian;
      s_hat = ps.expected_sparsity;
      sum[0] += o.alpha_ce * lp + o.alpha_layer * ll + lag;
      sum[1] += lp;
      sum[2] += ll;
      sum[3] += lag;
      sum_n++;
      done_here++;
      int pause = done_here == o.pause_after && step + 1 < total;
      int last = step + 1 == total;
      int eval_now = (step + 1) % eval_every == 0 || last;
      int stop = interrupted || pause;
      double el = cli_now () - t0;
      double rate = done_here * (double) o.batch / el;
      double eta = (total - step - 1) * el / done_here;
      if (tty)
        cli_progress_bar (step + 1, total, sum[0] / sum_n, rate, eta);
      if (progress_every && (step + 1) % progress_every == 0 && !eval_now)
        fprintf (stderr, "%s: step %lld/%lld loss %.4f expected_sparsity %.4f"
                 " %.1f ex/s ETA %d:%02d\n", program_name, step + 1, total,
                 sum[0] / sum_n, s_hat, rate, (int) eta / 60, (int) eta % 60);
      if (!eval_now && !stop)
        continue;
      if (eval_now)
        {
          pmx_l0_deterministic (l0, zdet);
          double sp = pmx_cofi_z_sparsity (zdet, mc->head_dim, prunable);
          pmx_eval r = { 0, 0, 0, 0, 0, 0, 0 };
          if (dev && pmx_evaluate (m, &db, zdet, 1, 0, 0, &r) < 0)
            die_lib ("evaluation");
          double epoch = (double) (step + 1) / per_epoch;
          if (log)
            {
              fprintf (log, "%lld\t%.3f\t%.3g\t%.6f\t%.6f\t%.6f\t%.6f\t%.4f"
                       "\t%.4f\t%.6g\t%.6g\t%.4f\t", step + 1, epoch, lr,
                       sum[0] / sum_n, sum[1] / sum_n, sum[2] / sum_n,
                       sum[3] / sum_n, s_hat, target, l0->lambda[0],
                       l0->lambda[1], sp);
              if (dev && r.have_task)
                fprintf (log, "%.4f", r.accuracy);
              else
                fputs ("nan", log);
              fprintf (log, "\t%.1f\n", rate);
              fflush (log);
            }
          if (!o.quiet)
            {
              fprintf (stderr, "%sstep %lld/%lld epoch %.2f loss %.4f"
                       " (pred %.4f layer %.4f lagrangian %.4f)"
                       " expected_sparsity %.4f target %.4f lambda1 %.4g"
                       " lambda2 %.4g sparsity %.4f", tty ? "\n" : "", step + 1,
                       total, epoch, sum[0] / sum_n, sum[1] / sum_n, sum[2] / sum_n,
                       sum[3] / sum_n, s_hat, target, l0->lambda[0],
                       l0->lambda[1], sp);
              if (dev && r.have_task)
                fprintf (stderr, " dev_accuracy %.4f", r.accuracy);
              fprintf (stderr, " %.1f ex/s\n", rate);
            }
          memset (sum, 0, sizeof sum);
          sum_n = 0;
        }
      pmx_meta meta;
      pmx_meta_init (&meta);
      if (pmx_meta_set (&meta, "options", fingerprint) < 0
          || pmx_meta_setf (&meta, "step", "%lld", step + 1) < 0
          || pmx_pruner_save (pr, state_path, &meta) < 0)
        die_lib (NULL);
      pmx_meta_free (&meta);
      if (stop)
        {
          fprintf (stderr, "%s%s: %s after step %lld; state saved in %s,"
                   " continue with --resume\n", tty ? "\n" : "", program_name,
                   interrupted ? "interrupted" : "paused", step + 1,
                   state_path);
          status = interrupted ? EXIT_FAILURE : EXIT_SUCCESS;
          stopped = 1;
          break;
        }
    }

  if (!stopped)
    {
      /* CoFi's deterministic masks, baked into the weights and cut.  */
      pmx_l0_deterministic (l0, zdet);
      if (o.masks)
        {
          cli_output out;
          FILE *f = cli_output_open (&out, o.masks);
          if (pmx_cofi_z_write_tsv (zdet, f) < 0)
            die_lib (o.masks);
          cli_output_commit (&out);
        }
      atexit (remove_full);
      if (pmx_tmodel_save (m, full_path, &acfg, &extra, pv, vocab_len) < 0)
        die_lib (NULL);
      pmx_model *full = pmx_model_open (full_path);
      char id[33];
      if (!full || pmx_shrink_save (full, zdet, o.output, PMX_COMPRESS_NONE,
                                    id) < 0)
        die_lib (o.output);
      pmx_model_close (full);
      remove_full ();
      double sp = pmx_cofi_z_sparsity (zdet, mc->head_dim, prunable);
      if (!o.quiet)
        fprintf (stderr, "%s: sparsity %.4f (target %.4f): %s\n",
                 program_name, sp, o.sparsity, o.output);
      if (o.finetune_epochs > 0)
        finetune (&o, teacher, &tb, dev ? &db : NULL, total,
                  (long long) ceil (o.finetune_epochs * per_epoch), m->w.lt_w,
                  m->w.lt_b, zdet);
    }

  if (log && fclose (log) != 0)
    die ("%s: %s", o.log, strerror (errno));
  pmx_batcher_free (&tb);
  if (dev)
    pmx_batcher_free (&db);
  pmx_tdata_free (train);
  pmx_tdata_free (dev);
  pmx_pruner_free (pr);
  pmx_l0_free (l0);
  pmx_cofi_z_free (zdet);
  pmx_tmodel_free (m);
  pmx_tmodel_free (teacher);
  pmx_record_free (&extra);
  pmx_model_close (pm);
  free (state_path);
  free (full_path);
  full_path = NULL;
  return status;
}
