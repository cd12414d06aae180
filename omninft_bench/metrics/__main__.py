"""``python -m omninft_bench.metrics``: print the table of registered metrics."""

from __future__ import annotations

import sys

from omninft_bench.encoders import EncodersConfig
from omninft_bench.metrics import WEIGHT_FREE_SUITE, list_metrics

_COLUMNS = ("name", "modality", "kind", "better", "needs", "backend")


def format_table() -> str:
    rows = [spec.as_row() for spec in list_metrics()]
    widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in _COLUMNS}
    lines = ["  ".join(c.ljust(widths[c]) for c in _COLUMNS) + "  description"]
    lines.append("  ".join("-" * widths[c] for c in _COLUMNS) + "  -----------")
    for r in rows:
        lines.append("  ".join(r[c].ljust(widths[c]) for c in _COLUMNS) + f"  {r['description']}")
    lines += [
        "",
        f"backend 'default' = the encoders.default config key (default: {EncodersConfig().default}).",
        f"weight-free suite (evaluate's default): {', '.join(WEIGHT_FREE_SUITE)}",
    ]
    return "\n".join(lines)


def main() -> int:
    print(format_table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
