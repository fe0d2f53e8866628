"""Datasets: the MIG-Bench converter, the synthetic generator and trajectory construction."""
