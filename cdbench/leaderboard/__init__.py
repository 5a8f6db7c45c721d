"""The cdbench leaderboard: submission format and validation, the board, its web page, and
interop with the SPCD community competition's ``id,score`` CSV files."""

from cdbench.leaderboard.schema import SCHEMA_VERSION, TASKS, submission_schema
from cdbench.leaderboard.validate import ReferenceSplit, ValidationResult, validate_submission

__all__ = ["SCHEMA_VERSION", "TASKS", "submission_schema", "ReferenceSplit", "ValidationResult",
           "validate_submission"]
