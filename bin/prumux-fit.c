/* prumux-fit -- Auto-PruMUX: choose a multiplexing width N and a sparsity s
   for an accuracy budget from a table of measured models, evaluate the
   model (leave-one-out, budget sweep) and draw the accuracy-throughput
   picture.  The model itself lives in lib/fit/fit.c.  */

#include <config.h>
#include "cli.h"
#include "error.h"
#include "fit.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

enum { OPT_THROUGHPUT = 256, OPT_MISSING, OPT_ACC_TOL, OPT_THR_TOL };

static const struct option long_options[] = {
  {"budget", required_argument, NULL, 'b'},
  {"threshold", required_argument, NULL, 't'},
  {"loo", no_argument, NULL, 'l'},
  {"budget-sweep", required_argument, NULL, 'w'},
  {"task", required_argument, NULL, 'T'},
  {"throughput", required_argument, NULL, OPT_THROUGHPUT},
  {"throughput-task", required_argument, NULL, 'r'},
  {"extrapolate", no_argument, NULL, 'x'},
  {"missing", required_argument, NULL, OPT_MISSING},
  {"fit-s", required_argument, NULL, 'F'},
  {"N", required_argument, NULL, 'N'},
  {"s", required_argument, NULL, 's'},
  {"top", required_argument, NULL, 'k'},
  {"acc-tol", required_argument, NULL, OPT_ACC_TOL},
  {"thr-tol", required_argument, NULL, OPT_THR_TOL},
  {"format", required_argument, NULL, 'f'},
  {"output", required_argument, NULL, 'o'},
  {"plot", required_argument, NULL, 'p'},
  {"quiet", no_argument, NULL, 'q'},
  CLI_STANDARD_LONGOPTS,
  {NULL, 0, NULL, 0}
};

static noreturn void
usage (void)
{
  printf ("Usage: %s [OPTION]... [FILE]\n", program_name);
  printf ("\
Choose a multiplexing width N and a sparsity s for a PruMUX model from a\n\
table of measured models (Auto-PruMUX), or evaluate that choice.\n\
\n\
FILE (default: standard input) is a tab-separated table with a header naming\n\
the columns task, N, s, accuracy and throughput (or speedup); one row per\n\
trained model, other columns ignored.  N=1 rows are CoFi-only models, s=0\n\
rows DataMUX-only, N=1 s=0 the base model.  Accuracy may be fractions or\n\
percentages (detected, and reported on standard error); budgets and\n\
tolerances are in percentage points.\n\
\n\
Modes (one of; --plot alone only draws):\n\
  -b, --budget=POINTS       rank candidates predicted to be at most POINTS\n\
                              below the base model's accuracy\n\
  -t, --threshold=ACC       rank candidates predicted to reach accuracy ACC\n\
                              (ACC <= 1 is a fraction, otherwise a percentage)\n\
      --loo                 leave-one-out evaluation per task: shares of\n\
                              accuracy predictions within --acc-tol points\n\
                              (M_A) and throughput within --thr-tol (M_T)\n\
      --budget-sweep=LO:HI:STEP  for each budget, is the best measured (N, s)\n\
                              among the top K predicted?  (paper's Table 3)\n\
\n\
Model:\n\
  -T, --task=NAME           only this task (default: every task)\n\
      --throughput=MODE     'reference' (default): one task's throughput for\n\
                              every task, as in the paper; 'per-task': each\n\
                              task's own\n\
  -r, --throughput-task=NAME  the reference task (default: the task with the\n\
                              most measured throughputs)\n\
  -x, --extrapolate         predict outside the measured range (linearly);\n\
                              default: such points are not predicted\n\
      --missing=MODE        a grid cell with a missing corner: 'fill'\n\
                              (default: interpolate along the grid lines\n\
                              between the nearest measured points) or\n\
                              'refuse' (not predicted)\n\
  -F, --fit-s=LIST          fit only on rows whose s is in LIST (rows with\n\
                              s=0 always); the others are held out\n\
\n\
Candidates (per task):\n\
  -N, --N=LIST              multiplexing widths (default: the measured ones)\n\
  -s, --s=LIST              sparsities (default: the measured range in steps\n\
                              of 0.05; for --budget-sweep the measured s)\n\
  -k, --top=K               how many to print, and the K of --budget-sweep\n\
                              (default 3)\n\
      --acc-tol=POINTS      --loo accuracy tolerance (default 1.5)\n\
      --thr-tol=FRACTION    --loo relative throughput tolerance (default 0.2)\n\
LIST is comma-separated numbers and LO:HI:STEP ranges, e.g. 2,5,10 or\n\
0.60:0.95:0.05.\n\
\n\
Output:\n\
  -f, --format=FORMAT       'tsv' (default) or 'json'\n\
  -o, --output=FILE         write to FILE (atomically) instead of stdout\n\
  -p, --plot=FILE           draw accuracy against throughput per task (base,\n\
                              CoFi-only, DataMUX-only and PruMUX points, the\n\
                              Pareto frontiers of DataMUX alone, CoFi alone\n\
                              and all points, the top K picks) to FILE.png\n\
                              or FILE.svg; needs gnuplot (or $GNUPLOT)\n\
  -q, --quiet               no notes on standard error (warnings stay)\n\
  -h, --help                display this help and exit\n\
  -V, --version             output version information and exit\n\
\n\
TSV output columns: task, rank, N, s, predicted_accuracy and\n\
predicted_throughput (or predicted_speedup); accuracy in the input's scale.\n");
  cli_help_tail ();
}

