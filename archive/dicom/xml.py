"""A dataset in the Native DICOM Model (PS3.19 A.1), the XML that DICOMweb calls application/dicom+xml.

pydicom writes DICOM JSON (PS3.18 F.2) but not this XML, so the model is written here from the JSON form, which
already carries the VRs, person name groups and base64 values: one source of truth for both encodings.
"""

from __future__ import annotations

from xml.etree import ElementTree

from pydicom.datadict import keyword_for_tag
from pydicom.dataset import Dataset

_PN_COMPONENTS = ("FamilyName", "GivenName", "MiddleName", "NamePrefix", "NameSuffix")


def _attribute(parent: ElementTree.Element, tag: str, element: dict) -> None:
    node = ElementTree.SubElement(parent, "DicomAttribute", tag=tag, vr=element.get("vr", "UN"))
    keyword = keyword_for_tag(int(tag, 16))
    if keyword:
        node.set("keyword", keyword)
    if "InlineBinary" in element:
        ElementTree.SubElement(node, "InlineBinary").text = element["InlineBinary"]
        return
    if "BulkDataURI" in element:
        ElementTree.SubElement(node, "BulkData", uri=element["BulkDataURI"])
        return
    for number, value in enumerate(element.get("Value", []), start=1):
        if element.get("vr") == "SQ":
            item = ElementTree.SubElement(node, "Item", number=str(number))
            for inner_tag, inner in (value or {}).items():
                _attribute(item, inner_tag, inner)
        elif element.get("vr") == "PN":
            name = ElementTree.SubElement(node, "PersonName", number=str(number))
            for group in ("Alphabetic", "Ideographic", "Phonetic"):
                text = (value or {}).get(group)
                if text:
                    components = ElementTree.SubElement(name, group)
                    for label, part in zip(_PN_COMPONENTS, text.split("^"), strict=False):
                        if part:
                            ElementTree.SubElement(components, label).text = part
        else:
            ElementTree.SubElement(node, "Value", number=str(number)).text = "" if value is None else str(value)


def dataset_to_xml(ds: Dataset) -> bytes:
    """The Native DICOM Model of ``ds``, binary values inline (base64), UTF-8."""
    root = ElementTree.Element("NativeDicomModel", xmlns="http://dicom.nema.org/PS3.19/models/NativeDICOM")
    for tag, element in ds.to_json_dict(bulk_data_threshold=1 << 62).items():
        _attribute(root, tag, element)
    return ElementTree.tostring(root, encoding="utf-8", xml_declaration=True)
