"""archive.populate: the synthetic archive's shape, reproducible files, the worker split."""

from __future__ import annotations

from io import BytesIO

import pydicom
import pytest

from archive.models import Label, LevelCode, Resource
from archive.populate import Shape, instance_bytes, patient_info, populate_worker


def test_shape_follows_issue_4_proportions():
    assert Shape.for_count(1_000_000) == Shape(1_000_000, 20_000, 100_000, 250_000)


def test_small_shapes_have_at_least_one_resource_per_level():
    assert Shape.for_count(1) == Shape(1, 1, 1, 1)


def test_chain_parents_never_decrease():
    shape = Shape.for_count(997)
    chains = [shape.chain(i) for i in range(shape.instances)]
    assert chains == sorted(chains)
    assert {c[2] for c in chains} == set(range(shape.series))


def test_workers_split_every_instance_once():
    shape = Shape.for_count(500)
    slices = [list(shape.worker_indexes(k, 3)) for k in range(3)]
    assert sorted(i for s in slices for i in s) == list(range(500))


def test_same_seed_same_bytes_other_seed_other_uids():
    shape = Shape.for_count(100)
    assert instance_bytes(shape=shape, seed=4, index=42) == instance_bytes(shape=shape, seed=4, index=42)
    assert instance_bytes(shape=shape, seed=4, index=42) != instance_bytes(shape=shape, seed=5, index=42)


def test_files_are_valid_dicom_without_pixel_data():
    ds = pydicom.dcmread(BytesIO(instance_bytes(shape=Shape.for_count(100), seed=0, index=9)))
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    assert ds.Modality in ("CT", "MR", "US", "CR", "DX", "PT", "MG", "NM", "XA")
    assert len(ds.StudyDate) == 8 and "PixelData" not in ds


def test_some_patients_are_smiths():
    assert any("SMITH" in patient_info(0, p).name for p in range(200))


@pytest.mark.django_db
def test_worker_stores_through_ingest_labels_studies_and_resumes():
    shape = Shape.for_count(200)
    assert populate_worker(shape=shape, seed=1, worker=0, workers=1) == (200, 0)
    assert Resource.objects.filter(level=LevelCode.INSTANCE).count() == 200
    assert Resource.objects.filter(level=LevelCode.STUDY).count() == shape.studies
    assert Label.objects.exists()
    assert populate_worker(shape=shape, seed=1, worker=0, workers=1) == (0, 200)
