/* metrics.h -- evaluation metrics of a classifier or regressor: accuracy,
   F1 (of class 1, for two classes), Matthews correlation (any number of
   classes, as scikit-learn's matthews_corrcoef), and Pearson and Spearman
   correlation for a one-output regression head (GLUE's metrics); per
   class, precision, recall and F1, and the confusion matrix.

   Usage: pmx_metrics_new, one pmx_metrics_add per scored row, then
   pmx_metrics_get.  Memory: the regression metrics keep every pair.  */

#ifndef PRUMUX_METRICS_H
#define PRUMUX_METRICS_H

#include <stdint.h>

typedef struct pmx_metrics pmx_metrics;

typedef struct pmx_metric_values
{
  int64_t count;                /* rows scored */
  int64_t skipped;              /* rows without a gold label (negative) */
  int regression;
  double accuracy;              /* classification */
  double f1;                    /* classification with 2 classes, else NaN */
  double matthews;              /* classification */
  double macro_f1;              /* classification: mean of the classes' F1 */
  double pearson, spearman;     /* regression */
} pmx_metric_values;

/* CLASSES >= 2: classification (prediction = argmax of the scores);
   CLASSES = 1: regression (prediction = the single score).  NULL with an
   error on a bad count or no memory.  */
pmx_metrics *pmx_metrics_new (int classes);
void pmx_metrics_free (pmx_metrics *m);

/* Score one row: GOLD is the label index (classification; a negative one
   means "no label" and is counted as skipped) or the gold value
   (regression).  SCORES holds CLASSES values.  -1 with an error for a
   label index >= CLASSES, or no memory.  */
int pmx_metrics_add (pmx_metrics *m, double gold, const float *scores);

/* Compute the metrics so far.  A metric that is undefined (no rows, a
   constant column) is NaN, except Matthews, which is 0 then (as
   scikit-learn).  */
void pmx_metrics_get (const pmx_metrics *m, pmx_metric_values *v);

/* The figures of class K of a classification (0 <= K < CLASSES >= 2).  */
typedef struct pmx_class_values
{
  int64_t support;              /* gold rows of the class */
  int64_t predicted;            /* rows predicted as the class */
  double precision, recall, f1; /* 0 where undefined, as scikit-learn's
                                   zero_division default */
} pmx_class_values;
void pmx_metrics_class (const pmx_metrics *m, int k, pmx_class_values *v);

/* The confusion matrix of a classification, (CLASSES, CLASSES) indexed
   [gold][predicted], owned by M; NULL for a regression.  */
const int64_t *pmx_metrics_confusion (const pmx_metrics *m);

#endif
