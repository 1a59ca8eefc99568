"""A search in which one proxy training hangs and one kills its worker process (as the OOM killer would) completes:
both are stopped, retried once, recorded as failed with their reasons in the log, left out of the hall of fame, and
listed in the text and Markdown reports."""

import json
from concurrent.futures import ThreadPoolExecutor

from search_fakes import FakeSimulator, fake_proxy, injected_proxy

from autoloss.report_command import write_report
from autoloss.run_store import LOG
from autoloss.search_config import SearchConfig
from autoloss.search_driver import search
from autoloss.search_report import format_report

CONFIG = SearchConfig(population=4, generations=1, top_k=3, parents=2, final_steps=2, workers=2,
                      proxy_time_limit=3.0, verify_time_budget=0.0)


def proxy_records(run_dir) -> list[dict]:
    return [e for e in map(json.loads, (run_dir / LOG).read_text().splitlines()) if e.get("stage") == "proxy"]


def test_a_hanging_training_and_a_crashing_worker_are_recorded_as_failed_and_the_search_completes(tmp_path,
                                                                                                  monkeypatch):
    with ThreadPoolExecutor(2) as executor:  # which candidates the proxy task gets (the search is deterministic)
        search(CONFIG, run_dir=tmp_path / "probe", simulator=FakeSimulator, executor=executor, proxy_task=fake_proxy,
               progress=False)
    hang, crash = [e["key"] for e in proxy_records(tmp_path / "probe") if e["generation"] == 0][:2]
    monkeypatch.setenv("AUTOLOSS_FAKE_HANG", hang)
    monkeypatch.setenv("AUTOLOSS_FAKE_CRASH", crash)

    result = search(CONFIG, run_dir=tmp_path / "run", simulator=FakeSimulator, proxy_task=injected_proxy,
                    progress=False)  # on two local worker processes
    assert result.finished and set(result.final) == {"baseline", "found"}
    records = {e["key"]: e for e in proxy_records(tmp_path / "run")}
    assert records[hang]["status"] == "failed" and records[hang]["attempts"] == 2
    assert records[hang]["reason"] == "time limit 3 s exceeded (stopped before its first progress report)"
    assert records[crash]["status"] == "failed" and records[crash]["attempts"] == 2
    assert records[crash]["reason"].startswith("the worker process died: killed by SIGKILL (signal 9")
    assert all(e["status"] == "ok" for key, e in records.items() if key not in (hang, crash))
    assert len(records) == 3 and {hang, crash}.isdisjoint(loss.key for loss in result.hall_of_fame)
    assert result.funnel["proxy_failed"] == 2

    text = format_report(result.to_dict())
    markdown = (tmp_path / "report" / "report.md")
    write_report(tmp_path / "run", tmp_path / "report")
    for report in (text, markdown.read_text()):
        assert "failed" in report.lower()
        assert "time limit 3 s exceeded" in report and "the worker process died: killed by SIGKILL" in report
    assert "## Failed trainings" in markdown.read_text()
