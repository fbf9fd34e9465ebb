"""The ``selfloop`` command: ``selfloop fit|report|validate ...`` (also ``python -m selfloop``, ``python main.py``).

* ``selfloop fit --config configs/digits.yaml`` runs the self-consuming loop (``selfloop.cli.app``; the rest
  of the line is LightningCLI's, so ``selfloop fit --help`` lists every flag);
* ``selfloop report RUNS --out DIR`` writes the figures, tables and ``index.html`` of run directories
  (``selfloop.analysis.report``);
* ``selfloop validate`` checks that the loop measures what it should (``selfloop.known_answers``).

Each subcommand's module is imported only when that subcommand runs: ``selfloop report`` does not load
the training code, and ``selfloop --help`` answers at once.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

PROG = "selfloop"
# subcommand: (the module whose ``main(argv)`` it runs, its one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "fit": ("selfloop.cli.app", "run the loop: selfloop fit --config configs/digits.yaml"),
    "report": ("selfloop.analysis.report", "figures, tables, index.html: selfloop report RUNS --out DIR"),
    "validate": ("selfloop.known_answers", "check that the loop measures what it should"),
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Self-consuming loop simulator: does bias grow when image classifiers train on "
        "generated data, generation after generation?",
        epilog=f"'{PROG} COMMAND --help' shows the options of a command.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        # The subcommand's own parser reads every further argument (its --help too).
        commands.add_parser(name, help=help_text, add_help=False, prefix_chars="\0")
    return parser


def _module(command: str):
    name = COMMANDS[command][0]
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as err:
        if err.name != name:
            raise
        print(f"{PROG} {command}: error: this install has no {name}", file=sys.stderr)
        sys.exit(2)


def main(argv: Sequence[str] | None = None) -> None:
    """Run a subcommand.

    Args:
        argv: the arguments after the program name (default: ``sys.argv[1:]``).

    Raises:
        SystemExit: status 2 with a one-line message on a usage error or a missing or invalid input
            (the subcommand's own statuses otherwise).
    """
    args, rest = _parser().parse_known_args(argv)
    if args.command == "fit":
        # Before the training stack's import (seconds): a pre-emption signal then is recorded, not fatal.
        from selfloop.run import early_signals

        early_signals.install()
        # Then a plain value that cannot work is refused in a second, before the training stack's import.
        from selfloop.cli.preflight import refuse_early

        refuse_early(rest)
    module = _module(args.command)
    if args.command == "fit":
        # From the real command line LightningCLI reads sys.argv itself ("fit" included): DDP
        # restarts the same command line for ranks 1.., and the CLI records it as the resume command.
        module.main(None if argv is None else ["fit", *rest])
        return
    try:
        module.main(rest)
    except SystemExit as err:
        if not isinstance(err.code, str):
            raise
        # A message instead of a status: a missing or invalid input, exit 2 as for every user error.
        print(err.code, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
