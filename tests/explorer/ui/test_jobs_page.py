"""The jobs page: live list, and pause, resume, cancel, resubmit in the browser on real jobs (retrieves from a
modality that refuses the connection, and from one that never answers, which holds the only job slot)."""

from __future__ import annotations

import socket
import time

import pytest
import requests

from tests.explorer.ui.conftest import axe_violations, shot
from tests.live import free_port, live_server


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    hole = socket.socket()          # accepts TCP connections (the backlog) and never answers: an association hangs
    hole.bind(("127.0.0.1", 0))
    hole.listen(8)
    modalities = {"hole": ["HOLE", "127.0.0.1", hole.getsockname()[1]],
                  "closed": ["CLOSED", "127.0.0.1", free_port()]}
    try:
        with live_server(tmp_path_factory.mktemp("ui-jobs"), ConcurrentJobs=1, DicomScuTimeout=15,
                         DicomModalities=modalities) as s:
            yield s
    finally:
        hole.close()


def _move(server, modality: str) -> str:
    answer = requests.post(f"{server.url}/modalities/{modality}/move", timeout=30, json={
        "Level": "Study", "Resources": [{"StudyInstanceUID": "1.2.99.1"}], "Asynchronous": True})
    answer.raise_for_status()
    return answer.json()["ID"]


def _state(server, job_id: str) -> str:
    return requests.get(f"{server.url}/jobs/{job_id}", timeout=10).json()["State"]


def _wait_state(server, job_id: str, state: str) -> None:
    deadline = time.time() + 30
    while _state(server, job_id) != state and time.time() < deadline:
        time.sleep(0.1)
    assert _state(server, job_id) == state


def test_jobs_controls(server, page):
    failed = _move(server, "closed")
    _wait_state(server, failed, "Failure")
    running = _move(server, "hole")
    _wait_state(server, running, "Running")
    pending = _move(server, "hole")
    assert _state(server, pending) == "Pending"

    page.goto(server.url + "/ui/jobs")
    assert page.locator("h1").inner_text() == "Jobs"
    row = page.locator(f"#job-{pending}")
    assert row.get_attribute("data-state") == "Pending"
    assert page.locator(f"#job-{failed}").get_attribute("data-state") == "Failure"
    assert page.locator(f"#job-{failed} .error").count() == 1
    assert axe_violations(page) == []
    shot(page, "jobs_before_controls")

    page.locator(f"#job-{pending}").get_by_role("button", name="Pause").click()
    page.wait_for_selector(f'#job-{pending}[data-state="Paused"]')
    assert _state(server, pending) == "Paused"
    page.locator(f"#job-{pending}").get_by_role("button", name="Resume").click()
    page.wait_for_selector(f'#job-{pending}[data-state="Pending"]')
    page.locator(f"#job-{pending}").get_by_role("button", name="Cancel").click()
    page.wait_for_selector(f'#job-{pending}[data-state="Failure"]')
    assert _state(server, pending) == "Failure"

    page.locator(f"#job-{failed}").get_by_role("button", name="Resubmit").click()
    page.wait_for_selector(f'#job-{failed}[data-state="Pending"]')
    assert _state(server, failed) == "Pending"

    # keyboard: the running job's Cancel is reachable and works with Enter; the list follows by polling
    button = page.locator(f"#job-{running}").get_by_role("button", name="Cancel")
    button.focus()
    page.keyboard.press("Enter")
    _wait_state(server, running, "Failure")
    page.wait_for_selector(f'#job-{running}[data-state="Failure"]', timeout=15_000)
    # the freed slot ran the resubmitted job, which fails again (the port is closed); polling shows it
    page.wait_for_selector(f'#job-{failed}[data-state="Failure"]', timeout=15_000)


def test_jobs_page_works_without_javascript(server, browser):
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    job = _move(server, "closed")
    _wait_state(server, job, "Failure")
    page.goto(server.url + "/ui/jobs")
    page.locator(f"#job-{job}").get_by_role("button", name="Resubmit").click()
    page.wait_for_url(f"**/ui/jobs#job-{job}")
    assert _state(server, job) in ("Pending", "Running", "Failure")
    context.close()


def test_jobs_are_paged_newest_first_past_the_first_hundred(tmp_path, browser):
    """Every job is reachable: pages of 100, newest first, keyset-paged with an "Older jobs" link (the jobs wait
    behind one that hangs, so they stay in the list whatever JobsHistorySize says)."""
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(8)
    try:
        with live_server(tmp_path, ConcurrentJobs=1, DicomScuTimeout=120,
                         DicomModalities={"hole": ["HOLE", "127.0.0.1", hole.getsockname()[1]]}) as s:
            ids = [_move(s, "hole") for _ in range(105)]
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            try:
                page = context.new_page()
                page.goto(s.url + "/ui/jobs")
                rows = page.locator("table.jobs tbody tr")
                assert rows.count() == 100
                assert rows.first.get_attribute("id") == f"job-{ids[-1]}"          # newest first
                assert page.get_by_role("link", name="Newest jobs").count() == 0
                page.get_by_role("link", name="Older jobs").click()
                page.wait_for_url(lambda url: "after=" in url)
                assert [r.get_attribute("id") for r in page.locator("table.jobs tbody tr").all()] == \
                    [f"job-{i}" for i in reversed(ids[:5])]
                assert page.get_by_role("link", name="Older jobs").count() == 0
                assert axe_violations(page) == []
                shot(page, "jobs_older_page")
                time.sleep(2.5)                           # the polling refresh keeps this page
                assert page.locator("table.jobs tbody tr").count() == 5
                page.get_by_role("link", name="Newest jobs").click()
                page.wait_for_url(lambda url: "after=" not in url)      # count() does not wait for the load
                assert page.locator("table.jobs tbody tr").count() == 100
            finally:
                context.close()
    finally:
        hole.close()
