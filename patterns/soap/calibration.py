"""SOAP's GetUser as wrk sends it, for `bench calibrate`."""

from __future__ import annotations

from xml.etree import ElementTree

from bench.loadtools import ProbeAnswer, ToolFailed, ToolProbe, ToolRequest
from patterns.soap.protocol import NS, SOAP_ENV


def soap_envelope(operation_xml: str) -> bytes:
    """The SOAP 1.1 envelope the harness's SOAP driver wraps its operations in."""
    return (
        f'<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="{SOAP_ENV}" '
        f'xmlns:u="{NS}"><soap:Body>{operation_xml}</soap:Body></soap:Envelope>'
    ).encode()


def _request(user_id: int) -> ToolRequest:
    return ToolRequest(
        "wrk",
        "POST",
        "/soap",
        (("Content-Type", "text/xml; charset=utf-8"), ("SOAPAction", f'"{NS}#GetUser"')),
        soap_envelope(f"<u:GetUser><u:id>{user_id}</u:id></u:GetUser>"),
    )


def _user(answer: ProbeAnswer) -> dict:
    try:
        envelope = ElementTree.fromstring(answer.body)
    except ElementTree.ParseError as exc:
        raise ToolFailed(f"the answer cannot be decoded: {exc}") from None
    user = envelope.find(f"{{{SOAP_ENV}}}Body/{{{NS}}}GetUserResponse/{{{NS}}}user")
    if user is None:
        raise ToolFailed(f"no GetUserResponse user in the answer: {answer.body[:160]!r}")
    return {
        "id": int(user.findtext(f"{{{NS}}}id") or 0),
        "email": user.findtext(f"{{{NS}}}email"),
    }


TOOL_PROBE = ToolProbe(_request, _user)
