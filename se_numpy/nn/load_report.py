"""The error of a failed ``load_state_dict``: grouped, bounded, and with a hint where it can.

A checkpoint that does not fit usually fails in one of a few recognisable
ways: every key carries a prefix (``module.`` from DataParallel), the file is
an original SENet checkpoint (``layer0.``, ``se_module.``, ``last_linear``),
or the SE widths follow another rounding rule. Listing thousands of keys in
one line hides that; this module counts each kind of problem, shows the first
few of each with the prefixes they share, and names the fix when the pattern
is one of those.
"""
from collections import Counter

from ..functional.se import make_divisible

SHOWN = 5          # keys shown per kind of problem


def _shared_prefixes(keys, depth=2, top=3):
    """The most common leading ``depth`` components, e.g. 'layer1.0' x 12."""
    counts = Counter(".".join(key.split(".")[:depth]) for key in keys)
    return ", ".join(f"{prefix}.* x{count}" for prefix, count in counts.most_common(top))


def _group(title, keys, details=None):
    shown = details if details is not None else keys
    line = f"{len(keys)} {title}"
    if len(keys) > SHOWN:
        line += f" (mostly {_shared_prefixes(keys)})"
    line += ": " + "; ".join(shown[:SHOWN])
    if len(keys) > SHOWN:
        line += f"; ... and {len(keys) - SHOWN} more"
    return line


def _prefix_hint(missing, unexpected):
    """If the unexpected keys are the missing ones plus one leading component, say which."""
    missing_set = set(missing)
    prefixes = Counter(key.split(".", 1)[0] for key in unexpected
                       if "." in key and key.split(".", 1)[1] in missing_set)
    if prefixes:
        prefix, count = prefixes.most_common(1)[0]
        if count >= max(1, len(missing) // 2):
            return (f"the file's keys carry the prefix '{prefix}.' ({count} keys): strip it, "
                    f"{{k.removeprefix('{prefix}.'): v for k, v in state.items()}}")
    return None


def _legacy_hint(unexpected):
    legacy = [key for key in unexpected if key.startswith(("layer0.", "last_linear."))
              or ".se_module." in key]
    if legacy and len(legacy) >= len(unexpected) // 2:
        return ("this is an original SENet checkpoint (layer0 / se_module / last_linear: the "
                "Caffe-converted weights, timm's legacy_* models): create the legacy_ model of "
                "the same depth, e.g. sn.models.create('legacy_seresnet50')")
    return None


def _se_width_hint(mismatched):
    """SE fc1 widths that differ exactly as C // 16 differs from make_divisible(C / 16, 8)."""
    floor_to_divisible = divisible_to_floor = 0
    for key, expected, got in mismatched:
        if not key.endswith(("fc1.weight", "conv_reduce.weight")) or len(got) < 2:
            continue
        channels = expected[1]
        if expected[0] == max(1, channels // 16) and got[0] == make_divisible(channels / 16, 8, round_limit=0.0):
            floor_to_divisible += 1
        elif expected[0] == make_divisible(channels / 16, 8, round_limit=0.0) and got[0] == channels // 16:
            divisible_to_floor += 1
    if floor_to_divisible:
        return ("the file's SE widths are rounded with make_divisible(C / 16, 8) (timm's rule), this "
                "model's with C // 16: use the timm name (e.g. seresnet18, not se_resnet18)")
    if divisible_to_floor:
        return ("this model rounds the SE width with make_divisible(C / 16, 8); the file's widths are "
                "C // 16 (the original SENets): use the legacy_ model (e.g. legacy_seresnet18)")
    return None


def format_load_problems(model_name, missing, unexpected, mismatched):
    """One message: a line per kind of problem (count, first keys, shared prefixes), then hints.

    ``mismatched`` holds (key, expected shape, shape in the file) triples.
    """
    lines = []
    if missing:
        lines.append(_group("missing keys", missing))
    if unexpected:
        lines.append(_group("unexpected keys", unexpected))
    if mismatched:
        details = [f"{key}: expected shape {tuple(expected)}, got {tuple(got)}"
                   for key, expected, got in mismatched]
        lines.append(_group("shape mismatches", [key for key, _, _ in mismatched], details))
    hints = [hint for hint in (_prefix_hint(missing, unexpected), _legacy_hint(unexpected),
                               _se_width_hint(mismatched)) if hint]
    lines.extend(f"hint: {hint}" for hint in hints)
    return f"load_state_dict into {model_name} failed:\n  " + "\n  ".join(lines)
