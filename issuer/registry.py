"""The controllers an issuer process runs, in the order they start.

A new controller is one more entry here; the runtime (``issuer.run``) starts
each the same way and none of them knows of the others.
"""

from __future__ import annotations

from issuer.controllers.authorities.controller import build as authorities
from issuer.controllers.pkis.controller import build as pkis
from issuer.runtime.context import Build

CONTROLLERS: tuple[Build, ...] = (pkis, authorities)
