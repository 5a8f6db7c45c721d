"""Evaluation: run a model over a split (resumable), score predictions, write the results files.

* :func:`evaluate_model`: ``cdbench evaluate`` (predictions.jsonl, submission.json, metrics.json,
  scatter.png, table.md).
* :func:`score_predictions`: the one scoring path (``cdbench score``, the leaderboard).
"""

from cdbench.evaluation.predictions import read_predictions
from cdbench.evaluation.report import jsonable, metrics_table, models_table, scores_table
from cdbench.evaluation.runner import EvaluationResult, evaluate_model, model_slug
from cdbench.evaluation.scoring import score_predictions

__all__ = ["EvaluationResult", "evaluate_model", "jsonable", "metrics_table", "model_slug", "models_table",
           "read_predictions", "score_predictions", "scores_table"]
