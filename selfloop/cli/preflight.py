"""A refused value answers before the training stack is imported.

``selfloop fit --config configs/quickstart.yaml --model.lr -1`` is refused by the typed parser only after
Lightning, torch and torchvision are imported (seconds on a 2-core machine). ``early_problems`` reads the
``--config`` files and the ``--group.key value`` overrides as plain YAML values, without types or defaults,
and asks ``value_checks.value_problems``; anything it cannot read (a missing file, a YAML error, a value
that is not a number) is left to the full parser, which runs the same checks again on the typed config and
reports everything else.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from jsonargparse import Namespace

from selfloop.cli.value_checks import value_problems

# Asked for help or a printed config: nothing is run, so nothing is refused.
NOT_A_RUN = ("-h", "--help", "--print_config")
# The keys of a subclass group that are not the class's own arguments.
SUBCLASS_KEYS = ("class_path", "init_args", "dict_kwargs")
SUBCLASS_GROUPS = ("generator",)


def early_problems(argv: Sequence[str]) -> list[str]:
    """Messages for the plain values of a ``fit`` command line that cannot work (empty: none found, or
    ``argv`` asks for help).

    Args:
        argv: the arguments after ``fit``.
    """
    if any(arg.partition("=")[0] in NOT_A_RUN for arg in argv):
        return []
    config = Namespace()
    for key, value in _assignments(argv):
        if key == "config":
            for file_key, file_value in _flatten(_read_config(value)):
                config[file_key] = file_value
        else:
            config[_canonical(key)] = _scalar(value)
    return value_problems(config)


def refuse_early(argv: Sequence[str]) -> None:
    """Exit with status 2 and the parser's one line when ``early_problems(argv)`` finds any.

    Raises:
        SystemExit: status 2 on a refused value.
    """
    found = early_problems(argv)
    if found:
        sys.stderr.write(parser_error("; ".join(found), f"{os.path.basename(sys.argv[0])} fit"))
        sys.exit(2)


def parser_error(line: str, prog: str) -> str:
    """What the command prints for a refused value or a parse error: the one line, and where the options are."""
    return f"selfloop: error: {line}\n(`{prog} --help` lists every option and its type)\n"


def _assignments(argv: Sequence[str]) -> list[tuple[str, str]]:
    """``(key, value)`` for each ``--key value`` and ``--key=value``, in order (a bare flag is skipped)."""
    found = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if not arg.startswith("--"):
            continue
        key, equals, value = arg[2:].partition("=")
        if not equals:
            if i == len(argv) or (argv[i].startswith("--")):
                continue
            value = argv[i]
            i += 1
        found.append((key, value))
    return found


def _read_config(path: str) -> Mapping[str, Any]:
    try:
        loaded = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError):
        return {}  # the full parser names the file and what is wrong with it
    return loaded if isinstance(loaded, Mapping) else {}


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = []
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping):
            found += _flatten(value, f"{dotted}.")
        else:
            found.append((_canonical(dotted), value))
    return found


def _canonical(key: str) -> str:
    """``generator.lr`` is jsonargparse's shorthand for ``generator.init_args.lr``; a class path given as
    ``--generator NAME`` is ``generator.class_path``."""
    group, _, rest = key.partition(".")
    if group not in SUBCLASS_GROUPS:
        return key
    if not rest:
        return f"{group}.class_path"
    if rest.split(".")[0] in SUBCLASS_KEYS:
        return key
    return f"{group}.init_args.{rest}"


def _scalar(text: str) -> Any:
    """A command-line value as the number it spells (``-1``, ``1e-3``, ``0.5``), else the text."""
    for number in (int, float):
        try:
            return number(text)
        except ValueError:
            pass
    return text
