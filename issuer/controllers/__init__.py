"""The issuer's controllers, siblings over one runtime (``issuer.runtime``).

Each folder is one controller with the same inside: ``inputs`` (what it
reads), ``decisions`` (pure, table-tested), ``effects`` (the writes) and
``reporting`` (Events, metrics, logs), tied together by its
``controller.py``. They never import each other (``make lint`` holds that);
what one needs from another goes through the runtime, as the Pki controller
learns a rotation's re-issue pace from ``issuer.runtime.reissues``. The list
of controllers a process runs is ``issuer.registry``.
"""
