"""Charts as inline SVG, drawn on the server: no script, printable, readable by screen readers.

Each function returns markup ready for a template: an ``<svg role="img">`` with a
``<title>`` and ``<desc>``, every label and link escaped here (they come from
rule files and the org file, which administrators edit). The words come from the
templates; this module knows only numbers and the strings it is given. A chart is
drawn at a natural width in px and shrinks with its box (``max-width: 100%``), so
that its text stays legible on a phone and does not grow huge on a wide screen.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from markupsafe import Markup, escape

# Colour-blind-safe (Okabe–Ito), dark enough for white text and clear in greyscale print.
PALETTE = ("#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00")
LIGHT = "#a9cbe3"  # the second part of a stacked bar: the same hue as the first, lighter
FONT = 14
WIDTH = 420
MAX_LABEL = 0.5  # of a bar chart's width, for its labels (English names are long)


def hbars(
    rows: Sequence[tuple[str, Sequence[float], str | None]],
    *,
    ident: str,
    title: str,
    desc: str,
    legend: Sequence[str] = (),
) -> Markup:
    """Return horizontal bars, one per (label, values, link); several values stack.

    The total is written at the end of each bar; ``legend`` names the stacked parts.
    Labels get the room the longest needs, up to ``MAX_LABEL`` of the width; a longer
    one is cut with an ellipsis (the whole label is the bar's tooltip).
    """
    longest = max((_width(label) for label, _, _ in rows), default=0)
    label_width = min(longest + 16, round(WIDTH * MAX_LABEL))
    tones = [_tone(j, len(legend)) for j in range(len(legend))]
    key, key_height = _legend(legend, tones, 0, 8) if len(legend) > 1 else ([], 0)
    bar, gap, top = 22, 10, 8 + key_height
    height = top + len(rows) * (bar + gap) + 4
    most = max((sum(v) for _, v, _ in rows), default=0) or 1
    room = WIDTH - label_width - 48  # the total's text after the longest bar
    out = [_open(ident, title, desc, WIDTH, height)]
    out += key
    for i, (label, values, href) in enumerate(rows):
        y = top + i * (bar + gap)
        parts = []
        x = float(label_width)
        for j, value in enumerate(values):
            w = room * value / most
            if w > 0:
                fill = _tone(j, len(values))
                parts.append(
                    f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{bar}" fill="{fill}"/>'
                )
            x += w
        total = sum(values)
        named = f"{escape(label)}: {_num(total)}"
        if len(legend) == len(values) and len(values) > 1:
            pairs = zip(legend, values, strict=True)
            named += " (" + ", ".join(f"{escape(n)} {_num(v)}" for n, v in pairs) + ")"
        # The whole row answers a click or a tap, not only the bar and its label.
        hit = (
            f'<rect x="0" y="{y - gap / 2}" width="{WIDTH}" height="{bar + gap}" '
            'fill="#0072b2" fill-opacity="0" class="hit"/>'
        )
        body = (
            f"<title>{named}</title>"
            + (hit if href else "")
            + f'<text x="{label_width - 8}" y="{y + bar / 2}" text-anchor="end" '
            f'dominant-baseline="central" class="label">{escape(_clip(label, label_width))}</text>'
            + "".join(parts)
            + f'<text x="{x + 6:.1f}" y="{y + bar / 2}" dominant-baseline="central" '
            f'class="value">{_num(total)}</text>'
        )
        out.append(_link(href, body))
    out.append("</svg>")
    return Markup("".join(out))


def line(
    labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[float | None]]],
    *,
    ident: str,
    title: str,
    desc: str,
    percent: bool = False,
    every: int = 1,
    height: int = 220,
) -> Markup:
    """Return a line per (name, values) over ``labels``; a None value leaves a gap.

    ``percent`` draws values of 0..1 on a 0–100% axis; else the axis starts at 0 and
    ends at a round number. Only every ``every``-th label is written under the axis.
    """
    left, right = 44, 24
    names = [name for name, _ in series]
    key, key_height = _legend(names, PALETTE, left, 8) if len(series) > 1 else ([], 0)
    top = 12 + key_height
    bottom = height - 28
    most = 1.0 if percent else _ceiling(max((v or 0 for _, vs in series for v in vs), default=0))
    n = len(labels)
    step = (WIDTH - left - right) / max(n - 1, 1)

    def px(i: int) -> float:
        return left + i * step

    def py(v: float) -> float:
        return bottom - (bottom - top) * v / most

    out = [_open(ident, title, desc, WIDTH, height)]
    out += key
    for k in range(5):
        v = most * k / 4
        y = py(v)
        tick = f"{round(v * 100)}%" if percent else _num(v)
        out.append(
            f'<line x1="{left}" x2="{WIDTH - right}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
            f'<text x="{left - 6}" y="{y:.1f}" text-anchor="end" dominant-baseline="central" '
            f'class="tick">{tick}</text>'
        )
    for i, label in enumerate(labels):
        if i % every == 0 or (i == n - 1 and (n - 1) % every >= every / 2):
            out.append(
                f'<text x="{px(i):.1f}" y="{bottom + 18}" text-anchor="middle" class="tick">'
                f"{escape(label)}</text>"
            )
    for s, (name, values) in enumerate(series):
        colour = PALETTE[s % len(PALETTE)]
        for run in _runs(values):
            points = " ".join(f"{px(i):.1f},{py(values[i] or 0):.1f}" for i in run)
            if len(run) > 1:
                out.append(
                    f'<polyline points="{points}" fill="none" stroke="{colour}" '
                    'stroke-width="2.5"/>'
                )
        for i, value in enumerate(values):
            if value is None:
                continue
            v = value
            shown = f"{round(v * 100)}%" if percent else _num(v)
            out.append(
                f'<circle cx="{px(i):.1f}" cy="{py(v):.1f}" r="3.5" fill="{colour}">'
                f"<title>{escape(name)} · {escape(labels[i])}: {shown}</title></circle>"
            )
    out.append("</svg>")
    return Markup("".join(out))


def _open(ident: str, title: str, desc: str, width: int, height: int) -> str:
    i = escape(ident)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'aria-labelledby="{i}-title {i}-desc" font-size="{FONT}">'
        f'<title id="{i}-title">{escape(title)}</title><desc id="{i}-desc">{escape(desc)}</desc>'
    )


def _legend(names: Sequence[str], colours: Sequence[str], x0: int, y: int) -> tuple[list[str], int]:
    """Return the keys of a chart's colours, wrapped to its width, and the height they take."""
    out = []
    x, y0, line = x0, y, FONT + 12
    for j, name in enumerate(names):
        room = 28 + _width(name)
        if x > x0 and x + room > WIDTH:
            x, y = x0, y + line
        out.append(
            f'<rect x="{x}" y="{y}" width="12" height="12" fill="{colours[j % len(colours)]}"/>'
            f'<text x="{x + 16}" y="{y + 6}" dominant-baseline="central" class="legend">'
            f"{escape(name)}</text>"
        )
        x += room
    return out, y - y0 + line


def _tone(j: int, parts: int) -> str:
    """Return the fill of the j-th part of a bar: one hue, lighter for the later part."""
    if parts == 2:
        return (PALETTE[0], LIGHT)[j]
    return PALETTE[j % len(PALETTE)]


def _link(href: str | None, body: str) -> str:
    if href is None:
        return f"<g>{body}</g>"
    return f'<a href="{escape(href)}">{body}</a>'


def _width(text: str) -> int:
    """Return about how wide ``text`` is at FONT px: CJK and other wide characters count double."""
    return round(sum(FONT if ord(c) > 0x2E80 else FONT * 0.6 for c in text))


def _clip(label: str, room: int) -> str:
    """Return ``label`` cut with an ellipsis to fit ``room`` px (the full one is the title)."""
    if _width(label) <= room - 10:
        return label
    while label and _width(label + "…") > room - 10:
        label = label[:-1]
    return label + "…"


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


def _ceiling(value: float) -> float:
    """Return an axis top at or above ``value`` whose quarters are round: 4 × (1, 2 or 5 × 10ⁿ)."""
    if value <= 4:
        return 4.0
    quarter = value / 4
    power = 10.0 ** math.floor(math.log10(quarter))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= quarter)
    return float(4 * step)


def _runs(values: Sequence[float | None]) -> list[list[int]]:
    """Return the indexes of the unbroken stretches of values that are not None."""
    runs: list[list[int]] = []
    for i, v in enumerate(values):
        if v is None:
            continue
        if runs and runs[-1][-1] == i - 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    return runs
