"""Node addresses and points of the OPC UA client driver. Pure: no asyncua, no I/O.

A tag names its upstream node in one of two ways:

* ``node``: a NodeId in the OPC UA text notation, ``[ns=<index>;|nsu=<namespace uri>;]<id>``
  with ``<id>`` one of ``i=<uint32>``, ``s=<string>``, ``g=<guid>``, ``b=<base64>``. A namespace
  given by URI is looked up in the server's namespace array at every connect;
* ``browse_path``: ``/Objects/2:Boiler/2:Temperature``, a path of browse names from the Root
  folder (``<ns index>:<name>``; no prefix means namespace 0), translated at every connect.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from dataclasses import dataclass
from typing import Literal

from drivers.sample import INT_RANGES

FLOAT_TYPES = ("float32", "float64")
NUMERIC_TYPES = (*INT_RANGES, *FLOAT_TYPES)
# the registry data types a tag may have (the OPC UA built-in type each maps to: docs/opcua_client.md)
TAG_TYPES = ("bool", *NUMERIC_TYPES, "string", "datetime", "bytes")
TagType = Literal["bool", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64", "string", "datetime", "bytes"]
DeadbandType = Literal["none", "absolute", "percent"]
IdKind = Literal["i", "s", "g", "b"]

_NS = re.compile(r"^ns=(\d+);")
_ELEMENT = re.compile(r"^(?:(\d+):)?(.+)$")


@dataclass(frozen=True, slots=True)
class NodeRef:
    """A parsed NodeId: *namespace* is an index, or a namespace URI resolved at connect."""

    namespace: int | str
    kind: IdKind
    identifier: int | str | bytes

    def text(self) -> str:
        ns = f"nsu={self.namespace};" if isinstance(self.namespace, str) else (f"ns={self.namespace};" if self.namespace else "")
        ident = base64.b64encode(self.identifier).decode() if isinstance(self.identifier, bytes) else self.identifier
        return f"{ns}{self.kind}={ident}"


def parse_node_id(text: str) -> NodeRef:
    """Parse *text* (see the module docstring); raise ValueError saying what is wrong."""
    rest = text.strip()
    namespace: int | str = 0
    if rest.startswith("nsu="):
        uri, sep, rest = rest[4:].partition(";")
        if not sep or not uri:
            raise ValueError(f"node {text!r}: 'nsu=<namespace uri>;' must be followed by an identifier (i=, s=, g= or b=)")
        namespace = uri
    elif m := _NS.match(rest):
        namespace = int(m.group(1))
        if namespace > 65535:
            raise ValueError(f"node {text!r}: namespace index {namespace} is above 65535")
        rest = rest[m.end() :]
    elif rest.startswith("ns="):
        raise ValueError(f"node {text!r}: 'ns=' needs a namespace index (a number) followed by ';'")
    kind, sep, ident = rest.partition("=")
    if not sep or kind not in ("i", "s", "g", "b"):
        raise ValueError(f"node {text!r}: expected i=<number>, s=<string>, g=<guid> or b=<base64> after the namespace")
    if kind == "i":
        if not ident.isdigit() or int(ident) > 2**32 - 1:
            raise ValueError(f"node {text!r}: a numeric identifier is 0..4294967295")
        return NodeRef(namespace, "i", int(ident))
    if kind == "s":
        if not ident:
            raise ValueError(f"node {text!r}: empty string identifier")
        return NodeRef(namespace, "s", ident)
    if kind == "g":
        try:
            return NodeRef(namespace, "g", str(uuid.UUID(ident)))
        except ValueError:
            raise ValueError(f"node {text!r}: {ident!r} is not a GUID") from None
    try:
        return NodeRef(namespace, "b", base64.b64decode(ident, validate=True))
    except (binascii.Error, ValueError):
        raise ValueError(f"node {text!r}: {ident!r} is not base64") from None


def parse_browse_path(text: str) -> tuple[tuple[int, str], ...]:
    """``/Objects/2:Boiler/2:Temperature`` -> ((0, "Objects"), (2, "Boiler"), (2, "Temperature"))."""
    if not text.startswith("/"):
        raise ValueError(f"browse_path {text!r} must start with '/' (the Root folder), e.g. /Objects/2:Boiler/2:Temperature")
    parts = text[1:].split("/")
    if not parts or any(not p for p in parts):
        raise ValueError(f"browse_path {text!r} has an empty element")
    out = []
    for part in parts:
        m = _ELEMENT.match(part)
        assert m is not None  # the pattern matches every non-empty string
        ns = int(m.group(1)) if m.group(1) else 0
        if ns > 65535:
            raise ValueError(f"browse_path {text!r}: namespace index {ns} is above 65535")
        out.append((ns, m.group(2)))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class OpcUaPoint:
    """One validated tag of an OPC UA device, as the driver uses it.

    ``name`` is the registry key once the gateway has renamed it; ``value_type`` the registry data
    type of its values and ``array`` whether they are one-dimensional arrays of it.
    """

    name: str
    value_type: str
    node: NodeRef | None = None
    browse_path: tuple[tuple[int, str], ...] | None = None
    array: bool = False
    writable: bool = False
    sampling_interval_s: float = 0.5
    queue_size: int = 1
    deadband_type: DeadbandType = "none"
    deadband_value: float = 0.0

    @property
    def address(self) -> str:
        """The node as configured, for log lines."""
        if self.node is not None:
            return self.node.text()
        assert self.browse_path is not None
        return "/" + "/".join(f"{ns}:{name}" if ns else name for ns, name in self.browse_path)
