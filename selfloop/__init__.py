"""selfloop: a self-consuming loop simulator for studying bias in image classifiers across generations."""

__version__ = "0.1.0"
