"""Cluster mode: the line in the shared store, the bus between nodes, and node liveness."""
