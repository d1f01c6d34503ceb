"""Bake-off rows from several runs as one table and one plot: val_bpb against training tokens.

    python bench/bakeoff_tokens.py bench/results/bakeoff.json bench/results/bakeoff_1600.json \\
        --out bench/results/bakeoff2.png

Each input is the JSON ``bench/bakeoff.py`` writes. Rows are keyed by (budget, method,
training tokens); a later file's row replaces an earlier one's. The plot has one panel per
budget, training tokens on a log axis and a line per method; the table has a row per
(budget, method) and a column per token count, each cell val_bpb and, in brackets, its
ratio to dense int8's at the same budget and tokens, then the packed bytes the run used and
their share of the budget. Both say which file each row came from.

``--min-fill 0.95`` leaves out rows whose artifact used less than that share of its budget (a
method that leaves bytes unused is handicapped; the rows left out are listed). Then come the
crossovers: per budget and token count the leading seed-based recipe (family ``ticket``) and
the leading stored-weight baseline (int8, ternary, binary QAT), and wherever the lead changes
between two measured token counts t1 < t2, where it changes, interpolated linearly in
log(tokens) between the two recipes' val_bpb gaps d1 and d2:
t* = exp(log t1 + (log t2 - log t1) * d1 / (d1 - d2)).

``--doc-tables`` adds, per budget, the compact table README.md and docs/RESULTS.md show: the
methods measured at every length of that budget under short names, val_bpb and its ratio to
int8's, int8 first, then by val_bpb at the longest length, worst first, its leader in bold.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from plots import Series, save_line_plot

Row = dict
Key = tuple[int, str, int]

# The docs' names for bake-off methods (--doc-tables); a method not listed keeps its own name.
DOC_LABELS = {
    "ticket best (sc, T 1->0.05)": "ticket, best recipe (binary, signed constant)",
    "best ticket + adapters (r 1, adapter lr 0.01)": "best ticket + rank-1 adapters",
    "ticket signed:2 (sc, quant)": "ticket `signed:2`",
    "ticket 2-bit, sized at 1.5 bits": "ticket 2-bit (`multibit:4`)",
}


def load_rows(paths: list[str], best_of: bool = False, min_fill: float | None = None,
              dropped: list[str] | None = None) -> dict[Key, Row]:
    """(budget, method, tokens) -> row, later files winning (``best_of``: the lowest val_bpb
    winning, as in a learning-rate sweep); each row keeps its source file, any swept lr and any
    pinned depth.
    ``min_fill``: rows whose artifact used less of the budget, or more than all of it, are left
    out before any choice is made, each named in ``dropped``."""
    rows: dict[Key, Row] = {}
    for path in paths:
        data = json.loads(Path(path).read_text())
        for row in data["rows"]:
            key = (row["budget"], row["method"], row["tokens"])
            if min_fill is not None and not _filled(row, min_fill, Path(path).name, dropped):
                continue
            if best_of and key in rows and rows[key]["val_bpb"] <= row["val_bpb"]:
                continue
            lr, layers = _swept(data["meta"], "--lr"), _swept(data["meta"], "--layers")
            rows[key] = {**row, "source": Path(path).name, "lr": None if lr is None else float(lr),
                         "layers": None if layers is None else int(layers),
                         "commit": (data["meta"].get("git_commit") or "")[:7]}
    return rows


def _filled(row: Row, min_fill: float, source: str, dropped: list[str] | None) -> bool:
    """Whether the row's artifact used at least ``min_fill`` of its budget and no more than it
    (rows that record no bytes do not); a row that did not is named in ``dropped``."""
    used, budget = row.get("artifact_bytes"), row["budget"]
    if used is not None and min_fill * budget <= used <= budget:
        return True
    if dropped is not None:
        # two decimals: a row a few bytes short of the bar must not read as on it (94.97%, not 95.0%)
        share = "no bytes recorded" if used is None else f"{used:,} B, {used / budget:.2%}"
        dropped.append(f"{budget / 1000:g} KB {row['method']} at {row['tokens'] / 1e6:.2f}M tokens ({share}; {source})")
    return False


def _swept(meta: dict, flag: str) -> str | None:
    """The value a sweep set with ``flag`` (--lr, --layers) on the run's command line (None: the
    method's default: its tuned lr, recorded in the row's extra by later runs, or the fill's depth)."""
    words = (meta.get("command") or "").split()
    return words[words.index(flag) + 1] if flag in words[:-1] else None


