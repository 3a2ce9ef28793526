"""Explanations: class activation maps, their faithfulness, and overlays."""
