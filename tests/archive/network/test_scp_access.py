"""Who may make which request (Orthanc's IsAllowedRequest, main.cpp of 1.10+), without an association:
several modalities may share the caller's AET."""

from __future__ import annotations

import pytest

from archive.network.registry import Modality
from archive.network.scp import Caller, ScpSettings, request_allowed

NONE_ALWAYS = ScpSettings(always_allow=frozenset())


def _caller(*modalities: Modality, ip: str = "127.0.0.1") -> Caller:
    return Caller(ip=ip, aet="DUP", called_aet="ORTHANC", candidates=list(modalities))


def test_one_modality_decides() -> None:
    assert request_allowed("Find", _caller(Modality(aet="DUP", host="h", port=1)), NONE_ALWAYS)
    assert not request_allowed("Find", _caller(Modality(aet="DUP", host="h", port=1, allow_find=False)), NONE_ALWAYS)
    assert not request_allowed("Find", _caller(), NONE_ALWAYS)                       # unknown AET
    assert request_allowed("Echo", _caller(), ScpSettings())                         # DicomAlwaysAllowEcho


@pytest.mark.parametrize(("other_allows", "allowed"), [(True, True), (False, False)])
def test_several_modalities_of_one_aet_must_all_allow(other_allows, allowed) -> None:
    """Without DicomCheckModalityHost the caller could be any of them (real Orthanc 1.10.1 compared: the one at
    the caller's IP decided, more permissive; none there refused a setup Orthanc serves)."""
    here = Modality(aet="DUP", host="127.0.0.1", port=1)
    elsewhere = Modality(aet="DUP", host="10.9.9.9", port=1, allow_move=other_allows, allow_get=other_allows)
    assert request_allowed("Move", _caller(here, elsewhere), NONE_ALWAYS) is allowed
    assert request_allowed("Get", _caller(here, elsewhere), NONE_ALWAYS) is allowed
    away = [Modality(aet="DUP", host=h, port=1) for h in ("10.9.9.9", "10.9.9.8")]
    assert request_allowed("Move", _caller(*away), NONE_ALWAYS)


def test_with_the_host_checked_one_at_the_callers_ip_is_enough() -> None:
    """DicomCheckModalityHost: the candidates are those at the caller's IP (registry.modalities_for_caller)."""
    settings = ScpSettings(always_allow=frozenset(), check_modality_host=True)
    refusing = Modality(aet="DUP", host="127.0.0.1", port=1, allow_find=False)
    allowing = Modality(aet="DUP", host="127.0.0.1", port=2)
    assert request_allowed("Find", _caller(refusing, allowing), settings)
    assert not request_allowed("Find", _caller(refusing), settings)


@pytest.mark.django_db
def test_the_contexts_of_the_accepted_classes_are_built_with_the_server():
    """A caller's first association finds the contexts of what it proposes built (storescu proposes ~120)."""
    from pynetdicom.presentation import build_context
    from pynetdicom.sop_class import CTImageStorage, MRImageStorage, Verification

    from archive.network import scp as module

    module._supported_context.cache_clear()
    server = module.server_build(scp=module.ScpSettings.from_configuration(), host="127.0.0.1", port=0)
    try:
        built = module._supported_context.cache_info()
        assert built.currsize >= len(server.scp.storage_classes)
        proposed = [build_context(CTImageStorage, ["1.2.840.10008.1.2.1"]), build_context(MRImageStorage),
                    build_context(Verification)]
        supported = module.contexts_for(proposed, server.scp)
        assert sorted(str(cx.abstract_syntax) for cx in supported) == sorted([CTImageStorage, MRImageStorage,
                                                                               Verification])
        after = module._supported_context.cache_info()
        assert after.misses == built.misses and after.hits == built.hits + 3
    finally:
        server.server_close()
