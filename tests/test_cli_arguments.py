"""Named ASMA presets and the shared CLI argument groups: documented numbers, parse defaults, the commands' defaults."""

from __future__ import annotations

import argparse

import pytest

from medsecure_transforms.attacks import ASMA, ASMA_PRESETS, asma_preset
from medsecure_transforms.cli import calibrate_fr, demo, evaluate
from medsecure_transforms.cli.arguments import (
    add_attack_arguments,
    add_bundle_arguments,
    add_data_root_argument,
    add_threads_argument,
    asma_from_args,
    command_line,
)

# (max_iter, beta, tau, target_iou, max_linf) as docs/attacks.md and docs/frequency_refine.md give them
DOCUMENTED = {
    "authors": (2500, 1e-6, 1e-7, 0.8, None),
    "authors_x1000": (150, 1e-3, 1e-4, 0.8, 8 / 255),
    "small_steps": (200, 5e-4, 5e-5, 0.9, 8 / 255),
    "coarse": (10, 1e-2, 1e-3, 0.9, 8 / 255),
}
KEYS = ("max_iter", "beta", "tau", "target_iou", "max_linf")


def schedule(attack: ASMA) -> tuple:
    return tuple(getattr(attack, k) for k in KEYS)


@pytest.mark.parametrize("name", sorted(DOCUMENTED))
def test_preset_builds_documented_asma(name):
    attack = asma_preset(name)
    assert isinstance(attack, ASMA)
    assert schedule(attack) == DOCUMENTED[name]
    assert attack.seed == 0
    assert ASMA_PRESETS[name].description


def test_preset_names_and_overrides():
    assert set(ASMA_PRESETS) == set(DOCUMENTED)
    attack = asma_preset("small_steps", max_iter=7, max_linf=None, seed=3)
    assert schedule(attack) == (7, 5e-4, 5e-5, 0.9, None)
    assert attack.seed == 3
    with pytest.raises(ValueError, match="unknown ASMA preset"):
        asma_preset("fast")


def parser_with(*groups) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    for add in groups:
        add(parser)
    return parser


def test_argument_group_defaults():
    parser = parser_with(
        add_data_root_argument,
        lambda p: add_threads_argument(p, 2),
        lambda p: add_attack_arguments(p, "small_steps", batch_size=4),
    )
    args = parser.parse_args([])
    assert (args.data_root, args.threads, args.attack_preset, args.seed, args.batch_size) == (
        None,
        2,
        "small_steps",
        0,
        4,
    )
    assert all(getattr(args, k) is None for k in KEYS)
    assert schedule(asma_from_args(args)) == DOCUMENTED["small_steps"]
    args = parser.parse_args(["--attack-preset", "coarse", "--beta", "0.5", "--seed", "2"])
    attack = asma_from_args(args)
    assert schedule(attack) == (10, 0.5, 1e-3, 0.9, 8 / 255) and attack.seed == 2
    with pytest.raises(SystemExit):
        parser.parse_args(["--attack-preset", "nope"])


def test_bundle_arguments():
    optional = parser_with(lambda p: add_bundle_arguments(p, "fundus_disc_seg", "test")).parse_args([])
    assert (optional.bundle, optional.split, optional.limit, optional.data_root) == (
        "fundus_disc_seg",
        "test",
        None,
        None,
    )
    required = parser_with(lambda p: add_bundle_arguments(p, None, "validation"))
    with pytest.raises(SystemExit):
        required.parse_args([])
    assert required.parse_args(["--bundle", "b", "--limit", "3"]).limit == 3


def test_command_line():
    args = argparse.Namespace(bundle="b", limit=None, shift=[0, 64], summarise_only=False, cdr=True, max_iter=3)
    assert command_line("python x.py", args) == "python x.py --bundle b --shift 0 64 --cdr --max-iter 3"


def subcommand(register, argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def test_commands_asma_defaults():
    """calibrate fr: 200 x 5e-4/5e-5 in 8/255 (stop 0.9, batches of 4); evaluate: the authors' multipliers x1000 in
    8/255 (150 steps, stop 0.8, batch 1; the authors' own schedule by name); demo 60 steps of 1e-3/1e-4 in 8/255;
    one torch thread per process."""
    fr = subcommand(calibrate_fr.register, ["fr", "--output-dir", "o"])
    assert schedule(asma_from_args(fr)) == DOCUMENTED["small_steps"]
    assert (fr.batch_size, fr.seed, fr.threads, fr.split, fr.bundle) == (4, 0, 1, None, "fundus_disc_seg")
    ev = subcommand(evaluate.register, ["evaluate", "--bundle", "b", "--output-dir", "o"])
    assert schedule(evaluate.build_attack(ev, (0.0, 1.0))) == DOCUMENTED["authors_x1000"]
    assert (ev.batch_size, ev.seed, ev.threads, ev.split) == (1, 0, 1, None)
    authors = ["evaluate", "--bundle", "b", "--output-dir", "o", "--attack-preset", "authors"]
    assert schedule(evaluate.build_attack(subcommand(evaluate.register, authors), (0.0, 1.0))) == DOCUMENTED["authors"]
    dag = ["evaluate", "--bundle", "b", "--output-dir", "o", "--attack", "dag"]
    assert evaluate.build_attack(subcommand(evaluate.register, dag), (-1.0, 1.0)).params()["clip"] == (-1.0, 1.0)
    assert evaluate.build_attack(subcommand(evaluate.register, dag), (0.0, 1.0)).max_iter == 200
    assert subcommand(demo.register, ["demo"]).max_iter == 60
    assert schedule(asma_preset("authors_x1000", max_iter=60)) == (60, 1e-3, 1e-4, 0.8, 8 / 255)
