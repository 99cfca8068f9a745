"""What the C-STOREs we send propose and use (archive.network.transcoding, archive.network.encoded), as Orthanc's
DicomStoreUserConnection: without any network (the exchanges with real peers are in
tests/explorer/api/test_modalities_orthanc.py and test_scp.py)."""

from __future__ import annotations

import io

import pydicom
import pytest
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, JPEG2000Lossless, JPEGLSLossless

from archive.dicom import transcode
from archive.errors import ArchiveError, NetworkProtocolError
from archive.network.encoded import EncodedInstance, encoded_instance, instance_to_send, part10_meta
from archive.network.transcoding import SendPolicy, send_policy, storage_contexts, syntaxes_to_try
from tests.dicom_factory import make_dataset, make_dicom

CT = "1.2.840.10008.5.1.4.1.1.2"
MR = "1.2.840.10008.5.1.4.1.1.4"
ALLOWED = SendPolicy(transcoding=True, preferred=ExplicitVRLittleEndian)


def _groups(contexts) -> list[tuple[str, list[str]]]:
    return [(c.abstract_syntax, list(c.transfer_syntax)) for c in contexts]


def test_each_syntax_of_the_files_is_proposed_alone_then_the_preferred_then_the_uncompressed() -> None:
    # Alone, so that a peer that takes JPEG 2000 gets the file as stored: out of one group mixing it with the
    # uncompressed syntaxes, real Orthanc picks an uncompressed one and the file went decompressed.
    contexts = storage_contexts({CT: {JPEG2000Lossless, JPEGLSLossless}, MR: {ExplicitVRLittleEndian}}, ALLOWED,
                                common=())
    assert _groups(contexts) == [
        (CT, [JPEGLSLossless]), (CT, [JPEG2000Lossless]), (CT, [ExplicitVRLittleEndian]),
        (CT, [ImplicitVRLittleEndian]),
        (MR, [ExplicitVRLittleEndian]), (MR, [ImplicitVRLittleEndian]),
    ]
    preferred = SendPolicy(transcoding=True, preferred=JPEG2000Lossless)
    assert _groups(storage_contexts({CT: {ImplicitVRLittleEndian}}, preferred, common=())) == [
        (CT, [ImplicitVRLittleEndian]), (CT, [JPEG2000Lossless]), (CT, [ExplicitVRLittleEndian])]


def test_a_class_that_does_not_fit_in_the_contexts_left_is_left_out_whole() -> None:
    classes = {f"1.2.3.{n}": {JPEG2000Lossless} for n in range(50)}   # 3 contexts each
    contexts = storage_contexts(classes, ALLOWED, common=())
    assert len(contexts) == 126 and len({c.abstract_syntax for c in contexts}) == 42


def test_common_classes_follow_while_there_is_room() -> None:
    """As Orthanc (DCMTK's short list): a peer that refuses the class at hand still accepts the association,
    and the other classes of a study go on it."""
    contexts = storage_contexts({"1.2.3.4": {JPEG2000Lossless}}, ALLOWED)
    assert _groups(contexts)[:5] == [
        ("1.2.3.4", [JPEG2000Lossless]), ("1.2.3.4", [ExplicitVRLittleEndian]), ("1.2.3.4", [ImplicitVRLittleEndian]),
        (CT, [ExplicitVRLittleEndian]), (CT, [ImplicitVRLittleEndian])]
    assert len(contexts) <= 128 and len({c.abstract_syntax for c in contexts}) > 20
    full = storage_contexts({f"1.2.3.{n}": {JPEG2000Lossless} for n in range(50)}, ALLOWED)
    assert len(full) == 128 and _groups(full)[-2:] == [(CT, [ExplicitVRLittleEndian]), (CT, [ImplicitVRLittleEndian])]


@pytest.mark.parametrize(("source", "accepted", "policy", "expected"), [
    (JPEG2000Lossless, {JPEG2000Lossless, ExplicitVRLittleEndian}, ALLOWED, [JPEG2000Lossless]),
    (JPEG2000Lossless, {ImplicitVRLittleEndian, ExplicitVRLittleEndian}, ALLOWED,
     [ExplicitVRLittleEndian, ImplicitVRLittleEndian]),
    (JPEG2000Lossless, {ImplicitVRLittleEndian}, ALLOWED, [ImplicitVRLittleEndian]),
    (ExplicitVRLittleEndian, {ImplicitVRLittleEndian, JPEGLSLossless},
     SendPolicy(transcoding=True, preferred=JPEGLSLossless), [JPEGLSLossless, ImplicitVRLittleEndian]),
])
def test_the_syntax_to_send_in(source, accepted, policy, expected) -> None:
    assert syntaxes_to_try(sop_class=CT, source=source, accepted=accepted, policy=policy,
                           remote_aet="PACS") == expected


