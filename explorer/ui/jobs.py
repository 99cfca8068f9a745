"""The jobs page (issue 8, part 7): the jobs with their state, progress, type and times, refreshed by HTMX
polling; pause, resume, cancel and resubmit through jobs.engine, as /jobs/{id}/{action} does."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_GET, require_POST

from archive.identifiers import hash_to_public_id
from archive.models import Resource
from explorer.ui.errors import ui_errors
from explorer.ui.views import htmx_partial
from jobs import engine
from jobs.models import Job, State

PAGE = 100
ACTIONS = {"pause": engine.job_pause, "resume": engine.job_resume, "cancel": engine.job_cancel,
           "resubmit": engine.job_resubmit}
DONE_MESSAGES = {"pause": "paused", "resume": "resumed", "cancel": "canceled", "resubmit": "resubmitted"}


@dataclass
class JobRow:
    job: Job

    @property
    def done(self) -> bool:
        return self.job.state in (State.SUCCESS, State.FAILURE)

    @property
    def actions(self) -> list[str]:
        """The controls that make sense in this state (the engine ignores or refuses the others)."""
        state = self.job.state
        if state in (State.PENDING, State.RETRY):
            return ["pause", "cancel"]
        if state == State.RUNNING:
            return ["pause", "cancel"] if not self.job.request else ["cancel"]
        if state == State.PAUSED:
            return ["resume", "cancel"]
        if state == State.FAILURE:
            return ["resubmit"]
        return []

    @property
    def description(self) -> str:
        """What the job works on, from its public content (never its parameters, which may hold secrets)."""
        content = self.job.content or {}
        parts = []
        if content.get("RemoteAet"):
            parts.append(f"remote {content['RemoteAet']}")
        if content.get("TargetAet"):
            parts.append(f"to {content['TargetAet']}")
        if "InstancesCount" in content:
            parts.append(f"{content['InstancesCount']} instances")
        if content.get("Description"):
            parts.append(str(content["Description"]))
        return ", ".join(parts)

    @property
    def hint(self) -> str:
        """A plain explanation of a failed C-MOVE, the most common failure of a retrieve: the remote modality
        could not send the images to us (it often does not know our AET, or not our address and port)."""
        job = self.job
        if job.state != State.FAILURE or job.type != "DicomMoveScu" or "DIMSE status" not in job.error_details:
            return ""
        target = (job.content or {}).get("TargetAet", "")
        return (f"The modality could not send the images: does it know {target or 'our AET'} "
                "as a destination, with our address and DICOM port?")

    @property
    def retrieved_study(self) -> str | None:
        """For a finished retrieve job, our copy of the study it asked for."""
        if self.job.state != State.SUCCESS or self.job.type not in ("DicomMoveScu", "DicomGetScu"):
            return None
        commands = (self.job.parameters or {}).get("commands") or []
        if not commands:
            return None
        first = commands[0]
        patient_id, study_uid = first.get("0010,0020", ""), first.get("0020,000d") or first.get("0020,000D")
        if not study_uid:
            return None
        public_id = hash_to_public_id(f"{patient_id}|{study_uid}")
        return public_id if Resource.objects.filter(public_id=public_id).exists() else None


@dataclass(frozen=True)
class JobsPage:
    rows: list[JobRow]
    next: str          # the ``after`` of the next (older) page; "" on the last page
    after: str         # this page's own ``after``; "" for the newest jobs


def _job_cursor(job: Job) -> str:
    return f"{job.creation_time.isoformat()}|{job.id}"


def jobs_page_get(*, after: str = "", size: int = PAGE) -> JobsPage:
    """A page of jobs, newest first, keyset-paged on (creation time, id) after the ``after`` cursor of the
    page before it (junk: the newest page). The jobs table is not capped: every job is a page away."""
    qs = Job.objects.order_by("-creation_time", "-id")
    when_text, _, job_id = after.partition("|")
    try:
        when = dt.datetime.fromisoformat(when_text) if job_id else None
    except ValueError:
        when = None
    if when is not None:
        qs = qs.filter(Q(creation_time__lt=when) | Q(creation_time=when, id__lt=job_id))
    else:
        after = ""
    jobs = list(qs[:size + 1])
    nxt = _job_cursor(jobs[size - 1]) if len(jobs) > size else ""
    return JobsPage(rows=[JobRow(j) for j in jobs[:size]], next=nxt, after=after)


@require_GET
@csrf_protect
def jobs_page(request: HttpRequest) -> HttpResponse:
    page = jobs_page_get(after=request.GET.get("after", "")[:100])
    context = {"section": "jobs", "rows": page.rows, "page": page, "message": ""}
    template = "ui/jobs_table.html" if htmx_partial(request) else "ui/jobs.html"
    return render(request, template, context)


@require_POST
@csrf_protect
@ui_errors
def job_action(request: HttpRequest, job_id: str, action: str) -> HttpResponse:
    if action not in ACTIONS:
        raise Http404()
    ACTIONS[action](job_id=job_id)
    if htmx_partial(request):
        message = f"Job {job_id[:8]} {DONE_MESSAGES[action]}."
        page = jobs_page_get(after=request.GET.get("after", "")[:100])
        return render(request, "ui/jobs_table.html", {"rows": page.rows, "page": page, "message": message})
    return HttpResponseRedirect(reverse("ui:jobs") + f"#job-{job_id}")


@require_GET
@csrf_protect
@ui_errors
def job_progress(request: HttpRequest, job_id: str) -> HttpResponse:
    """One job's progress (the transfer box of the query page), polled until it is done."""
    row = JobRow(engine.job_get(job_id=job_id))
    if not htmx_partial(request):
        return HttpResponseRedirect(reverse("ui:jobs") + f"#job-{job_id}")
    response = render(request, "ui/jobs_progress.html", {"job": row.job, "row": row, "poll": not row.done})
    if row.done:
        # The last poll: the query page refreshes what the archive holds of the study (ui/query_held.html)
        response["HX-Trigger"] = "job-done"
    return response
