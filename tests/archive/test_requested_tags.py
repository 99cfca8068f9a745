"""archive.requested_tags: values from the index, computed counters and files, for one or many resources."""

from __future__ import annotations

import pytest
from pydicom.tag import Tag

from archive.ingest import Origin, instance_store
from archive.models import Resource
from archive.requested_tags import requested_values, requested_values_many
from tests.dicom_factory import make_dicom

pytestmark = pytest.mark.django_db
REST = Origin.rest(remote_ip="127.0.0.1")
TAGS = [Tag(k) for k in ("PatientName", "StudyDescription", "Modality", "NumberOfPatientRelatedStudies",
                         "NumberOfPatientRelatedSeries", "NumberOfPatientRelatedInstances",
                         "NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances",
                         "NumberOfSeriesRelatedInstances", "ModalitiesInStudy", "SOPClassesInStudy")]


@pytest.fixture
def tree():
    def store(study, series, sop, modality, sop_class="1.2.840.10008.5.1.4.1.1.2"):
        instance_store(data=make_dicom(PatientID="P", PatientName="DOE^JO", StudyInstanceUID=study,
                                       StudyDescription=f"D{study}", SeriesInstanceUID=series, SOPInstanceUID=sop,
                                       Modality=modality, SOPClassUID=sop_class), origin=REST)
    store("1", "1.1", "1.1.1", "MR")
    store("1", "1.1", "1.1.2", "MR", "1.2.840.10008.5.1.4.1.1.4")
    store("1", "1.2", "1.2.1", "CT")
    store("2", "2.1", "2.1.1", "US")


def test_counters_and_modalities_of_a_study(tree):
    study = Resource.objects.get(level=1, main_tags__StudyInstanceUID="1")
    values = requested_values(study, TAGS)
    assert values == {"PatientName": "DOE^JO", "StudyDescription": "D1", "NumberOfStudyRelatedSeries": "2",
                      "Modality": "CT",  # not a study tag: read from the file of the instance created last
                      "NumberOfStudyRelatedInstances": "3", "ModalitiesInStudy": "CT\\MR",
                      "SOPClassesInStudy": "1.2.840.10008.5.1.4.1.1.2\\1.2.840.10008.5.1.4.1.1.4"}


def test_counters_of_a_patient(tree):
    values = requested_values(Resource.objects.get(level=0), TAGS)
    assert (values["NumberOfPatientRelatedStudies"], values["NumberOfPatientRelatedSeries"],
            values["NumberOfPatientRelatedInstances"]) == ("2", "3", "4")


def test_an_instance_reads_its_ancestors_tags(tree):
    instance = Resource.objects.get(level=3, main_tags__SOPInstanceUID="1.2.1")
    values = requested_values(instance, TAGS)
    assert (values["PatientName"], values["StudyDescription"], values["Modality"]) == ("DOE^JO", "D1", "CT")
    assert not any(key.startswith("Number") for key in values)


def test_many_answers_as_one_by_one(tree):
    resources = list(Resource.objects.order_by("id"))
    assert requested_values_many(resources, TAGS) == {r.id: requested_values(r, TAGS) for r in resources}


def test_many_costs_queries_per_tag_and_level_not_per_resource(tree, django_assert_max_num_queries):
    computed = [t for t in TAGS if t not in (Tag("StudyDescription"), Tag("Modality"))]  # no file to read
    resources = list(Resource.objects.order_by("id"))
    # a query per counter, two for ModalitiesInStudy, three for SOPClassesInStudy, one per ancestor level
    with django_assert_max_num_queries(len(computed) + 3 + 3):
        requested_values_many(resources, computed)
