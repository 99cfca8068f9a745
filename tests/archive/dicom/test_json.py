"""Orthanc's tag formats (full, short, simplify), header, module, content and shared tags.

Most expectations are real Orthanc answers: the golden recording of Orthanc 1.10.1
(``../shared/reference``), and, for the crafted edge cases below, answers of Orthanc 1.10.1 to the same
bytes, checked by hand against Orthanc's source. Where 1.12.11 differs from 1.10.1 the test says so.
"""

from __future__ import annotations

import collections
import functools
import struct
import time

import pydicom
import pytest
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.tag import Tag

from archive.dicom.json import (
    ContentNotFound,
    content_navigate,
    convert_full,
    dataset_to_full,
    dataset_to_json,
    decode_text,
    encoding_from_charset,
    full_to_short,
    full_to_simplified,
    header_to_json,
    module_json,
    shared_tags,
)
from archive.errors import UnknownDicomTag
from archive.levels import Level
from tests.samples import GOLDEN_FILES, golden, orthanc_id, sample_path, samples_dir


def _read(rel: str) -> Dataset:
    # as the REST views read stored files: everything, large values deferred
    return pydicom.dcmread(sample_path(rel), defer_size=4096, force=True)


def _ids(ds: Dataset) -> dict[Level, str]:
    chain = [str(ds.PatientID), str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID)]
    return {level: orthanc_id(*chain[:i + 1]) for i, level in enumerate(Level)}


def _golden(path: str):
    answer = golden()[f"GET {path}"]
    assert answer["status"] == 200
    return answer["json"]


# --- Golden answers of real Orthanc ------------------------------------------------------------------

@pytest.mark.parametrize("rel", GOLDEN_FILES)
@pytest.mark.parametrize(("query", "fmt"), [("", "full"), ("?short", "short"), ("?simplify", "simplify")])
def test_tags_match_golden(rel, query, fmt):
    ds = _read(rel)
    assert dataset_to_json(ds, fmt=fmt) == _golden(f"/instances/{_ids(ds)[Level.INSTANCE]}/tags{query}")


@pytest.mark.parametrize("rel", GOLDEN_FILES)
def test_simplified_tags_match_golden(rel):
    ds = _read(rel)
    expected = _golden(f"/instances/{_ids(ds)[Level.INSTANCE]}/simplified-tags")
    ours = dataset_to_json(ds, fmt="simplify")
    assert ours == expected
    assert list(ours) == sorted(ours)  # JsonCpp writes object keys sorted


@pytest.mark.parametrize("rel", GOLDEN_FILES)
@pytest.mark.parametrize(("query", "fmt"), [("", "full"), ("?short", "short")])
def test_header_matches_golden(rel, query, fmt):
    ds = _read(rel)
    assert header_to_json(ds, fmt) == _golden(f"/instances/{_ids(ds)[Level.INSTANCE]}/header{query}")


def test_header_gets_what_a_too_long_meta_group_swallows():
    # (0002,0000) of this file counts the dataset's (0008,0000) too: DCMTK reads it as meta
    ds = _read("TransferSyntaxes/1.2.840.10008.1.2.4.50.dcm")
    assert header_to_json(ds)["0008,0000"] == {"Name": "GenericGroupLength", "Type": "String", "Value": "378"}
    assert "0008,0000" not in dataset_to_full(ds)
    assert "0008-0000" not in content_navigate(ds, [])
    assert "0008,0000" not in header_to_json(ds.file_meta)  # the meta alone cannot know


@pytest.mark.parametrize("rel", GOLDEN_FILES)
@pytest.mark.parametrize(("route", "level"), [
    ("instances/{instance}/module", Level.INSTANCE), ("series/{series}/module", Level.SERIES),
    ("studies/{study}/module", Level.STUDY), ("patients/{patient}/module", Level.PATIENT),
    ("studies/{study}/module-patient", Level.PATIENT)])
def test_module_matches_golden(rel, route, level):
    ds = _read(rel)
    ids = {lvl.value.lower(): public_id for lvl, public_id in _ids(ds).items()}
    assert module_json(ds, level) == _golden("/" + route.format(**ids))


@pytest.mark.parametrize("rel", GOLDEN_FILES)
def test_content_listing_matches_golden(rel):
    ds = _read(rel)
    assert content_navigate(ds, []) == _golden(f"/instances/{_ids(ds)[Level.INSTANCE]}/content")


