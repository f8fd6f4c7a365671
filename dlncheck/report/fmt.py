"""Text and numbers as the report shows them: no Python reprs, no ``nan``, nothing that spoofs.

:func:`clean` makes any record safe to encode and display: lone surrogates become U+FFFD, C0/C1
control characters (except newline and tab) and bidirectional overrides/isolates (U+202A-202E,
U+2066-2069, U+200E/F, U+061C) are replaced by a visible ``\\uXXXX`` escape, so a test id
cannot reorder or hide the text around it.
"""

from __future__ import annotations

import math
import re

from markupsafe import Markup, escape

_HIDDEN = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_SURROGATE = re.compile("[\ud800-\udfff]")
MISSING = {
    "nan": "not a number: undefined for this case (e.g. no run reached that point)",
    "inf": "infinite",
    "-inf": "minus infinity",
    "None": "not measured",
}
MAX_ITEMS = 12


def clean_text(text: str) -> str:
    text = _SURROGATE.sub("\ufffd", text)
    return _HIDDEN.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def clean(obj):
    """``obj`` with every string (keys included) passed through :func:`clean_text`."""
    if isinstance(obj, str):
        return clean_text(obj)
    if isinstance(obj, dict):
        return {clean_text(str(k)): clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean(v) for v in obj]
    return obj


def _missing(why: str) -> Markup:
    return Markup('<span class="missing" title="{}">–</span>').format(why)


def number(value) -> Markup:
    """HTML for one value: 4 significant digits, integers in full, booleans as yes/no, non-finite
    and missing values as a dash whose tooltip says why, lists truncated after MAX_ITEMS."""
    if value is None:
        return _missing(MISSING["None"])
    if isinstance(value, bool):
        return Markup("yes" if value else "no")
    if isinstance(value, int):
        return Markup(f"{value:d}")
    if isinstance(value, float):
        if not math.isfinite(value):
            return _missing(MISSING[str(value)])
        return Markup(f"{value:.4g}".replace("e-0", "e-").replace("e+0", "e").replace("e+", "e"))
    if isinstance(value, str):
        return _missing(MISSING[value]) if value in MISSING else escape(value)
    if isinstance(value, dict):
        return Markup(", ").join(Markup("{} = {}").format(k, number(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        items = [number(v) for v in value[:MAX_ITEMS]]
        more = [Markup(f"… ({len(value)} values)")] if len(value) > MAX_ITEMS else []
        return Markup("[") + Markup(", ").join(items + more) + Markup("]")
    return escape(str(value))


_NAN_WORD = re.compile(r"(?<![\w.])[-+]?nan(?!\w|\.\d)", re.IGNORECASE)


def prose(text) -> Markup:
    """Escaped free text (prediction, observed, reason) with each stand-alone ``nan`` shown as
    a dash whose tooltip says it is undefined."""
    return Markup(_NAN_WORD.sub(lambda m: _missing(MISSING["nan"]), str(escape(text or ""))))


def seconds(value) -> str:
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return "–"
    if value < 60:
        return f"{value:.1f} s"
    return f"{int(value // 60)} min {value % 60:.0f} s"


_ERROR_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Failed)\b:?")
BRIEF_CHARS = 240


def brief(message: str) -> str:
    """A failure in one line, as the report shows it: the exception's own first line (pytest's
    assertion-rewrite lines, object reprs and tables below it dropped), cut at ``BRIEF_CHARS``; a bare
    ``assert`` says so. The full message stays on the case page, behind a details toggle."""
    lines = [line.strip() for line in (message or "").splitlines() if line.strip()]
    line = next((x for x in lines if _ERROR_LINE.match(x)), lines[0] if lines else "")
    head, _, rest = line.partition(": ")
    if rest.startswith("assert ") or line.startswith("assert "):
        line = f"{head if _ERROR_LINE.match(line) else 'AssertionError'}: a bare assert failed (its values: details on the case page)"
    return line if len(line) <= BRIEF_CHARS else line[: BRIEF_CHARS - 1] + "…"
