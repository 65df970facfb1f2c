"""What SOAP's server and driver agree on: the envelope's namespace and the service's."""

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
NS = "urn:patternbench:users:v1"
