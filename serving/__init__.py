"""Serving: request checks and the serving gate's checks, the model server, versions and pins."""
