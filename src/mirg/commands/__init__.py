"""Sub-commands of `mirg`. Each module adds its parsers in ``register``; handlers import heavy
libraries (torch, transformers) only when they run, so `mirg --help` and `mirg score` stay fast."""
