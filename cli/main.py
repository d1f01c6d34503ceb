"""The ``ticketpack`` command line: a thin click front end over ``ticketpack.api``.

Exit codes: 0 ok; 1 over budget or verification failed; 2 usage (bad option, path,
config or data); 3 bad or unreadable artifact or checkpoint; 4 internal error; 130
interrupted (Ctrl-C). Errors are one line on stderr; set TICKETPACK_DEBUG=1 for a traceback.
"""

from __future__ import annotations

import functools
import json
import os
import sys

import click

from ticketpack.budget import parse_budget
from ticketpack.cli.conventions import ConventionsGroup, error_line, note, printable
from ticketpack.cli.entry import INTERRUPTED, STDOUT_ERROR, StdoutError, interrupts_raise, stdout_message
from ticketpack.cli.flags import (budget_option, code_option, codec_option, device_option, json_option,
                                  level_option, options, out_option, quiet_option, round_gamma_option,
                                  tokenizer_option, train_flags)
from ticketpack.errors import TicketpackError, UsageError
from ticketpack.strict_json import json_default
from ticketpack.cli.progress import reporter
from ticketpack.train.recipes import QUICKSTART_MINUTES

INTERNAL_ERROR = 4


def handle_errors(fn):
    """Turn ticketpack errors into one stderr line and the class's exit code."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            with interrupts_raise():
                return fn(*args, **kwargs)
        except TicketpackError as exc:
            _fail(str(exc), exc.exit_code)
        except KeyboardInterrupt:
            _fail("interrupted", INTERRUPTED)
        except (click.exceptions.Exit, click.ClickException):
            raise
        except StdoutError as exc:  # e.g. > /dev/full; the library wraps its own OSErrors
            _fail(stdout_message(exc), STDOUT_ERROR)
        except Exception as exc:  # noqa: BLE001 - the CLI never shows a traceback by default
            if os.environ.get("TICKETPACK_DEBUG"):
                raise
            _fail(f"internal error: {type(exc).__name__}: {exc} (set TICKETPACK_DEBUG=1 for details)",
                  INTERNAL_ERROR)

    return wrapper


def _fail(message: str, code: int) -> None:
    click.echo(error_line(message), err=True)
    sys.exit(code)


def _caps() -> dict:
    """The caps this run was given (--max-elements, --max-activations or their environment
    variables), as the ``limits`` / ``model_limits`` keywords of the api functions."""
    api = _api()
    params = click.get_current_context().find_root().params
    elements, activations = params["max_elements"], params["max_activations"]
    return {"limits": api.Limits(max_total_elements=elements),
            "model_limits": api.ModelLimits(max_parameters=elements, max_activations_per_token=activations)}


def _api():
    """ticketpack.api, imported when a command runs: it imports torch, which --help and
    argument errors never need (start-up in well under a second)."""
    from ticketpack import api

    return api


def _budget(value: str | None) -> int | None:
    return None if value is None else parse_budget(value)


def _emit(obj: dict) -> None:
    # allow_nan=False: NaN / Infinity are not JSON; a result holding one is refused, not printed
    click.echo(json.dumps(obj, indent=None, default=json_default, allow_nan=False))


def _cap_option(name: str, env: str, default: int, what: str):
    return click.option(name, envvar=env, show_envvar=True, default=default, show_default=True,
                        type=click.IntRange(min=1, max=2**62), help=what)


# What the exit status means (README's table); a test keeps it in step with errors.py.
EXIT_CODES = (
    ("0", "ok"),
    ("1", "over budget, or verification failed"),
    ("2", "usage: bad option, path, config or data, or an output that cannot be written"),
    ("3", "bad or unreadable artifact or checkpoint (its config included)"),
    ("4", "internal error (TICKETPACK_DEBUG=1 shows the traceback)"),
    (str(INTERRUPTED), "interrupted (Ctrl-C)"),
)


class TicketpackGroup(ConventionsGroup):
    """The command group, with each command's whole summary (click cuts them to the terminal
    width with "...") and the exit codes at the end of ``ticketpack --help``."""

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            cmd = self.get_command(ctx, name)
            if cmd is not None and not cmd.hidden:
                rows.append((name, cmd.get_short_help_str(limit=10_000)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Exit codes"):
            formatter.write_dl(list(EXIT_CODES))
        formatter.write_paragraph()
        formatter.write_text("Errors are one line on stderr. `ticketpack COMMAND --help` shows a "
                             "command's options; --json output is one JSON object on stdout.")


@click.group(cls=TicketpackGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ticketpack")
@_cap_option("--max-elements", "TICKETPACK_MAX_ELEMENTS", 2**28,
             "cap on tensor elements an artifact or checkpoint may declare and on a config's parameters")
@_cap_option("--max-activations", "TICKETPACK_MAX_ACTIVATIONS", 2**21,
             "cap on the activations per token a model config implies")
def main(max_elements: int, max_activations: int) -> None:
    """Seed + mask language models: train, pack under a byte budget, load bit-exactly."""


# what pack, pack-ternary and import-pg share: where to write, how to compress, the budget
writer_options = options(out_option("artifact to write (.tpk)"), codec_option, level_option, budget_option,
                         code_option, json_option)


def _wrote(out: str, nbytes: int, code_bytes: int, as_json: bool, **extra) -> None:
    """The writing commands' report: one line, or with --json one object."""
    if as_json:
        _emit({"out": out, "bytes": nbytes, "code_bytes": code_bytes, **extra})
    else:
        click.echo(f"wrote {out}: {nbytes:,} bytes" + (f" (+ {code_bytes:,} B code)" if code_bytes else ""))