def leaders(rows: dict[Key, Row], budget: int, tokens: int, seed_based: bool) -> tuple[str, float] | None:
    """The (method, val_bpb) with the lowest val_bpb at (budget, tokens) among the seed-based
    recipes (``seed_based``) or the stored-weight baselines; None if none ran."""
    found = [(r["val_bpb"], k[1]) for k, r in rows.items()
             if k[0] == budget and k[2] == tokens and (r["family"] == "ticket") == seed_based]
    return (min(found)[1], min(found)[0]) if found else None


def crossover(t1: int, t2: int, d1: float, d2: float) -> float:
    """Tokens where a gap d1 (at t1) that changes sign to d2 (at t2) reaches zero, linear in
    log(tokens)."""
    return math.exp(math.log(t1) + (math.log(t2) - math.log(t1)) * d1 / (d1 - d2))


def crossover_table(rows: dict[Key, Row]) -> str:
    """Per budget and token count: the leading seed-based recipe against the leading baseline,
    then a line per change of lead with its interpolated token count."""
    out = ["| budget | tokens | best seed-based recipe | val_bpb | best stored-weight baseline | val_bpb | leads |",
           "|---|---:|---|---:|---|---:|---|"]
    notes = []
    for budget in sorted({k[0] for k in rows}):
        both = []
        for t in sorted({k[2] for k in rows if k[0] == budget}):
            seed, base = leaders(rows, budget, t, True), leaders(rows, budget, t, False)
            if seed is None or base is None:
                continue
            lead = "seed-based" if seed[1] < base[1] else "baseline"
            out.append(f"| {budget / 1000:g} KB | {t / 1e6:.2f}M | {seed[0]} | {seed[1]:.4f} | {base[0]} "
                       f"| {base[1]:.4f} | {lead} |")
            both.append((t, seed, base))
        for (t1, s1, b1), (t2, s2, b2) in zip(both, both[1:]):
            d1, d2 = s1[1] - b1[1], s2[1] - b2[1]
            if (d1 < 0) != (d2 < 0):
                notes.append(f"{budget / 1000:g} KB: the lead passes from the "
                             f"{'seed-based recipe' if d1 < 0 else 'baseline'} ({s1[0] if d1 < 0 else b1[0]}) to "
                             f"the {'baseline' if d1 < 0 else 'seed-based recipe'} ({b2[0] if d1 < 0 else s2[0]}) "
                             f"at about {crossover(t1, t2, d1, d2) / 1e6:.1f}M tokens "
                             f"(between {t1 / 1e6:.2f}M and {t2 / 1e6:.2f}M, log-linear)")
        if both and not any(n.startswith(f"{budget / 1000:g} KB:") for n in notes):
            lead = "seed-based recipe" if both[0][1][1] < both[0][2][1] else "baseline"
            notes.append(f"{budget / 1000:g} KB: the {lead} leads at every measured length "
                         f"({both[0][0] / 1e6:.2f}M to {both[-1][0] / 1e6:.2f}M tokens)")
    return "\n".join(out + [""] + [f"- {n}" for n in notes])


