"""TLS contexts, the same for every pattern: servers present a certificate signed by the
run's throwaway CA (bench/network/tls.py makes them), clients verify it and the host name
(an IP address in the certificate's subjectAltName), never `verify=False`.

One place decides the TLS settings, so that no pattern gets a cheaper handshake than
another: TLS 1.3 only (1.2 would cost a cold start one more round trip, and decide a
ranking by itself), the library's default ciphers, no session resumption across
connections. Mosquitto is told the same (patterns/mqtt/broker.py). grpcio brings its own
TLS library (BoringSSL), whose TLS 1.3 sends a post-quantum key share beside X25519:
about 1 KB more per handshake than Python's OpenSSL, which the harness cannot turn off.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass


@dataclass(frozen=True)
class TlsFiles:
    """PEM files of a run's CA, the servers' certificate and the clients' (webhook
    receivers serve HTTPS on the client side of the path)."""

    ca_cert: str
    server_cert: str
    server_key: str
    client_cert: str
    client_key: str

    def server_args(self) -> list[str]:
        """What a server process is told (common/server.py reads these)."""
        return [
            "--tls-cert",
            self.server_cert,
            "--tls-key",
            self.server_key,
            "--tls-ca",
            self.ca_cert,
        ]


def server_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    """For a listener: presents `cert_file`; asks nothing of clients."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_cert_chain(cert_file, key_file)
    return context


def client_context(ca_file: str) -> ssl.SSLContext:
    """For a client: trusts only the run's CA, checks the certificate and the host name."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    return context
