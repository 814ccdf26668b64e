"""Timeline, cohorts, assays and the runner that drives the model layers."""
