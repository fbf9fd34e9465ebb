"""Shared foundations of every layer: the error base, the metric catalogue, eval mode, the offline switch."""
