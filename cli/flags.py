"""Command-line options: the ones several commands share, each declared once here, and the
flags of ``ticketpack train``, generated from the ``TrainOptions`` declaration
(ticketpack.train.options: one flag per field, its default, help text and choices).

Torch-free: imported at start-up.
"""

from __future__ import annotations

from typing import Any, Callable

import click

from ticketpack.format.constants import WRITE_CODECS
from ticketpack.train.options import OptionFlag, option_flags

Decorator = Callable[[Callable], Callable]
PACK_CODECS = tuple(c for c in WRITE_CODECS if c != "none")  # what the CLI offers: always compressed
JSON_HELP = "stdout: exactly one JSON object; human lines go to stderr"


def json_option(fn: Callable) -> Callable:
    """--json: the command's result as one JSON object on stdout."""
    return click.option("--json", "as_json", is_flag=True, help=JSON_HELP)(fn)


def quiet_option(fn: Callable) -> Callable:
    """--quiet: no progress lines (by default, long runs report on stderr every 30 s)."""
    return click.option("-q", "--quiet", is_flag=True,
                        help="no progress lines on stderr (default: one every 30 s on a log, "
                             "a bar on a terminal)")(fn)


def round_gamma_option(fn: Callable) -> Callable:
    """--round-gamma: store a gamma fp16 cannot hold as the nearest fp16 (pack-ternary)."""
    return click.option("--round-gamma", is_flag=True,
                        help="store each gamma that is not an fp16 value as the nearest fp16 "
                             "(reports the largest relative change); default: refuse such tensors")(fn)


def code_option(fn: Callable) -> Callable:
    """--code: source files whose bytes count against the budget with the artifact's."""
    return click.option("--code", "code_paths", multiple=True, type=click.Path(),
                        help="source files counted against the budget (repeatable)")(fn)


def budget_option(fn: Callable) -> Callable:
    return click.option("--budget", default=None, help="byte budget: 16000000, 16MB or 16MiB")(fn)


def codec_option(fn: Callable) -> Callable:
    return click.option("--codec", default="auto", show_default=True, type=click.Choice(PACK_CODECS),
                        help="outer compression; auto picks the smallest encoding per tensor")(fn)


def level_option(fn: Callable) -> Callable:
    return click.option("--level", type=int, default=None, help="compression level (zstd 1-22, zlib 0-9)")(fn)


def out_option(what: str) -> Decorator:
    """-o / --out: the file the command writes (``what`` says which)."""
    return click.option("-o", "--out", required=True, type=click.Path(dir_okay=False), help=what)


def device_option(fn: Callable) -> Callable:
    return click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda")(fn)


def tokenizer_option(fn: Callable) -> Callable:
    return click.option("--tokenizer", default=None, help="SentencePiece .model (default: byte-level)")(fn)


def options(*decorators: Decorator) -> Decorator:
    """Several option decorators as one, listed in the order ``--help`` shows them."""
    def apply(fn: Callable) -> Callable:
        for decorator in reversed(decorators):
            fn = decorator(fn)
        return fn

    return apply


# ---------------------------------------------------------------- ticketpack train

class IntOrWord(click.ParamType):
    """An integer, or the word that stands for None (``--eval-tokens all``)."""

    name = "integer"

    def __init__(self, word: str) -> None:
        self.word = word

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if value is None or value == self.word or isinstance(value, int):
            return value
        try:
            return int(value)
        except ValueError:
            self.fail(f"{value!r} is not an integer or {self.word!r}", param, ctx)

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return f"[INTEGER|{self.word}]"


def train_flag(spec: OptionFlag) -> Decorator:
    """The click option of one ``TrainOptions`` field (param name = field name)."""
    kw: dict[str, Any] = {"help": spec.help}
    if spec.value_type is bool:
        name = spec.flag[2:]
        return click.option(f"--{name}/--no-{name}", spec.name, default=spec.default, show_default=True, **kw)
    if spec.choices is not None:
        kw["type"] = click.Choice(spec.choices)
    elif spec.none_word is not None:
        kw["type"] = IntOrWord(spec.none_word)
    elif spec.file:
        kw["type"] = click.Path(dir_okay=False)
    else:
        kw["type"] = spec.value_type if spec.arity == 1 else (spec.value_type,) * spec.arity
    if spec.many:
        kw.update(multiple=True, required=spec.required)
    elif spec.required:
        kw["required"] = True
    elif spec.parse is None:  # a parsed flag keeps its text; None leaves the field's default
        kw.update(default=spec.default, show_default=spec.default not in (None, ""))
    return click.option(spec.flag, spec.name, **kw)


def train_flags(fn: Callable) -> Callable:
    """Every ``TrainOptions`` field as a flag, in declaration order."""
    return options(*(train_flag(spec) for spec in option_flags()))(fn)
