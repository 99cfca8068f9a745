"""Synthetic DICOM instances built with pydicom, for tests that need files of a given shape."""

from __future__ import annotations

import io

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid


def make_dataset(**overrides) -> Dataset:
    """A small CT instance (8x8 pixels) whose tags can be overridden by keyword; None removes a tag."""
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = generate_uid()
    ds.PatientID = "P1"
    ds.PatientName = "Doe^John"
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "M"
    ds.StudyInstanceUID = "1.2.3.4.1"
    ds.StudyDate = "20240102"
    ds.StudyTime = "101010"
    ds.StudyDescription = "Chest"
    ds.AccessionNumber = "A1"
    ds.StudyID = "S1"
    ds.ReferringPhysicianName = ""
    ds.SeriesInstanceUID = "1.2.3.4.1.1"
    ds.SeriesNumber = "1"
    ds.Modality = "CT"
    ds.SeriesDescription = "Axial"
    ds.InstanceNumber = "1"
    ds.ImagePositionPatient = [0, 0, 0]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.Rows = 8
    ds.Columns = 8
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelData = np.arange(64, dtype=np.uint16).reshape(8, 8).tobytes()
    for keyword, value in overrides.items():
        if value is None:
            if keyword in ds:
                delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.get("SOPInstanceUID", generate_uid())
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    return ds


def make_dicom(**overrides) -> bytes:
    """The bytes of a Part 10 file made by ``make_dataset``."""
    ds = make_dataset(**overrides)
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()