def _code_bytes(code_paths: tuple[str, ...]) -> int:
    return _api().code_size(list(code_paths))


@main.command()
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@writer_options
@quiet_option
@handle_errors
def pack(checkpoint: str, out: str, codec: str, level: int | None, budget: str | None,
         code_paths: tuple[str, ...], as_json: bool, quiet: bool) -> None:
    """Pack a ticketpack CHECKPOINT (safetensors) into an artifact."""
    code_bytes = _code_bytes(code_paths)
    nbytes = _api().pack(checkpoint, out, codec=codec, level=level, budget=_budget(budget),
                         code_bytes=code_bytes, progress=reporter(quiet), **_caps())
    _wrote(out, nbytes, code_bytes, as_json)


@main.command("pack-ternary")
@click.argument("weights", type=click.Path(dir_okay=False))
@writer_options
@round_gamma_option
@quiet_option
@handle_errors
def pack_ternary(weights: str, out: str, codec: str, level: int | None, budget: str | None,
                 code_paths: tuple[str, ...], as_json: bool, round_gamma: bool, quiet: bool) -> None:
    """Pack ternary WEIGHTS (safetensors, gamma * {-1,0,+1} per tensor or row) into an artifact."""
    code_bytes = _code_bytes(code_paths)
    info = _api().pack_ternary(weights, out, codec=codec, level=level, budget=_budget(budget),
                               code_bytes=code_bytes, round_gamma=round_gamma, **_caps(),
                               progress=reporter(quiet))
    if as_json:
        _emit(info)
        return
    _wrote(out, info["bytes"], code_bytes, False)
    if info["gamma_rounded"]:
        note(f"ticketpack: gammas stored as the nearest fp16: largest relative change "
             f"{info['gamma_max_relative_change']:.3e}")


@main.command()
@click.argument("artifact", type=click.Path(dir_okay=False))
@budget_option
@code_option
@json_option
@handle_errors
def size(artifact: str, budget: str | None, code_paths: tuple[str, ...], as_json: bool) -> None:
    """Total bytes of ARTIFACT and where they go, against an optional budget."""
    report = _api().size(artifact, _budget(budget), _code_bytes(code_paths), _caps()["limits"])
    if as_json:
        _emit(report.to_dict())
    else:
        click.echo(_size_table(report))
    if report.over_budget:
        sys.exit(1)