/* ---- Options ------------------------------------------------------------ */

typedef struct list
{
  double *v;
  size_t n;
} list;

static void
list_push (list *l, double x)
{
  double *v = realloc (l->v, (l->n + 1) * sizeof *v);
  if (!v)
    die ("memory exhausted");
  l->v = v;
  l->v[l->n++] = x;
}

/* Append the items of ARG ("2,5,10", "0.6:0.95:0.05", or both) to L.  */
static void
parse_list (const char *opt, const char *arg, list *l)
{
  char *copy = strdup (arg);
  if (!copy)
    die ("memory exhausted");
  char *save = NULL;
  for (char *item = strtok_r (copy, ",", &save); item;
       item = strtok_r (NULL, ",", &save))
    {
      char *c1 = strchr (item, ':');
      if (!c1)
        {
          list_push (l, cli_parse_double (opt, item));
          continue;
        }
      char *c2 = strchr (c1 + 1, ':');
      if (!c2)
        usage_error ("invalid range for %s: '%s' (want LO:HI:STEP)", opt, item);
      *c1 = *c2 = '\0';
      double lo = cli_parse_double (opt, item);
      double hi = cli_parse_double (opt, c1 + 1);
      double step = cli_parse_double (opt, c2 + 1);
      if (!(step > 0) || hi < lo || (hi - lo) / step > 100000)
        usage_error ("invalid range for %s: %g:%g:%g", opt, lo, hi, step);
      size_t n = (size_t) floor ((hi - lo) / step + 1e-9);
      for (size_t i = 0; i <= n; i++)
        list_push (l, round ((lo + (double) i * step) * 1e9) / 1e9);
    }
  free (copy);
  if (l->n == 0)
    usage_error ("empty list for %s", opt);
}

typedef struct config
{
  const char *input;
  double budget, threshold;
  int have_budget, have_threshold, loo;
  list sweep;
  const char *task, *ref_task, *output, *plot;
  pmx_fit_opts fo;
  list fit_s, cand_N, cand_s;
  size_t k;
  double acc_tol, thr_tol;
  int json, quiet;
} config;

static void
parse_args (int argc, char **argv, config *c)
{
  memset (c, 0, sizeof *c);
  c->k = 3;
  c->acc_tol = 1.5;
  c->thr_tol = 0.2;
  int opt;
  while ((opt = getopt_long (argc, argv, "b:t:lw:T:r:xF:N:s:k:f:o:p:q"
                             CLI_STANDARD_SHORTOPTS, long_options, NULL)) != -1)
    switch (cli_standard_option (opt, usage))
      {
      case 'b':
        c->budget = cli_parse_double ("--budget", optarg);
        if (c->budget < 0 || c->budget > 100)
          usage_error ("--budget must be between 0 and 100 points");
        c->have_budget = 1;
        break;
      case 't':
        c->threshold = cli_parse_double ("--threshold", optarg);
        if (c->threshold < 0 || c->threshold > 100)
          usage_error ("--threshold must be a fraction or a percentage");
        /* Fractions become percentage points, like the table.  */
        if (c->threshold <= 1)
          c->threshold *= 100;
        c->have_threshold = 1;
        break;
      case 'l':                 /* -l: before 0.1.0 (not in prumux(7)'s table) */
        c->loo = 1;
        break;
      case 'w':                 /* -w: before 0.1.0 (-w is --weights elsewhere) */
        parse_list ("--budget-sweep", optarg, &c->sweep);
        break;
      case 'T':
        c->task = optarg;
        break;
      case OPT_THROUGHPUT:
        if (strcmp (optarg, "reference") == 0)
          c->fo.per_task_throughput = 0;
        else if (strcmp (optarg, "per-task") == 0)
          c->fo.per_task_throughput = 1;
        else
          usage_error ("--throughput must be 'reference' or 'per-task', not '%s'",
                       optarg);
        break;
      case 'r':
        c->ref_task = optarg;
        break;
      case 'x':
        c->fo.extrapolate = 1;
        break;
      case OPT_MISSING:
        if (strcmp (optarg, "fill") == 0)
          c->fo.refuse_missing = 0;
        else if (strcmp (optarg, "refuse") == 0)
          c->fo.refuse_missing = 1;
        else
          usage_error ("--missing must be 'fill' or 'refuse', not '%s'", optarg);
        break;
      case 'F':
        parse_list ("--fit-s", optarg, &c->fit_s);
        break;
      case 'N':
        parse_list ("--N", optarg, &c->cand_N);
        break;
      case 's':
        parse_list ("--s", optarg, &c->cand_s);
        break;
      case 'k':
        c->k = (size_t) cli_parse_int ("--top", optarg, 1, 1000);
        break;
      case OPT_ACC_TOL:
        c->acc_tol = cli_parse_double ("--acc-tol", optarg);
        if (c->acc_tol < 0)
          usage_error ("--acc-tol must not be negative");
        break;
      case OPT_THR_TOL:
        c->thr_tol = cli_parse_double ("--thr-tol", optarg);
        if (c->thr_tol < 0)
          usage_error ("--thr-tol must not be negative");
        break;
      case 'f':
        if (strcmp (optarg, "json") == 0)
          c->json = 1;
        else if (strcmp (optarg, "tsv") == 0)
          c->json = 0;
        else
          usage_error ("--format must be 'tsv' or 'json', not '%s'", optarg);
        break;
      case 'o':
        c->output = optarg;
        break;
      case 'p':
        c->plot = optarg;
        break;
      case 'q':
        c->quiet = 1;
        break;
      default:
        usage_error ("invalid option");
      }
  if (optind < argc)
    c->input = argv[optind++];
  if (optind < argc)
    usage_error ("extra operand '%s'", argv[optind]);

  int modes = (c->have_budget || c->have_threshold) + c->loo + (c->sweep.n > 0);
  if (c->have_budget && c->have_threshold)
    usage_error ("--budget and --threshold exclude each other");
  if (modes > 1)
    usage_error ("choose one of --budget/--threshold, --loo and --budget-sweep");
  if (modes == 0 && !c->plot)
    usage_error ("nothing to do: give --budget, --threshold, --loo,"
                 " --budget-sweep or --plot");
  for (size_t i = 0; i < c->cand_N.n; i++)
    if (c->cand_N.v[i] < 1 || c->cand_N.v[i] != floor (c->cand_N.v[i]))
      usage_error ("--N: %g is not a multiplexing width (a whole number >= 1)",
                   c->cand_N.v[i]);
  for (size_t i = 0; i < c->cand_s.n; i++)
    if (c->cand_s.v[i] < 0 || c->cand_s.v[i] >= 1)
      usage_error ("--s: %g is not a sparsity in [0, 1)", c->cand_s.v[i]);
  for (size_t i = 0; i < c->sweep.n; i++)
    if (c->sweep.v[i] < 0)
      usage_error ("--budget-sweep: budgets must not be negative");
  if (c->plot)
    {
      const char *dot = strrchr (c->plot, '.');
      if (!dot || (strcmp (dot, ".png") != 0 && strcmp (dot, ".svg") != 0))
        usage_error ("--plot: '%s' must end in .png or .svg", c->plot);
    }
}

