"""``medsecure --help`` and every subcommand's ``--help`` answer without importing torch, MONAI or MLflow.

Timings live in ``scripts/bench_cli_startup.py`` (a benchmark, not a timed test); this checks the cause of a slow
start: what the parsers import.
"""

from __future__ import annotations

import argparse
import ast
import subprocess
import sys
from pathlib import Path

from medsecure_transforms.attacks import ASMA_PRESETS
from medsecure_transforms.cli.codec import MAPPINGS_HELP, MODALITIES, WAVELETS_HELP
from medsecure_transforms.cli.main import build_parser

HEAVY = ("torch", "monai", "mlflow", "holoscan", "pydicom", "nibabel", "matplotlib")


def leaf_parsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """``{"compress": parser, "calibrate fr": parser, ...}``: every parser that runs a command."""
    found = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                nested = leaf_parsers(sub)
                found.update({f"{name} {k}": v for k, v in nested.items()} if nested else {name: sub})
    return found


def test_help_imports_no_heavy_package():
    code = (
        "import sys\n"
        "from medsecure_transforms.cli.main import build_parser\n"
        "from test_cli_startup import leaf_parsers\n"
        "parser = build_parser(); parser.format_help()\n"
        "[p.format_help() for p in leaf_parsers(parser).values()]\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=__file__.rsplit("/", 1)[0]
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
    assert done.stderr == ""


def test_python_dash_m_help():
    done = subprocess.run(
        [sys.executable, "-m", "medsecure_transforms.cli", "--help"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and done.stderr == ""
    for command in ("calibrate", "compress", "decompress", "demo", "evaluate"):
        assert command in done.stdout


def bench_commands() -> tuple[str, ...]:
    """``COMMANDS`` of scripts/bench_cli_startup.py."""
    tree = ast.parse((Path(__file__).parents[1] / "scripts" / "bench_cli_startup.py").read_text())
    (value,) = [n.value for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == "COMMANDS"]
    return ast.literal_eval(value)


def test_every_command_shows_its_defaults_and_debug():
    parsers = leaf_parsers(build_parser())
    assert sorted(parsers) == [
        "calibrate fr",
        "calibrate mv3d",
        "compress",
        "decompress",
        "demo",
        "evaluate",
        "overlay",
    ]
    assert set(bench_commands()) == {"", "calibrate", *parsers}  # the benchmark times every parser
    for name, parser in parsers.items():
        text = " ".join(parser.format_help().split())
        assert "--debug" in text, name
        for action in parser._actions:
            if action.option_strings and action.default not in (None, False, [], argparse.SUPPRESS):
                assert action.help and "default" in parser._get_formatter()._get_help_string(action), (name, action)
    evaluate = " ".join(parsers["evaluate"].format_help().split())
    assert "(default: authors_x1000)" in evaluate and all(name in evaluate for name in ASMA_PRESETS)
    assert "--threads THREADS torch CPU threads (default: 1)" in evaluate and "(default: )" not in evaluate


def test_help_texts_match_the_package():
    """Values the light parsers spell out instead of importing them (the package would pull torch and MONAI in)."""
    from medsecure_transforms.codecs.mvc import PAPER_CANDIDATES
    from medsecure_transforms.codecs.mvc.codec import MAPPINGS
    from medsecure_transforms.codecs.mvc.format import WAVELETS
    from medsecure_transforms.data.dicom_series import STORAGE_CLASSES
    from medsecure_transforms.evaluation.fr_study import JPEG_CURVE, PAPER_GRID

    assert all(w in WAVELETS_HELP for w in WAVELETS) and all(m in MAPPINGS_HELP for m in MAPPINGS)
    assert sorted(MODALITIES) == sorted(STORAGE_CLASSES)
    parsers = leaf_parsers(build_parser())
    fr = " ".join(parsers["calibrate fr"].format_help().split())
    for name, values in PAPER_GRID.items():
        assert f"(default: {' '.join(f'{v:g}' for v in values)})" in fr, name
    assert f"(default: {' '.join(map(str, JPEG_CURVE))})" in fr
    mv3d = " ".join(parsers["calibrate mv3d"].format_help().split())
    assert "0.25 0.5 1 2 4 8 16 32 64" in mv3d and PAPER_CANDIDATES == (0.25, 0.5, 1, 2, 4, 8, 16, 32, 64)
