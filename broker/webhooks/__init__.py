"""Signed customer webhooks: signing, event envelopes, endpoint storage and delivery."""
