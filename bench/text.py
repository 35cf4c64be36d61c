"""Numbers as the report writes them: significant figures, ratios, medians with their range, table heads."""
import math

from figures import median


def columns(*names):
    """A markdown table's header row and its rule."""
    return ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]


def fmt(value, digits=3, unit=""):
    """A number for a table: about `digits` significant figures, thousands separated."""
    if value is None:
        return "–"
    if isinstance(value, str):
        return value
    if value == 0:
        return "0" + unit
    mag = math.floor(math.log10(abs(value)))
    decimals = max(0, digits - 1 - mag)
    if float(value).is_integer() and abs(value) >= 10:
        decimals = 0
    text = f"{value:,.{decimals}f}"
    return text + unit


def ratio_text(value):
    if value is None:
        return "–"
    if value >= 10:
        return f"{value:.0f}x"
    if value >= 1:
        return f"{value:.2f}x"
    return f"{value:.2g}x"


def spread(values, digits=3, unit=""):
    """median, with the range when there are several values."""
    vals = [v for v in values if v is not None]
    if not vals:
        return "–"
    m = median(vals)
    if len(vals) == 1:
        return fmt(m, digits, unit)
    return f"{fmt(m, digits, unit)} ({fmt(min(vals), digits)}–{fmt(max(vals), digits)})"
