"""rollkit: turn question datasets into verified LLM/VLM training data."""

__version__ = "0.1.0"
