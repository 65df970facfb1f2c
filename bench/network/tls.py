"""A throwaway certificate authority per run, and the certificates it signs.

Servers get a certificate for every address a client may use to reach them (loopback
and the path's server address); webhook receivers, which serve HTTPS on the client side
of the path, get one for theirs. Keys are ECDSA P-256, the default of most public sites
today, so that the handshake costs what it costs in the field. The files stay in the
run folder (`tls/`), for inspection; nothing outside the run trusts them.
"""

from __future__ import annotations

import datetime
import ipaddress
import secrets
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from common.tls import TlsFiles

VALID_FOR = datetime.timedelta(days=2)
# The addresses a path gives the two sides (bench/network/link.py), and loopback.
SERVER_ADDRESSES = ("127.0.0.1", "::1", "198.18.0.1")
CLIENT_ADDRESSES = ("127.0.0.1", "::1", "198.18.0.2")


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _leaf(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_name: x509.Name,
    common_name: str,
    addresses: tuple[str, ...],
    folder: Path,
    stem: str,
) -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    names = [x509.DNSName("localhost")] + [
        x509.IPAddress(ipaddress.ip_address(address)) for address in addresses
    ]
    certificate = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALID_FOR)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    cert_path, key_path = folder / f"{stem}.crt", folder / f"{stem}.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    _write_key(key, key_path)
    return str(cert_path), str(key_path)


def make_tls_files(folder: Path) -> TlsFiles:
    """A new CA in `folder`, and a server and a client certificate signed by it."""
    folder.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    # A name of its own per CA: verifiers pick the issuer by name, and two runs' CAs with
    # one name make a wrong-CA failure read as a bad signature instead of an unknown CA.
    ca_name = _name(f"api-patterns-bench throwaway CA {secrets.token_hex(4)}")
    now = datetime.datetime.now(datetime.UTC)
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALID_FOR)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_path = folder / "ca.crt"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    server_cert, server_key = _leaf(ca_key, ca_name, "server", SERVER_ADDRESSES, folder, "server")
    client_cert, client_key = _leaf(ca_key, ca_name, "receiver", CLIENT_ADDRESSES, folder, "client")
    return TlsFiles(str(ca_path), server_cert, server_key, client_cert, client_key)
