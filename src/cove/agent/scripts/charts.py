"""Capturing matplotlib figures from user code, for `code_run` and the interpreter.

This file runs in two places, so it imports nothing but the standard library
and nothing from `cove`:

* in the interpreter worker (`interp_worker.py` loads it by path), which
  turns figures into PNG result frames;
* in a stateless `code_run`: the run's small `sitecustomize` (see
  `boot/sitecustomize.py`) loads this file by path when the user's code imports
  pyplot and calls `install_code_run_capture(COVE_CHART_DIR)`; every figure
  shown or still open at exit is then written there as one JSON chart in the
  shape the official SDK parses (wire page §4.1 "Chart": snake_case keys,
  base64 `png`).

matplotlib itself is never imported here: a meta-path hook patches
`pyplot.show` only when the user's code imports pyplot, so runs that draw
nothing pay nothing.
"""

from __future__ import annotations

import atexit
import base64
import io
import json
import math
import os
import sys
from collections.abc import Callable
from typing import Any

PYPLOT = "matplotlib.pyplot"
Figure = Any  # matplotlib.figure.Figure, never imported at module level


class _PyplotHook:
    """A meta-path finder that runs `on_import(pyplot)` right after pyplot loads."""

    def __init__(self, on_import: Callable[[Any], None]) -> None:
        self.on_import = on_import

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != PYPLOT:
            return None
        import importlib.util

        sys.meta_path.remove(self)  # once is enough, and avoids recursing into ourselves
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        real_exec = loader.exec_module
        hook = self.on_import

        def exec_module(module: Any) -> None:
            real_exec(module)
            hook(module)

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def on_pyplot(on_import: Callable[[Any], None]) -> _PyplotHook | None:
    """Call `on_import(pyplot)` once pyplot is imported (now, if it already is).

    Returns the import hook it installed, if pyplot was not imported yet.
    """
    module = sys.modules.get(PYPLOT)
    if module is not None:
        on_import(module)
        return None
    hook = _PyplotHook(on_import)
    sys.meta_path.insert(0, hook)
    return hook


def patch_show(pyplot: Any, emit: Callable[[Figure], None]) -> None:
    """Make `plt.show()` hand every open figure to `emit`, then close it (inline style)."""

    def show(*args: Any, **kwargs: Any) -> None:
        emit_open_figures(emit)

    pyplot.show = show


def emit_open_figures(emit: Callable[[Figure], None]) -> None:
    pyplot = sys.modules.get(PYPLOT)
    if pyplot is None:
        return
    for num in list(pyplot.get_fignums()):
        fig = pyplot.figure(num)
        try:
            emit(fig)
        finally:
            pyplot.close(fig)


def is_figure(value: object) -> bool:
    return any(
        c.__name__ == "Figure" and c.__module__ == "matplotlib.figure" for c in type(value).__mro__
    )


