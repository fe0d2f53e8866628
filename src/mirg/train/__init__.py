"""The two training stages on TRL: ``sft`` (trajectories) and ``grpo`` (image-aware rewards).

Import-light: the stage modules import TRL and torch; import them where a stage runs.
"""
