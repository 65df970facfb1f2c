"""A request SOAP refuses, for the conformance suite (tests/test_conformance.py): an
operation the service does not offer, answered as SOAP 1.1 says a request's own fault is
(section 6.2): HTTP 500 with a soap:Fault whose faultcode is soap:Client."""

from __future__ import annotations

from xml.etree import ElementTree

import aiohttp

from bench.drivers.base import Target
from patterns.soap.protocol import NS, SOAP_ENV

EXPECTED_ERROR = "HTTP 500 with a SOAP Fault soap:Client"
ENVELOPE = (
    f'<?xml version="1.0"?><soap:Envelope xmlns:soap="{SOAP_ENV}" xmlns:u="{NS}">'
    "<soap:Body><u:DropTables/></soap:Body></soap:Envelope>"
)


async def bad_request(target: Target) -> str:
    """Call `DropTables`; describe the answer."""
    url = f"http://{target.host}:{target.port}/soap"
    headers = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{NS}#DropTables"'}
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=ENVELOPE.encode(), headers=headers) as response,
    ):
        body = await response.read()
    try:
        fault = ElementTree.fromstring(body).find(f"{{{SOAP_ENV}}}Body/{{{SOAP_ENV}}}Fault")
        shape = f"a SOAP Fault {fault.findtext('faultcode')}" if fault is not None else "no Fault"
    except ElementTree.ParseError:
        shape = f"the body {body[:80]!r}"
    return f"HTTP {response.status} with {shape}"
