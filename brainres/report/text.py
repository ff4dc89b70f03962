"""APA-style sentences for results.

``r = .34, 95% CI [.21, .46], p = .003, n = 160 stimuli (BCa interval; 10,000
resamples of seeds and stimuli; seed 0)``: values that cannot exceed 1 in
magnitude (correlations, proportions, p) lose their leading zero, as APA asks.
"""

from __future__ import annotations

import math

# statistic -> (symbol, bounded by 1 in magnitude)
SYMBOLS = {
    "pearson": ("r", True),
    "spearman": ("r<sub>s</sub>", True),
    "kendall": ("&tau;", True),
    "kendall_tau_a": ("&tau;<sub>a</sub>", True),
    "partial_pearson": ("partial r", True),
    "partial_spearman": ("partial r<sub>s</sub>", True),
    "split_half_reliability": ("reliability", True),
    "noise_ceiling": ("ceiling", True),
    "disattenuated_correlation": ("r<sub>corrected</sub>", False),
    "slope": ("b", False),
}


def number(value: float, bounded: bool = False, digits: int = 2) -> str:
    """Format a number; drop the leading zero of quantities bounded by 1."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    # tiny non-zero values keep two significant digits instead of rounding to 0.00
    text = f"{value:.2g}" if 0 < abs(value) < 10 ** -digits and "e" not in f"{value:.2g}" else f"{value:.{digits}f}"
    if bounded:
        text = text.replace("0.", ".", 1) if abs(value) < 1 else text
    return text


def p_text(p: float) -> str:
    """``p < .001`` or ``p = .012``."""
    if p is None or math.isnan(p):
        return ""
    return "p < .001" if p < 0.001 else f"p = {number(p, bounded=True, digits=3)}"


def symbol_of(statistic: str) -> tuple[str, bool]:
    if statistic in SYMBOLS:
        return SYMBOLS[statistic]
    base = statistic.split(":")[0]
    return SYMBOLS.get(base, (statistic.replace("_", " "), False))


def apa_sentence(result, unit: str = "stimuli") -> str:
    """One APA-style sentence (HTML) for a :class:`~brainres.stats.result.StatResult`."""
    symbol, bounded = symbol_of(result.statistic)
    parts = [f"{symbol} = {number(result.estimate, bounded)}"]
    if not math.isnan(result.ci_low):
        level = round(100 * result.ci_level)
        parts.append(f"{level}% CI [{number(result.ci_low, bounded)}, {number(result.ci_high, bounded)}]")
    df, se = (result.extra or {}).get("df"), (result.extra or {}).get("se")
    if df is not None and se and math.isfinite(df) and se > 0:  # a t test: APA's t(df) before its p
        parts.append(f"t({df:.1f}) = {result.estimate / se:.2f}")
    if not math.isnan(result.p_value):
        parts.append(p_text(result.p_value))
    if result.n:
        parts.append(f"n = {result.n} {unit}")
    how = []
    if result.interval:
        how.append(f"{result.interval} interval")
    if result.n_resamples:
        over = " and ".join(result.resampled) if result.resampled else "observations"
        how.append(f"{result.n_resamples:,} resamples of {over}")
    if result.seed is not None:
        how.append(f"seed {result.seed}")
    sentence = ", ".join(parts)
    return sentence + (f" ({'; '.join(how)})" if how else "")
