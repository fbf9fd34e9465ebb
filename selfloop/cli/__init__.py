"""The command line: LightningCLI with the loop's arguments, and the checks it runs before any work."""
