#!/usr/bin/python3
"""Certificates for h2mesh's TLS tests, made at test time (nothing is committed). Debian's
python3-cryptography; P-256 keys; PEM files NAME.crt / NAME.key in --dir.

    test_pki.py --dir D ca NAME [--cn CN] [--ca PARENT]            a CA (an intermediate with --ca)
    test_pki.py --dir D leaf NAME --ca CA [--cn CN] [--dns H]... [--ip A]... [--uri U]...
                [--server] [--client] [--expired] [--not-yet-valid] [--days N] [--chain]

A leaf is valid from one hour ago for --days (default 2) unless --expired (ended an hour ago) or
--not-yet-valid (starts in a day). With neither --server nor --client it gets both extended key
usages. --chain appends the issuing CA's certificate to NAME.crt (for an intermediate CA).
The serial number is printed on stdout (decimal), so a test can tell two certificates apart.
"""

import argparse
import datetime
import ipaddress
import os
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def load(d, name):
    with open(os.path.join(d, name + ".crt"), "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())  # the first PEM block
    with open(os.path.join(d, name + ".key"), "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    return cert, key


def write(d, name, cert, key, chain=()):
    # Written next to the final name, then renamed: a watcher never reads half a file.
    for suffix, data in ((".key", key.private_bytes(serialization.Encoding.PEM,
                                                     serialization.PrivateFormat.PKCS8,
                                                     serialization.NoEncryption())),
                         (".crt", b"".join(c.public_bytes(serialization.Encoding.PEM)
                                           for c in (cert, *chain)))):
        path = os.path.join(d, name + suffix)
        with open(path + ".tmp", "wb") as f:
            f.write(data)
        os.chmod(path + ".tmp", 0o644)
        os.replace(path + ".tmp", path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    sub = ap.add_subparsers(dest="what", required=True)
    ca = sub.add_parser("ca")
    ca.add_argument("name")
    ca.add_argument("--cn")
    ca.add_argument("--ca")
    leaf = sub.add_parser("leaf")
    leaf.add_argument("name")
    leaf.add_argument("--ca", required=True)
    leaf.add_argument("--cn")
    leaf.add_argument("--dns", action="append", default=[])
    leaf.add_argument("--ip", action="append", default=[])
    leaf.add_argument("--uri", action="append", default=[])
    leaf.add_argument("--server", action="store_true")
    leaf.add_argument("--client", action="store_true")
    leaf.add_argument("--expired", action="store_true")
    leaf.add_argument("--not-yet-valid", action="store_true")
    leaf.add_argument("--days", type=int, default=2)
    leaf.add_argument("--chain", action="store_true")
    a = ap.parse_args()
    os.makedirs(a.dir, exist_ok=True)

    now = datetime.datetime.now(datetime.timezone.utc)
    key = ec.generate_private_key(ec.SECP256R1())
    serial = x509.random_serial_number()
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                                           a.cn or a.name)]))
               .public_key(key.public_key())
               .serial_number(serial)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                              critical=False))

    if a.what == "ca":
        if a.ca:
            issuer_cert, issuer_key = load(a.dir, a.ca)
        else:
            issuer_cert, issuer_key = None, key
        builder = (builder
                   .issuer_name(issuer_cert.subject if issuer_cert else
                                x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                                              a.cn or a.name)]))
                   .not_valid_before(now - datetime.timedelta(hours=1))
                   .not_valid_after(now + datetime.timedelta(days=30))
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                   .add_extension(x509.KeyUsage(False, False, False, False, False, True, True,
                                                False, False), critical=True))
        cert = builder.sign(issuer_key, hashes.SHA256())
        write(a.dir, a.name, cert, key)
        print(serial)
        return 0

    issuer_cert, issuer_key = load(a.dir, a.ca)
    if a.expired:
        start, end = now - datetime.timedelta(days=2), now - datetime.timedelta(hours=1)
    elif a.not_yet_valid:
        start, end = now + datetime.timedelta(days=1), now + datetime.timedelta(days=2)
    else:
        start, end = now - datetime.timedelta(hours=1), now + datetime.timedelta(days=a.days)
    names = [x509.DNSName(n) for n in a.dns]
    names += [x509.IPAddress(ipaddress.ip_address(n)) for n in a.ip]
    names += [x509.UniformResourceIdentifier(n) for n in a.uri]
    usages = []
    if a.server or not a.client:
        usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
    if a.client or not a.server:
        usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
    builder = (builder
               .issuer_name(issuer_cert.subject)
               .not_valid_before(start)
               .not_valid_after(end)
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(True, False, True, False, False, False, False, False,
                                            False), critical=True)
               .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                   issuer_key.public_key()), critical=False))
    if names:
        # A certificate with only a URI SAN (a SPIFFE identity) has an empty subject in SPIFFE's
        # rules, but a CN does no harm for these tests; the SAN is critical only then.
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    cert = builder.sign(issuer_key, hashes.SHA256())
    write(a.dir, a.name, cert, key, chain=(issuer_cert,) if a.chain else ())
    print(serial)
    return 0


if __name__ == "__main__":
    sys.exit(main())
