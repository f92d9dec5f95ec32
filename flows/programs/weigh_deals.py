"""Reads opportunities as JSON lines and writes them back with two fields a spreadsheet
would compute: the amount weighted by the probability of winning, and a size band.
Tributary starts it once per run (transform.command) and feeds it every record."""

import json
import sys

for line in sys.stdin:
    deal = json.loads(line)
    amount = deal.get("Amount")
    if amount is None:
        # Nothing to weigh: said on standard error, which goes to the run's log.
        print(f"no amount on {deal.get('Id')}", file=sys.stderr)
        continue
    deal["WeightedAmount"] = round(amount * (deal.get("Probability") or 0) / 100, 2)
    deal["Size"] = "large" if amount >= 100_000 else "medium" if amount >= 20_000 else "small"
    sys.stdout.write(json.dumps(deal) + "\n")
