"""A private Dovecot (Debian's ``dovecot-imapd`` and ``dovecot-pop3d``) on loopback, for
the mailbox polling tests.

Its own configuration in a folder of its own (``base_dir``, ``state_dir``, a maildir per
user, a passwd-file of test users), listeners on free 127.0.0.1 ports for IMAP, IMAPS,
POP3 and POP3S, and a certificate signed by a test CA made here (``ca_file``), run in
the foreground (``dovecot -F -c <conf>``) and stopped at the end. Dovecot refuses mail
access as root, so mail is owned by ``nobody`` when the tests run as root, else by the
user running them. Messages are put in a mailbox over IMAP APPEND, the real protocol.
"""

from __future__ import annotations

import datetime
import imaplib
import ipaddress
import os
import pwd
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from pathlib import Path

from .services import unavailable
from .smtp import free_port

DOVECOT = os.environ.get("CRM_DOVECOT", "/usr/sbin/dovecot")
PASSWORD = "s3cret-pass"
USERS = ("support", "alice", "pop")


def dovecot_binary() -> str | None:
    if Path(DOVECOT).is_file() and os.access(DOVECOT, os.X_OK):
        return DOVECOT
    return shutil.which("dovecot")


def _make_certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A test CA and a server certificate for 127.0.0.1 and localhost signed by it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "CRM test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file, cert_file, key_file = folder / "ca.pem", folder / "cert.pem", folder / "key.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_file.chmod(0o600)
    return ca_file, cert_file, key_file


