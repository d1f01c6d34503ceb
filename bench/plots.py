"""The bake-off scripts' figure: val_bpb lines over a log x axis, one panel per group.

    save_line_plot(path, [("64 KB", {"int8": [(x, y), ...], ...}), ...], xlabel="...")

Each label keeps one colour across panels; tick labels are plain numbers (0.8, 60), not
powers of ten. matplotlib (a test dependency) is imported only when a plot is saved.
"""

from __future__ import annotations

from pathlib import Path

Series = dict[str, list[tuple[float, float]]]  # label -> (x, y) points
YLABEL = "val_bpb (held-out Shakespeare, lower is better)"


def save_line_plot(path: str, panels: list[tuple[str, Series]], *, xlabel: str,
                   ylabel: str = YLABEL, panel_width: float = 6.5) -> None:
    """One panel per ``(title, series)``, side by side, each series a line with markers,
    points sorted by x; written to ``path`` (its folder created)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    plain = matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}")
    labels = list(dict.fromkeys(label for _, series in panels for label in series))
    colors = {label: plt.get_cmap("tab20")(i % 20) for i, label in enumerate(labels)}
    fig, axes = plt.subplots(1, len(panels), figsize=(panel_width * len(panels), 4.5), squeeze=False)
    for ax, (title, series) in zip(axes[0], panels):
        for label, points in series.items():
            pts = sorted(points)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=label, color=colors[label])
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(plain)
        ax.xaxis.set_minor_formatter(plain)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
