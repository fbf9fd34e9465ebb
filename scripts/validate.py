"""Known-answer scenarios over 3 seeds, one table: ``python scripts/validate.py --help`` (same as ``selfloop validate``)."""

import sys

from selfloop.known_answers import main

if __name__ == "__main__":
    sys.exit(main())
