"""The JSON report, written as it is encoded: the same document as the one made whole."""

from __future__ import annotations

import io
import json
from datetime import date

from certsync.actions import Assign, Plan, Revoke
from certsync.cli.render import to_json, write_report
from certsync.engine.report import SyncReport


def test_the_written_json_report_is_the_document_made_whole() -> None:
    assigns = tuple(Assign(7, u, date(2026, 11, u % 28 + 1), f"r{u}") for u in range(1, 1_001))
    report = SyncReport(
        run_id="r1",
        kind="full",
        dry_run=False,
        plan=Plan(assigns=assigns, revokes=(Revoke(8, 5, owned=True),)),
    )
    out = io.StringIO()
    write_report(report, "json", out)
    assert out.getvalue() == json.dumps(to_json(report), indent=2, default=str) + "\n"
    written = json.loads(out.getvalue())
    assert len(written["plan"]["assign"]) == 1_000 and written["plan"]["renew"] == []
    assert written["plan"]["assign"][0] == {
        "certificate_id": 7,
        "user_id": 1,
        "completed_at": "2026-11-02",
        "record_id": "r1",
    }
    assert written["plan"]["revoke"][0]["user_id"] == 5