/* ---- Shared helpers --------------------------------------------------- */

/* Accuracy in the input's scale (percentage points inside).  */
static double
out_acc (const pmx_fit_table *t, double a)
{
  return t->acc_percent ? a : a / 100;
}

/* Candidates of TASK: the options', or the task's defaults: measured N,
   and s in steps of 0.05 over the measured range; with MEASURED (budget
   sweep, whose truth exists only there) the measured s values.  */
static void
candidates (const config *c, const pmx_fit_table *t, size_t task, int measured,
            list *Ns, list *Ss)
{
  double *dN, *ds;
  size_t nN, ns;
  if (pmx_fit_default_candidates (t, task, 0.05, &dN, &nN, &ds, &ns) != 0)
    die_lib (t->tasks[task].name);
  if (measured)
    {
      const pmx_fit_task *tk = &t->tasks[task];
      free (ds);
      ds = malloc (tk->ns * sizeof *ds);
      if (!ds)
        die ("memory exhausted");
      memcpy (ds, tk->sv, tk->ns * sizeof *ds);
      ns = tk->ns;
    }
  if (c->cand_N.n)
    {
      free (dN);
      *Ns = c->cand_N;
    }
  else
    *Ns = (list) { dN, nN };
  if (c->cand_s.n)
    {
      free (ds);
      *Ss = c->cand_s;
    }
  else
    *Ss = (list) { ds, ns };
}

static void
free_candidates (const config *c, list *Ns, list *Ss)
{
  if (Ns->v != c->cand_N.v)
    free (Ns->v);
  if (Ss->v != c->cand_s.v)
    free (Ss->v);
}

static pmx_fit_pick *
alloc_picks (size_t k)
{
  pmx_fit_pick *p = calloc (k, sizeof *p);
  if (!p)
    die ("memory exhausted");
  return p;
}

static json_t *
json_pick (const pmx_fit_table *t, const pmx_fit_pick *p, size_t rank)
{
  json_t *o = json_object ();
  if (rank)
    json_object_set_new (o, "rank", json_integer ((json_int_t) rank));
  json_object_set_new (o, "N", json_integer ((json_int_t) p->N));
  json_object_set_new (o, "s", json_real (p->s));
  json_object_set_new (o, "accuracy", json_real (out_acc (t, p->acc)));
  json_object_set_new (o, t->thr_column, json_real (p->thr));
  return o;
}

