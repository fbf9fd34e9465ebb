"""Evaluation metrics for the self-consuming loop: accuracy and subgroup fairness."""

from selfloop.metrics.fairness import GroupFairness, fairness_summary, summary_from_counts

__all__ = ["GroupFairness", "fairness_summary", "summary_from_counts"]
