"""Entry point: ``python main.py fit --config configs/digits.yaml``."""

from selfloop.cli import main

if __name__ == "__main__":
    main()
