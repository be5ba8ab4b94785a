"""Evaluation: BEIR datasets, metrics and reports (the bundled SciFact demo collection lives here)."""
