"""Tests of the embeddings service (service/)."""
