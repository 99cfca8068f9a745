"""What an instance holds, for the pages: an image to show, a PDF to open, or something else (a structured
report, a presentation state, an RT plan...) that has no picture. Read from the index (the SopClassUid and
PixelDataOffset metadata of every stored instance), never from the files, so that a study page does not ask
for thumbnails that cannot exist nor the viewer for frames that are not there."""

from __future__ import annotations

from collections.abc import Iterable

from archive.models import Metadata, MetadataType

IMAGE, PDF, OTHER = "image", "pdf", "other"

ENCAPSULATED_PDF = "1.2.840.10008.5.1.4.1.1.104.1"
_STORAGE = "1.2.840.10008.5.1.4.1.1."
# Storage SOP classes without pixel data (PS3.4 B.5): families by prefix, single classes exactly
_NO_PIXELS_PREFIXES = tuple(_STORAGE + p for p in (
    "88.",    # structured reports, key object selection
    "11.",    # presentation states
    "104.",   # encapsulated documents (PDF, CDA, STL, OBJ, MTL)
    "9.",     # waveforms (ECG, audio, hemodynamic...)
    "68.",    # surface scans
    "200.",   # CT/XA defined procedure protocols
)) + ("1.2.840.10008.5.1.4.34.",)   # RT beams delivery instructions and the like
_NO_PIXELS = frozenset(_STORAGE + p for p in (
    *(f"481.{n}" for n in range(3, 27)),    # RT structure sets, plans, treatment records... (481.1 RT Image
                                            # and 481.2 RT Dose are images)
    "66", "66.1", "66.2", "66.3", "66.5", "66.6",   # raw data, registrations, fiducials, surface seg., tracts
    "67", "90.1",                            # real world value mapping, content assessment results
))


def kind_of(sop_class_uid: str | None, *, has_pixel_data: bool) -> str:
    """IMAGE when the file has pixel data, or an image SOP class without it (ELSCINT's private-pixel CT
    decodes; a broken file says why in the viewer); PDF for an encapsulated PDF; OTHER for a class that
    has no pixels, or no SOP class at all."""
    if has_pixel_data:
        return IMAGE
    uid = (sop_class_uid or "").strip()
    if uid == ENCAPSULATED_PDF:
        return PDF
    if not uid or uid in _NO_PIXELS or uid.startswith(_NO_PIXELS_PREFIXES):
        return OTHER
    return IMAGE


def instance_kinds(resource_ids: Iterable[int]) -> dict[int, str]:
    """resource id -> kind, for instances, in one query."""
    ids = list(resource_ids)
    sop: dict[int, str] = {}
    pixels: set[int] = set()
    if ids:
        rows = Metadata.objects.filter(resource_id__in=ids, type__in=(MetadataType.SopClassUid,
                                                                       MetadataType.PixelDataOffset))
        for rid, kind, value in rows.values_list("resource_id", "type", "value"):
            if kind == MetadataType.PixelDataOffset:
                pixels.add(rid)
            else:
                sop[rid] = value
    return {rid: kind_of(sop.get(rid), has_pixel_data=rid in pixels) for rid in ids}
