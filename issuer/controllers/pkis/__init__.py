"""The Pki controller: one Pki in, its Secret and status out, people told.

``inputs`` (caches, the Secret, what wakes whom), ``decisions`` (pure: the
verdict, key reuse, the Secret body, status, messages), ``effects`` (Secret
and status writes), ``reporting`` (reasons, Events on the Pki and its
consuming Pods, the Pki's metrics); ``controller.py`` is the sequence.
"""
