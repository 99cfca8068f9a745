"""The query/retrieve page (issue 8, part 6) and the modalities admin: C-FIND a remote modality at study level,
expand a study into its series, retrieve either with C-MOVE or C-GET as a job, echo, add/edit/remove modalities.

The same domain functions as /modalities and /queries (archive.network: registry, scu, queries; the retrieve
jobs of jobs.kinds.dicom), called directly. Answers come from remote modalities: plain text in the context,
escaped by the templates.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, QueryDict
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from archive import runtime
from archive.dicom.json import ENCODING_CODECS
from archive.errors import ArchiveError, BadRequest
from archive.identifiers import hash_to_public_id
from archive.levels import Level
from archive.models import DicomQuery, Resource
from archive.network import queries, registry, scu
from explorer.ui.errors import ui_errors
from explorer.ui.jobs import JobRow
from explorer.ui.reading import dicom_date, person_name
from explorer.ui.views import htmx_partial
from jobs import engine
from jobs.kinds import dicom as dicom_jobs
from jobs.models import Job

PATIENT_NAME, PATIENT_BIRTH, STUDY_DATE, STUDY_DESCRIPTION = 0x00100010, 0x00100030, 0x00080020, 0x00081030
MODALITIES_IN_STUDY, STUDY_SERIES, STUDY_INSTANCES = 0x00080061, 0x00201206, 0x00201208
MODALITY, SERIES_NUMBER, SERIES_DESCRIPTION, SERIES_INSTANCES = 0x00080060, 0x00200011, 0x0008103E, 0x00201209
RETRIEVE_ITEM_TAGS = (queries.QR_LEVEL, queries.PATIENT_ID, queries.STUDY_UID, queries.SERIES_UID, queries.SOP_UID,
                      queries.ACCESSION)   # as explorer.api.modalities.QueryRetrieveApi copies them
MODALITY_CHOICES = ["", "CR", "CT", "DX", "MG", "MR", "NM", "OT", "PT", "RF", "SC", "SR", "US", "XA"]


def _text(error: ArchiveError) -> str:
    return error.details or error.orthanc_error.description


# What DCMTK's words (kept for the administrator) most often mean, for the clinician at the page
_HINTS = (
    ("TCP Initialization Error", "The modality does not answer at its address: is it running, are its host "
                                 "and port right?"),
    ("Association Rejected", "The modality refused the connection: does it know our AET {aet}?"),
    ("Peer aborted Association", "The modality closed the connection: does it accept requests from our AET {aet}?"),
    ("No data available", "The modality did not answer in time."),
)


def _explained(error: ArchiveError, modality: str) -> str:
    """The error, with a plain explanation first when one is known."""
    text = _text(error)
    for marker, hint in _HINTS:
        if marker in text:
            try:
                remote = registry.modality_get(modality)
                aet = remote.local_aet or scu.default_aet()
            except ArchiveError:
                aet = scu.default_aet()
            return f"{hint.format(aet=aet)} ({text})"
    return text


# -- search ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class StudySearch:
    """The study-level search form; empty fields match everything (universal matching, PS3.4 C.2.2.2.3)."""

    modality: str = ""
    patient_name: str = ""
    patient_id: str = ""
    accession: str = ""
    date_from: str = ""
    date_to: str = ""
    modality_in_study: str = ""

    @classmethod
    def from_query(cls, q: QueryDict) -> StudySearch:
        def get(name: str) -> str:
            return q.get(name, "").strip()[:64]

        return cls(modality=get("modality"), patient_name=get("name"), patient_id=get("patient_id"),
                   accession=get("accession"), date_from=get("date_from").replace("-", ""),
                   date_to=get("date_to").replace("-", ""), modality_in_study=get("in_study"))

    @property
    def date_range(self) -> str:
        """DA range matching (PS3.4 C.2.2.2.5): ``from-to``, ``from-``, ``-to``, or one date."""
        if self.date_from and self.date_to and self.date_from == self.date_to:
            return self.date_from
        if self.date_from or self.date_to:
            return f"{self.date_from}-{self.date_to}"
        return ""

    def dicom_query(self) -> dict[int, str]:
        """The C-FIND keys: a name without wildcard is matched as a substring (``*SMITH*``), IDs as given;
        the empty ones are the return keys the page shows."""
        name = self.patient_name
        if name and "*" not in name and "?" not in name:
            # Typed as the page shows names ("Müller, Jörg") or with spaces: each word matched in turn,
            # whatever separates them in the stored name (^ between family and given names)
            words = [w for w in re.split(r"[\s,^]+", name) if w]
            name = "*" + "*".join(words) + "*" if words else ""
        keys = {PATIENT_NAME: name, queries.PATIENT_ID: self.patient_id, queries.ACCESSION: self.accession,
                STUDY_DATE: self.date_range, MODALITIES_IN_STUDY: self.modality_in_study,
                PATIENT_BIRTH: "", STUDY_DESCRIPTION: "", queries.STUDY_UID: "", STUDY_SERIES: "",
                STUDY_INSTANCES: ""}
        if not _fits_default_encoding(" ".join(keys.values())):
            # What the DefaultEncoding cannot hold would be dropped ("山田" became "**": every study matched)
            keys[queries.CHARSET] = "ISO_IR 192"
        return keys

    @property
    def iso_from(self) -> str:
        return dicom_date(self.date_from)

    @property
    def iso_to(self) -> str:
        return dicom_date(self.date_to)


def _fits_default_encoding(text: str) -> bool:
    codec = ENCODING_CODECS.get(runtime.default_encoding()) or "ascii"
    try:
        text.encode(codec)
    except (UnicodeEncodeError, LookupError):
        return False
    return True


@dataclass
class Answer:
    """One C-FIND answer as the page shows it (plain strings, escaped by the template)."""

    query_id: str
    index: int
    values: dict[int, str]

    def get(self, tag: int) -> str:
        return self.values.get(tag, "")

    @property
    def patient_name(self) -> str:
        return person_name(self.get(PATIENT_NAME))

    @property
    def patient_id(self) -> str:
        return self.get(queries.PATIENT_ID)

    @property
    def birth_date(self) -> str:
        return dicom_date(self.get(PATIENT_BIRTH))

    @property
    def study_date(self) -> str:
        return dicom_date(self.get(STUDY_DATE))

    @property
    def description(self) -> str:
        return self.get(STUDY_DESCRIPTION) or self.get(SERIES_DESCRIPTION)

    @property
    def accession(self) -> str:
        return self.get(queries.ACCESSION)

    @property
    def modalities(self) -> str:
        return self.get(MODALITIES_IN_STUDY).replace("\\", ", ") or self.get(MODALITY)

    @property
    def series_count(self) -> str:
        return self.get(STUDY_SERIES)

    @property
    def instance_count(self) -> str:
        return self.get(STUDY_INSTANCES) or self.get(SERIES_INSTANCES)

    @property
    def series_number(self) -> str:
        return self.get(SERIES_NUMBER)

    @cached_property
    def local_study(self) -> str | None:
        """Our study of the same PatientID and StudyInstanceUID, when we have it."""
        uid = self.get(queries.STUDY_UID)
        if not uid:
            return None
        public_id = hash_to_public_id(f"{self.patient_id}|{uid}")
        return public_id if Resource.objects.filter(public_id=public_id).exists() else None

    @property
    def local_instances(self) -> int | None:
        """How many of the study's instances we hold, when we hold fewer than the remote's answer says (a study
        retrieved in part must not read as complete); None otherwise."""
        if self.local_study is None or not self.instance_count.isdigit():
            return None
        held = Resource.objects.filter(level=Level.INSTANCE.depth, parent__parent__public_id=self.local_study).count()
        return held if held < int(self.instance_count) else None

    @property
    def label(self) -> str:
        """What a retrieve of this answer brings, for its progress and the jobs page."""
        if self.series_number or self.get(SERIES_DESCRIPTION):
            return " ".join(x for x in (f"series {self.series_number}".strip(), self.get(SERIES_DESCRIPTION)) if x)
        return " · ".join(x for x in (self.patient_name, self.study_date, self.description) if x)


def answers_of(row: DicomQuery) -> list[Answer]:
    return [Answer(query_id=row.id, index=k, values=queries.full_values(a)) for k, a in enumerate(row.answers)]


def _series_order(answer: Answer) -> tuple:
    number = answer.series_number
    return (0, int(number), answer.index) if number.isdigit() else (1, 0, answer.index)


@dataclass
class SearchResult:
    answers: list[Answer]
    query_id: str = ""
    error: str = ""


def study_search(search: StudySearch) -> SearchResult:
    """C-FIND at study level on the chosen modality, kept as a /queries entry (so /queries/{id} shows it too);
    a network failure is the result's error, not an exception."""
    try:
        row = queries.query_run(modality_name=search.modality, level=Level.STUDY, query=search.dicom_query())
    except ArchiveError as exc:
        return SearchResult(answers=[], error=_explained(exc, search.modality))
    return SearchResult(answers=answers_of(row), query_id=row.id)