def _size_table(report) -> str:
    lines = [f"{'tensor':<36} {'kind':<7} {'codec':<11} {'connections':>12} {'bytes':>10} "
             f"{'bits/conn':>9} {'density':>7} {'H bits':>7} {'over H':>7}"]
    for t in report.tensors:
        dens = f"{t.density:.3f}" if t.density is not None else "-"
        ent = f"{t.entropy_bits_per_connection:.4f}" if t.entropy_bits_per_connection is not None else "-"
        over = f"{t.over_bound_percent:+.2f}%" if t.over_bound_percent is not None else "-"
        lines.append(f"{printable(t.name)[:36]:<36} {t.kind:<7} {t.codec:<11} {t.connections:>12,} {t.bytes:>10,} "
                     f"{t.bits_per_connection:>9.4f} {dens:>7} {ent:>7} {over:>7}")
    lines.append(f"header + trailer: {report.header_bytes:,} B; uncompressed {report.raw_bytes:,} B, "
                 f"compression saved {report.compression_saving_bytes:,} B")
    if report.masked_connections:
        lines.append(f"masked tensors: {report.masked_connections:,} connections in "
                     f"{report.masked_bytes:,} B = {report.masked_bits_per_connection:.4f} bits/connection; "
                     f"entropy bound {report.entropy_bound_bytes:,.0f} B = "
                     f"{report.entropy_bound_bits_per_connection:.4f} bits/connection")
        lines.append(f"above the bound: masks {_over(report.mask_over_bound_bytes, report.mask_over_bound_percent)}, "
                     f"whole artifact {_over(report.artifact_over_bound_bytes, report.artifact_over_bound_percent)}")
    total = f"total: {report.total_bytes:,} B"
    if report.code_bytes:
        total += f" (artifact {report.total_bytes - report.code_bytes:,} B + code {report.code_bytes:,} B)"
    if report.budget is not None:
        left = report.budget - report.total_bytes
        total += (f" / budget {report.budget:,} B: " +
                  (f"OVER by {-left:,} B" if left < 0 else f"{left:,} B to spare"))
    lines.append(total)
    return "\n".join(lines)


def _over(nbytes: float, percent: float | None) -> str:
    return f"{nbytes:+,.0f} B" + (f" ({percent:+.2f}%)" if percent is not None else "")


@main.command("load-and-eval")
@click.argument("artifact", type=click.Path(dir_okay=False))
@click.option("--data", "data", multiple=True, required=True, help="text file(s) or token-shard glob")
@device_option
@click.option("--seq-len", type=click.IntRange(1, 2**24), default=None,
              help="tokens per window (default: the artifact's recorded training length, else 256)")
@click.option("--batch-size", type=click.IntRange(1, 2**16), default=8, show_default=True)
@click.option("--stride", type=click.IntRange(1, 2**24), default=None,
              help="sliding-window stride (default: non-overlapping)")
@click.option("--max-bytes", type=click.IntRange(1), default=None,
              help="score only the first N bytes of text (with --split all, nothing past them is read)")
@tokenizer_option
@click.option("--split", default="all", show_default=True, type=click.Choice(["all", "val"]),
              help="val: only the held-out split the trainer uses")
@click.option("--precision", default="auto", show_default=True, type=click.Choice(["auto", "fp32", "bf16"]),
              help="auto: bf16 autocast on CUDA, fp32 on CPU")
@click.option("--sparse-kernels", default="auto", show_default=True, type=click.Choice(["auto", "on", "off"]),
              help="2:4 layers through torch's semi-structured sparse kernels (CUDA, bf16)")
