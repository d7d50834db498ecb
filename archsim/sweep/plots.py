"""Plots of sweep results (matplotlib, no global pyplot state, PNG/SVG/PDF by suffix)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from archsim.errors import ArchsimError, OutputError
from archsim.report.files import atomic_outputs, check_writable
from archsim.sweep.pareto import label, numeric, value, varying_fields

_LABELS = {"cycles": "cycles", "seconds": "latency [s]", "energy_pj": "energy [pJ]",
           "area_mm2": "area [mm²]", "power_w": "power [W]", "tokens_per_s": "tokens/s",
           "edp": "EDP [pJ·s]", "utilization": "utilization", "macs": "MACs"}


def _figure():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(8, 5.5), dpi=110)
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot(1, 1, 1)


def _auto_log(ax, arr: np.ndarray, axis: str, force: Optional[bool]) -> None:
    if force is None:
        pos = arr[arr > 0]
        force = (len(pos) == len(arr) and len(np.unique(pos)) >= 4 and pos.max() / pos.min() >= 32)
    if force:
        (ax.set_xscale if axis == "x" else ax.set_yscale)("log")


def formats() -> dict[str, str]:
    """Image formats matplotlib writes: suffix -> description."""
    from matplotlib.backend_bases import FigureCanvasBase
    return FigureCanvasBase.get_supported_filetypes()


def check_plot_path(out: str | Path, option: str = "--out") -> Path:
    """Check a plot's file name (a known image suffix) and that it can be written, before
    anything is computed or printed; an error naming the option and the path otherwise."""
    p = Path(out)
    fmts = formats()
    ext = p.suffix[1:].lower()
    known = ", ".join(f".{k}" for k in sorted(fmts))
    if not ext:
        raise OutputError(f"{option} {p}: no file suffix to tell the image format "
                          f"(e.g. .png, .svg, .pdf; supported: {known})")
    if ext not in fmts:
        raise OutputError(f"{option} {p}: unknown image format {'.' + ext!r} (supported: {known})")
    return check_writable(p, option)


def _save(fig, out: str | Path, option: str = "--out") -> Path:
    out = check_plot_path(out, option)
    fig.tight_layout()
    with atomic_outputs([(out, option)]) as (tmp,):
        try:
            fig.savefig(tmp, format=out.suffix[1:].lower())
        except ValueError as e:
            raise OutputError(f"{option} {out}: cannot write ({e})") from None
    return out


def pareto_plot(rows: list[dict], vals: np.ndarray, mask: np.ndarray, x: str, y: str,
                out: str | Path, *, gx: str = "min", gy: str = "min", logx: Optional[bool] = None,
                logy: Optional[bool] = None, max_labels: int = 25, title: Optional[str] = None,
                hide: frozenset = frozenset(), option: str = "--plot") -> Path:
    check_plot_path(out, option)
    fig, ax = _figure()
    if len(rows) == 0:
        raise ArchsimError("nothing to plot: no finished points with both metrics")
    ax.scatter(vals[~mask, 0], vals[~mask, 1], s=14, c="#b0b0b0", label="dominated", zorder=2)
    f = np.flatnonzero(mask)
    f = f[np.argsort(vals[f, 0])]
    ax.scatter(vals[f, 0], vals[f, 1], s=36, c="#d62728", edgecolors="black", linewidths=0.5,
               label=f"Pareto front ({len(f)})", zorder=4)
    ax.step(vals[f, 0], vals[f, 1], where="post", c="#d62728", lw=1.2, alpha=0.7, zorder=3)
    names = varying_fields([rows[i] for i in f], hide) or varying_fields(rows, hide)
    step = max(1, int(np.ceil(len(f) / max_labels)))
    for k, i in enumerate(f):
        if k % step == 0 or k == len(f) - 1:
            ax.annotate(label(rows[i], names), (vals[i, 0], vals[i, 1]), textcoords="offset points",
                        xytext=(5, 4) if k % 2 == 0 else (5, -11), fontsize=7, color="#5a0f10", zorder=5)
    _auto_log(ax, vals[:, 0], "x", logx)
    _auto_log(ax, vals[:, 1], "y", logy)
    ax.set_xlabel(f"{_LABELS.get(x, x)} ({'lower' if gx == 'min' else 'higher'} is better)")
    ax.set_ylabel(f"{_LABELS.get(y, y)} ({'lower' if gy == 'min' else 'higher'} is better)")
    ax.set_title(title or f"{len(rows)} design points")
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(loc="best", fontsize=8)
    return _save(fig, out, option)


def field_plot(rows: list[dict], x: str, y: str, out: str | Path, *, hue: Optional[str] = None,
               logx: Optional[bool] = None, logy: Optional[bool] = None, title: Optional[str] = None,
               option: str = "--out") -> Path:
    """``y`` against ``x`` (a field or metric); one coloured series per value of ``hue``.

    When several points share an x within a series (other fields vary), the series line
    follows their best (lowest) y, and every point is still drawn."""
    check_plot_path(out, option)
    fig, ax = _figure()
    xs_raw = [value(r, x) for r in rows]
    xnum = [numeric(v) for v in xs_raw]
    categorical = any(v is None for v in xnum)
    if categorical:
        cats = sorted({str(v) for v in xs_raw}, key=str)
        pos = {c: i for i, c in enumerate(cats)}
        xnum = [float(pos[str(v)]) for v in xs_raw]
        ax.set_xticks(range(len(cats)))
        ax.set_xticklabels(cats, rotation=30, ha="right")
    ynum = [numeric(value(r, y)) for r in rows]
    groups: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        if ynum[i] is None:
            continue
        key = "all" if hue is None else str(value(r, hue))
        groups.setdefault(key, []).append(i)
    if not groups:
        raise ArchsimError(f"nothing to plot: no finished point has a numeric {y!r}")
    import matplotlib
    cmap = matplotlib.colormaps["viridis" if len(groups) > 10 else "tab10"]
    items = list(groups.items())          # first-seen order is the axis order
    if all(numeric(k) is not None for k in groups):
        items.sort(key=lambda kv: numeric(kv[0]))
    for gi, (key, idx) in enumerate(items):
        color = cmap(gi / max(1, len(groups) - 1)) if len(groups) > 10 else cmap(gi % 10)
        px = np.array([xnum[i] for i in idx])
        py = np.array([ynum[i] for i in idx])
        ax.scatter(px, py, s=16, color=color, alpha=0.6, label=f"{hue}={key}" if hue else None)
        ux = np.unique(px)
        best = np.array([py[px == u].min() for u in ux])
        ax.plot(ux, best, color=color, lw=1.3)
    if not categorical:
        uniq = sorted({(xnum[i], str(xs_raw[i])) for i in range(len(rows))})
        if len(uniq) <= 12 and any(isinstance(v, str) for v in xs_raw):
            ax.set_xticks([u[0] for u in uniq])
            ax.set_xticklabels([u[1] for u in uniq], rotation=30, ha="right")
        _auto_log(ax, np.array([v for v in xnum if v is not None]), "x", logx)
        if len(uniq) <= 12 and ax.get_xscale() == "log":
            ax.set_xticks([u[0] for u in uniq])
            ax.set_xticklabels([u[1] for u in uniq], rotation=30, ha="right")
            ax.minorticks_off()
    _auto_log(ax, np.array([v for v in ynum if v is not None]), "y", logy)
    ax.set_xlabel(_LABELS.get(x, x))
    ax.set_ylabel(_LABELS.get(y, y))
    ax.set_title(title or f"{_LABELS.get(y, y)} vs {x}" + (f" by {hue}" if hue else ""))
    ax.grid(True, which="both", alpha=0.25)
    if hue:
        ax.legend(loc="best", fontsize=8, ncol=2 if len(groups) > 8 else 1)
    return _save(fig, out, option)

