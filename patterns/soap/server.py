"""SOAP 1.1: document/literal XML envelopes over HTTP (aiohttp), with a published WSDL.

    POST /soap          GetUser, ListUsers, CreateOrder (SOAPAction "urn:patternbench:users:v1#Op")
    GET  /soap?wsdl     the WSDL 1.1 description

Faults follow SOAP 1.1: HTTP 500 with a soap:Fault whose faultcode is soap:Client for a bad
request (not XML, no envelope, unknown operation, invalid values, a DTD) and whose detail
carries an HTTP-like code. A document type declaration is refused outright (SOAP 1.1
forbids them), which also shuts out entity-expansion attacks. Bodies over the configured
size get 413.

Run it by hand with `python -m patterns.soap.server --port 8080`.
"""

from __future__ import annotations

import re
from xml.etree import ElementTree

from aiohttp import web

from common import server as runtime
from common.dataset import Dataset, OrderInputError
from patterns.soap.protocol import NS, SOAP_ENV

MAX_PER_PAGE = 100
_ENVELOPE_OPEN = (
    f'<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="{SOAP_ENV}" '
    f'xmlns:u="{NS}"><soap:Body>'
)
_ENVELOPE_CLOSE = "</soap:Body></soap:Envelope>"
_BODY = f"{{{SOAP_ENV}}}Body"


class Fault(Exception):
    def __init__(self, code: int, message: str, faultcode: str = "soap:Client") -> None:
        super().__init__(message)
        self.code = code
        self.faultcode = faultcode


def escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _element(name: str, value: object) -> str:
    text = escape(value) if isinstance(value, str) else str(value)
    return f"<u:{name}>{text}</u:{name}>"


def item_xml(item: dict) -> str:
    return (
        f"<u:item>{_element('sku', item['sku'])}{_element('quantity', item['quantity'])}"
        f"{_element('priceCents', item['price_cents'])}</u:item>"
    )


def order_xml(order: dict) -> str:
    return (
        f"<u:order>{_element('id', order['id'])}{_element('userId', order['user_id'])}"
        f"{_element('status', order['status'])}{_element('currency', order['currency'])}"
        f"{_element('totalCents', order['total_cents'])}"
        f"{_element('createdAt', order['created_at'])}"
        f"<u:items>{''.join(item_xml(item) for item in order['items'])}</u:items></u:order>"
    )


def user_fields_xml(user: dict) -> str:
    return (
        f"{_element('id', user['id'])}{_element('name', user['name'])}"
        f"{_element('email', user['email'])}{_element('tier', user['tier'])}"
        f"{_element('createdAt', user['created_at'])}"
    )


def user_xml(user: dict) -> str:
    orders = "".join(order_xml(order) for order in user["orders"])
    return (
        f"<u:user>{user_fields_xml(user)}{_element('bio', user['bio'])}"
        f"<u:orders>{orders}</u:orders></u:user>"
    )


def summary_xml(summary: dict) -> str:
    order_count = _element("orderCount", summary["order_count"])
    return f"<u:user>{user_fields_xml(summary)}{order_count}</u:user>"


def _text(element: ElementTree.Element, name: str) -> str:
    child = element.find(f"{{{NS}}}{name}")
    if child is None or child.text is None:
        raise Fault(422, f"{name} is missing")
    return child.text.strip()


INTEGER = re.compile(r"-?[0-9]{1,18}")  # "--5" and "²" are not integers, nor 19 digits


def _integer(element: ElementTree.Element, name: str) -> int:
    text = _text(element, name)
    if not INTEGER.fullmatch(text):
        raise Fault(422, f"{name} must be an integer")
    return int(text)


def get_user(dataset: Dataset, request: ElementTree.Element) -> str:
    user_id = _integer(request, "id")
    user = dataset.user(user_id)
    if user is None:
        raise Fault(404, f"no user with id {user_id}")
    return f"<u:GetUserResponse>{user_xml(user)}</u:GetUserResponse>"


def list_users(dataset: Dataset, request: ElementTree.Element) -> str:
    page, per_page = _integer(request, "page"), _integer(request, "perPage")
    if page < 1 or not 1 <= per_page <= MAX_PER_PAGE:
        raise Fault(422, f"page must be >= 1 and perPage from 1 to {MAX_PER_PAGE}")
    users = "".join(summary_xml(summary) for summary in dataset.page(page, per_page))
    return (
        f"<u:ListUsersResponse>{_element('page', page)}{_element('perPage', per_page)}"
        f"{_element('total', len(dataset.users))}<u:users>{users}</u:users></u:ListUsersResponse>"
    )


def create_order(dataset: Dataset, request: ElementTree.Element) -> str:
    user_id = _integer(request, "userId")
    items = [
        {
            "sku": _text(item, "sku"),
            "quantity": _integer(item, "quantity"),
            "price_cents": _integer(item, "priceCents"),
        }
        for item in request.iterfind(f"{{{NS}}}items/{{{NS}}}item")
    ]
    try:
        order = dataset.create_order(user_id, _text(request, "currency"), items)
    except OrderInputError as exc:
        raise Fault(422, str(exc)) from None
    except KeyError:
        raise Fault(404, f"no user with id {user_id}") from None
    return f"<u:CreateOrderResponse>{order_xml(order)}</u:CreateOrderResponse>"