@json_option
@quiet_option
@handle_errors
def load_and_eval(artifact: str, data: tuple[str, ...], device: str, seq_len: int | None, batch_size: int,
                  stride: int | None, max_bytes: int | None, tokenizer: str | None, split: str,
                  precision: str, sparse_kernels: str, as_json: bool, quiet: bool) -> None:
    """Rebuild the model from ARTIFACT alone and report val_loss and val_bpb on text."""
    out = _api().load_and_eval(artifact, list(data), device=device, seq_len=seq_len,
                            batch_size=batch_size, stride=stride, max_bytes=max_bytes,
                            tokenizer=tokenizer, split=split, precision=precision,
                            sparse_kernels=sparse_kernels, progress=reporter(quiet), **_caps())
    _note_default_length(out["seq_len_source"], "--seq-len", out["seq_len"])
    if as_json:
        _emit(out)
        return
    key = "val_bpb" if stride is None else "val_bpb_sliding"
    click.echo(f"{key} {out.get(key, out['val_bpb']):.6f}  val_loss {out['val_loss']:.6f}  "
               f"tokens {out['tokens']:,}  bytes {out['bytes']:,}  seq_len {out['seq_len']} "
               f"({out['seq_len_source']})  {out['seconds']:.2f}s  "
               f"{out['tokens_per_second']:,.0f} tok/s  on {out['device']} ({out['precision']})")
    click.echo(f"model sha256 {out['model_sha256'][:16]}... (weights {out['weights_sha256'][:16]}..., "
               f"config and evaluation context: verified)")


def _note_default_length(source: str, flag: str, value: int) -> None:
    """One stderr line when an artifact without an evaluation context falls back to the default."""
    if source == "default":
        note(f"ticketpack: note: the artifact records no evaluation context; "
             f"using {flag} {value} (the default)")


@main.command()
@click.argument("artifact", type=click.Path(dir_okay=False))
@click.option("--format-only", is_flag=True,
              help="check the file alone, not that its tensors fit the model its config describes "
                   "(for tensors no config describes)")
@json_option
@quiet_option
@handle_errors
def verify(artifact: str, format_only: bool, as_json: bool, quiet: bool) -> None:
    """Check ARTIFACT's format, checksums, regenerated-weight and model digests, and that its
    tensors fit its config's model, as load-and-eval needs (exit 0 ok, else non-zero)."""
    out = _api().verify(artifact, progress=reporter(quiet), model=not format_only, **_caps())
    if as_json:
        _emit(out)
    else:
        fits = "tensors fit the config's model, " if out["model_checked"] else ""
        click.echo(f"ok: format v{out['format_version']}, {out['tensors']} tensors, "
                   f"{out['connections']:,} connections, {fits}weights sha256 {out['weights_sha256'][:16]}..., "
                   f"model sha256 {out['model_sha256'][:16]}... ({out['seconds']}s)")


@main.command()
@click.argument("artifact", type=click.Path(dir_okay=False))
@json_option
@handle_errors
def inspect(artifact: str, as_json: bool) -> None:
    """Print ARTIFACT's header as JSON (indented; --json: one line)."""
    header = _api().inspect(artifact, _caps()["limits"])
    click.echo(json.dumps(header, indent=None if as_json else 2, allow_nan=False))


