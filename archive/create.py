"""``/tools/create-dicom``: a new instance from JSON tags and optional content (a data URI holding a PNG or JPEG
image, a PDF, or a list of images for a multi-frame instance), stored through instance_store.

What Orthanc 1.10.1 fills in was read off its answers: generated UIDs (and a UUID PatientID) when not given,
Study/Series/Acquisition/Content/InstanceCreation dates and times of now, SpecificCharacterSet of the default
encoding; with a "Parent" study or series, the new instance joins it (its patient, study and series tags).
JPEG content is embedded as it is (JPEG baseline, 1.2.840.10008.1.2.4.50, as 1.12.x does); PNG is decoded
to native pixels.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import uuid
from dataclasses import dataclass

import numpy as np
import pydicom
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import ExplicitVRLittleEndian, JPEGBaseline8Bit, generate_uid

from archive import selectors
from archive.dicom.tags import parse_tag
from archive.errors import ArchiveError, BadFileFormat, OrthancError
from archive.levels import Level

UID_ROOT = "1.2.826.0.1.3680043.8.498."
ENCAPSULATED_PDF = "1.2.840.10008.5.1.4.1.1.104.1"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
# Tags a child takes from its parent, by level (PS3.3 C.7.1.1, C.7.2.1, C.7.3.1 identifying attributes).
_INHERITED = {
    Level.PATIENT: ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "OtherPatientIDs"),
    Level.STUDY: ("StudyInstanceUID", "StudyDate", "StudyTime", "StudyID", "StudyDescription", "AccessionNumber",
                  "ReferringPhysicianName"),
    Level.SERIES: ("SeriesInstanceUID", "SeriesNumber", "SeriesDescription", "Modality", "SeriesDate", "SeriesTime"),
}


@dataclass(frozen=True)
class Content:
    mime: str
    data: bytes


def data_uri_parse(uri: str) -> Content:
    """``data:<mime>;base64,<data>``; anything else is Orthanc's BadFileFormat."""
    if not isinstance(uri, str) or not uri.startswith("data:") or ";base64," not in uri:
        raise BadFileFormat("Expected a data URI with base64 content")
    head, _, payload = uri[5:].partition(";base64,")
    try:
        return Content(mime=head.strip().lower(), data=base64.b64decode(payload, validate=True))
    except ValueError:
        raise BadFileFormat("Bad base64 content in the data URI") from None


def _image_module(ds: Dataset, frames: list[Content]) -> None:
    if all(f.mime == "image/jpeg" for f in frames):
        first = Image.open(io.BytesIO(frames[0].data))
        grey = first.mode == "L"
        ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
        ds.PixelData = encapsulate([f.data for f in frames])
        ds["PixelData"].VR = "OB"
        ds.PhotometricInterpretation = "MONOCHROME2" if grey else "YBR_FULL_422"
        size = first.size
    else:
        arrays = []
        for frame in frames:
            if frame.mime != "image/png":
                raise BadFileFormat(f"Unsupported content type: {frame.mime}")
            image = Image.open(io.BytesIO(frame.data))
            image = image.convert("L" if image.mode in ("L", "1", "P", "LA") else "RGB") \
                if image.mode not in ("L", "I;16", "RGB") else image
            arrays.append(np.asarray(image))
        if len({a.shape for a in arrays}) != 1:
            raise ArchiveError(orthanc_error=OrthancError.INCOMPATIBLE_IMAGE_SIZE)
        pixels = np.stack(arrays)
        grey = pixels.ndim == 3
        bits = 16 if pixels.dtype == np.uint16 else 8
        ds.PhotometricInterpretation = "MONOCHROME2" if grey else "RGB"
        ds.PixelData = pixels.astype(f"<u{bits // 8}").tobytes()
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = bits, bits, bits - 1
        size = (pixels.shape[2], pixels.shape[1])
    ds.SamplesPerPixel = 1 if grey else 3
    if not grey:
        ds.PlanarConfiguration = 0
    ds.Columns, ds.Rows = size
    if "BitsAllocated" not in ds:
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.PixelRepresentation = 0
    if len(frames) > 1:
        ds.NumberOfFrames = len(frames)


def dicom_create(body: dict, *, default_encoding: str = "ISO_IR 100") -> bytes:
    """The Part 10 file of a /tools/create-dicom request."""
    tags = body.get("Tags", {})
    if not isinstance(tags, dict):
        raise BadFileFormat('"Tags" must be a JSON object')
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SpecificCharacterSet = default_encoding
    parent = body.get("Parent")
    if parent is not None:
        resource = selectors.resource_get_any_level(public_id=str(parent))
        level = list(Level)[resource.level]
        if level is Level.INSTANCE:
            raise BadFileFormat("The parent must be a patient, a study or a series")
        source = pydicom.dcmread(io.BytesIO(selectors.instance_dicom(
            instance=selectors.instance_first(resource=resource))), stop_before_pixels=True)
        for inherited in (Level.PATIENT, Level.STUDY, Level.SERIES)[:level.depth + 1]:
            for keyword in _INHERITED[inherited]:
                if keyword in source:
                    setattr(ds, keyword, source[keyword].value)
    for key, value in tags.items():
        try:
            tag = int(parse_tag(key))
        except (ArchiveError, ValueError):
            raise ArchiveError(f"Unknown DICOM tag: {key}", orthanc_error=OrthancError.UNKNOWN_DICOM_TAG) from None
        keyword = pydicom.datadict.keyword_for_tag(tag)
        if keyword:
            setattr(ds, keyword, value)
        else:
            ds.add_new(tag, "LO", value)
    now = dt.datetime.now()
    for prefix in ("Study", "Series", "Acquisition", "Content", "InstanceCreation"):
        if f"{prefix}Date" not in ds:
            setattr(ds, f"{prefix}Date", now.strftime("%Y%m%d"))
        if f"{prefix}Time" not in ds:
            setattr(ds, f"{prefix}Time", now.strftime("%H%M%S.000000"))
    if "PatientID" not in ds:
        ds.PatientID = str(uuid.uuid4())
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
        if keyword not in ds:
            setattr(ds, keyword, generate_uid(prefix=UID_ROOT))
    content = body.get("Content")
    if content is not None:
        items = content if isinstance(content, list) else [content]
        parsed = [data_uri_parse(item) for item in items]
        if len(parsed) == 1 and parsed[0].mime == "application/pdf":
            ds.SOPClassUID = ENCAPSULATED_PDF
            ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
            ds.EncapsulatedDocument = parsed[0].data
        else:
            try:
                _image_module(ds, parsed)
            except (OSError, ValueError):
                raise BadFileFormat("Cannot decode the image of the data URI") from None
            ds.setdefault("SOPClassUID", SECONDARY_CAPTURE)
    ds.file_meta.MediaStorageSOPClassUID = ds.get("SOPClassUID", SECONDARY_CAPTURE)
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()