@pytest.mark.parametrize("rel", GOLDEN_FILES)
def test_content_leaf_has_the_padded_value(rel):
    ds = _read(rel)
    expected = _golden(f"/instances/{_ids(ds)[Level.INSTANCE]}/content/0010-0010")["_bytes"]
    value = content_navigate(ds, ["0010-0010"])
    assert isinstance(value, bytes) and len(value) == expected


@functools.cache
def _golden_resources() -> dict[tuple[str, str], list[str]]:
    """(plural, public id) of every patient, study and series of the golden recording -> its files."""
    out = collections.defaultdict(list)
    for rel in GOLDEN_FILES:
        ds = pydicom.dcmread(sample_path(rel), stop_before_pixels=True)
        for level, public_id in _ids(ds).items():
            if level is not Level.INSTANCE:
                out[(level.plural, public_id)].append(rel)
    return dict(out)


@pytest.mark.parametrize(("query", "fmt"), [("", "full"), ("?short", "short")])
def test_shared_tags_match_golden(query, fmt):
    samples_dir()
    for (plural, public_id), files in _golden_resources().items():
        ours = convert_full(shared_tags(_read(rel) for rel in files), fmt)
        assert ours == _golden(f"/{plural}/{public_id}/shared-tags{query}"), (plural, files)


def test_shared_tags_keep_only_equal_strings():
    a = _read("Brainix/Flair/IM-0001-0001.dcm")
    b = _read("Brainix/Flair/IM-0001-0002.dcm")
    shared = shared_tags([a, b])
    assert shared["0010,0010"]["Value"] == "BRAINIX"
    assert "0008,0018" not in shared                     # differs
    assert "0040,0275" not in shared                     # a sequence, even an identical one
    assert "7fe0,0010" not in shared                     # Null
    assert shared_tags([]) == {}


# --- Character sets ----------------------------------------------------------------------------------

def _encoding_files() -> list[str]:
    try:
        root = samples_dir() / "Encodings"
    except BaseException:  # pytest's skip outside a test: collect nothing, the test reports the skip
        return ["<missing>"]
    return sorted(str(p.relative_to(root.parent)) for p in root.rglob("*")
                  if p.is_file() and p.name != "DICOMDIR" and p.suffix.lower() in ("", ".dcm"))


@pytest.mark.parametrize("rel", _encoding_files())
def test_every_encoding_sample_converts(rel):
    ds = _read(rel)
    full = dataset_to_full(ds)
    simplified = full_to_simplified(full)
    assert all(isinstance(v, str) for v in _strings(simplified))
    assert "PatientName" in simplified or "PatientID" in simplified


def _strings(node):
    if isinstance(node, dict):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from _strings(item)
    elif node is not None:
        yield node


@pytest.mark.parametrize(("rel", "name"), [
    ("Encodings/Lena-ascii.dcm", "Test-"),                         # ISO_IR 6: non-ASCII bytes dropped
    ("Encodings/Lena-latin1.dcm", "Test-éüäöò"),
    ("Encodings/Lena-latin2.dcm", "Test-éüäö"),
    ("Encodings/Lena-cyrillic.dcm", "Test-Дћ"),
    ("Encodings/Lena-greek.dcm", "Test-Θ"),
    ("Encodings/Lena-utf8.dcm", "Test-éüäöòДΘĝדصķћ๛ﾈİ"),
    ("Encodings/DavidClunie/SCSX1", "Wang^XiaoDong=王^小東="),           # ISO_IR 192
    ("Encodings/DavidClunie/SCSX2", "Wang^XiaoDong=王^小东="),           # GB18030
    ("Encodings/DavidClunie/SCSH31", "Yamada^Tarou=山田^太郎=やまだ^たろう"),  # \ISO 2022 IR 87
    ("Encodings/DavidClunie/SCSGREEK", "Διονυσιος"),
    ("Encodings/DavidClunie/SCSRUSS", "Люкceмбypг"),
    ("Encodings/DavidClunie/SCSARAB", "قباني^لنزار"),
    ("Encodings/DavidClunie/SCSHBRW", "שרון^דבורה"),
    ("MarekLatin2.dcm", "Testowy^Teste"),
])
def test_known_names_decode(rel, name):
    assert dataset_to_full(_read(rel))["0010,0010"]["Value"] == name


