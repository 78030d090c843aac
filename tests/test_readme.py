"""README.md, executed, so that the README and the code cannot drift apart.

What runs (every block is found by regex, so a new block is picked up without editing this file):

* every ``mibpcert ...`` command of a fenced ```` ```bash ```` block (lines ending in ``\\`` are
  joined, ``#`` comments dropped, ``a && b`` split; ``pip install``, ``pytest``, ``ruff``,
  ``python``, ``ray`` and other non-``mibpcert`` commands are not run) goes through
  ``mibpcert.cli.main(argv)`` in-process, with the working directory a scratch directory shared
  by all commands (so ``--out runs/...`` lands there and a command sees what earlier ones
  wrote, as for a reader going down the README). Files of the repository named on the command
  line (``examples/moons.toml``, a sweep file) are given as absolute paths. Short settings are
  applied by :func:`_shorten` (tiny sizes for ``mibp``, short time limits, a reduced copy of a
  sweep file); the exit code must be 0 and the run's output files must exist;
* every fenced ```` ```python ```` block runs in README order in one shared namespace, with the
  working directory another scratch directory; nothing is injected (the snippets are short);
* every fenced ```` ```toml ```` block parses, and one with a ``[sweep]`` section validates as a
  sweep; the set-up commands CI relies on are present verbatim; every ``--flag`` the prose and
  tables name is an option of a ``mibpcert`` subcommand, and every config key of the ``mibp``
  options table is a field of its config section.

Opting out: a fenced block is skipped (reported as skipped, with the reason) only when the line
right before its opening fence is the Markdown comment (invisible on GitHub)::

    <!-- readme-test: skip REASON -->

with a non-empty REASON. No other way: a failing command or snippet fails its test. Commands
with ``--executor ray`` are skipped, with that reason, because they need a running Ray cluster
(the Ray executor itself is tested in ``tests/test_parallel.py``). Parametrised tests run the
earlier commands (snippets) of their block first when they have not run yet, so ``-k`` works.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from mibpcert.cli import build_parser, main
from mibpcert.config import Config, load_config, read_config_file

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
TEXT = README.read_text(encoding="utf-8")

SKIP_MARKER = re.compile(r"^<!--\s*readme-test:\s*skip\s+(\S.*?)\s*-->\s*$")
FENCE = re.compile(r"^```([\w+-]*)[^\n]*\n(.*?)^```[ \t]*$", re.M | re.S)
SETUP_COMMANDS = ("pip install . && mibpcert certify", "pip install '.[test]' && pytest")
#: file suffixes of command-line values that name a file of the repository
REPO_FILES = (".toml", ".yaml", ".yml", ".csv", ".npz")

# short settings
MIBP_N_TRAIN, MIBP_N_TEST = 16, 20  # mibp: at most these many training / test points
TIME_LIMIT = 2.0  # mibp, exact: at most these many seconds per solve / program
SWEEP_SIZES = {"n_train": 16, "n_test": 20}
SWEEP_EPOCHS, SWEEP_SEEDS = 2, 2  # a sweep: at most 2 epochs, the first 2 seeds


# ----------------------------------------------------------------------------- the README


@dataclass(frozen=True)
class Block:
    lang: str
    line: int  # line of the opening fence
    body: str
    skip: str | None  # the opt-out reason, if any


def blocks(lang: str | None = None, text: str = TEXT) -> list[Block]:
    """The fenced blocks of ``text`` (of one language), in order."""
    out = []
    lines = text.splitlines()
    for m in FENCE.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        before = lines[line - 2].strip() if line >= 2 else ""
        marker = SKIP_MARKER.match(before)
        block = Block(m.group(1), line, m.group(2), marker.group(1) if marker else None)
        if lang is None or block.lang == lang:
            out.append(block)
    return out


def shell_commands(body: str, first_line: int = 1) -> list[tuple[int, str]]:
    """(line, command) of a bash block: continuation lines joined, comments and blanks
    dropped; ``a && b`` stays one command here."""
    out: list[tuple[int, str]] = []
    pending, start = "", 0
    for k, raw in enumerate(body.splitlines()):
        line = raw.strip()
        if not pending:
            start = first_line + 1 + k
            if not line or line.startswith("#"):
                continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        out.append((start, pending + line))
        pending = ""
    if pending:
        out.append((start, pending))
    return out


def mibpcert_argvs(command: str) -> list[list[str]]:
    """The ``mibpcert`` invocations of one shell command line (argv without the program)."""
    tokens = shlex.split(command, comments=True)
    parts: list[list[str]] = [[]]
    for tok in tokens:
        if tok in ("&&", "||", ";"):
            parts.append([])
        else:
            parts[-1].append(tok)
    return [p[1:] for p in parts if p and p[0] == "mibpcert"]


@dataclass(frozen=True)
class Command:
    block: int  # index among the bash blocks
    line: int
    argv: tuple[str, ...]
    skip: str | None

    @property
    def id(self) -> str:
        return f"L{self.line}: mibpcert {shlex.join(self.argv)}"


def readme_commands() -> list[Command]:
    out = []
    for b, block in enumerate(blocks("bash")):
        for line, command in shell_commands(block.body, block.line):
            for argv in mibpcert_argvs(command):
                out.append(Command(b, line, tuple(argv), block.skip))
    return out


COMMANDS = readme_commands()
PYTHON_BLOCKS = blocks("python")


# ----------------------------------------------------------------------------- short settings


def _get(argv: list[str], flag: str) -> str | None:
    return argv[argv.index(flag) + 1] if flag in argv else None


def _set(argv: list[str], flag: str, value) -> None:
    if flag in argv:
        argv[argv.index(flag) + 1] = str(value)
    else:
        argv += [flag, str(value)]


def _cap(argv: list[str], flag: str, most: float, default: float) -> None:
    """``flag`` at most ``most`` (``default``: its value when not given)."""
    given = _get(argv, flag)
    value = default if given is None else float(given)
    if value > most:
        _set(argv, flag, int(most) if float(most).is_integer() else most)


def _repo_paths(argv: list[str]) -> list[str]:
    """Relative paths to files of the repository -> absolute (the commands run elsewhere)."""
    out = []
    for tok in argv:
        if not tok.startswith("-") and tok.endswith(REPO_FILES) and (ROOT / tok).is_file():
            tok = str(ROOT / tok)
        out.append(tok)
    return out


def _short_sweep_file(path: Path, into: Path) -> Path:
    """A copy of the sweep file ``path`` with tiny data, few epochs and seeds, short solves."""
    raw = read_config_file(path)
    raw.setdefault("data", {}).update(SWEEP_SIZES)
    training = raw.setdefault("training", {})
    training["epochs"] = min(int(training.get("epochs", Config().training.epochs)), SWEEP_EPOCHS)
    sweep = raw["sweep"]
    if "seeds" in sweep:
        sweep["seeds"] = list(sweep["seeds"])[:SWEEP_SEEDS]
    for opts in sweep.get("options", {}).values():
        if "time_limit" in opts:
            opts["time_limit"] = min(float(opts["time_limit"]), TIME_LIMIT)
    into.mkdir(parents=True, exist_ok=True)
    short = into / f"{path.stem}.yaml"
    short.write_text(yaml.safe_dump(raw, sort_keys=False))
    return short


def _method(argv: list[str]) -> str:
    name = _get(argv, "--method")
    if name is None and _get(argv, "--config") is not None:
        name = load_config(_get(argv, "--config")).method.name
    return name or Config().method.name


def _shorten(cmd: Command, work: Path) -> list[str]:
    """The argv that runs: repository paths absolute, short settings, no progress bar."""
    argv = _repo_paths(list(cmd.argv))
    sub = argv[0]
    if sub == "certify":
        if "--out" not in argv:
            argv += ["--out", f"runs/readme-L{cmd.line}"]
        method = _method(argv)
        if method == "mibp":
            _cap(argv, "--n-train", MIBP_N_TRAIN, 100)
            _cap(argv, "--n-test", MIBP_N_TEST, 200)
        if method in ("mibp", "exact"):
            _cap(argv, "--time-limit", TIME_LIMIT, Config().method.time_limit)
            _set(argv, "--workers", 1)
        argv.append("--no-progress")
    elif sub == "sweep":
        argv[1] = str(_short_sweep_file(Path(argv[1]), work / "short-sweeps"))
        _set(argv, "--workers", 1)
        argv.append("--no-progress")
    return argv


# ----------------------------------------------------------------------------- running


_DONE: dict[Command, list[str]] = {}  # command -> the argv it ran with


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """The scratch directory every README command runs in."""
    return tmp_path_factory.mktemp("readme-commands")


def _run(cmd: Command, work: Path, monkeypatch, capsys) -> tuple[list[str], str]:
    argv = _shorten(cmd, work)
    monkeypatch.chdir(work)
    capsys.readouterr()
    rc = main(argv)
    out = capsys.readouterr().out
    assert rc == 0, f"{cmd.id} (run as: mibpcert {shlex.join(argv)}) exited with {rc}"
    _DONE[cmd] = argv
    return argv, out


def _previous_steps(cmd: Command, work: Path) -> list[dict] | None:
    """The ``steps`` of the report a ``--resume`` command finds in its output directory."""
    argv = _shorten(cmd, work)
    if argv[0] != "certify" or "--resume" not in argv:
        return None
    report = work / _get(argv, "--out") / "report.json"
    return json.loads(report.read_text())["steps"] if report.is_file() else None


def _check_outputs(
    cmd: Command, argv: list[str], stdout: str, work: Path, before: list[dict] | None
) -> None:
    sub = argv[0]
    if sub == "certify":
        out = work / _get(argv, "--out")
        report = json.loads((out / "report.json").read_text())
        assert "metrics" in report and (out / "boxes.npz").is_file(), cmd.id
        method = report["config"]["method"]["name"]
        if method == "mibp":  # "mibp checkpoints after every step"
            assert (out / "mibp_checkpoint.npz").is_file(), cmd.id
        if method == "exact":  # "attack (saved to runs/exact/best.npz|csv, replayed)"
            assert (out / "best.npz").is_file() and (out / "best.csv").is_file(), cmd.id
        if before:  # resumed or extended: the finished steps come from the checkpoint
            steps = report["steps"]
            assert len(steps) == report["problem"]["n_steps"] + 1, cmd.id
            kept = min(len(before), len(steps))
            assert [s["seconds"] for s in steps[:kept]] == [s["seconds"] for s in before[:kept]]
    elif sub == "sweep":
        out = work / _get(argv, "--out")
        assert (out / "sweep.csv").is_file() and (out / "sweep.json").is_file(), cmd.id
    elif sub == "plot":
        pngs = [Path(ln) for ln in stdout.splitlines() if ln.endswith(".png")]
        assert pngs, f"{cmd.id} wrote no plot"
        for png in pngs:
            assert (work / png).stat().st_size > 0, png


def _skip_reason(cmd: Command) -> str | None:
    if cmd.skip:
        return f"README block opted out: {cmd.skip}"
    if "--executor" in cmd.argv and _get(list(cmd.argv), "--executor") == "ray":
        return "needs a running Ray cluster (ray start --head); Ray is tested in test_parallel.py"
    if cmd.argv[0] == "plot":
        pytest.importorskip("matplotlib", reason="mibpcert plot needs the 'plot' extra")
    return None


@pytest.mark.parametrize("cmd", COMMANDS, ids=[c.id for c in COMMANDS])
def test_readme_command(cmd: Command, work, monkeypatch, capsys):
    reason = _skip_reason(cmd)
    if reason:
        pytest.skip(reason)
    for earlier in COMMANDS[: COMMANDS.index(cmd)]:  # what this command may build on
        if earlier.block == cmd.block and earlier not in _DONE and not _skip_reason(earlier):
            _run(earlier, work, monkeypatch, capsys)
    before = _previous_steps(cmd, work)
    argv, stdout = _run(cmd, work, monkeypatch, capsys)
    _check_outputs(cmd, argv, stdout, work, before)


_NAMESPACE: dict = {}
_RAN: set[int] = set()


@pytest.fixture(scope="module")
def snippet_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("readme-python")


@pytest.mark.parametrize(
    "index", range(len(PYTHON_BLOCKS)), ids=[f"L{b.line}" for b in PYTHON_BLOCKS]
)
def test_readme_python_block(index: int, snippet_dir, monkeypatch):
    block = PYTHON_BLOCKS[index]
    if block.skip:
        pytest.skip(f"README block opted out: {block.skip}")
    monkeypatch.chdir(snippet_dir)
    for k in range(index + 1):  # the earlier blocks first: later ones build on them
        if k in _RAN or PYTHON_BLOCKS[k].skip:
            continue
        code = compile(
            PYTHON_BLOCKS[k].body, f"README.md (block at line {PYTHON_BLOCKS[k].line})", "exec"
        )
        exec(code, _NAMESPACE)
        _RAN.add(k)


# ----------------------------------------------------------------------------- static checks


def test_the_readme_has_commands_and_snippets():
    assert len(COMMANDS) >= 10 and len(PYTHON_BLOCKS) >= 2
    assert FENCE.sub("", TEXT).count("```") == 0, "an unclosed code fence in README.md"


def test_setup_commands_are_verbatim():
    """CI (``.ci/run``) and the 'Set-up: two commands' section rely on these exact lines."""
    lines = {ln.strip() for b in blocks("bash") for ln in b.body.splitlines()}
    for command in SETUP_COMMANDS:
        assert command in lines, f"README lost the set-up command {command!r}"


def test_toml_blocks_parse_and_sweeps_validate(tmp_path):
    from mibpcert.sweep import load_sweep

    toml_blocks = blocks("toml")
    assert toml_blocks
    for block in toml_blocks:
        path = tmp_path / f"block-L{block.line}.toml"
        path.write_text(block.body)
        raw = read_config_file(path)  # mibpcert's own reader (tomllib / tomli)
        if "sweep" in raw:
            assert load_sweep(raw) is not None, f"README.md line {block.line}"


def _parser_flags() -> set[str]:
    import argparse

    parser = build_parser()
    flags = {s for a in parser._actions for s in a.option_strings}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                flags |= {s for a in sub._actions for s in a.option_strings}
    return flags


def test_every_flag_in_the_prose_exists():
    prose = FENCE.sub("", TEXT)
    named = set(re.findall(r"(?<![\w-])--[a-z](?:[a-z0-9-]*[a-z0-9])?", prose))
    unknown = sorted(named - _parser_flags())
    assert not unknown, f"README names flags no mibpcert command accepts: {unknown}"


def test_mibp_options_table_keys_exist():
    """Column 2 of the ``mibp`` options table: ``key``, ``key = value`` or ``[section] key``."""
    rows = re.findall(r"^\| `--[\w-]+` \| `([^`]+)` \|", TEXT, re.M)
    assert len(rows) >= 10
    cfg = Config()
    for key in rows:
        m = re.fullmatch(r"(?:\[(\w+)\] )?(\w+)(?: = .*)?", key)
        assert m, key
        section = m.group(1) or "method"
        fields = {f.name for f in dataclasses.fields(getattr(cfg, section))}
        assert m.group(2) in fields, f"README mibp table: no config key [{section}] {m.group(2)}"