def series_search(*, query_id: str, index: str) -> SearchResult:
    """The series of one study answer (/queries/{id}/answers/{index}/query-series)."""
    parent = queries.query_get(query_id=query_id)
    try:
        row = queries.query_children(parent=parent, index=index, level=Level.SERIES, timeout=None, query={
            MODALITY: "", SERIES_NUMBER: "", SERIES_DESCRIPTION: "", SERIES_INSTANCES: "", queries.SERIES_UID: ""})
    except ArchiveError as exc:
        return SearchResult(answers=[], error=_explained(exc, parent.modality))
    return SearchResult(answers=sorted(answers_of(row), key=_series_order), query_id=row.id)


def retrieve_submit(*, query_id: str, index: str, method: str, study_label: str = "") -> Job:
    """Retrieve one answer into our archive: an asynchronous DicomMoveScu (to our AET) or DicomGetScu job, as
    POST /queries/{id}/answers/{index}/retrieve builds it."""
    row = queries.query_get(query_id=query_id)
    answer = queries.full_values(queries.query_answer(row, index))
    remote = queries.query_remote(row)
    method = method or remote.retrieve_method or str(settings.ORTHANC.get("DicomDefaultRetrieveMethod", "C-MOVE"))
    if method not in registry.RETRIEVE_METHODS:
        raise BadRequest(f"Unknown retrieve method: {method}")
    is_move = method == "C-MOVE"
    target = (remote.local_aet or scu.default_aet()) if is_move else None
    item = {t: answer[t] for t in RETRIEVE_ITEM_TAGS if t in answer}
    command = {t: answer[t] for t in (*RETRIEVE_ITEM_TAGS, 0x00080062) if t in answer}
    timeout = row.timeout or None
    params = scu.scu_parameters(modality=remote, local_aet=row.local_aet, timeout=timeout)
    content = dicom_jobs.retrieve_content(params=params, commands=[item], fmt="short", target_aet=target)
    shown = answers_of(row)[queries.answer_index(index)].label
    # The study a series belongs to, as the page showed it (a series query does not keep its parent study)
    content["Description"] = "Web UI: " + ", ".join(x for x in (study_label[:200], shown) if x)
    parameters = dicom_jobs.retrieve_parameters(params=params, commands=[command], permissive=False,
                                                target_aet=target, timeout=timeout)
    return engine.job_submit(kind=dicom_jobs.MOVE if is_move else dicom_jobs.GET, parameters=parameters,
                             content=content)