def test_private_names_have_no_spaces_as_dcmtk_loads_them():
    # private.dic spells it "End NumberForBaseline"; real Orthanc 1.10.1 answered this entry
    full = dataset_to_full(_read("TransferSyntaxes/1.2.840.10008.1.2.4.91.dcm"))
    assert full["0019,1014"] == {"Name": "EndNumberForBaseline", "PrivateCreator": "GEMS_ACQU_01",
                                 "Type": "String", "Value": "0"}
    assert full_to_simplified(full)["EndNumberForBaseline"] == "0"


def test_iso_ir_13_keeps_backslashes():
    # Orthanc 1.10.1 showed "¥" here; 1.12.9 fixed the handling of backslashes for ISO_IR 13
    ds = _read("Encodings/ISO_IR13.dcm")
    assert dataset_to_full(ds)["0018,0021"]["Value"] == "SK\\SP\\OSP"


@pytest.mark.parametrize(("value", "expected"), [
    (None, ("Latin1", False)), ("ISO_IR 100", ("Latin1", False)), ("ISO_IR 6", ("Ascii", False)),
    ("ISO_IR 192", ("Utf8", False)), ("\\ISO 2022 IR 87", ("JapaneseKanji", True)),
    ("ISO 2022 IR 100\\ISO 2022 IR 126", ("Latin1", True)), ("GBK", ("Chinese", False)),
    ("ISO_IR 999", ("Ascii", False)), ("iso_ir 144", ("Cyrillic", False)),
    ("ISO_IR_100", ("Latin1", False)),  # a common misspelling Orthanc 1.12 accepts (1.10.1 did not)
    ("", ("Latin1", False)),
])
def test_encoding_detection(value, expected):
    assert encoding_from_charset(value, "Latin1") == expected


def test_unknown_default_encoding_is_refused():
    with pytest.raises(ValueError):
        encoding_from_charset(None, "Klingon")


@pytest.mark.parametrize(("data", "encoding", "extensions", "text"), [
    (b"Caf\xe9\nline\rcr\t\x7f", "Ascii", False, "Caf\nlinecr"),     # ConvertToAscii keeps \n only
    (b"Zo\xc3\xab\xff\xfe ok", "Utf8", False, "Zoë ok"),              # invalid UTF-8 skipped
    (b"Caf\xe9^\x1b-F\xe1\xe2", "Latin1", True, "Café^áâ"),            # escapes removed, one charset
    (b"\xe9", "Windows1251", False, "й"),
])
def test_decode_text(data, encoding, extensions, text):
    assert decode_text(data, encoding, extensions) == text


# --- Crafted edge cases, as real Orthanc answered them ----------------------------------------------

_LONG_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"}


def _element(tag: int, vr: str, value) -> bytes:
    if vr == "SQ":
        value = b"".join(struct.pack("<HHL", 0xFFFE, 0xE000, len(item)) + item for item in map(_encode, value))
    head = struct.pack("<HH", tag >> 16, tag & 0xFFFF) + vr.encode()
    if vr in _LONG_VRS:
        return head + b"\0\0" + struct.pack("<L", len(value)) + value
    return head + struct.pack("<H", len(value)) + value


def _encode(items) -> bytes:
    return b"".join(_element(*item) for item in sorted(items, key=lambda item: item[0]))


def _part10(items, sop: bytes = b"1.2.3.4.5.6.1") -> Dataset:
    """A Part 10 file written byte by byte (explicit VR little endian), read back as the views do."""
    meta = _encode([(0x00020001, "OB", b"\0\1"), (0x00020002, "UI", b"1.2.840.10008.5.1.4.1.1.7\0"),
                    (0x00020003, "UI", sop), (0x00020010, "UI", b"1.2.840.10008.1.2.1\0")])
    meta = _element(0x00020000, "UL", struct.pack("<L", len(meta))) + meta
    base = [(0x00080016, "UI", b"1.2.840.10008.5.1.4.1.1.7\0"), (0x00080018, "UI", sop),
            (0x00100020, "LO", b"EDGE"), (0x0020000D, "UI", b"1.2.3.4.5\0"), (0x0020000E, "UI", b"1.2.3.4.5.6\0")]
    data = b"\0" * 128 + b"DICM" + meta + _encode(base + list(items))
    return pydicom.dcmread(DicomBytesIO(data), defer_size=64)