@main.command()
@train_flags
@json_option
@quiet_option
@handle_errors
def train(as_json: bool, quiet: bool, **values) -> None:
    """Train a supermask model on text (the built-in GPT, or a Hugging Face causal LM with
    --arch): only mask scores, scales and the unmasked small tensors are learned.

    Every flag sets the TrainOptions field of its name (--max-minutes: max_minutes).
    With --budget, the shape is chosen by packing stand-ins of the recipe's shapes until
    one fills at least 95% of the budget; the choice is printed on stderr.

    Which recipe (docs/RESULTS.md question 7, measured on Shakespeare): at 64 KB, every
    method filling its budget, a seed-based recipe leads binary and ternary QAT and int8 from
    0.8M to 26M training tokens: the ticket with rank-1 adapters at 0.8M tokens, the plain
    binary ticket over signed-constant weights (temperature 1 -> 0.05, --lr 0.005) from 3.3M.
    Its lead shrinks with length (0.013 over ternary QAT at 26M): past that, ternary weights
    trained elsewhere and packed with `ticketpack pack-ternary` may win.
    At 256 KB, filled, a seed-based recipe leads to 13M
    tokens as well (no crossover): the ticket with rank-1 adapters at 0.8M and 13M tokens
    (there only 0.014 ahead of ternary QAT), the plain ticket at 3.3M."""
    from ticketpack.train.options import options_from_flags

    opts = options_from_flags(values)
    ctx = click.get_current_context()  # the flags typed (or set by environment), not defaults
    given = [k for k in values if ctx.get_parameter_source(k) not in (None, click.core.ParameterSource.DEFAULT)]
    result = _api().train(opts, progress=functools.partial(_train_event, reporter(quiet)), given=given,
                          **_caps())
    summary = {"val_bpb": result.val_bpb, "val_loss": result.val_loss, "steps": result.steps,
               "tokens": result.tokens, "seconds": round(result.seconds, 2), "checkpoint": result.checkpoint,
               "density": result.density, "connections": result.connections}
    if result.packed_bytes is not None:
        summary.update(shape=result.shape, packed_bytes=result.packed_bytes, budget=opts.byte_budget)
    if as_json:
        _emit(summary)
    elif result.val_bpb is not None:
        packed = "" if result.packed_bytes is None else f", packs to {result.packed_bytes:,} B"
        click.echo(f"trained {result.steps} steps ({result.tokens:,} tokens, {result.seconds:.0f}s): "
                   f"val_bpb {result.val_bpb:.4f}, density {result.density:.3f}, "
                   f"{result.connections:,} connections{packed} -> {result.checkpoint}")


def _train_event(progress, event: dict) -> None:
    """Say which shape a byte budget bought (one stderr line), then show progress."""
    if event.get("event") == "start" and event.get("budget_shape"):
        note(f"ticketpack: {event['budget_shape']}")
    if progress is not None:
        progress(event)


@main.command()
@click.option("--out-dir", default="runs/quickstart", show_default=True, type=click.Path(file_okay=False))
@click.option("--minutes", type=click.FloatRange(0, 1e6, min_open=True), default=None,
              help=f"training time budget (default {QUICKSTART_MINUTES:g})")
@json_option
@quiet_option
@handle_errors
def quickstart(out_dir: str, minutes: float | None, as_json: bool, quiet: bool) -> None:
    """Train a small supermask model on the bundled Shakespeare, pack, size and load-and-eval it."""
    out = _api().quickstart(out_dir, minutes, say=lambda line: click.echo(line, err=as_json),
                         progress=reporter(quiet))
    if as_json:
        _emit(out)


@main.command()
@click.argument("artifact", type=click.Path(dir_okay=False))
@click.option("--prompt", required=True, help="text to continue")
@click.option("--tokens", type=int, default=200, show_default=True, help="tokens to generate")
@click.option("--temperature", type=float, default=0.8, show_default=True, help="0 = greedy")
@click.option("--top-k", type=int, default=None, help="sample among the k likeliest tokens")
@click.option("--seed", type=int, default=0, show_default=True, help="sampling seed (same seed, same text)")
@click.option("--context", type=int, default=None,
              help="tokens of context the model sees (default: the artifact's training length, else 256)")
@device_option
@tokenizer_option
@json_option
@quiet_option
@handle_errors
def sample(artifact: str, prompt: str, tokens: int, temperature: float, top_k: int | None, seed: int,
           context: int | None, device: str, tokenizer: str | None, as_json: bool, quiet: bool) -> None:
    """Print text the packed model in ARTIFACT writes after --prompt."""
    out = _api().sample(artifact, prompt, tokens=tokens, temperature=temperature, top_k=top_k,
                     seed=seed, device=device, tokenizer=tokenizer, context=context,
                     progress=reporter(quiet), **_caps())
    _note_default_length(out["context_source"], "--context", out["context"])
    if as_json:
        _emit({"prompt": prompt, **out})
        return
    note(f"context {out['context']} tokens ({out['context_source']}), {out['tokens']} tokens generated")
    click.echo(prompt + out["text"])


