"""One command line: `sercache <stage>`, aliases, flags generated from dataclasses, one error wrapper.

Also issue 9's defect 1 (a typed flag equal to its default must still win over --config) and defect 9
(no doubled defaults, no references to documents users do not have, in any --help).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import pytest

from sercache import cli
from sercache.cache.encoding import STORAGE_DTYPES
from sercache.cache.layout import BACKENDS
from sercache.cache.parts import COMPRESSIONS
from sercache.dataclass_cli import boolean_flags, from_namespace, given
from sercache.errors import SercacheError, run_command
from sercache.heads.fit.losses import LOSSES

ROOT = Path(__file__).resolve().parents[1]


def all_parsers() -> list[tuple[str, argparse.ArgumentParser]]:
    """Every stage's parser and every nested sub-command's parser (cache info, text export, ...)."""
    found = []
    pending = [(stage.name, cli.build_parser(stage.name)) for stage in cli.STAGES]
    while pending:
        name, parser = pending.pop()
        found.append((name, parser))
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                pending += [(f"{name} {sub}", p) for sub, p in action.choices.items()]
    return sorted(found, key=lambda item: item[0])


def help_text(parser: argparse.ArgumentParser) -> str:
    return parser.format_help()


def test_umbrella_help_lists_every_stage_in_pipeline_order(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    expected = ["extract", "transcribe", "import-transcripts", "train-aec", "correct-transcripts", "evaluate-aec",
                "train", "ensemble", "tune-decision", "report", "export-head", "predict", "bench", "demo", "cache",
                "text"]
    assert [s.name for s in cli.STAGES] == expected
    positions = [re.search(rf"^\s+{re.escape(name)}(?=\s)", text, re.M) for name in expected]
    assert all(positions), text
    assert [p.start() for p in positions] == sorted(p.start() for p in positions)
    for alias in ("extract-features", "train-head", "predict-head", "report-heads"):
        assert alias in text


def test_every_console_script_is_a_stage_with_the_same_flags(capsys, monkeypatch):
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts.pop("sercache") == "sercache.cli:main"
    readme_commands = {"extract-features", "transcribe", "import-transcripts", "train-aec", "correct-transcripts",
                       "evaluate-aec", "train-head", "ensemble", "tune-decision", "predict-head", "report-heads"}
    assert set(scripts) == readme_commands
    for script, target in scripts.items():
        module, attribute = target.split(":")
        assert module == "sercache.cli"
        monkeypatch.setattr(sys, "argv", [script, "--help"])
        with pytest.raises(SystemExit):
            getattr(cli, attribute)()
        alias_help = capsys.readouterr().out
        stage = cli._BY_NAME[script].name
        with pytest.raises(SystemExit):
            cli.main([stage, "--help"])
        stage_help = capsys.readouterr().out
        assert alias_help.startswith(f"usage: {script} ")
        flags = sorted(set(re.findall(r"--[a-z0-9-]+", alias_help)))
        assert flags == sorted(set(re.findall(r"--[a-z0-9-]+", stage_help))), script
        assert alias_help.split("\noptions:")[1] == stage_help.split("\noptions:")[1], script


def test_every_boolean_is_a_yes_no_pair():
    """`--x/--no-x` everywhere: no store_true flags, and every `--no-x` parses to False."""
    progress = set()
    for name, parser in all_parsers():
        for action in parser._actions:
            assert not isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)), \
                f"{name}: {action.option_strings} is a one-way switch"
        text = help_text(parser)
        for action in boolean_flags(parser):
            positive = next(s for s in action.option_strings if not s.startswith("--no-"))
            negative = "--no-" + positive[2:]
            assert negative in action.option_strings and negative in text, f"{name}: {positive}"
            namespace = argparse.Namespace()
            action(parser, namespace, None, negative)
            assert getattr(namespace, action.dest) is False
            action(parser, namespace, None, positive)
            assert getattr(namespace, action.dest) is True
            progress |= {name} if action.dest == "progress" else set()
    # `--progress false` used to be accepted by one command and refused by another
    assert {"extract", "transcribe", "train-aec", "correct-transcripts", "train", "ensemble",
            "cache verify"} <= progress


def test_help_has_each_default_once_and_cites_no_document_users_lack():
    for name, parser in all_parsers():
        text = help_text(parser)
        assert "SPEC" not in text and "paper 00" not in text and "==SUPPRESS==" not in text, name
        assert not re.search(r"\(default: ([^()]*)\)\s*\(default: \1\)", text), name
        for action in parser._actions:
            assert (action.help or "").count("(default") <= 1, f"{name}: {action.option_strings}"
    train = help_text(cli.build_parser("train"))
    assert re.search(r"--eval-batch-size EVAL_BATCH_SIZE\s+batch size for dev/test inference \(default: 512\)",
                     train)


def test_choices_come_from_the_registries():
    def choices(stage: str, dest: str, sub: str = "") -> tuple:
        parser = cli.build_parser(stage)
        if sub:
            parser = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[sub]
        return tuple(next(a for a in parser._actions if a.dest == dest).choices)

    assert choices("extract", "dtype") == STORAGE_DTYPES
    assert choices("extract", "compression") == COMPRESSIONS
    assert choices("extract", "backend") == BACKENDS
    assert choices("cache", "dtype", "export") == STORAGE_DTYPES
    assert choices("cache", "compression", "export") == COMPRESSIONS
    assert choices("cache", "backend", "export") == BACKENDS
    assert choices("train", "loss") == LOSSES
    assert choices("ensemble", "loss") == LOSSES


def test_lists_take_spaces_commas_and_repeats():
    from sercache.heads import HeadConfig

    args = cli.build_parser("train").parse_args(["--features", "a/L-1,a/L-3", "b/L-2", "--features", "c/L-1",
                                                 "--classes", "A", "S,H", "--no-progress"])
    cfg = from_namespace(HeadConfig, args)
    assert cfg.features == ["a/L-1", "a/L-3", "b/L-2", "c/L-1"] and cfg.classes == ["A", "S", "H"]
    assert not cfg.progress and given(args, HeadConfig) == {"features", "classes", "progress"}
    evaluate = cli.build_parser("evaluate-aec").parse_args(["--store", "s", "--text", "asr/x", "--text", "c/y"])
    assert evaluate.text == ["asr/x", "c/y"]
    with pytest.raises(SystemExit):
        cli.build_parser("train").parse_args(["--loss", "hinge"])


# ----------------------------------------------------------------------------------- defect 1
def test_a_typed_flag_equal_to_its_default_wins_over_config(tmp_path, capsys):
    from sercache.heads.cli import main

    config = tmp_path / "cfg.json"
    config.write_text(json.dumps({"loss": "focal", "hidden": 64, "progress": False}))
    assert main(["--config", str(config), "--loss", "ce", "--hidden", "512", "--print-config"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["loss"], shown["hidden"], shown["progress"]) == ("ce", 512, False)
    assert main(["--config", str(config), "--progress", "--print-config"]) == 0
    assert json.loads(capsys.readouterr().out)["progress"] is True


def test_an_explicit_out_equal_to_the_default_is_not_reported_missing(tmp_path, capsys, monkeypatch):
    from sercache.heads.after.cli import ensemble_main

    monkeypatch.chdir(tmp_path)
    assert ensemble_main([str(tmp_path / "no-run"), "--out", "runs/head"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ensemble: error:") and "--out is required" not in err
    assert ensemble_main([str(tmp_path / "no-run")]) == 2
    assert "--out is required" in capsys.readouterr().err


# ----------------------------------------------------------------------------------- errors
def test_every_input_error_derives_from_one_root():
    from sercache.cache import CacheError
    from sercache.extract.audio import AudioError
    from sercache.extract.encoder_base import EncoderError
    from sercache.extract.layers import LayerSpecError
    from sercache.extract.manifest import ManifestError
    from sercache.extract.pipeline import ExtractionError
    from sercache.heads.errors import HeadError

    for error in (CacheError, HeadError, AudioError, LayerSpecError, EncoderError, ManifestError, ExtractionError):
        assert issubclass(error, SercacheError), error


def test_input_errors_exit_2_and_bugs_keep_their_traceback(tmp_path, capsys):
    assert cli.main(["cache", "info", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sercache cache: error:") and len(err.strip().splitlines()) == 1
    assert cli.main(["import-transcripts", "--store", str(tmp_path / "s"), "--from", str(tmp_path / "x.csv")]) == 2
    assert "import-transcripts: error:" in capsys.readouterr().err

    def bug() -> int:
        raise KeyError("not an input error")

    with pytest.raises(KeyError):
        run_command("sercache x", bug)
    with pytest.raises(RuntimeError):
        run_command("sercache x", lambda: (_ for _ in ()).throw(RuntimeError("a bug")))


def test_the_stage_list_loads_no_model_library():
    """`sercache --help` lists every stage without importing a stage module (and so without torch)."""
    import subprocess

    code = ("import sys\nfrom sercache.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('torch', 'transformers', 'whisper', 'ctranslate2') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]" and "extract" in done.stdout