static json_t *
json_header (const config *c, const pmx_fit_table *t, const char *mode)
{
  json_t *o = json_object ();
  json_object_set_new (o, "mode", json_string (mode));
  json_object_set_new (o, "input", json_string (t->name));
  json_object_set_new (o, "accuracy_scale",
                       json_string (t->acc_percent ? "percent" : "fraction"));
  json_object_set_new (o, "throughput_column", json_string (t->thr_column));
  json_object_set_new (o, "throughput_model",
                       json_string (c->fo.per_task_throughput ? "per-task" : "reference"));
  json_object_set_new (o, "throughput_task",
                       c->fo.per_task_throughput ? json_null ()
                       : json_string (t->tasks[c->fo.reference].name));
  json_object_set_new (o, "extrapolate", json_boolean (c->fo.extrapolate));
  json_object_set_new (o, "missing",
                       json_string (c->fo.refuse_missing ? "refuse" : "fill"));
  return o;
}

static void
json_write (FILE *out, json_t *o)
{
  if (json_dumpf (o, out, JSON_INDENT (2) | JSON_REAL_PRECISION (10)) != 0)
    die ("write error");
  fputc ('\n', out);
  json_decref (o);
}

/* The threshold for TASK in percentage points, or NaN (warned) when a
   budget is asked of a task without a base model.  */
static double
task_threshold (const config *c, const pmx_fit_table *t, size_t task, double budget)
{
  if (c->have_threshold)
    return c->threshold;
  double base = t->tasks[task].base_acc;
  if (isnan (base))
    warn ("%s: task %s has no base model row (N=1, s=0) with an accuracy;"
          " a budget cannot be applied (use --threshold)", t->name,
          t->tasks[task].name);
  return base - budget;
}

/* ---- Modes -------------------------------------------------------------- */

typedef struct selection
{
  size_t *idx;
  size_t n;
} selection;

/* Predict: the top K candidates per task.  Keeps the picks for --plot.  */
static void
run_predict (const config *c, const pmx_fit_table *t, const selection *sel,
             FILE *out, pmx_fit_pick **picks, size_t *npicks)
{
  json_t *root = c->json ? json_header (c, t, "predict") : NULL;
  json_t *arr = c->json ? json_array () : NULL;
  if (!c->json)
    fprintf (out, "task\trank\tN\ts\tpredicted_accuracy\tpredicted_%s\n",
             t->thr_column);
  for (size_t q = 0; q < sel->n; q++)
    {
      size_t k = sel->idx[q];
      const char *name = t->tasks[k].name;
      double thr = task_threshold (c, t, k, c->budget);
      if (isnan (thr))
        continue;
      list Ns, Ss;
      candidates (c, t, k, 0, &Ns, &Ss);
      size_t bad;
      picks[q] = alloc_picks (c->k);
      npicks[q] = pmx_fit_rank (t, k, &c->fo, Ns.v, Ns.n, Ss.v, Ss.n, thr,
                                picks[q], c->k, &bad);
      if (npicks[q] == (size_t) -1)
        die_lib (name);
      if (bad && !c->quiet)
        warn ("%s: task %s: %zu of %zu candidates could not be predicted"
              " (outside the measured range%s, or where too few grid points"
              " around them were measured%s)", t->name, name, bad, Ns.n * Ss.n,
              c->fo.extrapolate ? "" : ": see --extrapolate",
              c->fo.refuse_missing ? ": see --missing" : "");
      if (npicks[q] == 0)
        warn ("%s: task %s: no candidate is predicted to reach accuracy %g",
              t->name, name, out_acc (t, thr));
      if (c->json)
        {
          json_t *o = json_object (), *top = json_array ();
          json_object_set_new (o, "task", json_string (name));
          double base = t->tasks[k].base_acc;
          json_object_set_new (o, "base_accuracy",
                               isnan (base) ? json_null () : json_real (out_acc (t, base)));
          json_object_set_new (o, "threshold", json_real (out_acc (t, thr)));
          json_object_set_new (o, "candidates", json_integer ((json_int_t) (Ns.n * Ss.n)));
          json_object_set_new (o, "unpredictable", json_integer ((json_int_t) bad));
          for (size_t i = 0; i < npicks[q]; i++)
            json_array_append_new (top, json_pick (t, &picks[q][i], i + 1));
          json_object_set_new (o, "top", top);
          json_array_append_new (arr, o);
        }
      else
        for (size_t i = 0; i < npicks[q]; i++)
          fprintf (out, "%s\t%zu\t%g\t%g\t%.6g\t%.6g\n", name, i + 1,
                   picks[q][i].N, picks[q][i].s,
                   out_acc (t, picks[q][i].acc), picks[q][i].thr);
      free_candidates (c, &Ns, &Ss);
    }
  if (c->json)
    {
      if (c->have_budget)
        json_object_set_new (root, "budget", json_real (c->budget));
      json_object_set_new (root, "tasks", arr);
      json_write (out, root);
    }
}

static json_t *
json_share (size_t within, size_t predicted)
{
  return predicted ? json_real ((double) within / (double) predicted) : json_null ();
}

static void
tsv_share (FILE *out, size_t within, size_t predicted)
{
  if (predicted)
    fprintf (out, "%.4f", (double) within / (double) predicted);
  else
    fputs ("NA", out);
}

