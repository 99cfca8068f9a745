"""Download, modify and anonymize a study or a series from the UI (issue 8, part 5).

Each runs as a job, as the REST routes POST /{level}/{id}/archive|media|modify|anonymize with
"Asynchronous": true do: the form (CSRF-protected) is checked with the same parsers as the REST body, the job
is submitted with the same parameters, and the browser lands on a progress page that polls the job (HTMX,
every second; a Refresh link without JavaScript) and links to the result when it is done: the archive to
download (GET /jobs/{id}/archive) or the new study or series."""

from __future__ import annotations

from dataclasses import dataclass

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_GET, require_http_methods

from archive import modification, selectors
from archive.errors import ArchiveError
from archive.levels import Level
from archive.modification_checks import modification_sanity_check
from explorer.api.base import remote_ip
from explorer.ui.errors import ui_errors
from jobs import engine
from jobs.models import Job, State

LEVELS = (Level.STUDY, Level.SERIES)

# The common tags a user changes; the rest stays reachable through the REST API.
REPLACE_FIELDS = {
    Level.STUDY: [("PatientName", "Patient name"), ("PatientID", "Patient ID"),
                  ("StudyDescription", "Study description"), ("AccessionNumber", "Accession number"),
                  ("StudyID", "Study ID"), ("ReferringPhysicianName", "Referring physician")],
    Level.SERIES: [("SeriesDescription", "Series description"), ("SeriesNumber", "Series number"),
                   ("BodyPartExamined", "Body part examined"), ("ProtocolName", "Protocol name")],
}
ANONYMIZE_REPLACE = [("PatientName", "Patient name"), ("PatientID", "Patient ID")]
ANONYMIZE_KEEP = [("StudyDescription", "Study description"), ("SeriesDescription", "Series description"),
                  ("StudyDate", "Study date"), ("SeriesDate", "Series date"),
                  ("PatientSex", "Patient sex"), ("PatientAge", "Patient age")]
DICOM_VERSIONS = ["2023b", "2021b", "2017c", "2008"]


def transcode_choices() -> list[tuple[str, str]]:
    """The transfer syntaxes the modification job can write (archive.dicom.transcode), with their names."""
    from pydicom.uid import UID

    from archive.dicom.transcode import TRANSCODERS

    return [(uid, UID(uid).name) for uid in TRANSCODERS]


def _remove_list(text: str) -> list[str]:
    """The "Remove" field: tags one per line or separated by spaces or semicolons (keywords such as
    InstitutionName, or 0008,0080); Orthanc's parser judges each one."""
    return [t for t in text.replace(";", " ").split() if t]


def _ui_name(level: Level) -> str:
    return level.value.lower()


def _progress_url(job: Job) -> str:
    return reverse("ui:action-progress", args=[job.id])


def _back(level: Level, public_id: str) -> str:
    return reverse(f"ui:{_ui_name(level)}", args=[public_id])


# -- download ---------------------------------------------------------------------------------------------------

@require_http_methods(["GET", "POST"])
@csrf_protect
@ui_errors
def resource_download(request: HttpRequest, level: Level, public_id: str) -> HttpResponse:
    """GET: the choice of ZIP or DICOMDIR; POST: an Archive or Media job, then its progress page."""
    resource = selectors.resource_get(level=level, public_id=public_id)
    if request.method == "GET":
        return render(request, "ui/download.html", {"level": level, "resource": resource,
                                                    "back": _back(level, public_id)})
    media = request.POST.get("format") == "dicomdir"
    job = engine.job_submit(kind="Media" if media else "Archive", parameters={
        "resources": [[level.value, public_id]], "filename": f"{public_id}.zip", "description": "Web UI",
        "transcode": None, "quality": 90})
    return HttpResponseRedirect(_progress_url(job))


# -- modify and anonymize ---------------------------------------------------------------------------------------

@dataclass
class ModifyForm:
    """The form's fields as an Orthanc /modify or /anonymize body."""

    anonymize: bool
    level: Level
    values: dict

    @classmethod
    def from_post(cls, post, *, level: Level, anonymize: bool) -> ModifyForm:
        fields = ANONYMIZE_REPLACE if anonymize else REPLACE_FIELDS[level]
        values = {"replace": {k: post.get(f"replace-{k}", "").strip() for k, _ in fields},
                  "keep": [k for k, _ in ANONYMIZE_KEEP if post.get(f"keep-{k}")] if anonymize else [],
                  "keep_source": post.get("KeepSource") == "on",
                  "force": post.get("Force") == "on",
                  "version": post.get("DicomVersion", DICOM_VERSIONS[0]),
                  "remove": post.get("Remove", "")[:4000],
                  "remove_private": post.get("RemovePrivateTags") == "on",
                  "transcode": post.get("Transcode", "").strip()}
        return cls(anonymize=anonymize, level=level, values=values)

    @classmethod
    def initial(cls, *, level: Level, anonymize: bool) -> ModifyForm:
        fields = ANONYMIZE_REPLACE if anonymize else REPLACE_FIELDS[level]
        return cls(anonymize=anonymize, level=level, values={
            "replace": {k: "" for k, _ in fields}, "keep": [], "keep_source": True, "force": False,
            "version": DICOM_VERSIONS[0], "remove": "", "remove_private": False, "transcode": ""})

    def body(self) -> dict:
        v = self.values
        replace = {k: value for k, value in v["replace"].items() if value}
        # Orthanc asks for "Force" to change an identifier the index keys on; asking for a new Patient ID is
        # that request.
        body: dict = {"Replace": replace, "KeepSource": v["keep_source"],
                      "Force": v["force"] or "PatientID" in replace}
        remove = _remove_list(v.get("remove", ""))
        if remove:
            body["Remove"] = remove
        if v.get("remove_private"):
            body["RemovePrivateTags"] = True
        if v.get("transcode"):
            body["Transcode"] = v["transcode"]
        if self.anonymize:
            body["Keep"] = v["keep"]
            body["DicomVersion"] = v["version"]
        return body

    def fields(self) -> list[tuple[str, str, str]]:
        labels = ANONYMIZE_REPLACE if self.anonymize else REPLACE_FIELDS[self.level]
        return [(k, label, self.values["replace"].get(k, "")) for k, label in labels]


