"""One way to read a BOINC XML document we are handed (config.xml, templates):
no entities, no network, and the root element it must have. Errors name the
source, in the caller's own error class."""

from __future__ import annotations

from typing import Union


def parse_document(data: Union[str, bytes], source: str, root_tag: str, error: type):
    """The root element of ``data``; ``error`` for malformed XML or another root."""
    from lxml import etree

    if isinstance(data, str):
        data = data.encode("utf-8")
    try:
        root = etree.fromstring(data, etree.XMLParser(resolve_entities=False, no_network=True))
    except etree.XMLSyntaxError as exc:
        raise error(f"{source}: malformed XML: {exc}") from None
    if root.tag != root_tag:
        raise error(f"{source}: root element is <{root.tag}>, expected <{root_tag}>")
    return root
