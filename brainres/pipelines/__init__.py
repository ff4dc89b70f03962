"""Pipelines shipped with brainres (package data): demo.toml, kriegeskorte.toml."""
