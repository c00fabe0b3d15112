"""``pkiwarden ca``: the PkiAuthorities' state for a platform team, and rotation requests.

``render`` decides what is printed and asked for (pure); ``cli`` reads and
patches PkiAuthorities through the API server.
"""