def modification_submit(*, form: ModifyForm, public_id: str, remote: str) -> Job:
    """Check the body as the REST route does (ArchiveError on a refused one) and submit the
    ResourceModification job with the REST route's parameters (Remove, RemovePrivateTags and Transcode
    included: the same parsers read them)."""
    from explorer.api.jobs import transcode_of
    from explorer.api.modification import _anonymized_patient_name

    body = form.body()
    if form.anonymize:
        mod = modification.anonymization_parse(body, level=form.level)
    else:
        mod = modification.modification_parse(body, level=form.level)
    transcode, quality = transcode_of(body, {})
    selectors.resource_get(level=form.level, public_id=public_id)
    modification_sanity_check(mod, resources=[public_id])
    name = _anonymized_patient_name(body) if form.anonymize else None
    return engine.job_submit(kind="ResourceModification", parameters={
        "anonymize": form.anonymize, "level": form.level.value, "resources": [public_id], "single": True,
        "body": body, "transcode": transcode, "quality": quality, "patient_name": name, "remote_ip": remote},
        content={"Description": "Web UI", "FailedInstancesCount": 0, "InstancesCount": 0})


@require_http_methods(["GET", "POST"])
@csrf_protect
@ui_errors
def resource_modify(request: HttpRequest, level: Level, public_id: str, anonymize: bool = False) -> HttpResponse:
    """GET: the form; POST: the job and its progress page, or the form again with Orthanc's refusal."""
    resource = selectors.resource_get(level=level, public_id=public_id)
    error, status = "", 200
    if request.method == "POST":
        form = ModifyForm.from_post(request.POST, level=level, anonymize=anonymize)
        try:
            job = modification_submit(form=form, public_id=public_id, remote=remote_ip(request))
        except ArchiveError as exc:
            error, status = exc.details or str(exc), 400
        else:
            return HttpResponseRedirect(_progress_url(job))
    else:
        form = ModifyForm.initial(level=level, anonymize=anonymize)
    return render(request, "ui/modify.html", {
        "level": level, "resource": resource, "form": form, "error": error, "anonymize": anonymize,
        "keep_choices": ANONYMIZE_KEEP, "versions": DICOM_VERSIONS, "back": _back(level, public_id),
        "transcodes": transcode_choices(),
        "action": reverse(f"ui:{'anonymize' if anonymize else 'modify'}-{_ui_name(level)}", args=[public_id])},
        status=status)


# -- progress ---------------------------------------------------------------------------------------------------

@dataclass
class JobProgress:
    job: Job

    @property
    def done(self) -> bool:
        return self.job.state in (State.SUCCESS, State.FAILURE)

    @property
    def title(self) -> str:
        return {"Archive": "ZIP archive", "Media": "DICOMDIR archive"}.get(
            self.job.type, "Anonymization" if self.job.parameters.get("anonymize") else "Modification")

    @property
    def is_archive(self) -> bool:
        return self.job.type in ("Archive", "Media")

    @property
    def download_url(self) -> str | None:
        if self.job.state == State.SUCCESS and "archive" in self.job.outputs:
            return f"/jobs/{self.job.id}/archive"
        return None

    @property
    def result(self) -> tuple[str, str] | None:
        """The new resource's UI page and its kind, from the job's Content (ID, Type)."""
        content = self.job.content or {}
        kind = content.get("Type")
        if self.job.state != State.SUCCESS or not content.get("ID") or kind not in ("Patient", "Study", "Series"):
            return None
        return reverse(f"ui:{kind.lower()}", args=[content["ID"]]), kind.lower()

    @property
    def source(self) -> tuple[str, str] | None:
        resources = self.job.parameters.get("resources") or []
        if not resources:
            return None
        first = resources[0]
        level, public_id = (first if isinstance(first, list) else [self.job.parameters.get("level"), first])
        if level not in ("Study", "Series", "Patient"):
            return None
        return reverse(f"ui:{level.lower()}", args=[public_id]), level.lower()


@require_GET
@csrf_protect
@ui_errors
def action_progress(request: HttpRequest, job_id: str) -> HttpResponse:
    progress = JobProgress(job=engine.job_get(job_id=job_id))
    partial = request.headers.get("HX-Request") == "true" and request.headers.get("HX-Boosted") != "true"
    template = "ui/_action_progress.html" if partial else "ui/action_progress.html"
    return render(request, template, {"p": progress, "job": progress.job})
