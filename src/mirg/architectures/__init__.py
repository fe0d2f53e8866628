"""Models built from a config, with random weights and a locally trained tokenizer: the tiny presets the tests and
the embedded base start from (`mirg model init-tiny`), and the published Qwen-VL shapes (`mirg model init`).

Import-light: torch and transformers are imported only when a model is built.
"""
