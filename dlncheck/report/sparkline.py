"""An inline SVG sparkline of a family's follows / differs counts over the last runs (the trend
column of the report's history section); numbers only, so the markup is safe to inline."""

from __future__ import annotations

from markupsafe import Markup

FOLLOWS_COLOR, DIFFERS_COLOR = "#116329", "#a40e26"  # the report's agrees / differs text colours


def _points(values: list[int], width: float, height: float, top: int) -> str:
    step = width / max(1, len(values) - 1)
    return " ".join(f"{k * step:.1f},{height - 1 - (height - 2) * v / top:.1f}" for k, v in enumerate(values))


def sparkline(counts: list[tuple[int, int]], width: int = 120, height: int = 28) -> Markup:
    """Two polylines (follows, differs) over the runs of ``counts`` [(follows, differs)], oldest
    left, on one scale from 0 to the largest count; a single run is drawn as dots. Its title and
    aria-label state the newest counts."""
    top = max([1, *(max(c) for c in counts)])
    follows, differs = [c[0] for c in counts], [c[1] for c in counts]
    label = f"follows / differs over the last {len(counts)} runs; newest: follows {follows[-1]}, differs {differs[-1]}"
    if len(counts) == 1:
        marks = "".join(
            f'<circle cx="{width / 2:.1f}" cy="{height - 1 - (height - 2) * v / top:.1f}" r="2.5" fill="{color}"/>'
            for v, color in ((follows[0], FOLLOWS_COLOR), (differs[0], DIFFERS_COLOR))
        )
    else:
        marks = "".join(
            f'<polyline points="{_points(v, width, height, top)}" fill="none" stroke="{color}" stroke-width="1.5"/>'
            for v, color in ((follows, FOLLOWS_COLOR), (differs, DIFFERS_COLOR))
        )
    return Markup(
        f'<svg class="spark" role="img" aria-label="{label}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}"><title>{label}</title>{marks}</svg>'
    )