static void
run_loo (const config *c, pmx_fit_table *t, const selection *sel, FILE *out)
{
  pmx_fit_loo all = { 0 };
  json_t *root = c->json ? json_header (c, t, "loo") : NULL;
  json_t *arr = c->json ? json_array () : NULL;
  if (!c->json)
    fputs ("task\tacc_points\tacc_predicted\tacc_within\tM_A"
           "\tthr_points\tthr_predicted\tthr_within\tM_T\n", out);
  for (size_t q = 0; q <= sel->n; q++)
    {
      pmx_fit_loo r;
      const char *name = "ALL";
      if (q < sel->n)
        {
          name = t->tasks[sel->idx[q]].name;
          pmx_fit_loo_task (t, sel->idx[q], &c->fo, c->acc_tol, c->thr_tol, &r);
          all.acc_points += r.acc_points;
          all.acc_predicted += r.acc_predicted;
          all.acc_within += r.acc_within;
          all.thr_points += r.thr_points;
          all.thr_predicted += r.thr_predicted;
          all.thr_within += r.thr_within;
        }
      else
        r = all;
      if (c->json)
        {
          json_t *o = json_object ();
          json_object_set_new (o, "task", json_string (name));
          json_object_set_new (o, "acc_points", json_integer ((json_int_t) r.acc_points));
          json_object_set_new (o, "acc_predicted", json_integer ((json_int_t) r.acc_predicted));
          json_object_set_new (o, "acc_within", json_integer ((json_int_t) r.acc_within));
          json_object_set_new (o, "M_A", json_share (r.acc_within, r.acc_predicted));
          json_object_set_new (o, "thr_points", json_integer ((json_int_t) r.thr_points));
          json_object_set_new (o, "thr_predicted", json_integer ((json_int_t) r.thr_predicted));
          json_object_set_new (o, "thr_within", json_integer ((json_int_t) r.thr_within));
          json_object_set_new (o, "M_T", json_share (r.thr_within, r.thr_predicted));
          json_array_append_new (arr, o);
        }
      else
        {
          fprintf (out, "%s\t%zu\t%zu\t%zu\t", name, r.acc_points,
                   r.acc_predicted, r.acc_within);
          tsv_share (out, r.acc_within, r.acc_predicted);
          fprintf (out, "\t%zu\t%zu\t%zu\t", r.thr_points, r.thr_predicted,
                   r.thr_within);
          tsv_share (out, r.thr_within, r.thr_predicted);
          fputc ('\n', out);
        }
    }
  if (c->json)
    {
      json_object_set_new (root, "acc_tol", json_real (c->acc_tol));
      json_object_set_new (root, "thr_tol", json_real (c->thr_tol));
      json_object_set_new (root, "tasks", arr);
      json_write (out, root);
    }
}

static void
run_sweep (const config *c, const pmx_fit_table *t, const selection *sel, FILE *out)
{
  json_t *root = c->json ? json_header (c, t, "budget-sweep") : NULL;
  json_t *arr = c->json ? json_array () : NULL;
  size_t hits = 0, cases = 0;
  size_t *task_hits = calloc (sel->n, sizeof *task_hits);
  size_t *task_cases = calloc (sel->n, sizeof *task_cases);
  pmx_fit_pick *top = alloc_picks (c->k);
  if (!task_hits || !task_cases)
    die ("memory exhausted");
  if (!c->json)
    fprintf (out, "budget\ttask\tthreshold\tbest_N\tbest_s\tbest_accuracy"
             "\tbest_%s\tin_top%zu\tpredicted\n", t->thr_column, c->k);
  for (size_t q = 0; q < sel->n; q++)
    {
      size_t k = sel->idx[q];
      if (isnan (task_threshold (c, t, k, 0)))
        continue;
      list Ns, Ss;
      candidates (c, t, k, 1, &Ns, &Ss);
      /* Predict once; each budget only filters and ranks.  */
      pmx_fit_pick *all = alloc_picks (Ns.n * Ss.n + 1);
      size_t nall = pmx_fit_predict_all (t, k, &c->fo, Ns.v, Ns.n, Ss.v, Ss.n, all);
      for (size_t b = 0; b < c->sweep.n; b++)
        {
          double thr = t->tasks[k].base_acc - c->sweep.v[b];
          pmx_fit_pick best;
          if (!pmx_fit_true_best (t, k, &c->fo, thr, &best))
            continue;
          size_t n = pmx_fit_top (all, nall, thr, top, c->k);
          int hit = 0;
          for (size_t i = 0; i < n; i++)
            hit |= fabs (top[i].N - best.N) < 1e-9 && fabs (top[i].s - best.s) < 1e-9;
          hits += hit;
          cases++;
          task_hits[q] += hit;
          task_cases[q]++;
          if (c->json)
            {
              json_t *o = json_object (), *p = json_array ();
              json_object_set_new (o, "budget", json_real (c->sweep.v[b]));
              json_object_set_new (o, "task", json_string (t->tasks[k].name));
              json_object_set_new (o, "threshold", json_real (out_acc (t, thr)));
              json_object_set_new (o, "best", json_pick (t, &best, 0));
              json_object_set_new (o, "in_top", json_boolean (hit));
              for (size_t i = 0; i < n; i++)
                json_array_append_new (p, json_pick (t, &top[i], i + 1));
              json_object_set_new (o, "predicted", p);
              json_array_append_new (arr, o);
            }
          else
            {
              fprintf (out, "%g\t%s\t%.6g\t%g\t%g\t%.6g\t%.6g\t%s\t", c->sweep.v[b],
                       t->tasks[k].name, out_acc (t, thr), best.N, best.s,
                       out_acc (t, best.acc), best.thr, hit ? "yes" : "no");
              for (size_t i = 0; i < n; i++)
                fprintf (out, "%s%g/%g", i ? "," : "", top[i].N, top[i].s);
              if (n == 0)
                fputs ("-", out);
              fputc ('\n', out);
            }
        }
      free (all);
      free_candidates (c, &Ns, &Ss);
    }
  if (c->json)
    {
      json_t *per = json_object ();
      for (size_t q = 0; q < sel->n; q++)
        if (task_cases[q])
          json_object_set_new (per, t->tasks[sel->idx[q]].name,
                               json_share (task_hits[q], task_cases[q]));
      json_object_set_new (root, "k", json_integer ((json_int_t) c->k));
      json_object_set_new (root, "rows", arr);
      json_object_set_new (root, "share_by_task", per);
      json_object_set_new (root, "hits", json_integer ((json_int_t) hits));
      json_object_set_new (root, "cases", json_integer ((json_int_t) cases));
      json_object_set_new (root, "share", json_share (hits, cases));
      json_write (out, root);
    }
  else
    {
      for (size_t q = 0; q < sel->n; q++)
        if (task_cases[q])
          fprintf (out, "# %s: best measured pair in the top %zu: %zu of %zu\n",
                   t->tasks[sel->idx[q]].name, c->k, task_hits[q], task_cases[q]);
      fprintf (out, "# all tasks: best measured pair in the top %zu: %zu of %zu (",
               c->k, hits, cases);
      tsv_share (out, hits, cases);
      fputs (")\n", out);
    }
  free (top);
  free (task_hits);
  free (task_cases);
}

