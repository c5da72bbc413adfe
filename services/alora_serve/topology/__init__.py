"""Serving topologies on Ray Serve, built from one validated config."""
