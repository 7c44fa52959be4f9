"""Resolver nodes: the latest blessed model other than the candidate, and for warm start."""