def modality_echo(name: str) -> tuple[bool, str]:
    """C-ECHO a known modality: (success, what to tell)."""
    try:
        ok = scu.echo(scu.scu_parameters(modality=registry.modality_get(name)))
    except ArchiveError as exc:
        return False, f"Echo to {name} failed: {_explained(exc, name)}"
    return ok, f"Echo to {name} succeeded." if ok else f"Echo to {name} failed: the modality refused it."


# -- pages ----------------------------------------------------------------------------------------------------

def _modality_names() -> list[str]:
    return sorted(registry.modalities_all())


@require_GET
@csrf_protect
@ui_errors
def query_page(request: HttpRequest) -> HttpResponse:
    """The search form; with ``search`` in the URL, the C-FIND and its answers (bookmarkable)."""
    names = _modality_names()
    search = StudySearch.from_query(request.GET)
    if not search.modality and names:
        search = StudySearch(**{**search.__dict__, "modality": names[0]})
    result = None
    if "search" in request.GET and search.modality:
        if search.date_from and search.date_to and search.date_from > search.date_to:
            result = SearchResult(answers=[], error="The start date is after the end date.")
        else:
            result = study_search(search)
    return render(request, "ui/query.html", {"section": "query", "names": names, "search": search,
                                             "result": result, "choices": MODALITY_CHOICES})


@require_POST
@csrf_protect
def query_echo(request: HttpRequest) -> HttpResponse:
    """The echo button of the query page and of the modalities admin."""
    name = request.POST.get("modality", "")
    ok, message = modality_echo(name)
    context = {"ok": ok, "message": message}
    if htmx_partial(request):
        return render(request, "ui/query_echo.html", context)
    return render(request, "ui/query_echo_page.html", {"section": "query", **context})


@require_GET
@csrf_protect
@ui_errors
def query_series(request: HttpRequest, query_id: str, index: str) -> HttpResponse:
    row = queries.query_get(query_id=query_id)
    queries.query_answer(row, index)          # an index out of range is the error page, not a 500
    result = series_search(query_id=query_id, index=index)
    study = answers_of(row)[queries.answer_index(index)]
    context = {"section": "query", "result": result, "study": study}
    template = "ui/query_series_rows.html" if htmx_partial(request) else "ui/query_series.html"
    return render(request, template, context)


@require_GET
@csrf_protect
@ui_errors
def query_held(request: HttpRequest, query_id: str, index: str) -> HttpResponse:
    """What of an answer's study the archive holds: refreshed on the query page when one of its retrieves ends."""
    row = queries.query_get(query_id=query_id)
    queries.query_answer(row, index)
    return render(request, "ui/query_held.html", {"a": answers_of(row)[queries.answer_index(index)]})


