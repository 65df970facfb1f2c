"""SOAP 1.1 client driver: XML envelopes POSTed over HTTP/1.1 keep-alive, answers parsed
with the standard library's ElementTree (its C parser) and checked."""

from __future__ import annotations

from xml.etree import ElementTree

from bench.drivers.base import Connection, Driver, ResponseInvalid
from bench.drivers.checks import (
    CheckedAnswers,
    check_created_order,
    check_page,
    check_user,
    snake_case,
)
from bench.drivers.http1 import Http1Connection, HttpResponse, host_header, post_request
from bench.workload import ExpectedAnswers, Operation
from patterns.soap.protocol import NS, SOAP_ENV

_OPEN = (
    f'<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="{SOAP_ENV}" '
    f'xmlns:u="{NS}"><soap:Body>'
).encode()
_CLOSE = b"</soap:Body></soap:Envelope>"
_BODY = f"{{{SOAP_ENV}}}Body"
_FAULT = f"{{{SOAP_ENV}}}Fault"


_INTEGER_FIELDS = frozenset(
    (
        "id",
        "userId",
        "quantity",
        "priceCents",
        "totalCents",
        "orderCount",
        "page",
        "perPage",
        "total",
    )
)
_LIST_FIELDS = frozenset(("orders", "items", "users"))  # containers of repeated elements


def _q(name: str) -> str:
    return f"{{{NS}}}{name}"


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def record(element: ElementTree.Element) -> dict:
    """An answer element as a record with the dataset's field names: integers where the
    WSDL says so, lists for repeated elements. A malformed value raises ResponseInvalid."""
    fields: dict = {}
    for child in element:
        name = _local(child.tag)
        if name in _LIST_FIELDS:
            fields[name] = [record(item) for item in child]
        elif name in _INTEGER_FIELDS:
            try:
                fields[name] = int(child.text or "")
            except ValueError:
                raise ResponseInvalid(f"{name} is not an integer: {child.text!r}") from None
        else:
            fields[name] = child.text or ""
    return snake_case(fields)


def request_of(operation: Operation) -> tuple[str, str]:
    """(operation name, its parameters as XML elements)."""
    if operation.name == "get_user":
        return "GetUser", f"<u:id>{operation.user_id}</u:id>"
    if operation.name == "list_users":
        return "ListUsers", (
            f"<u:page>{operation.page}</u:page><u:perPage>{operation.per_page}</u:perPage>"
        )
    items = "".join(
        f"<u:item><u:sku>{sku}</u:sku><u:quantity>{quantity}</u:quantity>"
        f"<u:priceCents>{price}</u:priceCents></u:item>"
        for sku, quantity, price in operation.items
    )
    return "CreateOrder", (
        f"<u:userId>{operation.user_id}</u:userId>"
        f"<u:currency>{operation.currency}</u:currency><u:items>{items}</u:items>"
    )


def answer_payload_bytes(body: bytes, name: str) -> int:
    """The bytes inside the answer's `<u:{name}Response>` element: its record(s). The XML
    declaration, the envelope and the response element itself are overhead."""
    start = body.find(b"<u:%sResponse" % name.encode())
    end = body.rfind(b"</u:%sResponse>" % name.encode())
    if start < 0 or end < 0:
        return 0
    return end - (body.index(b">", start) + 1)


class SoapConnection(Connection):
    def __init__(self, driver: SoapDriver, http: Http1Connection) -> None:
        self.driver = driver
        self.http = http
        self.expected: ExpectedAnswers = driver.context.expected

    async def send(self, operation: Operation) -> tuple[int, HttpResponse]:
        name, parameters = request_of(operation)
        action = b'SOAPAction: "%s#%s"\r\n' % (NS.encode(), name.encode())
        envelope = _OPEN + f"<u:{name}>{parameters}</u:{name}>".encode() + _CLOSE
        response = await self.http.request(
            post_request(b"/soap", self.driver.host, b"text/xml; charset=utf-8", envelope, action)
        )
        return response.arrived_ns, response

    def _answer(self, name: str, response: HttpResponse, operation: Operation):
        try:
            envelope = ElementTree.fromstring(response.body)
        except ElementTree.ParseError as exc:
            raise ResponseInvalid(f"{operation.name}: answer is not XML ({exc})") from None
        answer = envelope.find(_BODY)
        answer = answer[0] if answer is not None and len(answer) else None
        if answer is None:
            raise ResponseInvalid(f"{operation.name}: no body in the envelope")
        if answer.tag == _FAULT:
            raise ResponseInvalid(f"{operation.name}: fault: {answer.findtext('faultstring')}")
        if response.status != 200 or answer.tag != _q(f"{name}Response"):
            raise ResponseInvalid(f"{operation.name}: HTTP {response.status}, {answer.tag}")
        return answer

    def check(self, operation: Operation, response: HttpResponse) -> None:
        name, parameters = request_of(operation)
        payload = self.driver.payload
        payload.sent += len(parameters.encode())
        payload.received += answer_payload_bytes(response.body, name)
        # The first answer for a user is parsed and compared field by field; a later one
        # byte-identical to it is the same answer.
        key = operation.user_id
        checked = self.driver.checked
        known = operation.name == "get_user" and response.status == 200
        if known and checked.known(key, response.body):
            return
        answer = self._answer(name, response, operation)
        if operation.name == "get_user":
            user = answer.find(_q("user"))
            if user is None:
                raise ResponseInvalid("get_user: no user in the answer")
            check_user(operation, self.expected, record(user))
            checked.remember(key, response.body)
        elif operation.name == "list_users":
            page = record(answer)
            page["items"] = page.pop("users", None)
            check_page(operation, self.expected, page)
        else:
            order = answer.find(_q("order"))
            check_created_order(operation, record(order) if order is not None else None)

    async def close(self) -> None:
        self.http.close()


class SoapDriver(Driver):
    def __init__(self, target, context) -> None:
        super().__init__(target, context)
        self.host = host_header(target)
        self.ssl = target.client_ssl()  # HTTPS when the run asks for TLS; one context
        self.checked = CheckedAnswers()

    async def connect(self) -> SoapConnection:
        self.meter.opened()
        http = await Http1Connection.open(
            self.target.host, self.target.port, ssl_context=self.ssl, meter=self.meter
        )
        return SoapConnection(self, http)