/* ---- Plot ------------------------------------------------------------------ */

/* Write S as a gnuplot single-quoted string ('' stands for ').  */
static void
gp_string (FILE *f, const char *s)
{
  fputc ('\'', f);
  for (; *s; s++)
    {
      if (*s == '\'')
        fputc ('\'', f);
      fputc (*s, f);
    }
  fputc ('\'', f);
}

static FILE *
temp_file (char *tmpl)
{
  int fd = mkstemp (tmpl);
  FILE *f = fd >= 0 ? fdopen (fd, "w") : NULL;
  if (!f)
    die ("%s: cannot create temporary file: %s", tmpl, strerror (errno));
  return f;
}

/* The measured points of TASK for the picture: accuracy, and throughput
   as the task measured it, else the throughput model's value (the
   reference task's).  ACC and THR have room for the task's grid; NaN where
   a point cannot be drawn.  Returns how many can.  */
static size_t
panel_points (const config *c, const pmx_fit_table *t, size_t task,
              double *acc, double *thr)
{
  const pmx_fit_task *tk = &t->tasks[task];
  size_t n = 0;
  for (size_t i = 0; i < tk->nN; i++)
    for (size_t j = 0; j < tk->ns; j++)
      {
        size_t cc = i * tk->ns + j;
        acc[cc] = tk->acc[cc];
        thr[cc] = tk->thr[cc];
        if (isnan (thr[cc])
            && pmx_fit_throughput (t, task, &c->fo, tk->Nv[i], tk->sv[j],
                                   &thr[cc]) != PMX_FIT_OK)
          thr[cc] = NAN;
        n += !isnan (acc[cc]) && !isnan (thr[cc]);
      }
  return n;
}

/* Draw one panel per selected task with gnuplot.  The data go to a
   temporary file as gnuplot "index" blocks; gnuplot writes the picture to
   the atomic output's temporary file, which is committed when it succeeds.  */