@functools.cache
def _edge_full() -> dict:
    ds = _part10([
        (0x00080005, "CS", b"ISO_IR 100"),
        (0x00081030, "LO", b"  lead and trail  "),
        (0x0008103E, "LO", b"AB\x00CD "),
        (0x00204000, "LT", b"a" * 256),
        (0x00081090, "LO", b"a" * 258),
        (0x00102000, "LT", b"\xe9" * 128),
        (0x00104000, "LT", b"\xe9" * 130),
        (0x00280010, "US", b""),
        (0x00280011, "US", b"\x01\x02\x03"),
        (0x00209165, "AT", b"\x10\x00\x10\x00\x20\x00\x0d\x00"),
        (0x00189306, "FD", b""),
        (0x00181150, "FL", struct.pack("<5f", 0.1, 1e-10, 1e20, float("inf"), -0.0)),
        (0x00189307, "FD", struct.pack("<4d", 1e16, 0.1, 123456789.123, float("nan"))),
        (0x00189308, "SV", struct.pack("<q", -5)),
        (0x00189309, "UV", struct.pack("<Q", 5)),
        (0x0018930A, "OV", struct.pack("<Q", 7)),
        (0x00180015, "UN", b"CHEST "),
        (0x00180020, "UN", b"SE\x00\x00"),
        (0x00090010, "LO", b"GEMS_GENIE_1"),
        (0x00091010, "UN", b"WB BONE\x00"),
        (0x00091020, "UN", b"caf\xe9 "),
        (0x00091099, "UN", b"unknown "),
        (0x00110010, "LO", b"SOME CREATOR"),
        (0x00111001, "LO", b"value "),
        (0x00130001, "LO", b"no creator"),
        (0x00321060, "UC", b"unlimited characters  "),
        (0x00080120, "UR", b"http://example.com/x"),
        (0x00400275, "SQ", [[(0x00400007, "LO", b"in item "), (0x00290010, "LO", b"ITEM CREATOR"),
                             (0x00291001, "SH", b"x "), (0x00090010, "LO", b"GEMS_GENIE_1"),
                             (0x00091010, "LO", b"in item private "), (0x00400000, "UL", b"\x10\0\0\0")], []]),
        (0x00080000, "UL", b"\x00\x00\x00\x00"),
        (0x7FE00010, "OB", b"\x00" * 4),
        (0xFFFCFFFC, "OB", b"\x00" * 4),
    ])
    return dataset_to_full(ds)


# What Orthanc 1.10.1 answered for /tags?short of the same bytes.
EDGE_SHORT = {
    "0008,0000": "0", "0008,0005": "ISO_IR 100", "0008,0120": "http://example.com/x",
    "0008,1030": "  lead and trail", "0008,103e": "AB", "0008,1090": None, "0009,0010": "GEMS_GENIE_1",
    "0009,1010": "WB BONE", "0009,1020": None, "0009,1099": None, "0010,2000": "é" * 128, "0010,4000": None,
    "0011,0010": "SOME CREATOR", "0011,1001": "value", "0013,0001": "no creator", "0018,0015": "CHEST ",
    "0018,0020": "SE\u0000",
    "0018,1150": "0.10000000149011612\\1.000000013351432e-10\\1.0000000200408773e+20\\inf\\-0",
    "0018,9306": None, "0018,9307": "10000000000000000\\0.10000000000000001\\123456789.123\\nan",
    "0018,9308": None, "0018,9309": None, "0018,930a": None, "0020,4000": "a" * 256, "0020,9165": "0010,0010",
    "0028,0010": None, "0028,0011": "513\\3", "0032,1060": "unlimited characters",
    "0040,0275": [{"0009,0010": "GEMS_GENIE_1", "0009,1010": "in item private", "0029,0010": "ITEM CREATOR",
                   "0029,1001": "x", "0040,0000": "16", "0040,0007": "in item"}, {}],
    "7fe0,0010": None,
}


def test_edge_cases_short_as_orthanc():
    ours = full_to_short(_edge_full())
    base = {"0008,0016", "0008,0018", "0010,0020", "0020,000d", "0020,000e"}
    assert {k: v for k, v in ours.items() if k not in base} == EDGE_SHORT


@pytest.mark.parametrize(("key", "entry"), [
    ("0008,0000", {"Name": "GenericGroupLength", "Type": "String", "Value": "0"}),
    ("0009,0010", {"Name": "PrivateCreator", "Type": "String", "Value": "GEMS_GENIE_1"}),
    ("0009,1010", {"Name": "Unknown", "PrivateCreator": "GEMS_GENIE_1", "Type": "String", "Value": "WB BONE"}),
    ("0009,1020", {"Name": "Unknown", "PrivateCreator": "GEMS_GENIE_1", "Type": "Null", "Value": None}),
    ("0009,1099", {"Name": "Unknown Tag & Data", "PrivateCreator": "GEMS_GENIE_1", "Type": "Null", "Value": None}),
    ("0011,1001", {"Name": "Unknown Tag & Data", "PrivateCreator": "SOME CREATOR", "Type": "String",
                   "Value": "value"}),
    ("0013,0001", {"Name": "Unknown Tag & Data", "Type": "String", "Value": "no creator"}),
    ("0008,1090", {"Name": "ManufacturerModelName", "Type": "TooLong", "Value": None}),
    ("7fe0,0010", {"Name": "PixelData", "Type": "Null", "Value": None}),
])
def test_edge_cases_full_entries(key, entry):
    assert _edge_full()[key] == entry


