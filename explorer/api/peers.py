"""/peers: Orthanc peers over HTTP (list, define, delete, configuration, system, store job, store-straight),
as Orthanc's OrthancRestModalities.cpp registers them. Answers and errors checked against Orthanc 1.10.1."""

from __future__ import annotations

import json
import re

from django.http import HttpResponse
from django.urls import path

from archive.body_fields import boolean_field
from archive.errors import BadFileFormat, UnknownResource
from archive.network.peers import peer_store_straight, peer_system
from archive.network.registry import peer_delete, peer_get, peer_json, peer_parse, peer_set, peers_all
from archive.runtime import TRANSFER_SYNTAXES
from explorer.api.base import OrthancView
from explorer.api.jobs import job_mode, job_result, submitted
from explorer.api.params import flag
from explorer.api.rendering import json_response, text_response
from jobs import engine
from jobs.kinds.peers import KIND, peer_store_instances, peer_store_plan

# Orthanc's Toolbox::IsSHA1: 44 alphanumeric characters with dashes at 8, 17, 26 and 35.
_SHA1 = re.compile(r"^[0-9A-Za-z]{8}(-[0-9A-Za-z]{8}){4}$")
OPERATIONS = ["configuration", "store", "store-straight", "system"]


def _bare_404() -> UnknownResource:
    return UnknownResource().answered_bare()


class PeerListApi(OrthancView):
    def get(self, request):
        peers = peers_all()
        if flag(request, "expand"):
            return json_response({name: peer_json(peer) for name, peer in peers.items()})
        return json_response(sorted(peers))


class PeerApi(OrthancView):
    def get(self, request, name: str):
        if name not in peers_all():
            raise _bare_404()  # Orthanc answers nothing for an unknown peer
        return json_response(OPERATIONS)

    def put(self, request, name: str):
        try:
            body = json.loads(request._request.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise _bare_404() from None  # a body that is not JSON: Orthanc answers nothing
        peer_set(name, peer_parse(body))
        return text_response("")

    def delete(self, request, name: str):
        peer_delete(name)
        return text_response("")


class PeerConfigurationApi(OrthancView):
    def get(self, request, name: str):
        return json_response(peer_json(peer_get(name)))


class PeerSystemApi(OrthancView):
    def get(self, request, name: str):
        return HttpResponse(peer_system(peer=peer_get(name)), content_type="application/json")


def _export_request(raw: bytes) -> tuple[list[str], dict]:
    """Orthanc's GetInstancesToExport: the body is one identifier as text, a JSON string, a JSON list of
    identifiers, or an object with "Resources" and the job's options. Returns (identifiers, options)."""
    text = raw.decode("utf-8", errors="replace")
    if _SHA1.match(text.strip()):
        return [text.strip()], {}  # compatibility with Orthanc <= 0.5.1
    try:
        body = json.loads(text)
    except ValueError:
        raise BadFileFormat("Must provide a JSON value") from None
    options: dict = {}
    if isinstance(body, str):
        resources = [body]
    elif isinstance(body, list):
        resources = body
    elif isinstance(body, dict):
        if "Resources" not in body:
            raise BadFileFormat('Missing field in JSON: "Resources"')
        resources = body["Resources"]
        if not isinstance(resources, list):
            raise BadFileFormat('JSON field "Resources" must contain an array')
        options = body
    else:
        raise BadFileFormat("Must provide a JSON object, or a JSON array of strings")
    ids = []
    for item in resources:
        if not isinstance(item, str):
            raise BadFileFormat("Resources to be exported must be specified as a JSON array of strings")
        stripped = item.strip()
        if not _SHA1.match(stripped):
            raise BadFileFormat(f"This string is not a valid Orthanc identifier: {stripped}")
        ids.append(stripped)
    return ids, options


def _transcode(options: dict) -> str | None:
    if "Transcode" not in options:
        return None
    syntax = options["Transcode"]
    if not isinstance(syntax, str):
        raise BadFileFormat("String value expected in field: Transcode")
    if syntax not in TRANSFER_SYNTAXES:
        raise BadFileFormat(f"Unknown transfer syntax UID: {syntax}")
    return syntax


class PeerStoreApi(OrthancView):
    def post(self, request, name: str):
        from archive.settings import archive_settings

        # In Orthanc's order: the resources (400, then 404), Transcode, Compress, the peer, the job options.
        resources, options = _export_request(request._request.body)
        instances = peer_store_instances(resources=resources)
        transcode = _transcode(options)
        compress = boolean_field(options, "Compress", False)
        peer = peer_get(name)
        permissive = boolean_field(options, "Permissive", False)
        mode = job_mode(options)
        parameters, content = peer_store_plan(
            peer=peer, resources=resources, instances=instances, compress=compress, transcode=transcode,
            quality=archive_settings().lossy_quality, permissive=permissive)
        job = engine.job_submit(kind=KIND, priority=mode.priority, parameters=parameters, content=content,
                                user_data=mode.user_data)
        if mode.asynchronous:
            return submitted(job)
        return job_result(engine.job_wait(job_id=job.id))


class PeerStoreStraightApi(OrthancView):
    def post(self, request, name: str):
        peer = peer_get(name)
        return json_response(peer_store_straight(peer=peer, name=name, data=request._request.body))


urlpatterns = [
    path("peers", PeerListApi.as_view()),
    path("peers/<str:name>", PeerApi.as_view()),
    path("peers/<str:name>/configuration", PeerConfigurationApi.as_view()),
    path("peers/<str:name>/system", PeerSystemApi.as_view()),
    path("peers/<str:name>/store", PeerStoreApi.as_view()),
    path("peers/<str:name>/store-straight", PeerStoreStraightApi.as_view()),
]
