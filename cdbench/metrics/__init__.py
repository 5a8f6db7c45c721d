"""Evaluation metrics: correlations with human scores, STRESS, bootstrap CIs, caption and
attribute metrics. numpy/scipy only at import time; caption back-ends load on first use.

The stable API::

    correlation_metrics(pred, human, fit="5pl") -> {"n", "srcc", "krcc", "plcc", "plcc_raw", "rmse", "fit"}
    stress(pred, human) -> float (0..100)
    stress_f_test(stress_a, stress_b, n) -> {"f", "p_value", "verdict", ...}
    subset_metrics(pred, human, aligned, scenes, fit=, n_boot=, seed=, scale=) -> {"all", "aligned", "not_aligned"}
    caption_metrics(candidates, references) -> {"bleu1".., "meteor", "rouge_l", "cider", "bertscore_f1", ...}
    attribute_accuracy(descriptions, references) -> {"parse_rate", "accuracy", "macro_f1", "per_attribute"}
"""

from cdbench.metrics.attribute_accuracy import attribute_accuracy, macro_f1
from cdbench.metrics.bootstrap import bootstrap_ci, scene_groups
from cdbench.metrics.captions import CAPTION_METRICS, CaptionScorer, caption_metrics
from cdbench.metrics.correlation import MetricWarning, correlation_metrics, krcc, pearson, rmse, srcc
from cdbench.metrics.logistic import FIT_KINDS, LogisticFit, fit_logistic, logistic_4pl, logistic_5pl
from cdbench.metrics.stress import compare_stress, stress, stress_f_test
from cdbench.metrics.subsets import (
    SCORE_METRICS,
    SUBSETS,
    score_metrics,
    stress_predictions,
    subset_masks,
    subset_metrics,
)

__all__ = [
    "CAPTION_METRICS", "CaptionScorer", "attribute_accuracy", "caption_metrics", "macro_f1",
    "FIT_KINDS", "LogisticFit", "MetricWarning", "SCORE_METRICS", "SUBSETS", "bootstrap_ci", "compare_stress",
    "correlation_metrics", "fit_logistic", "krcc", "logistic_4pl", "logistic_5pl", "pearson", "rmse",
    "scene_groups", "score_metrics", "srcc", "stress", "stress_f_test", "stress_predictions", "subset_masks",
    "subset_metrics",
]
