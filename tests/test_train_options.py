"""The training options are declared once (ticketpack.train.options): ``ticketpack train`` has
exactly one flag per ``TrainOptions`` field, with the field's default, listed by --help, and
each flag sets its field."""

from __future__ import annotations

import dataclasses

import pytest
from click.testing import CliRunner

from ticketpack.cli.main import main
from ticketpack.errors import UsageError
from ticketpack.text.quickstart import QuickstartData
from ticketpack.train.options import (TrainOptions, option_flags, options_from_flags, quickstart_options,
                                      resumed_fields)

FIELDS = [f.name for f in dataclasses.fields(TrainOptions)]
REQUIRED = ["--data", "corpus.txt", "--out", "m.safetensors"]
COMMAND_ONLY = {"as_json", "quiet"}  # flags of the command, not options of the training


def parsed(*args: str) -> dict:
    """The values ``ticketpack train ARGS`` hands to ``options_from_flags`` (nothing runs)."""
    ctx = main.commands["train"].make_context("train", [*REQUIRED, *args])
    return {k: v for k, v in ctx.params.items() if k not in COMMAND_ONLY}


def test_every_field_has_exactly_one_flag():
    params = [p for p in main.commands["train"].params if p.name not in COMMAND_ONLY | {"help"}]
    assert sorted(p.name for p in params) == sorted(FIELDS)
    flags = [f for p in params for f in p.opts]
    assert len(flags) == len(set(flags)) == len(FIELDS)
    assert [spec.name for spec in option_flags()] == FIELDS


def test_each_flag_defaults_to_its_field_default():
    values = parsed()  # what each flag gives when it is not used
    for spec in option_flags():
        if spec.required or spec.parse is not None:  # a parsed flag's text: checked below
            continue
        value = values[spec.name]
        assert (list(value) or None if spec.many else value) == spec.default, spec.name
    assert options_from_flags(values) == TrainOptions(data=["corpus.txt"], out="m.safetensors")


def test_help_lists_every_flag_with_its_help():
    result = CliRunner().invoke(main, ["train", "--help"])
    assert result.exit_code == 0
    text = "".join(result.stdout.split())  # help text wraps lines
    for spec in option_flags():
        flag = text.find(spec.flag)
        assert flag >= 0 and text.find("".join(spec.help.split()), flag) > flag, spec.flag


def test_checkpoint_every_default_is_the_same_everywhere():
    assert TrainOptions(data=["x"], out="y").checkpoint_every == 500
    assert options_from_flags(parsed()).checkpoint_every == 500


def test_each_kind_of_flag_sets_its_field():
    opts = options_from_flags(parsed(
        "--data", "more.txt", "--val-data", "v.txt", "--temperature-start", "3", "--temperature-end", "0.05",
        "--adam-betas", "0.8", "0.99", "--no-final-eval", "--eval-tokens", "all", "--init", "he",
        "--model", '{"model_dim": 64}', "--budget", "16KB", "--restore-density", "0.5", "--steps", "7"))
    assert opts.data == ["corpus.txt", "more.txt"] and opts.val_data == ["v.txt"]
    assert (opts.temperature_start, opts.temperature_end) == (3.0, 0.05)
    assert opts.adam_betas == (0.8, 0.99) and opts.final_eval is False and opts.eval_tokens is None
    assert opts.init == "he" and opts.model == {"model_dim": 64} and opts.byte_budget == 16_000
    assert opts.restore_density == 0.5 and opts.steps == 7
    opts.validate()
    assert options_from_flags(parsed("--eval-tokens", "128")).eval_tokens == 128


@pytest.mark.parametrize("args, message", [
    (["--model", "[1]"], "expected a JSON object"),
    (["--model", '{"a": 1, "a": 2}'], "--model"),
    (["--budget", "lots"], "budget"),
])
def test_bad_flag_text_is_a_usage_error(args, message):
    with pytest.raises(UsageError, match=message):
        options_from_flags(parsed(*args))


@pytest.mark.parametrize("args", [["--eval-tokens", "many"], ["--init", "orthogonal"],
                                  ["--adapter-dtype", "bf16"], ["--adam-betas", "0.9"]])
def test_bad_flag_values_exit_2_before_training(args):
    result = CliRunner().invoke(main, ["train", *REQUIRED, *args])
    assert result.exit_code == 2 and "Traceback" not in result.output


def test_cli_rejects_bad_model_json_in_one_line(tmp_path):
    result = CliRunner().invoke(main, ["train", "--data", "x", "--out", str(tmp_path / "m.safetensors"),
                                       "--model", "{", "--steps", "1"])
    assert result.exit_code == 2 and result.output.count("\n") == 1 and "--model" in result.output


def test_a_resume_keeps_the_model_and_training_not_the_stopping_rule():
    kept = set(resumed_fields())
    assert {"preset", "model", "mask", "seed", "lr", "temperature_start", "adam_betas"} <= kept
    assert kept.isdisjoint({"data", "out", "steps", "max_minutes", "log", "resume", "tokenizer", "device"})


def test_quickstart_options_are_valid_options(tmp_path):
    data = QuickstartData(train="t.txt", val="v.txt", tokenizer="tok.model", vocab_size=1024,
                          train_bytes=9, val_bytes=1)
    opts = quickstart_options(str(tmp_path / "q.safetensors"), data)
    opts.validate()
    assert opts.final_eval is False and opts.mask == "multibit:4"
    assert (opts.data, opts.val_data, opts.tokenizer) == (["t.txt"], ["v.txt"], "tok.model")
    assert opts.model["vocab_size"] == 1024
