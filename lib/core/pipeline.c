/* pipeline.c -- the check of an input stream's stage and model
   (pipeline.h).  */

#include <config.h>
#include "pipeline.h"
#include "error.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The stages in pipeline order, what they hold and who writes them.  */
static const struct
{
  const char *stage, *what, *writer;
} stages[] = {
  { "tokens", "token ids", "prumux-tokenize" },
  { "embeds", "encoder inputs", "prumux-mux" },
  { "hidden", "hidden states", "prumux-infer" },
  { "logits", "logits", "prumux-demux" },
};
enum { NSTAGES = sizeof stages / sizeof stages[0] };

static int
stage_index (const char *stage)
{
  for (int i = 0; i < NSTAGES; i++)
    if (!strcmp (stage, stages[i].stage))
      return i;
  return -1;
}

/* "prumux-tokenize", "prumux-tokenize and prumux-mux", "A, B and C": the
   writers of stages FROM..TO-1, into BUF.  */
static const char *
writers (int from, int to, char *buf, size_t size)
{
  buf[0] = '\0';
  for (int i = from; i < to; i++)
    {
      size_t n = strlen (buf);
      snprintf (buf + n, size - n, "%s%s", i == from ? "" : i == to - 1 ? " and " : ", ",
                stages[i].writer);
    }
  return buf;
}

/* " (FILE, task TASK)", " (FILE)", " (task TASK)" or "".  */
static const char *
model_names (const char *file, const char *task, char *buf, size_t size)
{
  int f = file && *file, t = task && *task;
  if (f && t)
    snprintf (buf, size, " (%s, task %s)", file, task);
  else if (f || t)
    snprintf (buf, size, " (%s%s)", t ? "task " : "", f ? file : task);
  else
    buf[0] = '\0';
  return buf;
}

/* Whether C can start a line of text (ASCII or a UTF-8 lead byte).  */
static int
text_byte (int c)
{
  return c == '\t' || c == '\n' || c == '\r' || (c >= 0x20 && c < 0x7f)
    || (c >= 0xc2 && c <= 0xf4);
}

static int
check_stage (const pmx_meta *meta, const char *name, const pmx_stage_input *in)
{
  const char *stage = pmx_meta_get (meta, "stage");
  if (!stage || !strcmp (stage, in->stage))
    return 0;
  int got = stage_index (stage), want = stage_index (in->stage);
  char progs[128];
  if (got < 0)
    return pmx_error ("%s: unknown stage '%s' (%s reads stage %s)", name, stage,
                      in->program, in->stage);
  if (got < want)
    return pmx_error ("%s: %s (stage %s, from %s), but %s reads %s (stage %s): "
                      "run %s first%s%s", name, stages[got].what, stage,
                      stages[got].writer, in->program, stages[want].what, in->stage,
                      writers (got + 1, want + 1, progs, sizeof progs),
                      got == want - 1 && in->alternative ? ", " : "",
                      got == want - 1 && in->alternative ? in->alternative : "");
  if (in->option && got < NSTAGES - 1 && !strcmp (stages[got + 1].writer, in->program))
    return pmx_error ("%s: %s (stage %s, from %s), but %s %s reads %s (stage %s): "
                      "leave out %s", name, stages[got].what, stage, stages[got].writer,
                      in->program, in->option, stages[want].what, in->stage,
                      in->option);
  if (got == NSTAGES - 1)
    return pmx_error ("%s: %s (stage %s, from %s) are the pipeline's final output, "
                      "past %s (prumux-cat shows them)", name, stages[got].what, stage,
                      stages[got].writer, in->program);
  return pmx_error ("%s: %s (stage %s, from %s) are past %s: give them to %s", name,
                    stages[got].what, stage, stages[got].writer, in->program,
                    stages[got + 1].writer);
}

static int
check_model (const pmx_meta *meta, const char *name, const pmx_stage_input *in)
{
  const pmx_model_config *cfg = in->cfg;
  if (!cfg)
    return 0;
  const char *id = pmx_meta_get (meta, "model");
  char ours[200], theirs[200];
  model_names (NULL, cfg->task, ours, sizeof ours);
  if (!id)
    {
      if (!in->require_model)
        return 0;
      return pmx_error ("%s: the stream names no model (no model= in its header), "
                        "so it cannot be checked against %s%s: make it with the same "
                        "-m %s", name, in->model_file, ours, in->model_file);
    }
  if (!strcmp (id, cfg->id))
    return 0;
  /* Token ids depend on the tokenizer only.  Its identity costs a pass
     over the vocabulary, so it is worked out only here, for a stream made
     for another model.  */
  const char *tok = pmx_meta_get (meta, "tokenizer");
  char mine[33];
  if (!strcmp (in->stage, "tokens") && in->tokenizer_model && tok
      && pmx_model_vocab (in->tokenizer_model, NULL)
      && pmx_model_tokenizer_id (in->tokenizer_model, mine) == 0
      && !strcmp (tok, mine))
    return 0;
  model_names (pmx_meta_get (meta, "model_file"), pmx_meta_get (meta, "model_task"),
               theirs, sizeof theirs);
  return pmx_error ("%s: made for model %s%s, but %s is model %s%s: use one model "
                    "for every stage", name, id, theirs, in->model_file, cfg->id, ours);
}