OPERATIONS = {"GetUser": get_user, "ListUsers": list_users, "CreateOrder": create_order}


def enveloped(body: str) -> str:
    """A SOAP 1.1 envelope around `body`, as this server writes it."""
    return _ENVELOPE_OPEN + body + _ENVELOPE_CLOSE


def get_user_answer(user: dict) -> str:
    """The whole answer to GetUser for `user`, as this server writes it."""
    return enveloped(f"<u:GetUserResponse>{user_xml(user)}</u:GetUserResponse>")


def envelope(body: str, status: int = 200) -> web.Response:
    return web.Response(
        text=enveloped(body),
        status=status,
        content_type="text/xml",
        charset="utf-8",
    )


def fault_response(fault: Fault) -> web.Response:
    # SOAP 1.1 section 6.2: a fault is reported with HTTP 500.
    return envelope(
        f"<soap:Fault><faultcode>{fault.faultcode}</faultcode>"
        f"<faultstring>{escape(str(fault))}</faultstring>"
        f"<detail><u:error>{_element('code', fault.code)}</u:error></detail></soap:Fault>",
        status=500,
    )


def operation_of(raw: bytes) -> ElementTree.Element:
    """The operation element inside the envelope's body, or a Fault."""
    if b"<!DOCTYPE" in raw:  # XML is case-sensitive: this is the only spelling
        raise Fault(400, "document type declarations are not allowed in SOAP messages")
    try:
        root = ElementTree.fromstring(raw)
    except ElementTree.ParseError as exc:
        raise Fault(400, f"not well-formed XML: {exc}") from None
    except LookupError as exc:  # an XML declaration naming an encoding Python lacks
        raise Fault(400, f"unsupported encoding: {exc}") from None
    if root.tag != f"{{{SOAP_ENV}}}Envelope":
        raise Fault(400, "not a SOAP 1.1 envelope", "soap:VersionMismatch")
    body = root.find(_BODY)
    if body is None or len(body) != 1:
        raise Fault(400, "the envelope's Body must hold exactly one operation")
    return body[0]


async def handle(request: web.Request) -> web.Response:
    try:
        operation = operation_of(await request.read())
        namespace, _, name = operation.tag[1:].partition("}")
        handler = OPERATIONS.get(name) if namespace == NS else None
        if handler is None:
            raise Fault(400, f"unknown operation {operation.tag}")
        action = request.headers.get("SOAPAction", "").strip('"')
        if action and action != f"{NS}#{name}":
            raise Fault(400, f"SOAPAction {action!r} does not match the operation {name}")
        return envelope(handler(request.app[DATASET], operation))
    except Fault as fault:
        return fault_response(fault)


async def wsdl(request: web.Request) -> web.Response:
    if "wsdl" not in request.query:
        return web.Response(status=405, text="POST SOAP envelopes here; GET ?wsdl for the WSDL")
    location = f"http://{request.host}/soap"
    return web.Response(text=WSDL.replace("{location}", location), content_type="text/xml")


async def health(_request: web.Request) -> web.Response:
    return web.Response(text="ok")


DATASET = web.AppKey("dataset", Dataset)


def build_app(dataset: Dataset, max_request_bytes: int) -> web.Application:
    app = web.Application(client_max_size=max_request_bytes)
    app[DATASET] = dataset
    app.router.add_post("/soap", handle)
    app.router.add_get("/soap", wsdl)
    app.router.add_get("/health", health)
    return app


def main() -> None:
    runtime.run_server(__doc__, runtime.dataset_app_server(build_app))


