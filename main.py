"""Entry point: ``python main.py fit --config configs/digits.yaml`` (the same as ``selfloop fit ...``).

Every ``selfloop`` subcommand works here too: ``python main.py report RUNS --out DIR``.
"""

from selfloop.__main__ import main

if __name__ == "__main__":
    main()