def figure_png(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _num(value: Any) -> float | None:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _label(artist: Any) -> str:
    # matplotlib names unlabelled artists "_child0", "_nolegend_"...: not labels.
    label = str(artist.get_label() or "")
    return "" if label.startswith("_") else label


def _points(pairs: Any) -> list[list[float]]:
    """[[x, y], ...] as plain finite floats (the SDK's types are strict)."""
    out = []
    for pair in pairs:
        fx, fy = _num(pair[0]), _num(pair[1])
        if fx is not None and fy is not None:
            out.append([fx, fy])
    return out


def _axis_fields(ax: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "title": ax.get_title(),
        "x_label": ax.get_xlabel(),
        "y_label": ax.get_ylabel(),
        "x_scale": ax.get_xscale(),
        "y_scale": ax.get_yscale(),
    }
    for axis in ("x", "y"):
        ticks = getattr(ax, f"get_{axis}ticks")()
        labels = getattr(ax, f"get_{axis}ticklabels")()
        fields[f"{axis}_ticks"] = [v for v in (_num(t) for t in ticks) if v is not None]
        fields[f"{axis}_tick_labels"] = [t.get_text() for t in labels]
    return fields


def _bar_containers(ax: Any) -> list[Any]:
    # Error bars and stems are containers too; only bars make a bar chart.
    return [c for c in ax.containers if type(c).__name__ == "BarContainer"]


def _bars(ax: Any) -> list[dict[str, Any]]:
    elements = []
    labels = [t.get_text() for t in ax.get_xticklabels()]
    ticks = list(ax.get_xticks())
    for container in _bar_containers(ax):
        group = _label(container)
        for patch in getattr(container, "patches", []):
            center = patch.get_x() + patch.get_width() / 2
            label = ""
            for tick, text in zip(ticks, labels, strict=False):
                if abs(float(tick) - center) < patch.get_width() / 2:
                    label = text
            elements.append({"label": label, "value": f"{patch.get_height():g}", "group": group})
    return elements


def axes_chart(ax: Any) -> dict[str, Any]:
    """One axes as a chart: line, scatter, bar or pie, judged by what it draws."""
    from matplotlib.collections import PathCollection
    from matplotlib.patches import Wedge

    wedges: list[Any] = [p for p in ax.patches if isinstance(p, Wedge)]
    if wedges:
        texts = [t.get_text() for t in ax.texts]
        elements = []
        for i, w in enumerate(wedges):
            label = _label(w)
            if not label and i < len(texts):
                label = texts[i]
            elements.append(
                {"label": label, "angle": float(w.theta2 - w.theta1), "radius": float(w.r)}
            )
        return {"type": "pie", "title": ax.get_title(), "elements": elements}
    chart = _axis_fields(ax)
    if _bar_containers(ax):
        chart.update(type="bar", elements=_bars(ax))
        return chart
    scatters: list[Any] = [c for c in ax.collections if isinstance(c, PathCollection)]
    lines = ax.get_lines()
    if lines and not scatters:
        chart["type"] = "line"
        chart["elements"] = [
            # xydata is in axis units: dates and categories are numbers here.
            {"label": _label(ln), "points": _points(ln.get_xydata())}
            for ln in lines
        ]
    elif scatters:
        chart["type"] = "scatter"
        chart["elements"] = [
            {"label": _label(c), "points": _points(c.get_offsets())}
            for c in scatters
            if len(c.get_offsets())
        ]
    else:
        chart["elements"] = []
    return chart


def figure_chart(fig: Figure) -> dict[str, Any]:
    """The SDK's Chart for a figure; several axes make a composite chart."""
    axes = [ax for ax in fig.get_axes() if ax.has_data()] or fig.get_axes()
    suptitle = fig._suptitle.get_text() if getattr(fig, "_suptitle", None) else ""
    if not axes:
        chart: dict[str, Any] = {"title": suptitle, "elements": []}
    elif len(axes) == 1:
        chart = axes_chart(axes[0])
        if suptitle and not chart.get("title"):
            chart["title"] = suptitle
    else:
        chart = {"type": "composite_chart", "title": suptitle, "elements": []}
        for ax in axes:
            try:
                chart["elements"].append(axes_chart(ax))
            except Exception:  # an exotic axes must not lose the whole figure
                continue
    chart["png"] = figure_png(fig)
    return chart


def _save_chart_to(directory: str) -> Callable[[Figure], None]:
    counter = [0]

    def save(fig: Figure) -> None:
        try:
            chart = figure_chart(fig)
        except Exception:
            # Not silent: the figure still reaches the user, as its PNG only;
            # an element parser failing on an exotic figure must not lose it.
            chart = {"png": figure_png(fig)}
        counter[0] += 1
        name = os.path.join(directory, f"chart-{os.getpid()}-{counter[0]:04d}.json")
        with open(name, "w", encoding="utf-8") as f:
            json.dump(chart, f)

    return save


def install_code_run_capture(directory: str) -> _PyplotHook | None:
    """The sitecustomize side: figures shown or open at exit go to `directory`."""
    save = _save_chart_to(directory)
    os.environ.setdefault("MPLBACKEND", "Agg")

    def on_import(pyplot: Any) -> None:
        patch_show(pyplot, save)
        # Registered after pyplot's own exit hook (which closes every figure),
        # so it runs before it: atexit is last in, first out.
        atexit.register(emit_open_figures, save)

    return on_pyplot(on_import)


def read_charts(directory: str) -> list[dict[str, Any]]:
    """The agent side: the charts a run left, in the order they were made."""
    charts = []
    try:
        names = sorted(n for n in os.listdir(directory) if n.endswith(".json"))
    except OSError:
        return []
    for name in names:
        try:
            with open(os.path.join(directory, name), encoding="utf-8") as f:
                chart = json.load(f)
        except (OSError, ValueError):
            continue
        if isinstance(chart, dict):
            charts.append(chart)
    return charts
