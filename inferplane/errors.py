"""Exceptions that carry the sentence a person will read.

They are raised deep in pure logic and turned into a response in exactly one place per front end
(an AdmissionReview denial, an HTTP 400, a CLI exit code), so the same words reach `kubectl`, the
offline CLI and the tests.
"""


class UserError(Exception):
    """Bad input from a person: a broken manifest, a bad flag, an unreadable file.

    The CLI prints `inferplane <command>: <message>` and exits 2; nothing is changed.
    """


class Denied(UserError):
    """The object is refused by policy: an unknown model or instance type, a conflicting value.

    The webhook answers `allowed: false` with this message (HTTP 200, code 403); the CLI exits 1.
    """


class BadRequest(UserError):
    """A request that does not parse (malformed AdmissionReview, wrong content type): HTTP 400."""
