"""The router's serving certificate, picked up again when cert-manager or kubelet rotates the files.

asyncio's server takes one SSLContext when it starts listening and hands it to every connection, so a
rotated pair cannot be swapped into the server itself. Instead that first context carries an SNI
callback, which OpenSSL runs on every ClientHello (with or without a server name, on uvloop's
transports as on the stdlib's), and which moves the handshake onto the newest context that loaded:
the next connection gets the new certificate, established connections keep the session they
negotiated, and nothing restarts. Polling the files is `inferplane.serving.CertWatcher`, the watcher
the gunicorn servers use; a pair that does not load (the key written before the certificate) is
logged there, and the previous context goes on serving until a pair that loads arrives.
"""

from __future__ import annotations

import asyncio
import logging
import ssl

from inferplane.serving import CertWatcher

log = logging.getLogger("inferplane.router")

POLL_SECONDS = 2.0


def tls_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    """A server context for one pair; no CA store (client certificates are not asked for)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file)
    context.set_alpn_protocols(["http/1.1"])
    return context


class RotatingCertificate:
    """`listening` goes to `create_server`; every handshake ends up on `current`, the newest good pair."""

    def __init__(self, cert_file: str, key_file: str, poll_seconds: float = POLL_SECONDS) -> None:
        self.cert_file = cert_file
        self.key_file = key_file
        self.poll_seconds = poll_seconds
        self.current = tls_context(cert_file, key_file)
        self.listening = self.current
        self.listening.sni_callback = self._choose
        self._watcher: CertWatcher | None = None

    def _choose(self, connection: ssl.SSLObject, server_name: str | None, context: ssl.SSLContext) -> None:
        current = self.current
        if context is not current:
            connection.context = current  # SSL_set_SSL_CTX: this handshake now uses the new pair

    def reload(self) -> bool:
        """Load the files again; on success new handshakes use them. Runs on the event loop."""
        try:
            context = tls_context(self.cert_file, self.key_file)
        except (ssl.SSLError, OSError) as exc:
            log.error(
                "TLS files do not load as a pair; still serving the previous certificate",
                extra={"certfile": self.cert_file, "keyfile": self.key_file, "error": str(exc)},
            )
            return False
        self.current = context
        log.info(
            "TLS certificate reloaded; new connections get it, open ones keep theirs",
            extra={"certfile": self.cert_file},
        )
        return True

    def watch(self, loop: asyncio.AbstractEventLoop) -> None:
        """Poll the files from a thread and reload on the loop when they change and load as a pair."""
        watcher = CertWatcher(
            self.cert_file, self.key_file, self.poll_seconds, lambda: loop.call_soon_threadsafe(self.reload)
        )
        watcher.start()
        self._watcher = watcher

    def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.stop()
