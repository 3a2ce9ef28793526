"""Inference with a saved run on new images."""
