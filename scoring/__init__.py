"""The Azure-compatible scoring server (`inferplane serve`) and what entry scripts import from it.

    from scoring import AMLResponse, input_schema, output_schema

Importing this package stays light (no Flask, no gunicorn), so a score.py can use it freely.
"""

from scoring.response import AMLResponse
from scoring.schema import input_schema, output_schema

__all__ = ["AMLResponse", "input_schema", "output_schema"]
