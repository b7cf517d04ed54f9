"""Benchmarks and the soak test of the embeddings service (`make bench`, `make soak`)."""
