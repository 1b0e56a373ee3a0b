/* prumux-train -- train a BERT or multiplexed BERT (MUX-BERT) on token
   streams: token-retrieval warm-up, task fine-tuning, or a weighted mix.

   The loop is thin: batches come from lib/train/train-data.h, the model and its
   gradients from lib/train/train-model.h, the update from lib/train/optim.h, archives
   and resumable state from lib/train/train-io.h.  Everything random (the data
   order of each epoch, dropout masks, the retrieval instances) is a hash
   of --seed and the micro-batch number, so a run resumed from its state
   file continues exactly as if it had not stopped.  */

#include <config.h>
#include "cli.h"
#include "error.h"
#include "model.h"
#include "optim.h"
#include "train-data.h"
#include "train-io.h"
#include "train-model.h"
#include "train-ops.h"

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

/* A step whose loss or gradient is NaN or infinite: the weights would be
   ruined from here on, so stop and say what to change.  */
static noreturn void
diverged (long long step, const char *what, double v)
{
  die ("training: step %lld: %s is %s: the run diverged (try a lower --lr,"
       " a longer --warmup or a smaller --clip)", step + 1, what,
       isnan (v) ? "NaN" : v > 0 ? "infinite" : "-infinite");
}

static void
usage (void)
{
  printf ("\
Usage: %s [OPTION]... --init=MODEL|SPEC --train=FILE --output=FILE\n",
          program_name);
  fputs ("\
Train a BERT model, or a multiplexed MUX-BERT (N instances per sequence),\n\
on token streams from prumux-tokenize, and save it as a model archive that\n\
prumux-mux, prumux-infer and prumux-demux run.\n\
\n\
Model:\n\
  -i, --init=MODEL|SPEC   start from the archive MODEL, or create a new model\n\
                            from SPEC, comma-separated KEY=VALUE: layers,\n\
                            hidden, heads, head-dim (hidden/heads), ffn, n\n\
                            (instances; > 1 multiplexes, gaussian-Hadamard\n\
                            with the index_pos demultiplexer), labels (a\n\
                            count, or names separated by ':'), max-length\n\
                            (128), demux-hidden (hidden); or base=FILE\n\
                            (a pretrained encoder such as prumux-convert\n\
                            imports: its shape, vocabulary and weights,\n\
                            with new multiplexer and heads) and n, labels,\n\
                            max-length, demux-hidden\n\
      --vocab=FILE        the vocabulary of a new model (vocab.txt)\n\
  -T, --task=NAME         the task name stored in the archive\n\
\n\
Data and objective:\n\
  -t, --train=FILE        training examples (a token stream with 'label'\n\
                            for the task objective)\n\
  -d, --dev=FILE          development examples, evaluated every\n\
                            --eval-every steps; the best model is kept\n\
  -O, --objective=OBJ     task (default), retrieval (the MUX-PLM token\n\
                            retrieval warm-up), mlm (masked language\n\
                            model: 15% of each instance's tokens, 80%\n\
                            [MASK], 10% random, 10% kept), or a weighted\n\
                            mix such as task:0.9,retrieval:0.1\n\
\n\
Optimisation (AdamW):\n\
  -b, --batch=N           rows per micro-batch, a multiple of n (default 32)\n\
  -a, --accumulate=K      micro-batches per optimizer step (default 1)\n\
  -e, --epochs=X          passes over the training data (default 1)\n\
  -s, --steps=N           optimizer steps (overrides --epochs)\n\
      --lr=X              peak learning rate (default 5e-5)\n\
      --warmup=X          warm-up steps, or a fraction of the steps if X < 1\n\
                            (default 0)\n\
      --schedule=S        linear (decay to 0, default) or constant\n\
      --weight-decay=X    decoupled weight decay, not for biases and\n\
                            LayerNorms (default 0)\n\
      --clip=X            clip the global gradient norm to X (default 1;\n\
                            0: no clipping)\n\
      --dropout=X         dropout probability (default 0.1)\n\
      --freeze-embeddings do not train the embedding tables and LayerNorm\n\
      --seed=N            seed of the data order, dropout and new weights\n\
                            (default 42)\n\
  -j, --threads=N         threads of a training step (default 1); the\n\
                            results do not depend on N\n\
\n\
Output:\n\
  -o, --output=FILE       the model archive: the best on --dev, else the\n\
                            last; the training state goes to FILE.state\n\
  -r, --resume            continue from FILE.state (same options)\n\
  -P, --pause-after=N     save the state and stop after N steps of this run\n\
                            (then --resume), to train in several sittings\n\
  -E, --eval-every=N      evaluate and save every N steps (default: each\n\
                            epoch)\n\
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
Progress goes to standard error: a bar with the remaining time on a\n\
terminal, otherwise a line every --progress-every steps; and a line per\n\
evaluation.  An interrupt (Ctrl-C) saves\n\
the state at the end of the current step; --resume continues from it.\n\
Multiplexed models pad every row to max-length and ignore type ids, as\n\
the published models do; the token-retrieval loss predicts, at every\n\
position, the token of one instance drawn at random.\n\
", stdout);
  cli_help_tail ();
}

/* ---- Options ------------------------------------------------------------ */

typedef struct options
{
  const char *init, *vocab, *task, *train, *dev, *output, *log;
  float task_w, ret_w, mlm_w;
  int batch, accumulate, threads, eval_every, resume, quiet, verbose;
  long long progress_every;     /* -1: the default, 5% of the run */
  long long pause_after;
  double epochs, warmup;
  long long steps, seed;
  float lr, weight_decay, clip, dropout;
  int decay, freeze_embeddings;
  const char *objective;
} options;

static void
parse_objective (options *o, const char *arg)
{
  char *s = strdup (arg), *save = NULL;
  if (!s)
    die ("out of memory");
  o->task_w = o->ret_w = o->mlm_w = 0;
  for (char *tok = strtok_r (s, ",", &save); tok; tok = strtok_r (NULL, ",", &save))
    {
      char *colon = strchr (tok, ':');
      float w = 1;
      if (colon)
        {
          *colon = 0;
          char *end;
          w = strtof (colon + 1, &end);
          if (*end || !(w > 0) || !isfinite (w))
            usage_error ("--objective: invalid weight '%s'", colon + 1);
        }
      if (!strcmp (tok, "task"))
        o->task_w = w;
      else if (!strcmp (tok, "retrieval"))
        o->ret_w = w;
      else if (!strcmp (tok, "mlm"))
        o->mlm_w = w;
      else
        usage_error ("--objective: unknown objective '%s' (task, retrieval,"
                     " mlm)", tok);
    }
  free (s);
  if (o->task_w == 0 && o->ret_w == 0 && o->mlm_w == 0)
    usage_error ("--objective: empty");
}

/* ---- A new model from SPEC --------------------------------------------- */

static char *
read_file (const char *path, size_t *len)
{
  FILE *f = cli_open_input (path);
  size_t cap = 1 << 16, n = 0;
  char *buf = malloc (cap + 1);
  size_t got;
  while (buf && (got = fread (buf + n, 1, cap - n, f)) > 0)
    {
      n += got;
      if (n == cap)
        {
          char *b = realloc (buf, 2 * cap + 1);
          if (!b)
            free (buf);
          buf = b;
          cap *= 2;
        }
    }
  if (!buf)
    die ("%s: out of memory", path);
  cli_close_input (f, path);
  buf[n] = 0;
  *len = n;
  return buf;
}

static void
set_labels (pmx_model_config *cfg, const char *spec)
{
  char *end;
  long n = strtol (spec, &end, 10);
  int count = 0;
  char *names = NULL;
  if (*end == 0 && end != spec)
    count = (int) n;
  else
    {
      names = strdup (spec);
      if (!names)
        die ("out of memory");
      count = 1;
      for (const char *p = spec; *p; p++)
        count += *p == ':';
    }
  if (count < 1 || count > PMX_MAX_LABELS)
    usage_error ("--init: labels: %s is not 1 to %d labels", spec, PMX_MAX_LABELS);
  cfg->num_labels = count;
  cfg->labels = calloc (count, sizeof *cfg->labels);
  if (!cfg->labels)
    die ("out of memory");
  char *save = NULL, *tok = names ? strtok_r (names, ":", &save) : NULL;
  for (int i = 0; i < count; i++)
    {
      char num[16];
      snprintf (num, sizeof num, "%d", i);
      cfg->labels[i] = strdup (names ? (tok ? tok : "") : num);
      if (!cfg->labels[i])
        die ("out of memory");
      if (names)
        tok = strtok_r (NULL, ":", &save);
    }
  free (names);
}

static int
count_lines (const char *text, size_t len)
{
  int n = 0;
  for (size_t i = 0; i < len; i++)
    n += text[i] == '\n';
  return n + (len > 0 && text[len - 1] != '\n');
}

/* A copy of PM's vocabulary text (NULL and *LEN 0 when it has none), the
   caller's to free.  */
static char *
copy_vocab (const pmx_model *pm, size_t *len)
{
  const char *v = pmx_model_vocab (pm, len);
  if (!v)
    {
      *len = 0;
      return NULL;
    }
  char *copy = malloc (*len + 1);
  if (!copy)
    die ("out of memory");
  memcpy (copy, v, *len);
  return copy;
}

/* The pretrained model named by base=FILE: its configuration (labels
   dropped) goes to CFG and its vocabulary to *VOCAB.  */
static pmx_model *
open_base (const char *path, pmx_model_config *cfg, char **vocab,
           size_t *vocab_len)
{
  pmx_model *pm = pmx_model_open (path);
  if (!pm)
    die_lib (NULL);
  const pmx_model_config *pc = pmx_model_config_of (pm);
  if (pc->sparsity > 0 || pc->mux_n > 1)
    die ("%s: base= needs an unpruned, unmultiplexed model (a pretrained"
         " encoder such as one prumux-convert imported)", path);
  pmx_model_config_free (cfg);
  *cfg = *pc;
  cfg->labels = NULL;
  cfg->num_labels = 0;
  if (!(*vocab = copy_vocab (pm, vocab_len)))
    die ("%s: the model has no vocabulary", path);
  return pm;
}

/* A new model from SPEC: a random one of the shape the keys give (its
   vocabulary from --vocab), or with base=FILE the pretrained encoder of
   FILE with new multiplexer, demultiplexer and classifier.  CFG receives
   the archive configuration, *VOCAB the vocabulary text.  */
static pmx_tmodel *
new_model (const options *o, const char *spec, pmx_model_config *cfg,
           char **vocab, size_t *vocab_len, int want_retrieval)
{
  pmx_train_config c;
  int layers = 2, hidden = 128, heads = 2, head_dim = 0, ffn = 512, n = 1;
  int max_length = -1, demux_hidden = 0, shaped = 0;   /* -1: not given */
  char *labels = NULL;
  pmx_model *base = NULL;
  char *s = strdup (spec), *save = NULL;
  if (!s)
    die ("out of memory");
  for (char *tok = strtok_r (s, ",", &save); tok; tok = strtok_r (NULL, ",", &save))
    {
      char *eq = strchr (tok, '=');
      if (!eq)
        usage_error ("--init: '%s' is not KEY=VALUE", tok);
      *eq = 0;
      const char *k = tok, *v = eq + 1;
      if (!strcmp (k, "labels"))
        {
          free (labels);
          if (!(labels = strdup (v)))
            die ("out of memory");
        }
      else if (!strcmp (k, "base"))
        {
          if (base)
            usage_error ("--init: base= given twice");
          base = open_base (v, cfg, vocab, vocab_len);
        }
      else
        {
          int *dst = !strcmp (k, "layers") ? &layers : !strcmp (k, "hidden") ? &hidden
            : !strcmp (k, "heads") ? &heads : !strcmp (k, "head-dim") ? &head_dim
            : !strcmp (k, "ffn") ? &ffn : !strcmp (k, "n") ? &n
            : !strcmp (k, "max-length") ? &max_length
            : !strcmp (k, "demux-hidden") ? &demux_hidden : NULL;
          if (!dst)
            usage_error ("--init: unknown key '%s'", k);
          *dst = (int) cli_parse_int (k, v, 0, 1 << 20);
          shaped |= dst != &n && dst != &max_length && dst != &demux_hidden;
        }
    }
  free (s);
  if (labels)
    set_labels (cfg, labels);
  free (labels);
  if (base)
    {
      if (shaped)
        usage_error ("--init: base= gives the shape: no layers, hidden, heads,"
                     " head-dim or ffn");
      if (o->vocab)
        usage_error ("--init: base= gives the vocabulary: no --vocab");
      if (max_length > cfg->max_position)
        usage_error ("--init: max-length %d is above the base model's %d"
                     " positions", max_length, cfg->max_position);
      if (max_length < 0)
        max_length = cfg->max_length;
    }
  else
    {
      if (!o->vocab)
        usage_error ("a new model (--init=SPEC) needs --vocab");
      if (layers > PMX_TRAIN_MAX_LAYERS || hidden < 1 || heads < 1)
        usage_error ("--init: layers 0 to %d, and hidden, heads, n >= 1,"
                     " max-length >= 2", PMX_TRAIN_MAX_LAYERS);
      if (!head_dim)
        {
          if (hidden % heads)
            usage_error ("--init: hidden %d is not a multiple of heads %d",
                         hidden, heads);
          head_dim = hidden / heads;
        }
      if (max_length < 0)
        max_length = 128;
      *vocab = read_file (o->vocab, vocab_len);
      cfg->vocab_size = count_lines (*vocab, *vocab_len);
      if (cfg->vocab_size < 2)
        die ("%s: not a vocabulary", o->vocab);
      /* The spec describes the archive's configuration; training's is
         derived from it as from any archive's.  */
      cfg->hidden = hidden;
      cfg->layers = layers;
      cfg->head_dim = head_dim;
      cfg->heads = heads;
      cfg->intermediate = ffn;
      cfg->max_position = max_length;
      cfg->type_vocab = 2;
      cfg->ln_eps = 1e-12;
    }
  if (n < 1 || max_length < 2)
    usage_error ("--init: n >= 1 and max-length >= 2");
  cfg->mux_n = n;
  strcpy (cfg->mux_variant, n > 1 ? "gaussian_hadamard" : "none");
  strcpy (cfg->demux_variant, n > 1 ? "index_pos" : "none");
  cfg->demux_layers = n > 1 ? 3 : 0;
  strcpy (cfg->pooling, "cls");
  cfg->normalize = 0;
  cfg->attend_padding = n > 1;  /* the published MUX models: no mask */
  cfg->max_length = max_length;
  if (pmx_train_config_from_model (&c, cfg, NULL, NULL, demux_hidden,
                                   want_retrieval, o->dropout) < 0)
    die_lib ("--init");
  pmx_tmodel *m = pmx_tmodel_new (&c);
  if (!m)
    die_lib ("--init");
  /* From a base, its encoder replaces the draws: only the rest is drawn.  */
  for (int k = 0; k < m->nparams; k++)
    if (!base || !pmx_tparam_in_encoder (&m->param[k]))
      pmx_tmodel_init_param (m, k, (uint64_t) o->seed);
  if (base && pmx_tmodel_load_encoder (m, base) < 0)
    die_lib ("--init: base");
  pmx_model_close (base);
  return m;
}

/* ---- Main --------------------------------------------------------------- */

enum
{
  OPT_TASK = 256, OPT_SCHEDULE, OPT_WD, OPT_CLIP, OPT_DROPOUT, OPT_FREEZE,
  OPT_SEED, OPT_VOCAB, OPT_LR, OPT_LOG, OPT_WARMUP, OPT_PROGRESS_EVERY
};

static const struct option long_options[] = {
  {"init", required_argument, NULL, 'i'},
  {"vocab", required_argument, NULL, OPT_VOCAB},
  {"task", required_argument, NULL, OPT_TASK},
  {"train", required_argument, NULL, 't'},
  {"dev", required_argument, NULL, 'd'},
  {"objective", required_argument, NULL, 'O'},
  {"batch", required_argument, NULL, 'b'},
  {"accumulate", required_argument, NULL, 'a'},
  {"epochs", required_argument, NULL, 'e'},
  {"steps", required_argument, NULL, 's'},
  {"lr", required_argument, NULL, OPT_LR},
  {"warmup", required_argument, NULL, OPT_WARMUP},
  {"schedule", required_argument, NULL, OPT_SCHEDULE},
  {"weight-decay", required_argument, NULL, OPT_WD},
  {"clip", required_argument, NULL, OPT_CLIP},
  {"dropout", required_argument, NULL, OPT_DROPOUT},
  {"freeze-embeddings", no_argument, NULL, OPT_FREEZE},
  {"seed", required_argument, NULL, OPT_SEED},
  {"threads", required_argument, NULL, 'j'},
  {"output", required_argument, NULL, 'o'},
  {"resume", no_argument, NULL, 'r'},
  {"pause-after", required_argument, NULL, 'P'},
  {"eval-every", required_argument, NULL, 'E'},
  {"log", required_argument, NULL, OPT_LOG},
  {"quiet", no_argument, NULL, 'q'},
  {"verbose", no_argument, NULL, 'v'},
  {"progress-every", required_argument, NULL, OPT_PROGRESS_EVERY},
  CLI_STANDARD_LONGOPTS,
  {NULL, 0, NULL, 0}
};

int
main (int argc, char **argv)
{
  cli_init (argv[0]);
  options o = { 0 };
  o.task_w = 1;
  o.objective = "task";
  o.batch = 32;
  o.accumulate = 1;
  o.threads = 1;
  o.epochs = 1;
  o.lr = 5e-5f;
  o.decay = 1;
  o.clip = 1;
  o.dropout = 0.1f;
  o.seed = 42;
  o.progress_every = -1;
  int c;
  while ((c = getopt_long (argc, argv, "i:T:t:d:O:b:a:e:s:l:w:j:o:rP:E:L:qv"
                           CLI_STANDARD_SHORTOPTS,
                           long_options, NULL)) != -1)
    switch (cli_standard_option (c, usage))
      {
      case 'i': o.init = optarg; break;
      case OPT_VOCAB: o.vocab = optarg; break;
      case 'T':
      case OPT_TASK: o.task = optarg; break;
      case 't': o.train = optarg; break;
      case 'd': o.dev = optarg; break;
      case 'O': o.objective = optarg; parse_objective (&o, optarg); break;
      case 'b': o.batch = (int) cli_parse_int ("--batch", optarg, 1, 1 << 20); break;
      case 'a': o.accumulate = (int) cli_parse_int ("--accumulate", optarg, 1, 1 << 20); break;
      case 'e': o.epochs = cli_parse_nonneg ("--epochs", optarg); break;
      case 's': o.steps = cli_parse_int ("--steps", optarg, 1, 1LL << 40); break;
      case 'l':                 /* -l, -L: before 0.1.0 (prumux(7)) */
      case OPT_LR: o.lr = (float) cli_parse_nonneg ("--lr", optarg); break;
      case 'w':                 /* -w: before 0.1.0 (-w is --weights elsewhere) */
      case OPT_WARMUP: o.warmup = cli_parse_nonneg ("--warmup", optarg); break;
      case OPT_SCHEDULE:
        if (!strcmp (optarg, "linear"))
          o.decay = 1;
        else if (!strcmp (optarg, "constant"))
          o.decay = 0;
        else
          usage_error ("--schedule: '%s' is not linear or constant", optarg);
        break;
      case OPT_WD: o.weight_decay = (float) cli_parse_nonneg ("--weight-decay", optarg); break;
      case OPT_CLIP: o.clip = (float) cli_parse_nonneg ("--clip", optarg); break;
      case OPT_DROPOUT:
        o.dropout = (float) cli_parse_nonneg ("--dropout", optarg);
        if (o.dropout >= 1)
          usage_error ("--dropout: must be below 1");
        break;
      case OPT_FREEZE: o.freeze_embeddings = 1; break;
      case OPT_SEED: o.seed = cli_parse_int ("--seed", optarg, 0, 1LL << 62); break;
      case 'j': o.threads = (int) cli_parse_int ("--threads", optarg, 1, 1024); break;
      case 'o': o.output = optarg; break;
      case 'r': o.resume = 1; break;
      case 'P': o.pause_after = cli_parse_int ("--pause-after", optarg, 1, 1LL << 40); break;
      case 'E': o.eval_every = (int) cli_parse_int ("--eval-every", optarg, 1, 1 << 30); break;
      case 'L':
      case OPT_LOG: o.log = optarg; break;
      case 'q': o.quiet = 1; break;
      case 'v': o.verbose = 1; break;
      case OPT_PROGRESS_EVERY:
        o.progress_every = cli_parse_int ("--progress-every", optarg, 0, 1LL << 40);
        break;
      default: usage_error (NULL);
      }
  if (optind < argc)
    usage_error ("extra operand '%s'", argv[optind]);
  if (!o.init || !o.train || !o.output)
    usage_error ("--init, --train and --output are required");
  /* The model's own threads run the step (par.h); OpenBLAS runs inside
     them, one thread each.  */
  openblas_set_num_threads (1);

  /* The model.  */
  pmx_model_config acfg;
  pmx_model_config_init (&acfg);
  pmx_record extra;
  pmx_record_init (&extra);
  char *vocab = NULL;
  size_t vocab_len = 0;
  pmx_tmodel *m;
  int want_ret = o.ret_w > 0 || o.mlm_w > 0;
  if (strchr (o.init, '='))
    m = new_model (&o, o.init, &acfg, &vocab, &vocab_len, want_ret);
  else
    {
      pmx_model *pm = pmx_model_open (o.init);
      if (!pm)
        die_lib (NULL);
      const pmx_model_config *pc = pmx_model_config_of (pm);
      acfg = *pc;
      acfg.labels = NULL;
      if (pc->num_labels)
        {
          acfg.labels = calloc (pc->num_labels, sizeof *acfg.labels);
          for (int i = 0; acfg.labels && i < pc->num_labels; i++)
            acfg.labels[i] = strdup (pc->labels[i]);
          if (!acfg.labels || !acfg.labels[pc->num_labels - 1])
            die ("out of memory");
        }
      vocab = copy_vocab (pm, &vocab_len);
      m = pmx_tmodel_from_archive (pm, want_ret, o.dropout, (uint64_t) o.seed,
                                   &extra);
      if (!m)
        die_lib (o.init);
      pmx_model_close (pm);
    }
  if (pmx_tmodel_set_threads (m, o.threads) < 0)
    die_lib (NULL);
  if (o.verbose)
    {
      char what[160];
      pmx_tmodel_describe (m, what, sizeof what);
      fprintf (stderr, "%s: %s\n", program_name, what);
    }
  /* Nothing here reads the hidden states: the task's steps may run the
     last layer on the head's rows alone.  */
  m->head_rows_only = 1;
  if (o.task)
    snprintf (acfg.task, sizeof acfg.task, "%s", o.task);
  const pmx_train_config *mc = &m->cfg;
  int N = mc->mux_n;
  if (o.task_w > 0 && mc->num_labels == 0)
    die ("%s: the task objective needs a model with labels", o.init);
  if ((o.ret_w > 0 || o.mlm_w > 0) && !mc->muxed)
    die ("the retrieval and mlm objectives need a multiplexed model (n > 1)");
  int32_t cls_id, mask_id;
  if (pmx_tdata_special_ids (vocab, vocab_len, &cls_id, &mask_id) < 0)
    die_lib (NULL);
  if (mc->muxed && (cls_id < 0 || cls_id >= mc->vocab))
    die ("a multiplexed model needs a vocabulary with [CLS]");
  if (o.mlm_w > 0 && (mask_id < 0 || mask_id >= mc->vocab))
    die ("the mlm objective needs a vocabulary with [MASK]");
  if (o.mlm_w <= 0)
    mask_id = -1;
  if (o.batch % N)
    die ("--batch: %d rows is not a multiple of n = %d", o.batch, N);
  int max_len = acfg.max_length;
  if (max_len < 2 || max_len > mc->max_pos)
    max_len = mc->max_pos;

  /* Data.  */
  FILE *f = cli_open_input (o.train);
  pmx_tdata *train = pmx_tdata_read (f, o.train);
  if (!train)
    die_lib (NULL);
  cli_close_input (f, o.train);
  pmx_tdata *dev = NULL;
  if (o.dev)
    {
      f = cli_open_input (o.dev);
      if (!(dev = pmx_tdata_read (f, o.dev)))
        die_lib (NULL);
      cli_close_input (f, o.dev);
    }
  const pmx_tdata *sets[2] = { train, dev };
  const char *set_names[2] = { o.train, o.dev };
  for (int k = 0; k < 2; k++)
    {
      const pmx_tdata *d = sets[k];
      for (int64_t i = 0; d && i < d->off[d->rows]; i++)
        if (d->ids[i] < 0 || d->ids[i] >= mc->vocab)
          die ("%s: token id %d is outside the vocabulary (%d)", set_names[k],
               d->ids[i], mc->vocab);
      if (d && o.task_w > 0)
        {
          if (!d->has_label)
            die ("%s: the task objective needs 'label' (prumux-tokenize"
                 " --label-field)", set_names[k]);
          for (int i = 0; i < d->rows; i++)
            if (d->label[i] < 0 || d->label[i] >= mc->num_labels)
              die ("%s: row %d: label %d is not one of the model's %d",
                   set_names[k], i, d->label[i], mc->num_labels);
        }
    }
  if (train->rows < o.batch)
    die ("%s: %d examples, fewer than one batch of %d", o.train, train->rows,
         o.batch);
  int64_t micro_per_epoch = train->rows / o.batch;
  double steps_per_epoch = (double) micro_per_epoch / o.accumulate;
  long long total = o.steps ? o.steps
    : (long long) ceil (o.epochs * steps_per_epoch);
  if (total < 1)
    die ("no steps to train (--epochs or --steps)");
  long long warmup = o.warmup < 1 ? (long long) (o.warmup * total)
    : (long long) o.warmup;
  int eval_every = o.eval_every ? o.eval_every
    : (int) (steps_per_epoch >= 1 ? steps_per_epoch : 1);

  pmx_adamw *opt = pmx_adamw_new (m);
  if (!opt)
    die_lib (NULL);
  opt->weight_decay = o.weight_decay;
  opt->freeze_embeddings = o.freeze_embeddings;

  /* The options that must not change across --resume.  */
  char fingerprint[512];
  snprintf (fingerprint, sizeof fingerprint,
            "seed=%lld batch=%d accumulate=%d steps=%lld lr=%.9g warmup=%lld"
            " decay=%d wd=%.9g clip=%.9g dropout=%.9g freeze=%d"
            " objective=%.9g/%.9g/%.9g rows=%d", o.seed, o.batch, o.accumulate,
            total, o.lr, warmup, o.decay, o.weight_decay, o.clip, o.dropout,
            o.freeze_embeddings, o.task_w, o.ret_w, o.mlm_w, train->rows);
  size_t olen = strlen (o.output);
  char *state_path = malloc (olen + 7);
  if (!state_path)
    die ("out of memory");
  memcpy (state_path, o.output, olen);
  memcpy (state_path + olen, ".state", 7);
  long long start = 0;
  double best = -INFINITY;
  if (o.resume)
    {
      pmx_meta meta;
      pmx_meta_init (&meta);
      if (pmx_train_state_load (state_path, &meta, m, opt) < 0)
        die_lib (NULL);
      const char *fp = pmx_meta_get (&meta, "options");
      const char *b = pmx_meta_get (&meta, "best");
      if (!fp || strcmp (fp, fingerprint))
        die ("%s: the state was saved with other options (%s)", state_path,
             fp ? fp : "none");
      if (pmx_meta_get_int (&meta, "step", 0, total, &start) != 0)
        die ("%s: no valid step", state_path);
      best = b ? strtod (b, NULL) : -INFINITY;
      pmx_meta_free (&meta);
    }

  FILE *log = NULL;
  if (o.log)
    log = cli_open_log (o.log, "step\tepoch\tlr\ttrain_loss\tgrad_norm\tdev_loss"
                        "\tdev_accuracy\tdev_retrieval_accuracy\tdev_mlm_accuracy"
                        "\texamples_per_s\n", o.output, start);
  signal (SIGINT, on_signal);
  signal (SIGTERM, on_signal);
  int tty = isatty (2) && !o.quiet;
  /* Off a terminal, a line every PROGRESS_EVERY steps (default: 20 a run).  */
  long long progress_every = o.quiet || tty ? 0 : o.progress_every >= 0 ? o.progress_every
    : (total + 19) / 20;

  pmx_batcher tb, db;
  if (pmx_batcher_init (&tb, train, o.batch, &m->cfg, max_len,
                        (uint64_t) o.seed, cls_id, mask_id) < 0
      || (dev && pmx_batcher_init (&db, dev, o.batch, &m->cfg, max_len,
                                   (uint64_t) o.seed, cls_id, mask_id) < 0))
    die_lib (NULL);
  double t0 = cli_now (), loss_sum = 0, norm = 0;
  long long loss_n = 0, done_here = 0;
  int status = EXIT_SUCCESS;
  for (long long step = start; step < total; step++)
    {
      pmx_tmodel_zero_grad (m);
      double step_loss = 0;
      for (int k = 0; k < o.accumulate; k++)
        {
          uint64_t u = (uint64_t) step * o.accumulate + k;
          pmx_batcher_train_rows (&tb, u);
          pmx_tbatch b = pmx_batcher_fill (&tb, o.batch, u, o.task_w / o.accumulate,
                                       o.ret_w / o.accumulate,
                                       o.mlm_w / o.accumulate, 1);
          pmx_error_clear ();
          double l = pmx_tmodel_forward (m, &b, 1, (uint64_t) o.seed, u);
          if (isnan (l) && *pmx_errmsg ())
            die_lib ("training");
          if (!isfinite (l))
            diverged (step, "the loss", l);
          if (pmx_tmodel_backward (m) < 0)
            die_lib ("training");
          step_loss += l;
        }
      float lr = pmx_lr_at (o.lr, step, warmup, total, o.decay);
      /* Clip and step in one pass; it leaves the gradients zero (the
         next zero_grad has nothing to do).  A diverged run stops here,
         its parameters never saved.  */
      norm = pmx_adamw_clip_step (opt, m, lr, o.clip);
      if (!isfinite (norm))
        diverged (step, "the gradient norm", norm);
      loss_sum += step_loss;
      loss_n++;
      done_here++;
      int pause = done_here == o.pause_after && step + 1 < total;
      double el = cli_now () - t0;
      double rate = done_here * (double) o.batch * o.accumulate / el;
      if (tty)
        cli_progress_bar (step + 1, total, loss_sum / loss_n, rate,
                      (total - step - 1) * el / done_here);
      int last = step + 1 == total;
      int stop = interrupted || pause;
      if (progress_every && (step + 1) % progress_every == 0 && !last
          && (step + 1) % eval_every != 0)
        fprintf (stderr, "%s: step %lld/%lld loss %.4f %.1f ex/s ETA %d:%02d\n",
                 program_name, step + 1, total, loss_sum / loss_n, rate,
                 (int) ((total - step - 1) * el / done_here) / 60,
                 (int) ((total - step - 1) * el / done_here) % 60);
      if ((step + 1) % eval_every == 0 || last || stop)
        {
          pmx_eval r = { 0, 0, 0, 0, 0, 0, 0 };
          int improved = 0;
          /* A stop between evaluations only saves the state, so that the
             resumed run evaluates at the same steps as an unbroken one.  */
          int eval_now = (step + 1) % eval_every == 0 || last;
          if (dev && eval_now)
            {
              if (pmx_evaluate (m, &db, NULL, o.task_w, o.ret_w, o.mlm_w,
                                &r) < 0)
                die_lib ("evaluation");
              double score = o.task_w > 0 ? r.accuracy
                : o.ret_w > 0 ? r.ret_accuracy : r.mlm_accuracy;
              if (score > best)
                {
                  best = score;
                  improved = 1;
                }
            }
          else if (!dev && eval_now)
            improved = 1;       /* no dev set: keep the latest */
          if (improved
              && pmx_tmodel_save (m, o.output, &acfg, &extra, vocab,
                                  vocab_len) < 0)
            die_lib (NULL);
          pmx_meta meta;
          pmx_meta_init (&meta);
          if (pmx_meta_set (&meta, "options", fingerprint) < 0
              || pmx_meta_setf (&meta, "step", "%lld", step + 1) < 0
              || pmx_meta_setf (&meta, "best", "%.17g", best) < 0
              || pmx_train_state_save (state_path, &meta, m, opt) < 0)
            die_lib (NULL);
          pmx_meta_free (&meta);
          double epoch = (step + 1) / steps_per_epoch;
          if (log && eval_now)
            {
              fprintf (log, "%lld\t%.3f\t%.3g\t%.6f\t%.4f\t", step + 1, epoch,
                       lr, loss_sum / loss_n, norm);
              if (dev)
                fprintf (log, "%.6f\t%.4f\t%.4f\t%.4f", r.loss,
                         r.have_task ? r.accuracy : NAN,
                         r.have_ret ? r.ret_accuracy : NAN,
                         r.have_mlm ? r.mlm_accuracy : NAN);
              else
                fputs ("nan\tnan\tnan\tnan", log);
              fprintf (log, "\t%.1f\n", rate);
              fflush (log);
            }
          if (!o.quiet && eval_now)
            {
              fprintf (stderr, "%sstep %lld/%lld epoch %.2f loss %.4f",
                       tty ? "\n" : "", step + 1, total, epoch,
                       loss_sum / loss_n);
              if (dev && r.have_task)
                fprintf (stderr, " dev_accuracy %.4f", r.accuracy);
              if (dev && r.have_ret)
                fprintf (stderr, " dev_retrieval_accuracy %.4f", r.ret_accuracy);
              if (dev && r.have_mlm)
                fprintf (stderr, " dev_mlm_accuracy %.4f", r.mlm_accuracy);
              fprintf (stderr, " %.1f ex/s%s\n", rate, improved ? " (saved)" : "");
            }
          if (eval_now)
            {
              loss_sum = 0;
              loss_n = 0;
            }
        }
      if (stop)
        {
          fprintf (stderr, "%s%s: %s after step %lld; state saved in %s,"
                   " continue with --resume\n", tty ? "\n" : "", program_name,
                   interrupted ? "interrupted" : "paused", step + 1,
                   state_path);
          status = interrupted ? EXIT_FAILURE : EXIT_SUCCESS;
          break;
        }
    }
  if (log && fclose (log) != 0)
    die ("%s: %s", o.log, strerror (errno));
  pmx_batcher_free (&tb);
  if (dev)
    pmx_batcher_free (&db);
  pmx_tdata_free (train);
  pmx_tdata_free (dev);
  pmx_adamw_free (opt);
  pmx_tmodel_free (m);
  pmx_record_free (&extra);
  pmx_model_config_free (&acfg);
  free (vocab);
  free (state_path);
  return status;
}