def test_private_creators_are_looked_up_in_the_same_item():
    item = _edge_full()["0040,0275"]["Value"][0]
    assert item["0029,1001"]["PrivateCreator"] == "ITEM CREATOR"
    assert item["0009,1010"]["Name"] == "Unknown"


def test_nothing_after_the_pixel_data_unless_whole():
    ds = _part10([(0x7FE00010, "OB", b"\0\0"), (0xFFFCFFFC, "OB", b"\0\0")])
    assert "fffc,fffc" not in dataset_to_full(ds)
    assert dataset_to_full(ds, whole=True)["fffc,fffc"]["Name"] == "DataSetTrailingPadding"


def test_too_long_counts_utf8_bytes_and_the_limit_is_settable():
    full = _edge_full()
    assert full["0010,2000"]["Type"] == "String"   # 128 × "é": 256 bytes in UTF-8
    assert full["0010,4000"]["Type"] == "TooLong"  # 130 × "é"
    ds = _part10([(0x00104000, "LT", b"a" * 300)])
    assert dataset_to_full(ds, max_length=0)["0010,4000"]["Value"] == "a" * 300


def test_simplified_names_collide_as_in_orthanc():
    simplified = full_to_simplified(_edge_full())
    # the last element of a name wins: (0011,0010) among creators, the unknown (0018,930a) among unknowns
    assert simplified["PrivateCreator"] == "SOME CREATOR"
    assert simplified["Unknown Tag & Data"] is None
    assert simplified["Unknown"] is None


@pytest.mark.parametrize(("charset", "raw", "value"), [
    (b"ISO 2022 IR 100\\ISO 2022 IR 126 ", b"Caf\xe9^\x1b\x2d\x46\xe1\xe2\xe3 ", "Café^áâã"),
    pytest.param(b"ISO_IR 999", b"Caf\xe9\tTab\x7f", "CafTab",  # unsupported: ASCII
                 marks=pytest.mark.filterwarnings("ignore:Unknown encoding")),
    (b"ISO_IR 6", b"Caf\xe9\nline\rcr ", "Caf\nlinecr "),  # odd length: DCMTK pads with NUL, space stays
    (b"ISO_IR 192", "Zoë^Ünïcode".encode() + b"\xff\xfe ok ", "Zoë^Ünïcode ok"),
    (None, b"Caf\xe9 sans charset", "Café sans charset"),  # DefaultEncoding
    (b"GBK ", "王^小东".encode("gb18030"), "王^小东"),
])
def test_charsets_as_orthanc(charset, raw, value):
    items = [(0x00100010, "PN", raw)]
    if charset is not None:
        items.append((0x00080005, "CS", charset))
    assert dataset_to_full(_part10(items))["0010,0010"]["Value"] == value


def test_default_encoding_parameter():
    ds = _part10([(0x00100010, "PN", b"Caf\xe9")])
    assert dataset_to_full(ds, default_encoding="Cyrillic")["0010,0010"]["Value"] == "Cafщ"
    assert dataset_to_full(ds, default_encoding="Ascii")["0010,0010"]["Value"] == "Caf"


def test_od_of_ol_are_numbers_since_1_12_11():
    # Orthanc 1.10.1 answered Null for these; 1.12.11's NEWS: "Support for OD, OF, and OL ... in /tags"
    full = dataset_to_full(_read("2026-03-16-OD-OF-OL.dcm"))
    assert full["0070,150d"]["Value"] == "1.1000000000000001\\2.2000000000000002\\3.2999999999999998"
    assert full["0066,0016"]["Value"] == "10.100000381469727\\20.200000762939453\\30.299999237060547"
    assert full["0066,0041"]["Value"] == "42\\0\\15"


def test_implicit_vr_us_or_ss_follows_dcmtk():
    ds = _read("Implicit-vr-us-palette.dcm")
    full = dataset_to_full(ds)
    assert full["0028,1101"]["Type"] == "Null"  # palette descriptors stay "xs" in DCMTK


