"""One error hierarchy for the archive, with Orthanc's error codes and their HTTP statuses.

Every error the domain raises is an ``ArchiveError`` whose ``orthanc_error`` names an entry of Orthanc's
error table (``OrthancError``: code, description, HTTP status). ``explorer/api/errors.py`` renders them as
Orthanc's JSON error body; the DICOM layer maps the same classes to DIMSE statuses.
"""

from __future__ import annotations

import enum


class OrthancError(enum.Enum):
    """Orthanc's error codes: (OrthancStatus, description used as OrthancError/Message, HTTP status)."""

    INTERNAL_ERROR = (-1, "Internal error", 500)
    SUCCESS = (0, "Success", 200)
    PLUGIN = (1, "Error encountered within the plugin engine", 500)
    NOT_IMPLEMENTED = (2, "Not implemented yet", 500)
    PARAMETER_OUT_OF_RANGE = (3, "Parameter out of range", 400)
    NOT_ENOUGH_MEMORY = (4, "The server hosting Orthanc is running out of memory", 500)
    BAD_PARAMETER_TYPE = (5, "Bad type for a parameter", 400)
    BAD_SEQUENCE_OF_CALLS = (6, "Bad sequence of calls", 400)
    INEXISTENT_ITEM = (7, "Accessing an inexistent item", 404)
    BAD_REQUEST = (8, "Bad request", 400)
    NETWORK_PROTOCOL = (9, "Error in the network protocol", 500)
    SYSTEM_COMMAND = (10, "Error while calling a system command", 500)
    DATABASE = (11, "Error with the database engine", 500)
    URI_SYNTAX = (12, "Badly formatted URI", 400)
    INEXISTENT_FILE = (13, "Inexistent file", 404)
    CANNOT_WRITE_FILE = (14, "Cannot write to file", 500)
    BAD_FILE_FORMAT = (15, "Bad file format", 400)
    TIMEOUT = (16, "Timeout", 408)
    UNKNOWN_RESOURCE = (17, "Unknown resource", 404)
    INCOMPATIBLE_DATABASE_VERSION = (18, "Incompatible version of the database", 500)
    FULL_STORAGE = (19, "The file storage is full", 500)  # 507 only in MaximumStorageMode Reject
    CORRUPTED_FILE = (20, "Corrupted file (e.g. inconsistent MD5 hash)", 500)
    INEXISTENT_TAG = (21, "Inexistent tag", 404)
    READ_ONLY = (22, "Cannot modify a read-only data structure", 403)
    INCOMPATIBLE_IMAGE_FORMAT = (23, "Incompatible format of the images", 400)
    INCOMPATIBLE_IMAGE_SIZE = (24, "Incompatible size of the images", 400)
    UNKNOWN_DICOM_TAG = (27, "Unknown DICOM tag", 500)  # no HTTP status of its own (1.10.1, POST /tools/find)
    BAD_JSON = (28, "Cannot parse a JSON document", 400)
    UNAUTHORIZED = (29, "Bad credentials were provided to an HTTP request", 401)
    EMPTY_REQUEST = (33, "The request is empty", 400)
    NOT_ACCEPTABLE = (34, "Cannot send a response which is acceptable according to the Accept HTTP header", 406)
    DATABASE_UNAVAILABLE = (36, "The database is currently not available (probably a transient situation)", 503)
    CANCELED_JOB = (37, "This job was canceled", 500)
    BAD_RANGE = (41, "Incorrect range request", 416)
    DATABASE_CANNOT_SERIALIZE = (42, "Database could not serialize access due to concurrent update, "
                                     "the transaction should be retried", 503)
    REVISION = (43, "A bad revision number was provided, which might indicate conflict between multiple "
                    "writers", 409)
    FORBIDDEN_ACCESS = (45, "Access to a resource is forbidden", 403)
    DUPLICATE_RESOURCE = (46, "Duplicate resource", 409)
    UNSUPPORTED_MEDIA_TYPE = (3000, "Unsupported media type", 415)
    # A peer answered a status the REST API cannot forward (/peers/{id}/system)
    BAD_HTTP_STATUS_IN_REST = (2005, "This HTTP status is not allowed in a REST API", 500)
    # DICOM SCU (Enumerations.h 2015-2017; HTTP status not seen live: 500, Orthanc's default for its table)
    NO_SOP_CLASS_OR_INSTANCE = (2014, "DicomUserConnection: Unable to find the SOP class and instance", 500)
    NO_PRESENTATION_CONTEXT = (2015, "DicomUserConnection: No acceptable presentation context for modality", 500)
    DICOM_FIND_UNAVAILABLE = (2016, "DicomUserConnection: The C-FIND command is not supported by the remote SCP",
                              500)
    DICOM_MOVE_UNAVAILABLE = (2017, "DicomUserConnection: The C-MOVE command is not supported by the remote SCP",
                              500)
    # /tools/create-dicom (Enumerations.h 2018-2025): no HTTP status of their own in Orthanc's table; the
    # statuses are the ones Orthanc 1.10.1 answers (checked live).
    CANNOT_STORE_INSTANCE = (2018, "Cannot store an instance", 500)
    CREATE_DICOM_NOT_STRING = (2019, "Only string values are supported when creating DICOM instances", 400)
    CREATE_DICOM_OVERRIDE_TAG = (2020, "Trying to override a value inherited from a parent module", 400)
    CREATE_DICOM_USE_CONTENT = (2021, 'Use "Content" to inject an image into a new DICOM instance', 400)
    CREATE_DICOM_NO_PAYLOAD = (2022, "No payload is present for one instance in the series", 400)
    CREATE_DICOM_USE_DATA_URI_SCHEME = (2023, "The payload of the DICOM instance must be specified according "
                                              "to Data URI scheme", 400)
    CREATE_DICOM_BAD_PARENT = (2024, "Trying to attach a new DICOM instance to an inexistent resource", 400)
    CREATE_DICOM_PARENT_IS_INSTANCE = (2025, "Trying to attach a new DICOM instance to an instance (must be a "
                                             "series, study or patient)", 400)

    @property
    def code(self) -> int:
        return self.value[0]

    @property
    def description(self) -> str:
        return self.value[1]

    @property
    def http_status(self) -> int:
        return self.value[2]