@main.command()
@click.argument("artifact", type=click.Path(dir_okay=False))
@click.option("-o", "--out", default=None, type=click.Path(dir_okay=False), help="safetensors file to write")
@click.option("--hf", "hf_dir", default=None, type=click.Path(file_okay=False),
              help="instead: a new folder transformers' from_pretrained loads (artifacts of arch transformers)")
@click.option("--tokenizer", default=None,
              help="with --hf: the SentencePiece .model the artifact records, copied into the folder as tokenizer.model")
@json_option
@quiet_option
@handle_errors
def export(artifact: str, out: str | None, hf_dir: str | None, tokenizer: str | None, as_json: bool,
           quiet: bool) -> None:
    """Write ARTIFACT's regenerated dense weights (config in the metadata) as safetensors (-o), or
    as a Hugging Face model folder (--hf)."""
    if (out is None) == (hf_dir is None):
        raise UsageError("export: give -o FILE (safetensors) or --hf DIR (a Hugging Face folder), one of them")
    if hf_dir is not None:
        info = _api().export_hf(artifact, hf_dir, tokenizer=tokenizer, **_caps())
        if as_json:
            _emit(info)
            return
        click.echo(f"wrote {hf_dir}: {', '.join(info['files'])}; weights sha256 {info['weights_sha256'][:16]}...")
        return
    if tokenizer is not None:
        raise UsageError("export: --tokenizer goes with --hf")
    info = _api().export(artifact, out, progress=reporter(quiet), **_caps())
    if as_json:
        _emit({"out": out, **info})
        return
    click.echo(f"wrote {out}: {info['tensors']} tensors, {info['parameters']:,} float32 values, "
               f"weights sha256 {info['weights_sha256'][:16]}...")


@main.command("export-loader")
@out_option("Python file to write")
@click.option("--compact", is_flag=True,
              help="Write the self-extracting form (LZMA + base85, about half the bytes): the one to ship under a byte budget.")
@json_option
@handle_errors
def export_loader(out: str, compact: bool, as_json: bool) -> None:
    """Write the standalone loader: one Python file (numpy + zstandard) that reads format 1-3 artifacts.

    Ship it with an artifact and count it: `ticketpack size model.tpk --code tpk_loader.py`.
    """
    info = _api().export_loader(out, compact)
    if as_json:
        _emit(info)
    else:
        click.echo(f"wrote {out}: {info['bytes']:,} bytes (count it with size --code {out})")


@main.command("import-pg")
@click.argument("artifact", type=click.Path(dir_okay=False))
@click.option("--config", "config", default=None, type=click.Path(dir_okay=False),
              help="ARCH.json with the submission's keys (missing keys: its defaults)")
@writer_options
@quiet_option
@handle_errors
def import_pg(artifact: str, config: str | None, out: str, codec: str, level: int | None, budget: str | None,
              code_paths: tuple[str, ...], as_json: bool, quiet: bool) -> None:
    """Convert a parameter-golf lottery-ticket ARTIFACT into a .tpk with the same weights."""
    code_bytes = _code_bytes(code_paths)
    info = _api().import_pg(artifact, out, config=config, codec=codec, level=level, budget=_budget(budget),
                            code_bytes=code_bytes, progress=reporter(quiet), **_caps())
    if as_json:
        _emit(info)
        return
    code = f" (+ {code_bytes:,} B code)" if code_bytes else ""
    click.echo(f"wrote {out}: {info['bytes']:,} bytes{code}; seed {info['seed']}, rng {info['rng']}, "
               f"{info['masks']} masks ({info['connections']:,} connections, density "
               f"{info['density']:.4f}), {info['scales']} scales; tokenizer {info['tokenizer']}")


if __name__ == "__main__":
    main()
