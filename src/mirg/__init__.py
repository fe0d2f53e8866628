"""mirg: Multi-Image Reasoning and Grounding with Reinforcement Learning.

The package root stays import-light: `mirg score` and `mirg --help` must not pull in torch or
transformers. Import submodules explicitly (``from mirg import geometry``).
"""

__version__ = "0.1.0"
