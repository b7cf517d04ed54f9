"""The serving engine: input preparation, admission, fair batching, the inference thread."""
