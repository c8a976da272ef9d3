"""Segmentation engine: GSM 03.38 / UCS-2 encoding choice, SMS parts, wire bytes. Pure, no I/O."""

from broker.segmentation.model import ConcatInfo, DecodedMessage, Encoding, Segmentation
from broker.segmentation.splitting import DEFAULT_MAX_CHARS, split
from broker.segmentation.udh import build_udh
from broker.segmentation.wire import (
    DATA_CODING,
    decode_short_message,
    encode_parts,
    encode_text,
)

__all__ = [
    "DATA_CODING",
    "DEFAULT_MAX_CHARS",
    "ConcatInfo",
    "DecodedMessage",
    "Encoding",
    "Segmentation",
    "build_udh",
    "decode_short_message",
    "encode_parts",
    "encode_text",
    "split",
]
