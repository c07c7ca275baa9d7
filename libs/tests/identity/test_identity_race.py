"""Many processes starting together on an empty directory agree on one identity."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import line_workers, rounds

PROCESSES = 16
ROUNDS = rounds(3)  # ARCADE_TEST_ROUNDS sets it for the whole suite

# A worker imports everything up front (so the race is on the files, not on import
# speed), says "ready", then, for each work dir it is sent, loads the identity there.
WORKER = """\
import json, sys
import filelock, uuid
from arcade_identity import UsageIdentity
print("ready", flush=True)
for line in sys.stdin:
    identity = UsageIdentity(line.strip())
    data = identity.load_or_create()
    print(json.dumps({"anon_id": data["anon_id"], "created": identity.created}), flush=True)
"""


@pytest.mark.timeout(60)
def test_processes_racing_on_an_empty_dir_share_one_anon_id(tmp_path: Path) -> None:
    with line_workers(WORKER, PROCESSES) as workers:
        # The barrier: every worker is up and blocked on its stdin.
        for worker in workers:
            assert worker.stdout is not None
            assert worker.stdout.readline().strip() == "ready"

        for round_no in range(ROUNDS):
            work_dir = tmp_path / f"round-{round_no}"
            work_dir.mkdir()
            for worker in workers:  # "go": all of them at once
                assert worker.stdin is not None
                worker.stdin.write(f"{work_dir}\n")
                worker.stdin.flush()
            answers = []
            for worker in workers:
                assert worker.stdout is not None
                answers.append(json.loads(worker.stdout.readline()))

            on_disk = json.loads((work_dir / "usage.json").read_bytes())
            assert {a["anon_id"] for a in answers} == {on_disk["anon_id"]}, round_no
            # Exactly one of them created the file (and would print the first-run notice).
            assert sum(a["created"] for a in answers) == 1, round_no
            leftovers = [p.name for p in work_dir.iterdir() if p.suffix == ".tmp"]
            assert leftovers == []
