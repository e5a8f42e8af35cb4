"""The method as plain functions over numpy arrays: distances, thresholds, metrics, C-Score, X-Maps."""