static void
run_plot (const config *c, const pmx_fit_table *t, const selection *sel,
          pmx_fit_pick **picks, const size_t *npicks)
{
  const char *gnuplot = getenv ("GNUPLOT");
  if (!gnuplot || !*gnuplot)
    gnuplot = "gnuplot";
  const char *tmpdir = getenv ("TMPDIR");
  if (!tmpdir || !*tmpdir)
    tmpdir = "/tmp";
  char dpath[4096], spath[4096];
  snprintf (dpath, sizeof dpath, "%s/prumux-fit-data.XXXXXX", tmpdir);
  snprintf (spath, sizeof spath, "%s/prumux-fit-plot.XXXXXX", tmpdir);
  FILE *df = temp_file (dpath);
  FILE *sf = temp_file (spath);
  cli_output o;
  cli_output_open (&o, c->plot);

  /* Tasks with nothing to draw get no panel.  */
  size_t panels = 0;
  for (size_t q = 0; q < sel->n; q++)
    {
      const pmx_fit_task *tk = &t->tasks[sel->idx[q]];
      double *a = malloc (tk->nN * tk->ns * sizeof *a);
      double *b = malloc (tk->nN * tk->ns * sizeof *b);
      if (!a || !b)
        die ("memory exhausted");
      if (panel_points (c, t, sel->idx[q], a, b))
        panels++;
      else
        warn ("--plot: task %s: no model with both accuracy and %s to draw",
              tk->name, t->thr_column);
      free (a);
      free (b);
    }
  if (panels == 0)
    {
      fclose (df);
      fclose (sf);
      unlink (dpath);
      unlink (spath);
      die ("--plot: nothing to draw");
    }

  int svg = strcmp (strrchr (c->plot, '.'), ".svg") == 0;
  size_t cols = panels <= 1 ? 1 : panels <= 4 ? 2 : 3;
  size_t rows = (panels + cols - 1) / cols;
  unsigned w = (unsigned) (800 * cols), h = (unsigned) (440 * rows);
  if (svg)
    fprintf (sf, "set terminal svg size %u,%u dynamic\n", w, h);
  else
    fprintf (sf, "if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) {\n"
             "  set terminal pngcairo size %u,%u\n"
             "} else {\n  set terminal png size %u,%u\n}\n", w, h, w, h);
  fputs ("set output ", sf);
  /* gnuplot writes the picture itself: to the temporary file, or straight
     to the target when that is written in place (a FIFO, a device).  */
  gp_string (sf, o.out.tmp ? o.out.tmp : o.out.path);
  fprintf (sf, "\nset datafile separator '\\t'\nset logscale x 2\n"
           "set grid\nset key outside right top vertical font ',9' spacing 1.2\n"
           "set offsets graph 0.03, graph 0.03, graph 0.05, graph 0.05\n"
           "set xlabel '%s'\nset ylabel 'accuracy (%s)'\n",
           t->thr_column, t->acc_percent ? "%" : "fraction");
  if (panels > 1)
    fprintf (sf, "set multiplot layout %zu,%zu\n", rows, cols);

  /* Points by kind, then the Pareto frontier of each family (as the
     paper's figure 2: DataMUX alone, CoFi alone, and both), then the
     picks.  */
  enum { BASE, COFI, DATAMUX, PRUMUX, FRONT_DATAMUX, FRONT_COFI, FRONT_ALL,
         PICKS, CATS };
  static const char *const cat_title[] = {
    "base model (N=1, s=0)", "CoFi only (N=1)", "DataMUX only (s=0)",
    "PruMUX", "DataMUX-only frontier", "CoFi-only frontier",
    "PruMUX (Pareto) frontier", "Auto-PruMUX picks"
  };
  static const char *const cat_style[] = {
    "with points pt 3 ps 2.2 lc rgb 'black'",
    "with points pt 7 ps 1.0 lc rgb '#1f77b4'",
    "with points pt 5 ps 1.2 lc rgb '#2ca02c'",
    "with points pt 9 ps 1.0 lc rgb '#d62728'",
    "with fsteps lw 1.2 dt 3 lc rgb '#2ca02c'",
    "with fsteps lw 1.2 dt 3 lc rgb '#1f77b4'",
    "with fsteps lw 1.8 dt 2 lc rgb '#d62728'",
    "with points pt 6 ps 2.5 lw 2 lc rgb '#ff7f0e'"
  };
  size_t block = 0;
  for (size_t q = 0; q < sel->n; q++)
    {
      const pmx_fit_task *tk = &t->tasks[sel->idx[q]];
      size_t cells = tk->nN * tk->ns;
      double *acc = malloc (cells * sizeof *acc), *thr = malloc (cells * sizeof *thr);
      double *fam = malloc (cells * sizeof *fam);
      size_t *idx = malloc (cells * sizeof *idx);
      if (!acc || !thr || !fam || !idx)
        die ("memory exhausted");
      if (panel_points (c, t, sel->idx[q], acc, thr) == 0)
        {
          free (acc);
          free (thr);
          free (fam);
          free (idx);
          continue;
        }
      fputs ("set title ", sf);
      gp_string (sf, tk->name);
      fputs ("\nplot ", sf);
      int first = 1;
      for (int cat = 0; cat < CATS; cat++)
        {
          size_t n = 0;
          if (cat <= PRUMUX)
            for (size_t i = 0; i < tk->nN; i++)
              for (size_t j = 0; j < tk->ns; j++)
                {
                  size_t cc = i * tk->ns + j;
                  int isN1 = tk->Nv[i] == 1, iss0 = tk->sv[j] == 0;
                  int kind = isN1 && iss0 ? BASE : isN1 ? COFI
                    : iss0 ? DATAMUX : PRUMUX;
                  if (kind != cat || isnan (acc[cc]) || isnan (thr[cc]))
                    continue;
                  fprintf (df, "%.10g\t%.10g\n", thr[cc], out_acc (t, acc[cc]));
                  n++;
                }
          else if (cat != PICKS)
            {
              /* The family's accuracies; NaN leaves a point out.  */
              for (size_t i = 0; i < tk->nN; i++)
                for (size_t j = 0; j < tk->ns; j++)
                  {
                    size_t cc = i * tk->ns + j;
                    int in = cat == FRONT_ALL
                      || (cat == FRONT_DATAMUX && tk->sv[j] == 0)
                      || (cat == FRONT_COFI && tk->Nv[i] == 1);
                    fam[cc] = in ? acc[cc] : NAN;
                  }
              size_t m = pmx_fit_pareto (fam, thr, cells, idx);
              if (m < 2)
                m = 0;          /* a single point is no frontier */
              for (size_t i = 0; i < m; i++)
                fprintf (df, "%.10g\t%.10g\n", thr[idx[i]], out_acc (t, acc[idx[i]]));
              n = m;
            }
          else if (picks && picks[q])
            for (size_t i = 0; i < npicks[q]; i++, n++)
              fprintf (df, "%.10g\t%.10g\n", picks[q][i].thr,
                       out_acc (t, picks[q][i].acc));
          if (n == 0)
            continue;
          fprintf (df, "\n\n");
          fprintf (sf, "%s", first ? "" : ", \\\n     ");
          gp_string (sf, dpath);
          fprintf (sf, " index %zu using 1:2 title '%s' %s", block++,
                   cat_title[cat], cat_style[cat]);
          first = 0;
        }
      fputc ('\n', sf);
      free (acc);
      free (thr);
      free (fam);
      free (idx);
    }
  if (panels > 1)
    fputs ("unset multiplot\n", sf);
  fputs ("set output\n", sf);
  int bad = ferror (df) | ferror (sf);
  bad |= fclose (df) != 0;
  bad |= fclose (sf) != 0;
  if (bad)
    {
      unlink (dpath);
      unlink (spath);
      die ("--plot: cannot write temporary files in %s", tmpdir);
    }

  fflush (stdout);
  pid_t pid;
  char *args[] = { (char *) gnuplot, spath, NULL };
  int err = posix_spawnp (&pid, gnuplot, NULL, NULL, args, environ);
  int status = 0;
  if (err == 0)
    while (waitpid (pid, &status, 0) < 0)
      if (errno != EINTR)
        {
          err = errno;
          break;
        }
  unlink (dpath);
  unlink (spath);
  if (err == ENOENT)
    die ("--plot: gnuplot not found ('%s'); install gnuplot (Debian:"
         " gnuplot-nox) or name it in GNUPLOT", gnuplot);
  if (err)
    die ("--plot: cannot run '%s': %s", gnuplot, strerror (err));
  if (!WIFEXITED (status) || WEXITSTATUS (status) != 0)
    die ("--plot: %s failed (%s %d)", gnuplot,
         WIFEXITED (status) ? "exit status" : "signal",
         WIFEXITED (status) ? WEXITSTATUS (status) : WTERMSIG (status));
  cli_output_commit (&o);
}