WSDL = """<?xml version="1.0" encoding="utf-8"?>
<definitions name="UserService" targetNamespace="urn:patternbench:users:v1"
    xmlns="http://schemas.xmlsoap.org/wsdl/"
    xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/"
    xmlns:xsd="http://www.w3.org/2001/XMLSchema"
    xmlns:u="urn:patternbench:users:v1">
  <types>
    <xsd:schema targetNamespace="urn:patternbench:users:v1" elementFormDefault="qualified">
      <xsd:complexType name="Item">
        <xsd:sequence>
          <xsd:element name="sku" type="xsd:string"/>
          <xsd:element name="quantity" type="xsd:int"/>
          <xsd:element name="priceCents" type="xsd:long"/>
        </xsd:sequence>
      </xsd:complexType>
      <xsd:complexType name="Items">
        <xsd:sequence><xsd:element name="item" type="u:Item" maxOccurs="100"/></xsd:sequence>
      </xsd:complexType>
      <xsd:complexType name="Order">
        <xsd:sequence>
          <xsd:element name="id" type="xsd:long"/>
          <xsd:element name="userId" type="xsd:long"/>
          <xsd:element name="status" type="xsd:string"/>
          <xsd:element name="currency" type="xsd:string"/>
          <xsd:element name="totalCents" type="xsd:long"/>
          <xsd:element name="createdAt" type="xsd:string"/>
          <xsd:element name="items" type="u:Items"/>
        </xsd:sequence>
      </xsd:complexType>
      <xsd:complexType name="User">
        <xsd:sequence>
          <xsd:element name="id" type="xsd:long"/>
          <xsd:element name="name" type="xsd:string"/>
          <xsd:element name="email" type="xsd:string"/>
          <xsd:element name="tier" type="xsd:string"/>
          <xsd:element name="createdAt" type="xsd:string"/>
          <xsd:element name="bio" type="xsd:string" minOccurs="0"/>
          <xsd:element name="orderCount" type="xsd:int" minOccurs="0"/>
          <xsd:element name="orders" minOccurs="0">
            <xsd:complexType>
              <xsd:sequence>
                <xsd:element name="order" type="u:Order" minOccurs="0" maxOccurs="unbounded"/>
              </xsd:sequence>
            </xsd:complexType>
          </xsd:element>
        </xsd:sequence>
      </xsd:complexType>
      <xsd:element name="GetUser">
        <xsd:complexType><xsd:sequence>
          <xsd:element name="id" type="xsd:long"/>
        </xsd:sequence></xsd:complexType>
      </xsd:element>
      <xsd:element name="GetUserResponse">
        <xsd:complexType><xsd:sequence>
          <xsd:element name="user" type="u:User"/>
        </xsd:sequence></xsd:complexType>
      </xsd:element>
      <xsd:element name="ListUsers">
        <xsd:complexType><xsd:sequence>
          <xsd:element name="page" type="xsd:int"/>
          <xsd:element name="perPage" type="xsd:int"/>
        </xsd:sequence></xsd:complexType>
      </xsd:element>
      <xsd:element name="ListUsersResponse">
        <xsd:complexType><xsd:sequence>
          <xsd:element name="page" type="xsd:int"/>
          <xsd:element name="perPage" type="xsd:int"/>
          <xsd:element name="total" type="xsd:int"/>
          <xsd:element name="users">
            <xsd:complexType><xsd:sequence>
              <xsd:element name="user" type="u:User" minOccurs="0" maxOccurs="100"/>
            </xsd:sequence></xsd:complexType>
          </xsd:element>
        </xsd:sequence></xsd:complexType>
      </xsd:element>
      <xsd:element name="CreateOrder">
        <xsd:complexType><xsd:sequence>
          <xsd:element name="userId" type="xsd:long"/>
          <xsd:element name="currency" type="xsd:string"/>
          <xsd:element name="items" type="u:Items"/>
        </xsd:sequence></xsd:complexType>
      </xsd:element>
      <xsd:element name="CreateOrderResponse">
        <xsd:complexType><xsd:sequence>
          <xsd:element name="order" type="u:Order"/>
        </xsd:sequence></xsd:complexType>
      </xsd:element>
      <xsd:element name="error">
        <xsd:complexType><xsd:sequence>
          <xsd:element name="code" type="xsd:int"/>
        </xsd:sequence></xsd:complexType>
      </xsd:element>
    </xsd:schema>
  </types>
  <message name="GetUserInput"><part name="body" element="u:GetUser"/></message>
  <message name="GetUserOutput"><part name="body" element="u:GetUserResponse"/></message>
  <message name="ListUsersInput"><part name="body" element="u:ListUsers"/></message>
  <message name="ListUsersOutput"><part name="body" element="u:ListUsersResponse"/></message>
  <message name="CreateOrderInput"><part name="body" element="u:CreateOrder"/></message>
  <message name="CreateOrderOutput"><part name="body" element="u:CreateOrderResponse"/></message>
  <portType name="UserPortType">
    <operation name="GetUser">
      <input message="u:GetUserInput"/><output message="u:GetUserOutput"/>
    </operation>
    <operation name="ListUsers">
      <input message="u:ListUsersInput"/><output message="u:ListUsersOutput"/>
    </operation>
    <operation name="CreateOrder">
      <input message="u:CreateOrderInput"/><output message="u:CreateOrderOutput"/>
    </operation>
  </portType>
  <binding name="UserBinding" type="u:UserPortType">
    <soap:binding style="document" transport="http://schemas.xmlsoap.org/soap/http"/>
    <operation name="GetUser">
      <soap:operation soapAction="urn:patternbench:users:v1#GetUser"/>
      <input><soap:body use="literal"/></input><output><soap:body use="literal"/></output>
    </operation>
    <operation name="ListUsers">
      <soap:operation soapAction="urn:patternbench:users:v1#ListUsers"/>
      <input><soap:body use="literal"/></input><output><soap:body use="literal"/></output>
    </operation>
    <operation name="CreateOrder">
      <soap:operation soapAction="urn:patternbench:users:v1#CreateOrder"/>
      <input><soap:body use="literal"/></input><output><soap:body use="literal"/></output>
    </operation>
  </binding>
  <service name="UserService">
    <port name="UserPort" binding="u:UserBinding">
      <soap:address location="{location}"/>
    </port>
  </service>
</definitions>
"""


if __name__ == "__main__":
    main()
