"""One module per scenario; each `measure(lab, sides)` returns raw samples per side.

Samples are JSON: numbers, lists of numbers, small records. Nothing here judges
or prints; `figures.py` turns samples into figures and targets, `report.py`
prints them.
"""

from __future__ import annotations
