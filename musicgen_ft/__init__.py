"""Self-hosted MusicGen fine-tuning engine."""

__version__ = "0.1.0"
