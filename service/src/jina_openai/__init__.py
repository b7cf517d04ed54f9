"""OpenAI-compatible embeddings service (jina-embeddings-v2-base-code and BERT-family encoders)."""

__version__ = "0.1.0"
