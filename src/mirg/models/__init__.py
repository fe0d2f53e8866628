"""Model families behind one adapter (processor, prompt, coordinate space, pixel limits) and tiny models.

Import-light: torch and transformers are imported only when a model or processor is loaded or built.
"""

from mirg.models.base import ModelAdapter
from mirg.models.registry import adapter_for, resolve_model_path, supported_adapters, supported_families

__all__ = ["ModelAdapter", "adapter_for", "resolve_model_path", "supported_adapters", "supported_families"]
