"""The loop and its fits: the generation loop, the classifier fit, the loop's configuration."""
