"""Certificates for the loopback control plane.

The apiserver only trusts clients that present a certificate signed by its
client CA, and kubectl only trusts an apiserver whose serving certificate
names the address it dials. Generating a throwaway CA per cluster keeps each
run hermetic (a test session, a demo): nothing is read from or written to ~/.kube.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# Long enough for any test session or demo, short enough that a leaked key is useless.
VALIDITY = dt.timedelta(days=2)
# Clock skew between this process and the Go binaries is zero, but a
# certificate that starts "now" can still be judged not-yet-valid by a
# verifier that truncates to seconds.
BACKDATE = dt.timedelta(minutes=5)

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@dataclass(frozen=True)
class KeyPair:
    """A certificate and its key, as written to disk."""

    cert_file: Path
    key_file: Path


def _new_key() -> ec.EllipticCurvePrivateKey:
    # P-256 is accepted by every Kubernetes component and is fast to generate.
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _write_private(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    path.chmod(0o600)


def _name(common_name: str, organizations: tuple[str, ...] = ()) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attrs)


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    """Signatures for every certificate; signing certificates and CRLs only for the CA, so a leaf
    key that leaks cannot mint more identities."""
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


class CertificateAuthority:
    """A self-signed CA that issues the serving and client certificates."""

    def __init__(self, directory: Path, common_name: str = "inferplane-e2e-ca") -> None:
        self.directory = directory
        self._key = _new_key()
        now = dt.datetime.now(dt.UTC)
        name = _name(common_name)
        self._cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(_key_usage(ca=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self._key.public_key()), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        directory.mkdir(parents=True, exist_ok=True)
        self.cert_file = directory / "ca.crt"
        self.key_file = directory / "ca.key"
        self.cert_file.write_bytes(_cert_pem(self._cert))
        _write_private(self.key_file, _key_pem(self._key))

    @property
    def cert_pem(self) -> bytes:
        """The CA certificate in PEM, e.g. for a webhook's caBundle."""
        return _cert_pem(self._cert)

    def issue(
        self,
        stem: str,
        common_name: str,
        *,
        organizations: tuple[str, ...] = (),
        dns_names: tuple[str, ...] = (),
        ip_addresses: tuple[str, ...] = (),
        server: bool = False,
        client: bool = False,
    ) -> KeyPair:
        """Issue a leaf certificate and write ``<stem>.crt`` / ``<stem>.key``.

        The organizations become the Kubernetes groups of a client certificate
        (``system:masters`` makes it a cluster admin); the subject alternative
        names are what a TLS client checks a serving certificate against.
        """
        if not (server or client):
            raise ValueError("a certificate must be for a server, a client, or both")
        key = _new_key()
        now = dt.datetime.now(dt.UTC)
        usages = []
        if server:
            usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
        if client:
            usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name, organizations))
            .issuer_name(self._cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(ca=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()),
                critical=False,
            )
        )
        sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns_names]
        sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses]
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(self._key, hashes.SHA256())
        pair = KeyPair(self.directory / f"{stem}.crt", self.directory / f"{stem}.key")
        pair.cert_file.write_bytes(_cert_pem(cert))
        _write_private(pair.key_file, _key_pem(key))
        return pair

    def issue_loopback_server(self, stem: str, common_name: str) -> KeyPair:
        """A serving certificate for a process on this machine: what clients dial here is
        ``https://127.0.0.1:<port>`` or ``https://localhost:<port>``, so those are its names."""
        return self.issue(
            stem, common_name, dns_names=("localhost",), ip_addresses=("127.0.0.1",), server=True
        )


def write_service_account_keys(directory: Path) -> tuple[Path, Path]:
    """Write the key the apiserver signs service-account tokens with.

    Returns ``(private_key_file, public_key_file)``. RSA because it is the
    algorithm every token consumer (and every Kubernetes release) supports.
    """
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = directory / "sa.key"
    public = directory / "sa.pub"
    _write_private(private, _key_pem(key))
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public
