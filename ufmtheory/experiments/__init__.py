"""Experiments built from the layers below: the demo, studies and sweeps."""