class Dovecot:
    """One private dovecot process with the users of ``USERS`` (password ``PASSWORD``)."""

    def __init__(self, binary: str):
        self.binary = binary
        # Not under pytest's tmp folders: those are 0700 and mail is not owned by root.
        self.folder = Path(tempfile.mkdtemp(prefix="crm-dovecot-"))
        self.folder.chmod(0o755)
        self.ports = {name: free_port() for name in ("imap", "imaps", "pop3", "pop3s")}
        self.proc: subprocess.Popen | None = None
        self.ca_file, self.cert_file, self.key_file = _make_certificates(self.folder)

    def _mail_owner(self) -> pwd.struct_passwd:
        return pwd.getpwnam("nobody") if os.geteuid() == 0 else pwd.getpwuid(os.geteuid())

    def _write_config(self) -> Path:
        owner = self._mail_owner()
        mail = self.folder / "mail"
        mail.mkdir()
        os.chown(mail, owner.pw_uid, owner.pw_gid)
        users = self.folder / "users"
        users.write_text(
            "".join(
                f"{u}:{{PLAIN}}{PASSWORD}:{owner.pw_uid}:{owner.pw_gid}::{mail / u}::\n"
                for u in USERS
            )
        )
        me = pwd.getpwuid(os.geteuid()).pw_name
        internal = "dovecot" if os.geteuid() == 0 else me
        login = "dovenull" if os.geteuid() == 0 else me
        conf = self.folder / "dovecot.conf"
        conf.write_text(
            f"""
base_dir = {self.folder / "run"}
state_dir = {self.folder / "state"}
log_path = {self.folder / "dovecot.log"}
protocols = imap pop3
listen = 127.0.0.1
default_internal_user = {internal}
default_login_user = {login}
first_valid_uid = 1
ssl = yes
ssl_cert = <{self.cert_file}
ssl_key = <{self.key_file}
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
mail_location = maildir:~/Maildir
pop3_uidl_format = %08Xu%08Xv
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {users}
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {users}
}}
service imap-login {{
  inet_listener imap {{
    port = {self.ports["imap"]}
  }}
  inet_listener imaps {{
    port = {self.ports["imaps"]}
    ssl = yes
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    port = {self.ports["pop3"]}
  }}
  inet_listener pop3s {{
    port = {self.ports["pop3s"]}
    ssl = yes
  }}
}}
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
"""
        )
        return conf

    def start(self, *, timeout: float = 20.0) -> Dovecot:
        conf = self._write_config()
        self.proc = subprocess.Popen(
            [self.binary, "-F", "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while not all(self._answers(port) for port in self.ports.values()):
            if self.proc.poll() is not None:
                raise RuntimeError(f"dovecot exited: {self.log()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"dovecot not answering after {timeout}s: {self.log()}")
            time.sleep(0.05)
        return self

    @staticmethod
    def _answers(port: int) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            return False

    def log(self) -> str:
        path = self.folder / "dovecot.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else "(no log)"

    def log_size(self) -> int:
        path = self.folder / "dovecot.log"
        return path.stat().st_size if path.exists() else 0

    def wait_for_log(self, pattern: str, *, since: int, timeout: float = 10.0) -> re.Match[str]:
        """The first match of ``pattern`` in what the log got after offset ``since``
        (dovecot writes a session's last line as the session ends, a moment later)."""
        deadline = time.monotonic() + timeout
        while True:
            with open(self.folder / "dovecot.log", "rb") as log:
                log.seek(since)
                found = re.search(pattern, log.read().decode(errors="replace"))
            if found:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"no {pattern!r} in dovecot's log: {self.log()}")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None
        shutil.rmtree(self.folder, ignore_errors=True)

    # --- the test's own client, over the real protocol --------------------------------

    def imap(self, user: str) -> imaplib.IMAP4:
        """A logged-in IMAP connection (plain, loopback) for ``user``."""
        conn = imaplib.IMAP4("127.0.0.1", self.ports["imap"], timeout=10)
        conn.login(user, PASSWORD)
        return conn

    def append(self, user: str, raw: bytes, *, folder: str = "INBOX") -> None:
        conn = self.imap(user)
        try:
            if folder != "INBOX":
                conn.create(folder)  # NO when it exists: fine
            typ, data = conn.append(folder, "", None, raw)
            assert typ == "OK", data
        finally:
            conn.logout()

    def messages(self, user: str, *, folder: str = "INBOX") -> list[tuple[set[str], bytes]]:
        """Each message of a folder: its flags and its bytes (read without marking)."""
        conn = self.imap(user)
        try:
            typ, _ = conn.select(folder, readonly=True)
            if typ != "OK":
                return []
            _, data = conn.uid("SEARCH", "ALL")
            found = []
            for uid in data[0].split():
                _, parts = conn.uid("FETCH", uid, "(FLAGS BODY.PEEK[])")
                head, body = parts[0]  # type: ignore[misc]
                flags = set(imaplib.ParseFlags(head))  # type: ignore[arg-type]
                found.append(({f.decode() for f in flags}, body))
            return found
        finally:
            conn.logout()

    def uids(self, user: str, *, folder: str = "INBOX") -> list[int]:
        conn = self.imap(user)
        try:
            conn.select(folder, readonly=True)
            _, data = conn.uid("SEARCH", "ALL")
            return [int(u) for u in data[0].split()]
        finally:
            conn.logout()

    def clear(self, user: str) -> None:
        """Empty the user's INBOX and delete every other folder."""
        conn = self.imap(user)
        try:
            _, folders = conn.list()
            for line in folders:
                found = re.match(r'\((.*?)\) ("[^"]*"|NIL) (.+)', (line or b"").decode())
                name = found.group(3).strip('"') if found else ""
                if name and name != "INBOX":
                    conn.delete(f'"{name}"')
            _, count = conn.select("INBOX")
            if int(count[0] or 0):
                conn.store("1:*", "+FLAGS.SILENT", r"(\Deleted)")
                conn.expunge()
        finally:
            conn.logout()


def ssl_context(server: Dovecot) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(server.ca_file))


def start_dovecot() -> Dovecot:
    binary = dovecot_binary()
    if binary is None:
        unavailable(
            "needs Dovecot (Debian's dovecot-imapd and dovecot-pop3d; bin/test installs them)"
        )
    server = Dovecot(binary)  # type: ignore[arg-type]
    try:
        return server.start()
    except RuntimeError as exc:
        server.stop()
        unavailable(f"could not start dovecot: {exc}")
        raise