pmx_reader *
pmx_stage_open (FILE *f, const char *name, const pmx_stage_input *in, int *empty)
{
  /* Look at the first byte: nothing at all, or text, deserve their own
     words; the reader then sees it again.  */
  int c = getc (f);
  if (empty)
    *empty = c == EOF && !ferror (f);
  if (c == EOF)
    {
      if (ferror (f))
        pmx_error_errno (errno, "%s: read error", name);
      else if (!strcmp (name, "-"))
        pmx_error ("%s: empty input (did the stage before fail?)", name);
      else
        pmx_error ("%s: empty file, not a prumux stream", name);
      return NULL;
    }
  if (ungetc (c, f) == EOF)
    {
      pmx_error ("%s: cannot push back a byte", name);
      return NULL;
    }
  if (c != 0x89)                /* the magic's first byte */
    {
      int i = stage_index (in->stage);
      char progs[128];
      pmx_error ("%s: %s: %s reads %s (stage %s); run %s first", name,
                 text_byte (c) ? "text, not a prumux stream"
                 : "not a prumux stream (bad magic)", in->program, stages[i].what,
                 in->stage, writers (0, i + 1, progs, sizeof progs));
      return NULL;
    }
  pmx_reader *r = pmx_reader_open (f, name);
  if (!r)
    return NULL;
  /* A stage that failed on an empty input leaves the start of a stream
     with error= in a pipe (cli_stage_open), cut short: reading it fails
     as a truncated stream, which is what the caller should see.  */
  const pmx_meta *meta = pmx_reader_meta (r);
  if (pmx_meta_get (meta, "error"))
    return r;
  if (check_stage (meta, name, in) < 0 || check_model (meta, name, in) < 0)
    {
      pmx_reader_close (r);
      return NULL;
    }
  return r;
}

int
pmx_stage_set_model (pmx_meta *m, const pmx_model_config *cfg, const char *model_file)
{
  const char *base = model_file ? strrchr (model_file, '/') : NULL;
  base = base ? base + 1 : model_file;
  if (pmx_meta_set (m, "model", cfg->id) < 0
      || (base && *base && pmx_meta_set (m, "model_file", base) < 0)
      || (cfg->task[0] && pmx_meta_set (m, "model_task", cfg->task) < 0))
    return -1;
  return 0;
}

int
pmx_model_token_length (const pmx_model_config *cfg, int dflt)
{
  if (cfg->max_length > 0)
    return cfg->max_length;
  if (cfg->max_position > 1 && cfg->max_position < dflt)
    return cfg->max_position;
  return dflt;
}

int
pmx_tokenizer_id (const pmx_vocab *v, int lowercase, int strip_accents,
                  int max_length, char out[33])
{
  /* Two segments: the settings, and the tokens one a line (a token holds
     no newline: vocab.txt has one a line).  */
  char settings[96];
  int sn = snprintf (settings, sizeof settings,
                     "prumux-tokenizer lowercase=%d strip_accents=%d"
                     " max_length=%d", lowercase, strip_accents, max_length);
  int n = pmx_vocab_size (v);
  size_t len = 0, tn;
  for (int i = 0; i < n; i++)
    {
      pmx_vocab_token (v, i, &tn);
      len += tn + 1;
    }
  char *text = malloc (len + 1), *p = text;
  if (!text)
    return pmx_error_errno (ENOMEM, "tokenizer identity");
  for (int i = 0; i < n; i++)
    {
      const char *t = pmx_vocab_token (v, i, &tn);
      memcpy (p, t, tn);
      p += tn;
      *p++ = '\n';
    }
  const void *seg[2] = { settings, text };
  size_t lens[2] = { (size_t) sn, len };
  pmx_identity_hash (seg, lens, 2, out);
  free (text);
  return 0;
}

int
pmx_model_tokenizer_id (const pmx_model *m, char out[33])
{
  const pmx_model_config *cfg = pmx_model_config_of (m);
  size_t len;
  const char *text = pmx_model_vocab (m, &len);
  if (!text)
    return pmx_error ("the model has no vocabulary");
  pmx_vocab *v = pmx_vocab_load_mem (text, len, "vocab.txt");
  if (!v)
    return -1;
  int rc = pmx_tokenizer_id (v, cfg->lowercase, cfg->strip_accents,
                             pmx_model_token_length (cfg, 128), out);
  pmx_vocab_free (v);
  return rc;
}