class ArchiveError(Exception):
    """Base of the domain's errors; ``details`` becomes the ``Details`` field of the error body."""

    orthanc_error: OrthancError = OrthancError.INTERNAL_ERROR
    # Orthanc signals some errors with the HTTP status alone (SignalError), without the JSON error body.
    bare: bool = False

    def __init__(self, details: str | None = None, *, orthanc_error: OrthancError | None = None,
                 payload: dict | None = None):
        super().__init__(details or (orthanc_error or self.orthanc_error).description)
        if orthanc_error is not None:
            self.orthanc_error = orthanc_error
        self.details = details
        # Orthanc 1.12.10's ErrorPayload of the error body, {"Type": ..., "Content": ...}: the DIMSE status of a
        # failed C-STORE ("Dimse"), the Details of a failed retrieve job ("RetrieveJob")
        self.payload = payload

    def answered_bare(self) -> ArchiveError:
        """This error, signalled by its HTTP status alone."""
        self.bare = True
        return self

    @property
    def http_status(self) -> int:
        return self.orthanc_error.http_status


class UnknownResource(ArchiveError):
    orthanc_error = OrthancError.UNKNOWN_RESOURCE


class InexistentItem(ArchiveError):
    orthanc_error = OrthancError.INEXISTENT_ITEM


class InexistentTag(ArchiveError):
    orthanc_error = OrthancError.INEXISTENT_TAG


class BadFileFormat(ArchiveError):
    orthanc_error = OrthancError.BAD_FILE_FORMAT


class BadRequest(ArchiveError):
    orthanc_error = OrthancError.BAD_REQUEST


class ParameterOutOfRange(ArchiveError):
    orthanc_error = OrthancError.PARAMETER_OUT_OF_RANGE


class BadParameterType(ArchiveError):
    orthanc_error = OrthancError.BAD_PARAMETER_TYPE


class BadJson(ArchiveError):
    orthanc_error = OrthancError.BAD_JSON


class UnknownDicomTag(ArchiveError):
    orthanc_error = OrthancError.UNKNOWN_DICOM_TAG


class FullStorage(ArchiveError):
    """No room left. Orthanc answers the code's own status, 500, when recycling cannot make room (checked
    against 1.10.1); in MaximumStorageMode Reject (1.11.2+) it answers 507 (``rejected=True``)."""

    orthanc_error = OrthancError.FULL_STORAGE

    def __init__(self, details: str | None = None, *, rejected: bool = False):
        super().__init__(details)
        self.rejected = rejected

    @property
    def http_status(self) -> int:
        return 507 if self.rejected else super().http_status


class CorruptedFile(ArchiveError):
    orthanc_error = OrthancError.CORRUPTED_FILE


class RevisionMismatch(ArchiveError):
    orthanc_error = OrthancError.REVISION


class ForbiddenAccess(ArchiveError):
    orthanc_error = OrthancError.FORBIDDEN_ACCESS


class NotImplementedYet(ArchiveError):
    orthanc_error = OrthancError.NOT_IMPLEMENTED


class UnsupportedMediaType(ArchiveError):
    orthanc_error = OrthancError.UNSUPPORTED_MEDIA_TYPE


class ReadOnlyArchive(ArchiveError):
    orthanc_error = OrthancError.READ_ONLY


class BadRange(ArchiveError):
    orthanc_error = OrthancError.BAD_RANGE


class NetworkProtocolError(ArchiveError):
    orthanc_error = OrthancError.NETWORK_PROTOCOL