def markdown_table(rows: dict[Key, Row]) -> str:
    tokens = sorted({k[2] for k in rows})
    head = "| budget | method | " + " | ".join(f"{t / 1e6:.2f}M tokens" for t in tokens) + " |"
    out = [head, "|---|---|" + "---:|" * len(tokens)]
    for budget in sorted({k[0] for k in rows}):
        base = {t: rows[k]["val_bpb"] for k in rows if k[0] == budget and rows[k]["family"] == "int8"
                for t in [k[2]]}
        for method in dict.fromkeys(k[1] for k in sorted(rows, key=lambda k: k[2]) if k[0] == budget):
            cells = []
            for t in tokens:
                r = rows.get((budget, method, t))
                if r is None:
                    cells.append("not run")
                    continue
                ratio = f" ({r['val_bpb'] / base[t]:.3f})" if t in base else ""
                flag = "" if r.get("fits", True) else " OVER"
                used = (f" at {r['artifact_bytes']:,} B ({r['artifact_bytes'] / budget:.0%})"
                        if "artifact_bytes" in r else "")
                lr = f", lr {r['lr']:g}" if r.get("lr") is not None else ""
                depth = f", {r['layers']} blocks" if r.get("layers") is not None else ""
                cells.append(f"{r['val_bpb']:.4f}{ratio}{used}{lr}{depth}{flag}")
            out.append(f"| {budget / 1000:g} KB | {method} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def doc_tables(rows: dict[Key, Row]) -> str:
    """Per budget: a row per method measured at every length, int8 first, then worst to best at
    the longest length (the best in bold); each cell val_bpb (ratio to int8 of that length)."""
    return "\n\n".join(_doc_table(rows, budget) for budget in sorted({k[0] for k in rows}))


def _doc_table(rows: dict[Key, Row], budget: int) -> str:
    tokens = sorted({k[2] for k in rows if k[0] == budget})
    methods = {k[1] for k in rows if k[0] == budget}
    full = [m for m in methods if all((budget, m, t) in rows for t in tokens)]
    bpb = {(m, t): rows[(budget, m, t)]["val_bpb"] for m in full for t in tokens}
    base = next((m for m in full if rows[(budget, m, tokens[0])]["family"] == "int8"), None)
    order = ([base] if base else []) + sorted((m for m in full if m != base), key=lambda m: -bpb[(m, tokens[-1])])
    out = [f"| {budget / 1000:g} KB | " + " | ".join(f"{t / 1e6:.2f}M" + (" tokens" if i == 0 else "")
                                                     for i, t in enumerate(tokens)) + " |",
           "|---|" + "---:|" * len(tokens)]
    for m in order:
        cells = [f"{bpb[(m, t)]:.4f}" + (f" ({bpb[(m, t)] / bpb[(base, t)]:.3f})" if base and m != base else "")
                 for t in tokens]
        label = DOC_LABELS.get(m, m)
        if m == order[-1] and m != base:
            label, cells = f"**{label}**", [f"**{c}**" for c in cells]
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    partial = sorted(methods - set(full))
    return "\n".join(out + ([f"\nnot at every length: {'; '.join(partial)}"] if partial else []))


def save_plot(rows: dict[Key, Row], path: str) -> None:
    """A panel per budget: val_bpb against training tokens (millions), a line per method."""
    panels = []
    for budget in sorted({k[0] for k in rows}):
        series: Series = {}
        for k in rows:
            if k[0] == budget:
                series.setdefault(k[1], []).append((k[2] / 1e6, rows[k]["val_bpb"]))
        panels.append((f"{budget / 1000:g} KB artifacts", series))
    save_line_plot(path, panels, xlabel="training tokens (millions, log scale)")


def main(argv: list[str] | None = None) -> str:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("inputs", nargs="+", help="bakeoff.py JSON files, later ones win")
    ap.add_argument("--out", required=True, help="plot path (.png)")
    ap.add_argument("--best-of", action="store_true",
                    help="where runs repeat a (budget, method, tokens), keep the lowest val_bpb (a sweep's "
                         "winner; the table names its lr) instead of the later file's")
    ap.add_argument("--min-fill", type=float, default=None,
                    help="leave out rows whose artifact used less than this share of the budget (0.95)")
    ap.add_argument("--crossovers", action="store_true",
                    help="add the seed-based vs stored-weight lead per token count and its crossovers")
    ap.add_argument("--doc-tables", action="store_true",
                    help="add the compact per-budget tables README.md and docs/RESULTS.md show")
    args = ap.parse_args(argv)
    dropped: list[str] = []
    rows = load_rows(args.inputs, args.best_of, args.min_fill, dropped)
    table = markdown_table(rows)
    if args.crossovers:
        table += "\n\n" + crossover_table(rows)
    save_plot(rows, args.out)
    sources = sorted({(r["source"], r["commit"]) for r in rows.values()})
    print(table)
    print("\nrows from: " + ", ".join(f"{s} ({c or 'no commit'})" for s, c in sources))
    if dropped:
        print(f"\nleft out, under {args.min_fill:.0%} of the budget or over it: " + "; ".join(dropped))
    if args.doc_tables:
        docs = doc_tables(rows)
        table += "\n\n" + docs
        print("\n" + docs)
    return table


if __name__ == "__main__":
    main(sys.argv[1:])
