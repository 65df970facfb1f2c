"""SOAP 1.1 client driver: XML envelopes POSTed over HTTP/1.1 keep-alive, answers parsed
with the standard library's ElementTree (its C parser) and checked."""

from __future__ import annotations

from xml.etree import ElementTree

from bench.drivers.base import Connection, Driver, ResponseInvalid
from bench.drivers.checks import check_created_order, check_page, check_user
from bench.drivers.http1 import Http1Connection, host_header, post_request
from bench.workload import ExpectedAnswers, Operation
from servers.soap import NS, SOAP_ENV

_OPEN = (
    f'<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="{SOAP_ENV}" '
    f'xmlns:u="{NS}"><soap:Body>'
).encode()
_CLOSE = b"</soap:Body></soap:Envelope>"
_BODY = f"{{{SOAP_ENV}}}Body"
_FAULT = f"{{{SOAP_ENV}}}Fault"


def _q(name: str) -> str:
    return f"{{{NS}}}{name}"


def _int(element: ElementTree.Element | None, name: str) -> int | None:
    child = element.find(_q(name)) if element is not None else None
    try:
        return int(child.text) if child is not None else None
    except (TypeError, ValueError):
        return None


class SoapConnection(Connection):
    def __init__(self, http: Http1Connection, host: bytes, expected: ExpectedAnswers) -> None:
        self.http = http
        self.host = host
        self.expected = expected

    async def _call(self, name: str, body: str, operation: Operation) -> ElementTree.Element:
        action = b'SOAPAction: "%s#%s"\r\n' % (NS.encode(), name.encode())
        envelope = _OPEN + body.encode() + _CLOSE
        response = await self.http.request(
            post_request(b"/soap", self.host, b"text/xml; charset=utf-8", envelope, action),
            len(envelope),
        )
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

    async def call(self, operation: Operation) -> None:
        if operation.name == "get_user":
            answer = await self._call(
                "GetUser", f"<u:GetUser><u:id>{operation.user_id}</u:id></u:GetUser>", operation
            )
            user = answer.find(_q("user"))
            if user is None:
                raise ResponseInvalid("get_user: no user in the answer")
            totals = [
                _int(order, "totalCents")
                for order in user.iterfind(f"{_q('orders')}/{_q('order')}")
            ]
            check_user(
                operation, self.expected, _int(user, "id"), user.findtext(_q("email")), totals
            )
        elif operation.name == "list_users":
            answer = await self._call(
                "ListUsers",
                f"<u:ListUsers><u:page>{operation.page}</u:page>"
                f"<u:perPage>{operation.per_page}</u:perPage></u:ListUsers>",
                operation,
            )
            users = list(answer.iterfind(f"{_q('users')}/{_q('user')}"))
            check_page(
                operation,
                self.expected,
                [_int(user, "id") for user in users],
                _int(users[0], "orderCount") if users else None,
            )
        else:
            items = "".join(
                f"<u:item><u:sku>{sku}</u:sku><u:quantity>{quantity}</u:quantity>"
                f"<u:priceCents>{price}</u:priceCents></u:item>"
                for sku, quantity, price in operation.items
            )
            answer = await self._call(
                "CreateOrder",
                f"<u:CreateOrder><u:userId>{operation.user_id}</u:userId>"
                f"<u:currency>{operation.currency}</u:currency><u:items>{items}</u:items>"
                "</u:CreateOrder>",
                operation,
            )
            order = answer.find(_q("order"))
            item_count = (
                len(order.findall(f"{_q('items')}/{_q('item')}")) if order is not None else 0
            )
            check_created_order(
                operation,
                _int(order, "id"),
                _int(order, "userId"),
                _int(order, "totalCents"),
                item_count,
            )

    async def close(self) -> None:
        self.http.close()


class SoapDriver(Driver):
    async def connect(self) -> SoapConnection:
        http = await Http1Connection.open(self.target.host, self.target.port, self.payload)
        return SoapConnection(http, host_header(self.target), self.context.expected)
