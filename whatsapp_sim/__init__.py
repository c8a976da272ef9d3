"""A fake WhatsApp Business Cloud API shipped with the gateway, as smsc_sim fakes a carrier:
``smsbroker whatsapp-sim`` or in-process (tests)."""

from whatsapp_sim.server import SentRecord, WhatsAppSimConfig, WhatsAppSimulator

__all__ = ["SentRecord", "WhatsAppSimConfig", "WhatsAppSimulator"]