def test_dictionary_option_names_tags():
    ds = _part10([(0x00091001, "LO", b"v")])
    assert dataset_to_full(ds, dictionary={(0x00091001, None): ("LO", "MyTag")})["0009,1001"]["Name"] == "MyTag"


def test_datasets_built_in_memory_convert():
    ds = Dataset()
    ds.PatientName = "Doe^John"
    ds.ImagePositionPatient = [0.5, -1, 2]
    ds.Rows = 8
    ds.add_new(0x00209165, "AT", [0x00100010, 0x00100020])
    full = dataset_to_full(ds)
    assert full["0010,0010"]["Value"] == "Doe^John"
    assert full["0020,0032"]["Value"] == "0.5\\-1.0\\2.0"
    assert full["0028,0010"]["Value"] == "8"
    assert full["0020,9165"]["Value"] == "0010,0010"


def test_unknown_format_is_refused():
    with pytest.raises(ValueError):
        dataset_to_json(Dataset(), fmt="human")


# --- /content ----------------------------------------------------------------------------------------

def test_content_navigates_sequences():
    ds = _read("Brainix/Flair/IM-0001-0001.dcm")
    assert content_navigate(ds, ["0040-0275"]) == ["0"]
    assert content_navigate(ds, ["0040-0275", "0"]) == ["0040-0007", "0040-0009", "0040-1001"]
    assert content_navigate(ds, ["0040-0275", "0", "0040-0007"]) == "IRM cérébrale, neuro-crâne".encode("latin-1")
    assert content_navigate(ds, ["PatientName"]) == b"BRAINIX\x00"  # the file pads it with a NUL


@pytest.mark.parametrize("path", [["9999-9999"], ["0040-0275", "5"], ["0010-0010", "0"], ["0040-0275", "x"],
                                  ["0008-0000"], ["7fe0-0010", "1"]])
def test_content_unknown_paths(path):
    ds = _read("Brainix/Flair/IM-0001-0001.dcm")
    with pytest.raises(ContentNotFound):
        content_navigate(ds, path)


@pytest.mark.parametrize("path", [["nope"], ["*"], ["gggg-0010"], ["0040-0275", "0", "zz"]])
def test_content_path_part_that_is_no_tag(path):
    """Orthanc 1.10.1 (live): 500 "Unknown DICOM tag" for such a part, where an absent tag is a 404."""
    ds = _read("Brainix/Flair/IM-0001-0001.dcm")
    with pytest.raises(UnknownDicomTag):
        content_navigate(ds, path)


def test_content_pixel_data_blocks():
    native = _read("Brainix/Flair/IM-0001-0001.dcm")
    assert content_navigate(native, ["7fe0-0010"]) == ["0"]
    assert len(content_navigate(native, ["7fe0-0010", "0"])) == native.Rows * native.Columns * 2
    jpeg = _read("TransferSyntaxes/1.2.840.10008.1.2.4.50.dcm")
    assert content_navigate(jpeg, ["7fe0-0010"]) == ["0", "1"]  # the offset table is an item too
    assert content_navigate(jpeg, ["7fe0-0010", "1"])[:2] == b"\xff\xd8"


def test_content_values_are_little_endian_and_even():
    big = _read("TransferSyntaxes/1.2.840.10008.1.2.2.dcm")
    assert content_navigate(big, ["0028-0002"]) == b"\x03\x00"  # DCMTK keeps the machine's byte order
    odd = _part10([(0x00280011, "US", b"\x01\x02\x03")])
    assert content_navigate(odd, ["0028-0011"]) == b"\x01\x02\x03\x00"


# --- Performance -------------------------------------------------------------------------------------

def test_conversion_is_fast_and_linear():
    ds = _read("DummyCT.dcm")
    dataset_to_full(ds)
    start = time.perf_counter()
    for _ in range(20):
        full_to_simplified(dataset_to_full(ds))
    assert (time.perf_counter() - start) / 20 < 0.02  # about 0.5 ms on the anchors' machines

    big = Dataset()
    for group in range(0x0019, 0x0019 + 2 * 40, 2):
        for element in range(0x1000, 0x1000 + 500):
            big[Tag(group, element)] = RawDataElement(Tag(group, element), "LO", 2, b"ab", 0, False, True)
    start = time.perf_counter()
    assert len(dataset_to_full(big)) == len(big)
    assert time.perf_counter() - start < 2
