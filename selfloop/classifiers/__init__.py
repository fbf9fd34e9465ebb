"""Downstream classifiers: backbones by name and the ImageClassifier LightningModule."""
