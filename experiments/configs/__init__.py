"""Experiment and study config files (ml_collections): see default.py, recipes.py and the studies."""
