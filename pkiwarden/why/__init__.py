"""``pkiwarden why TARGET``: from the object a user looks at to the root cause and the fix.

``targets`` parses TARGET, ``gather`` reads the cluster (the only I/O, and
only what a namespace ``view``/``edit`` role may read), ``facts`` holds what
was found, ``render`` turns facts into the verdict, text and JSON without I/O.
"""
