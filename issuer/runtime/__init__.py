"""What every controller of the issuer stands on, built once per process.

cert-manager builds one ``controller.Context`` (clients, shared informers,
the Event recorder, options) and hands it to each controller it registers;
this package is that for pkiwarden: the API client and settings, the caches
(``caches``), the signing CAs by authority (``signers``), the re-issue pace a
rotation sets (``reissues``), work queues, leader election, health, metrics
and the Event recorder (``events``). Controllers (``issuer.controllers``)
import this package and ``shared``, never each other.
"""
