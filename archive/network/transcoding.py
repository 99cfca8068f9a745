"""Which transfer syntaxes the C-STOREs we send propose and use, as Orthanc's DicomStoreUserConnection does:
store jobs, C-MOVE sub-operations (to the move destination) and C-GET sub-operations (back to the caller).

- Proposed, per SOP class: one presentation context for each transfer syntax of its files, each alone (so a
  peer that accepts JPEG 2000 gets the file as stored instead of choosing an uncompressed syntax out of a
  group), one with the preferred syntax, one with the uncompressed syntaxes left over. Big endian, which
  Orthanc also proposes, is left out: pynetdicom does not convert little to big endian. Then, while there is
  room, common storage classes in the preferred and uncompressed syntaxes (Orthanc proposes DCMTK's short
  list): the association is accepted even by a peer that refuses the class at hand, which then gets Orthanc's
  answer for it, and the next classes of a study need no new association.
- Sent: the file as stored when the peer accepted its syntax. Otherwise, when transcoding is allowed
  (TranscodeDicomProtocol, and the modality's AllowTranscoding), the preferred syntax
  (DicomScuPreferredTransferSyntax) if the peer accepted it, else an accepted uncompressed one. When it is
  not allowed, the file's own syntax is the only one: anything else is Orthanc's "No valid presentation
  context was negotiated".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from django.conf import settings
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import build_context
from pynetdicom import sop_class as sop
from pynetdicom.presentation import PresentationContext

from archive.errors import ArchiveError, NetworkProtocolError, OrthancError

SENDABLE_UNCOMPRESSED = (ImplicitVRLittleEndian, ExplicitVRLittleEndian)   # pynetdicom converts between them
MAX_CONTEXTS = 128  # PS3.8 9.3.2.2: presentation context IDs are odd numbers 1-255
COMMON_STORAGE_CLASSES = tuple(getattr(sop, name) for name in (
    "CTImageStorage", "MRImageStorage", "ComputedRadiographyImageStorage", "DigitalXRayImageStorageForPresentation",
    "DigitalMammographyXRayImageStorageForPresentation", "UltrasoundImageStorage", "UltrasoundMultiFrameImageStorage",
    "SecondaryCaptureImageStorage", "NuclearMedicineImageStorage", "PositronEmissionTomographyImageStorage",
    "XRayAngiographicImageStorage", "XRayRadiofluoroscopicImageStorage", "EnhancedCTImageStorage",
    "EnhancedMRImageStorage", "RTImageStorage", "RTDoseStorage", "RTStructureSetStorage", "RTPlanStorage",
    "BasicTextSRStorage", "EnhancedSRStorage", "ComprehensiveSRStorage", "KeyObjectSelectionDocumentStorage",
    "GrayscaleSoftcopyPresentationStateStorage", "EncapsulatedPDFStorage", "VLPhotographicImageStorage",
    "SegmentationStorage", "MultiFrameTrueColorSecondaryCaptureImageStorage", "XRayRadiationDoseSRStorage"))


@dataclass(frozen=True)
class SendPolicy:
    transcoding: bool      # TranscodeDicomProtocol and the modality's AllowTranscoding
    preferred: str         # DicomScuPreferredTransferSyntax; Explicit VR Little Endian when not transcoding


def send_policy(allow_transcoding: bool = True) -> SendPolicy:
    """The policy toward a modality whose AllowTranscoding is ``allow_transcoding``."""
    transcoding = bool(settings.ORTHANC.get("TranscodeDicomProtocol", True)) and allow_transcoding
    preferred = str(settings.ORTHANC.get("DicomScuPreferredTransferSyntax") or ExplicitVRLittleEndian).strip()
    return SendPolicy(transcoding=transcoding, preferred=preferred if transcoding else ExplicitVRLittleEndian)


def storage_contexts(classes: Mapping[str, Iterable[str]], policy: SendPolicy, limit: int = MAX_CONTEXTS,
                     common: Iterable[str] = COMMON_STORAGE_CLASSES) -> list[PresentationContext]:
    """The presentation contexts proposed for ``classes`` (SOP class UID -> transfer syntaxes of its files),
    in that order, then for the ``common`` classes not among them; a class whose contexts no longer fit under
    ``limit`` is left out whole."""
    contexts: list[PresentationContext] = []
    wanted = {**classes, **{uid: () for uid in common if uid not in classes}}
    for sop_class, syntaxes in wanted.items():
        own = sorted(set(syntaxes))
        groups = [[syntax] for syntax in own]
        if policy.preferred not in own:
            groups.append([policy.preferred])
        rest = [s for s in SENDABLE_UNCOMPRESSED if s not in own and s != policy.preferred]
        if rest:
            groups.append(rest)
        if len(contexts) + len(groups) > limit:
            continue
        contexts.extend(build_context(sop_class, group) for group in groups)
    return contexts


def syntaxes_to_try(*, sop_class: str, source: str, accepted: set[str], policy: SendPolicy,
                    remote_aet: str) -> list[str]:
    """The transfer syntaxes to send a file of ``source`` syntax in, best first, given the syntaxes the peer
    ``accepted`` for its class (the source itself when accepted). Raises Orthanc's errors when there is none."""
    if source in accepted:
        return [source]
    if not policy.transcoding:
        raise NetworkProtocolError(f"No valid presentation context was negotiated for SOP class UID [{sop_class}] "
                                   f"and transfer syntax [{source}] while sending to modality [{remote_aet}]")
    if not accepted:
        raise ArchiveError(f"Cannot C-Store an instance of SOPClassUID {sop_class}, the destination has not accepted "
                           "any TransferSyntax for this SOPClassUID.",
                           orthanc_error=OrthancError.NO_PRESENTATION_CONTEXT)
    choices = [policy.preferred] if policy.preferred in accepted else []
    choices += [s for s in (ExplicitVRLittleEndian, ImplicitVRLittleEndian) if s in accepted and s not in choices]
    if not choices:
        raise cannot_transcode(sop_class=sop_class, source=source, attempted=[])
    return choices


def cannot_transcode(*, sop_class: str, source: str, attempted: list[str]) -> ArchiveError:
    listed = "".join(f" {syntax}" for syntax in sorted(attempted))
    return ArchiveError(f"Cannot transcode instance of SOPClassUID {sop_class} from {source} to one of [{listed} ]",
                        orthanc_error=OrthancError.INTERNAL_ERROR)
