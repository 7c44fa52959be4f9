"""Orchestration of the taxi pipeline: config, the one DAG definition, runners and the CLI."""
