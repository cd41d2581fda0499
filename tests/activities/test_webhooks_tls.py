"""Webhooks over HTTPS to a real TLS receiver on loopback: the try connects to the
checked address and still verifies the certificate for the URL's name."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from activities.models import WebhookDelivery
from activities.services.webhooks import webhook_delivery_attempt, webhook_event_emit
from tests.factories import WebhookEndpointFactory
from tests.webhook_receiver import Receiver

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for the name localhost (and 127.0.0.1)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(tz=UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert_file), str(key_file)


@pytest.fixture(scope="module")
def tls_receiver(certificate):
    server = Receiver(tls=certificate).start()
    yield server
    server.stop()


def post_to(url: str) -> WebhookDelivery:
    endpoint = WebhookEndpointFactory(url=url)
    (event,) = webhook_event_emit("email.status_changed", {"id": 1}, endpoints=[endpoint])
    webhook_delivery_attempt(event_id=event.pk)
    return WebhookDelivery.objects.get(event=event)


def test_a_certificate_the_server_does_not_trust_is_a_failure(tls_receiver):
    delivery = post_to(f"https://localhost:{tls_receiver.port}/untrusted")
    assert not delivery.ok and delivery.status_code is None
    assert "CERTIFICATE_VERIFY_FAILED" in delivery.error
    assert tls_receiver.received("/untrusted") == []


def test_a_trusted_certificate_for_the_name_delivers(tls_receiver, certificate, monkeypatch):
    monkeypatch.setenv("SSL_CERT_FILE", certificate[0])  # trust the test's certificate
    delivery = post_to(f"https://localhost:{tls_receiver.port}/trusted")
    assert (delivery.ok, delivery.status_code) == (True, 200), delivery.error
    (request,) = tls_receiver.received("/trusted")
    assert request.headers["host"] == f"localhost:{tls_receiver.port}"
