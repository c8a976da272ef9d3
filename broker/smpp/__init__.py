"""SMPP 3.4, ESME side, in layers that do not know about each other's concerns.

- ``constants``, ``pdu``: the pure codec (bytes <-> :class:`~broker.smpp.pdu.Pdu`).
- ``receipt``: delivery receipts and message-id canonical forms (pure).
- ``session``: one bind's state machine (pure: no I/O, no clock).
- ``throttle``: the connector's send rate (pure, time passed in).
- ``client``: one bind over TCP, the asyncio transport that feeds a session.
- ``connector``: several binds to one carrier, as the submit worker uses them.
"""
