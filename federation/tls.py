"""A self-signed CA and a server certificate signed by it, for TLS between Flower's SuperLink, SuperNodes
and ``flwr run`` (tests, loopback deployments, trying out a cluster). Real deployments should use
certificates from their own CA; the paths are all that :mod:`federation.deploy` needs.

``python -m federation.tls OUT_DIR [HOST ...]`` writes ``ca.crt``, ``ca.key``, ``server.pem`` and
``server.key`` into OUT_DIR with 127.0.0.1, ::1 and localhost plus every HOST (IP or DNS name) in the
server certificate's subject alternative names."""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

LOOPBACK = ("127.0.0.1", "::1", "localhost")


@dataclass(frozen=True)
class TlsFiles:
    """What the SuperLink needs (``ca_cert``, ``server_cert``, ``server_key``) and what clients need
    (``ca_cert`` only: SuperNodes' ``--root-certificates``, ``root-certificates`` of a flwr connection)."""

    ca_cert: Path
    server_cert: Path
    server_key: Path


def _san(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _write_private(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    os.chmod(path, 0o600)


def make_self_signed(out_dir: str | Path, hosts: tuple[str, ...] | list[str] = (), days: int = 30) -> TlsFiles:
    """Write a CA (``ca.crt``/``ca.key``) and a server certificate it signs (``server.pem``/``server.key``)
    valid for loopback plus ``hosts``. Existing files are overwritten."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.timezone.utc)
    start, end = now - dt.timedelta(minutes=5), now + dt.timedelta(days=days)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "QualBench Lab test CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    names = list(dict.fromkeys([*LOOPBACK, *hosts]))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(end)
        .add_extension(x509.SubjectAlternativeName([_san(h) for h in names]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    files = TlsFiles(out / "ca.crt", out / "server.pem", out / "server.key")
    files.ca_cert.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    _write_private(out / "ca.key", _key_pem(ca_key))
    files.server_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_private(files.server_key, _key_pem(key))
    return files


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m federation.tls", description=__doc__.split("\n\n")[0])
    p.add_argument("out_dir", help="directory for ca.crt, ca.key, server.pem, server.key")
    p.add_argument("hosts", nargs="*", help="extra IPs / DNS names of the SuperLink (loopback is always in)")
    p.add_argument("--days", type=int, default=30, help="validity in days (default 30)")
    a = p.parse_args(argv)
    files = make_self_signed(a.out_dir, a.hosts, a.days)
    print(f"CA certificate (give to SuperNodes and flwr): {files.ca_cert}\n"
          f"server certificate / key (SuperLink): {files.server_cert} {files.server_key}")


if __name__ == "__main__":
    main()
