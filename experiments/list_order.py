"""Does a model list an image's objects in the order it was taught, and where does the order fail?

Usage: python experiments/list_order.py --data DIR --run RUN [--order left-to-right|label] [--markdown]

For a model that writes ``mirg data trajectories --detail chain`` reasoning, reads each image's first label list
(``Image k: a; b; c.``) of RUN/predictions.jsonl against the manifest in DIR, for images of two objects or more, and
counts by the smallest horizontal gap between the centres of two objects that are neighbours left to right:

  lists          label lists
  order_right    the list is the annotated objects in ``--order`` (what the trajectories taught)
  labels_right   the same labels, in any order
  repeated       the list names one label twice where the image holds it once

Left to right, two centres a few pixels apart have no order a model with 16 image tokens (28 px each) can see;
alphabetical order by label does not depend on positions. Prints one JSON object, or with ``--markdown`` a table.
"""

from __future__ import annotations

import json
import sys
from collections import Counter, defaultdict

from chain_analysis import label_lists
from run_reader import read_run, run_parser

#: Upper bounds (pixels, exclusive) of the gap bins; the last bin is open.
GAP_BINS = (4, 8, 16)
COLUMNS = ("lists", "order_right", "labels_right", "repeated")


def gap_bin(gap: float) -> str:
    low = 0
    for high in GAP_BINS:
        if gap < high:
            return f"{low}-{high} px"
        low = high
    return f">= {low} px"


def smallest_gap(objects) -> float:
    """The smallest horizontal distance between the centres of two objects neighbouring left to right."""
    centres = sorted((o.bbox[0] + o.bbox[2]) / 2 for o in objects)
    return min(b - a for a, b in zip(centres, centres[1:]))


def count_lists(samples, responses: dict[str, str], order: str) -> dict[str, Counter]:
    from mirg.answer import think_block
    from mirg.data.trajectories import in_order

    bins: dict[str, Counter] = defaultdict(Counter)
    for sample in samples:
        if sample.objects is None or sample.id not in responses:
            continue
        lists = label_lists(think_block(responses[sample.id]))
        for k, objects in enumerate(sample.objects, start=1):
            if len(objects) < 2:
                continue
            written = [entry.removesuffix(" outlined") for entry in lists.get(k, [])]
            wanted = [o.label for o in in_order(objects, order)]
            counts = bins[gap_bin(smallest_gap(objects))]
            counts["lists"] += 1
            counts["order_right"] += written == wanted
            counts["labels_right"] += sorted(written) == sorted(wanted)
            counts["repeated"] += any(c > max(1, Counter(wanted)[label]) for label, c in Counter(written).items())
    ordered = {key: bins[key] for key in sorted(bins, key=lambda b: float(b.split()[-2].split("-")[0]))}
    ordered["all"] = sum(bins.values(), Counter())
    return ordered


def markdown(bins: dict[str, Counter]) -> str:
    lines = ["| smallest gap between neighbouring centres | " + " | ".join(COLUMNS) + " |",
             "|---|" + "---:|" * len(COLUMNS)]
    lines += [f"| {name} | " + " | ".join(str(c[col]) for col in COLUMNS) + " |" for name, c in bins.items()]
    return "\n".join(lines)


def main() -> int:
    parser = run_parser(__doc__)
    parser.add_argument("--order", choices=("left-to-right", "label"), default="left-to-right",
                        help="the order the model was taught (default left-to-right)")
    parser.add_argument("--markdown", action="store_true", help="print a table instead of JSON")
    opts = parser.parse_args()
    samples, responses, _ = read_run(opts, "list_order")
    bins = count_lists(samples, responses, opts.order)
    print(markdown(bins) if opts.markdown else json.dumps({k: {**dict.fromkeys(COLUMNS, 0), **c} for k, c in bins.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
