"""Data: tokenizers, the task registry, splits and batching."""
