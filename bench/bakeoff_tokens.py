"""Bake-off rows from several runs as one table and one plot: val_bpb against training tokens.

    python bench/bakeoff_tokens.py bench/results/bakeoff.json bench/results/bakeoff_1600.json \\
        --out bench/results/bakeoff2.png

Each input is the JSON ``bench/bakeoff.py`` writes. Rows are keyed by (budget, method,
training tokens); a later file's row replaces an earlier one's. The plot has one panel per
budget, training tokens on a log axis and a line per method; the table has a row per
(budget, method) and a column per token count, each cell val_bpb and, in brackets, its
ratio to dense int8's at the same budget and tokens, then the packed bytes the run used and
their share of the budget. Both say which file each row came from.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from plots import Series, save_line_plot

Row = dict
Key = tuple[int, str, int]


def load_rows(paths: list[str]) -> dict[Key, Row]:
    """(budget, method, tokens) -> row, later files winning; each row keeps its source file."""
    rows: dict[Key, Row] = {}
    for path in paths:
        data = json.loads(Path(path).read_text())
        for row in data["rows"]:
            rows[(row["budget"], row["method"], row["tokens"])] = {**row, "source": Path(path).name,
                                                                   "commit": (data["meta"].get("git_commit") or "")[:7]}
    return rows


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
                cells.append(f"{r['val_bpb']:.4f}{ratio}{used}{flag}")
            out.append(f"| {budget / 1000:g} KB | {method} | " + " | ".join(cells) + " |")
    return "\n".join(out)


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
    args = ap.parse_args(argv)
    rows = load_rows(args.inputs)
    table = markdown_table(rows)
    save_plot(rows, args.out)
    sources = sorted({(r["source"], r["commit"]) for r in rows.values()})
    print(table)
    print("\nrows from: " + ", ".join(f"{s} ({c or 'no commit'})" for s, c in sources))
    return table


if __name__ == "__main__":
    main(sys.argv[1:])
