"""Resolver nodes (ML Metadata) and the container resolver over the serving dir: baseline and warm start."""
