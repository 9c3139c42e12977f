"""Metrics: EPE, PCK/AUC and Procrustes alignment, as the hand-pose benchmarks use them."""