/* ---- Main ------------------------------------------------------------------ */

int
main (int argc, char **argv)
{
  cli_init (argv[0]);
  config c;
  parse_args (argc, argv, &c);

  const char *name = c.input && strcmp (c.input, "-") != 0 ? c.input : "-";
  FILE *in = cli_open_input (c.input);
  pmx_fit_table *t = pmx_fit_read (in, name);
  if (!t)
    die_lib (NULL);
  cli_close_input (in, c.input);
  for (size_t i = 0; i < t->nwarnings; i++)
    warn ("%s", t->warnings[i]);
  if (!c.quiet)
    warn ("%s: accuracy read as %s; budgets and tolerances are percentage points",
          name, t->acc_percent ? "percentages (0-100)" : "fractions (0-1)");

  selection sel = { calloc (t->ntasks, sizeof (size_t)), 0 };
  if (!sel.idx)
    die ("memory exhausted");
  if (c.task)
    {
      int k = pmx_fit_find_task (t, c.task);
      if (k < 0)
        die ("%s: no task '%s' in the table", name, c.task);
      sel.idx[sel.n++] = (size_t) k;
    }
  else
    for (size_t k = 0; k < t->ntasks; k++)
      sel.idx[sel.n++] = k;
  if (c.ref_task)
    {
      int k = pmx_fit_find_task (t, c.ref_task);
      if (k < 0)
        die ("%s: --throughput-task: no task '%s' in the table", name, c.ref_task);
      c.fo.reference = (size_t) k;
    }
  else
    c.fo.reference = pmx_fit_default_reference (t);
  if (c.fit_s.n)
    pmx_fit_hold_out_s (t, c.fit_s.v, c.fit_s.n);

  pmx_fit_pick **picks = calloc (sel.n, sizeof *picks);
  size_t *npicks = calloc (sel.n, sizeof *npicks);
  if (!picks || !npicks)
    die ("memory exhausted");
  int printing = c.have_budget || c.have_threshold || c.loo || c.sweep.n;
  if (printing)
    {
      cli_output o;
      FILE *out = cli_output_open (&o, c.output);
      if (c.loo)
        run_loo (&c, t, &sel, out);
      else if (c.sweep.n)
        run_sweep (&c, t, &sel, out);
      else
        run_predict (&c, t, &sel, out, picks, npicks);
      cli_check_write (out, c.output ? c.output : "-");
      cli_output_commit (&o);
    }
  if (c.plot)
    run_plot (&c, t, &sel, picks, npicks);

  for (size_t q = 0; q < sel.n; q++)
    free (picks[q]);
  free (picks);
  free (npicks);
  free (sel.idx);
  free (c.sweep.v);
  free (c.fit_s.v);
  free (c.cand_N.v);
  free (c.cand_s.v);
  pmx_fit_free (t);
  return EXIT_SUCCESS;
}
