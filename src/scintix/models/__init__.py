"""Models behind one interface; ``create_model`` builds any registered name."""

from .registry import MODELS, create_model, list_models, model_info

__all__ = ["MODELS", "create_model", "list_models", "model_info"]