def test_without_transcoding_only_the_files_own_syntax_goes() -> None:
    with pytest.raises(NetworkProtocolError) as caught:
        syntaxes_to_try(sop_class=CT, source=ImplicitVRLittleEndian, accepted={ExplicitVRLittleEndian},
                        policy=SendPolicy(transcoding=False, preferred=ExplicitVRLittleEndian), remote_aet="PACS")
    assert caught.value.details == (f"No valid presentation context was negotiated for SOP class UID [{CT}] "
                                         f"and transfer syntax [{ImplicitVRLittleEndian}] while sending to "
                                         f"modality [PACS]")


def test_nothing_accepted_for_the_class_and_nothing_to_transcode_to() -> None:
    with pytest.raises(ArchiveError) as caught:
        syntaxes_to_try(sop_class=CT, source=JPEG2000Lossless, accepted=set(), policy=ALLOWED, remote_aet="PACS")
    assert caught.value.orthanc_error.code == 2015       # NoPresentationContext
    assert caught.value.details == (f"Cannot C-Store an instance of SOPClassUID {CT}, the destination has not "
                                    "accepted any TransferSyntax for this SOPClassUID.")
    with pytest.raises(ArchiveError) as caught:
        syntaxes_to_try(sop_class=CT, source=JPEG2000Lossless, accepted={JPEGLSLossless}, policy=ALLOWED,
                        remote_aet="PACS")
    assert caught.value.details == f"Cannot transcode instance of SOPClassUID {CT} from {JPEG2000Lossless} to one of [ ]"


def test_policy_from_the_configuration(orthanc_config) -> None:
    assert send_policy() == SendPolicy(transcoding=True, preferred=ExplicitVRLittleEndian)
    assert send_policy(allow_transcoding=False).transcoding is False
    orthanc_config(DicomScuPreferredTransferSyntax=JPEG2000Lossless)
    assert send_policy() == SendPolicy(transcoding=True, preferred=JPEG2000Lossless)
    orthanc_config(TranscodeDicomProtocol=False, DicomScuPreferredTransferSyntax=JPEG2000Lossless)
    assert send_policy() == SendPolicy(transcoding=False, preferred=ExplicitVRLittleEndian)


def test_a_file_with_explicit_un_elements_is_not_sent_as_stored() -> None:
    # Real Orthanc's C-STORE SCP answers 0xC000 to the stored bytes of such files (two of the sample corpus)
    plain = encoded_instance(make_dicom())
    assert isinstance(plain, EncodedInstance) and plain.encoded_as_stored
    ds = make_dataset()
    ds.add_new(0x00110010, "LO", "SOME CREATOR")
    ds.add_new(0x00111001, "UN", b"1234")
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    assert b"UN\x00\x00\x04\x00\x00\x001234" in out.getvalue()
    with_un = encoded_instance(out.getvalue())
    assert not with_un.encoded_as_stored
    assert with_un.decoded()[0x00111001].value == b"1234"


def test_instance_to_send_transcodes_a_compressed_file_keeping_its_uid() -> None:
    source = transcode.file_transcode(make_dicom(Rows=64, Columns=64, PixelData=bytes(8192)), syntax=JPEG2000Lossless)
    offset = part10_meta(source)[0]
    sop = str(pydicom.dcmread(io.BytesIO(source)).SOPInstanceUID)
    kept = instance_to_send(source, [JPEG2000Lossless], sop_class=CT, sop_instance=sop,
                            transfer_syntax=JPEG2000Lossless, offset=offset)
    assert isinstance(kept, EncodedInstance) and kept.encoded_data is source
    decoded = instance_to_send(source, [ExplicitVRLittleEndian], sop_class=CT, sop_instance=sop,
                               transfer_syntax=JPEG2000Lossless, offset=offset)
    assert decoded.encoded_transfer_syntax == ExplicitVRLittleEndian
    assert decoded.decoded().SOPInstanceUID == sop
