"""Every ``edgetwin`` subcommand explains itself; ``--version``; ``run`` without a config."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edge.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]


def _walk(parser: argparse.ArgumentParser, prog: str = "edgetwin"):
    """(command path, parser) for the parser and every subparser below it."""
    yield prog, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                assert helps.get(name), f"{prog} {name}: no one-line help in the command list"
                yield from _walk(sub, f"{prog} {name}")


def _commands() -> list[tuple[str, argparse.ArgumentParser]]:
    return list(_walk(build_parser()))


def test_every_subcommand_has_a_description_and_help_for_every_argument() -> None:
    walked = _commands()
    names = {prog for prog, _ in walked}
    assert {"edgetwin run", "edgetwin demo", "edgetwin certs list", "edgetwin certs trust", "edgetwin certs remove", "edgetwin check"} <= names
    missing = []
    for prog, parser in walked:
        if prog != "edgetwin" and not parser.description:
            missing.append(f"{prog}: no description")
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction | argparse._HelpAction):
                continue
            if not action.help or action.help == argparse.SUPPRESS:
                missing.append(f"{prog} {'/'.join(action.option_strings) or action.dest}: no help")
    assert not missing, "\n".join(missing)


@pytest.mark.parametrize("prog", [prog for prog, _ in _commands()])
def test_help_prints_and_exits_0(prog: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([*prog.split()[1:], "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: {prog}")


def test_version_names_every_component(capsys: pytest.CaptureFixture[str]) -> None:
    import asyncua  # noqa: F401  (versions come from the installed distributions)

    import kernels

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    lines = dict(line.split(None, 1) for line in capsys.readouterr().out.splitlines())
    assert set(lines) == {"edgetwin", "python", "asyncua", "pymodbus", "numpy", "kernels"}
    assert lines["kernels"] == kernels.IMPLEMENTATION
    assert lines["asyncua"] == "2.1.0" and lines["pymodbus"] == "3.16.1"  # the pins in setup.py
    assert lines["python"].startswith(f"{sys.version_info.major}.{sys.version_info.minor}.")


def test_run_without_a_config_names_the_file_it_looked_for(tmp_path: Path) -> None:
    """Under systemd, ConfigurationDirectory= sets $CONFIGURATION_DIRECTORY."""
    conf = tmp_path / "etc-edgetwin"
    env = {**os.environ, "CONFIGURATION_DIRECTORY": str(conf)}
    result = subprocess.run([sys.executable, "-m", "edge", "run"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [f"edgetwin run: no config file at {conf / 'edgetwin.toml'} (give a path: edgetwin run CONFIG; try edgetwin demo)"]
    assert result.stdout == ""


def test_run_reads_the_installed_config_by_default(tmp_path: Path) -> None:
    """A config that is present is loaded (here a broken one, so the run stops at validation)."""
    conf = tmp_path / "etc-edgetwin"
    conf.mkdir()
    (conf / "edgetwin.toml").write_text('[gateway]\nendpont = "x"\n')
    env = {**os.environ, "CONFIGURATION_DIRECTORY": f"{conf}:/elsewhere"}
    result = subprocess.run([sys.executable, "-m", "edge", "run"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [f"{conf / 'edgetwin.toml'}:2: gateway.endpont: unknown key (did you mean 'endpoint'?)"]