@require_POST
@csrf_protect
@ui_errors
def query_retrieve(request: HttpRequest, query_id: str, index: str) -> HttpResponse:
    job = retrieve_submit(query_id=query_id, index=index, method=request.POST.get("method", ""),
                          study_label=request.POST.get("study", ""))
    if htmx_partial(request):
        return render(request, "ui/jobs_progress.html", {"job": job, "row": JobRow(job), "poll": True})
    return HttpResponseRedirect(reverse("ui:jobs") + f"#job-{job.id}")


# -- modalities admin -----------------------------------------------------------------------------------------

@dataclass
class ModalityRow:
    name: str
    modality: registry.Modality


@require_GET
@csrf_protect
@ui_errors
def modalities_page(request: HttpRequest) -> HttpResponse:
    rows = [ModalityRow(name, m) for name, m in sorted(registry.modalities_all().items())]
    return render(request, "ui/query_modalities.html", {"section": "query", "rows": rows,
                                                        "saved": request.GET.get("saved", "")[:64],
                                                        "removed": request.GET.get("removed", "")[:64],
                                                        "in_database": bool(settings.ORTHANC.get(
                                                            "DicomModalitiesInDatabase", False))})


def _form_values(post: QueryDict) -> dict[str, str]:
    values = {k: post.get(k, "").strip() for k in ("name", "aet", "host", "port", "manufacturer", "retrieve_method",
                                                    "local_aet")}
    values["use_dicom_tls"] = "1" if post.get("use_dicom_tls") else ""      # a checkbox: absent when unticked
    return values


def _modality_from_form(values: dict[str, str], existing: registry.Modality | None) -> registry.Modality:
    """Parse as PUT /modalities/{id} would (the options the form does not show are kept)."""
    body = registry.modality_json(existing) if existing else {}
    body.update({"AET": values["aet"], "Host": values["host"], "Port": values["port"],
                 "Manufacturer": values["manufacturer"] or "Generic", "LocalAet": values["local_aet"],
                 "UseDicomTls": bool(values["use_dicom_tls"])})
    body.pop("RetrieveMethod", None)
    if values["retrieve_method"]:
        body["RetrieveMethod"] = values["retrieve_method"]
    if not values["aet"] or not values["host"]:
        raise BadRequest("The AET and the host are required.")
    if not values["port"].isdigit():
        raise BadRequest("The port must be a number between 1 and 65534.")
    return registry.modality_parse(body)


def _valid_name(name: str) -> str:
    if not name or len(name) > 64 or not re.fullmatch(r"[A-Za-z0-9_-]+", name):
        raise BadRequest("The name is required: letters, digits, dashes and underscores (at most 64).")
    return name


@require_http_methods(["GET", "POST"])
@csrf_protect
@ui_errors
def modality_edit(request: HttpRequest, name: str | None = None) -> HttpResponse:
    """Add (no name) or edit a modality: GET the form, POST it; errors come back on the form."""
    existing = registry.modality_get(name) if name is not None else None
    if request.method == "GET":
        m = existing
        values = {"name": name or "", "aet": m.aet if m else "", "host": m.host if m else "",
                  "port": str(m.port) if m else "104", "manufacturer": m.manufacturer if m else "Generic",
                  "retrieve_method": m.retrieve_method if m else "", "local_aet": m.local_aet if m else "",
                  "use_dicom_tls": "1" if m and m.use_dicom_tls else ""}
        error, status = "", 200
    else:
        values = _form_values(request.POST)
        if name is not None:
            values["name"] = name
        try:
            new_name = _valid_name(values["name"])
            if name is None and new_name in registry.modalities_all():
                raise BadRequest(f"A modality named {new_name} already exists.")
            registry.modality_set(new_name, _modality_from_form(values, existing))
        except ArchiveError as exc:
            error, status = _text(exc), 400
        else:
            return HttpResponseRedirect(reverse("ui:modalities") + "?" + QueryDict.fromkeys(
                ["saved"], new_name, mutable=True).urlencode())
    return render(request, "ui/query_modality_form.html", {
        "section": "query", "name": name, "values": values, "error": error,
        "manufacturers": registry.MANUFACTURERS, "methods": registry.RETRIEVE_METHODS}, status=status)


@require_POST
@csrf_protect
@ui_errors
def modality_remove(request: HttpRequest, name: str) -> HttpResponse:
    registry.modality_delete(name)
    return HttpResponseRedirect(reverse("ui:modalities") + "?" + QueryDict.fromkeys(
        ["removed"], name, mutable=True).urlencode())
