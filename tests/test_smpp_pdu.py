"""The SMPP codec against hand-built frames from the SMPP 3.4 specification, and properties."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.errors import SmppError
from broker.smpp.constants import RESPONSE_BIT, CommandId, Status, Tag
from broker.smpp.pdu import (
    LAYOUTS,
    FrameReader,
    Pdu,
    SmppCodecError,
    cstring_tlv,
    decode_pdu,
    encode_pdu,
    int_tlv,
    tlv_cstring,
    tlv_int,
)


def frame(command_id: int, status: int, seq: int, body: bytes = b"") -> bytes:
    return struct.pack(">IIII", 16 + len(body), command_id, status, seq) + body


SUBMIT_BODY = (
    b"\x00"  # service_type
    b"\x05\x00"
    b"Bank\x00"  # source ton, npi, addr
    b"\x01\x01"
    b"4915112345678\x00"  # dest ton, npi, addr
    b"\x00\x00\x00"  # esm_class, protocol_id, priority_flag
    b"\x00"
    b"000001000000000R\x00"  # schedule_delivery_time, validity_period (relative)
    b"\x01\x00\x00\x00"  # registered_delivery, replace_if_present, data_coding, sm_default_msg_id
    b"\x05hello"
)
ESM = SUBMIT_BODY.index(b"4915112345678\x00") + 14  # offset of esm_class
SUBMIT_FIELDS: dict[str, int | str | bytes] = {
    "service_type": "",
    "source_addr_ton": 5,
    "source_addr_npi": 0,
    "source_addr": "Bank",
    "dest_addr_ton": 1,
    "dest_addr_npi": 1,
    "destination_addr": "4915112345678",
    "esm_class": 0,
    "protocol_id": 0,
    "priority_flag": 0,
    "schedule_delivery_time": "",
    "validity_period": "000001000000000R",
    "registered_delivery": 1,
    "replace_if_present_flag": 0,
    "data_coding": 0,
    "sm_default_msg_id": 0,
    "short_message": b"hello",
}

TABLE = [
    pytest.param(Pdu(CommandId.ENQUIRE_LINK, 1), frame(0x15, 0, 1), id="enquire_link"),
    pytest.param(
        Pdu(CommandId.ENQUIRE_LINK_RESP, 0x7FFFFFFF),
        frame(0x80000015, 0, 0x7FFFFFFF),
        id="enquire_link_resp",
    ),
    pytest.param(
        Pdu(CommandId.GENERIC_NACK, 7, Status.ESME_RINVCMDID),
        frame(0x80000000, 3, 7),
        id="generic_nack",
    ),
    pytest.param(Pdu(CommandId.UNBIND, 9), frame(6, 0, 9), id="unbind"),
    pytest.param(
        Pdu(
            CommandId.BIND_TRANSCEIVER,
            1,
            body={
                "system_id": "smppclient1",
                "password": "password",
                "system_type": "",
                "interface_version": 0x34,
                "addr_ton": 0,
                "addr_npi": 0,
                "address_range": "",
            },
        ),
        frame(9, 0, 1, b"smppclient1\x00password\x00\x00\x34\x00\x00\x00"),
        id="bind_transceiver",
    ),
    pytest.param(
        Pdu(
            CommandId.BIND_TRANSMITTER_RESP,
            1,
            body={"system_id": "SMSC"},
            tlvs={Tag.SC_INTERFACE_VERSION: b"\x34"},
        ),
        frame(0x80000002, 0, 1, b"SMSC\x00\x02\x10\x00\x01\x34"),
        id="bind_transmitter_resp+tlv",
    ),
    pytest.param(
        Pdu(CommandId.SUBMIT_SM, 2, body=SUBMIT_FIELDS),
        frame(4, 0, 2, SUBMIT_BODY),
        id="submit_sm",
    ),
    pytest.param(
        Pdu(CommandId.SUBMIT_SM_RESP, 2, body={"message_id": "a1b2c3"}),
        frame(0x80000004, 0, 2, b"a1b2c3\x00"),
        id="submit_sm_resp",
    ),
    pytest.param(
        Pdu(CommandId.SUBMIT_SM_RESP, 3, 0x58),
        frame(0x80000004, 0x58, 3),
        id="submit_sm_resp refused without body",
    ),
    pytest.param(
        Pdu(CommandId.SUBMIT_SM_RESP, 4, 0x400),
        frame(0x80000004, 0x400, 4),
        id="vendor status kept",
    ),
    pytest.param(
        Pdu(
            CommandId.DELIVER_SM,
            5,
            body={**SUBMIT_FIELDS, "esm_class": 4},
            tlvs={Tag.RECEIPTED_MESSAGE_ID: b"a1b2c3\x00", Tag.MESSAGE_STATE: b"\x02"},
        ),
        frame(
            5,
            0,
            5,
            SUBMIT_BODY[:ESM]
            + b"\x04"
            + SUBMIT_BODY[ESM + 1 :]
            + b"\x00\x1e\x00\x07a1b2c3\x00"
            + b"\x04\x27\x00\x01\x02",
        ),
        id="deliver_sm receipt with TLVs",
    ),
    pytest.param(
        Pdu(CommandId.DELIVER_SM_RESP, 5, body={"message_id": ""}),
        frame(0x80000005, 0, 5, b"\x00"),
        id="deliver_sm_resp",
    ),
    pytest.param(
        Pdu(
            CommandId.DATA_SM,
            6,
            body={
                "service_type": "",
                "source_addr_ton": 1,
                "source_addr_npi": 1,
                "source_addr": "1",
                "dest_addr_ton": 1,
                "dest_addr_npi": 1,
                "destination_addr": "2",
                "esm_class": 0,
                "registered_delivery": 0,
                "data_coding": 8,
            },
            tlvs={Tag.MESSAGE_PAYLOAD: b"\x00h\x00i"},
        ),
        frame(0x103, 0, 6, b"\x00\x01\x011\x00\x01\x012\x00\x00\x00\x08\x04\x24\x00\x04\x00h\x00i"),
        id="data_sm",
    ),
    pytest.param(
        Pdu(CommandId.OUTBIND, 1, body={"system_id": "SMSC", "password": "pw"}),
        frame(0x0B, 0, 1, b"SMSC\x00pw\x00"),
        id="outbind",
    ),
    pytest.param(
        Pdu(
            CommandId.QUERY_SM_RESP,
            8,
            body={
                "message_id": "42",
                "final_date": "",
                "message_state": 2,
                "error_code": 0,
            },
        ),
        frame(0x80000003, 0, 8, b"42\x00\x00\x02\x00"),
        id="query_sm_resp",
    ),
    pytest.param(Pdu(0x00000077, 9), frame(0x77, 0, 9), id="unknown command"),
]


@pytest.mark.parametrize(("pdu", "wire"), TABLE)
def test_encode_matches_spec_bytes(pdu: Pdu, wire: bytes) -> None:
    assert encode_pdu(pdu) == wire


@pytest.mark.parametrize(("pdu", "wire"), TABLE)
def test_decode_matches_spec_bytes(pdu: Pdu, wire: bytes) -> None:
    assert decode_pdu(wire) == pdu


def test_missing_fields_encode_as_defaults() -> None:
    sparse = Pdu(CommandId.SUBMIT_SM, 2, body={"destination_addr": "1", "short_message": b"x"})
    decoded = decode_pdu(encode_pdu(sparse))
    assert decoded.body["destination_addr"] == "1"
    assert decoded.body["source_addr"] == ""
    assert decoded.body["data_coding"] == 0
    assert decoded.body["short_message"] == b"x"


def test_unknown_command_body_is_skipped() -> None:
    decoded = decode_pdu(frame(0x00010203, 0, 3, b"whatever\x00\x01"))
    assert decoded == Pdu(0x00010203, 3)


def test_final_message_id_without_nul_is_accepted() -> None:
    decoded = decode_pdu(frame(0x80000004, 0, 2, b"abc"))
    assert decoded.body == {"message_id": "abc"}


def test_response_maker() -> None:
    request = Pdu(CommandId.SUBMIT_SM, 11, body=SUBMIT_FIELDS)
    assert request.response(message_id="x") == Pdu(
        CommandId.SUBMIT_SM_RESP, 11, 0, {"message_id": "x"}
    )
    assert request.response(Status.ESME_RX_T_APPN).command_status == 0x64
    with pytest.raises(SmppCodecError):
        request.response().response()


def test_tlv_helpers() -> None:
    pdu = Pdu(
        CommandId.DELIVER_SM,
        1,
        tlvs={
            Tag.MESSAGE_STATE: int_tlv(2, 1),
            Tag.USER_MESSAGE_REFERENCE: int_tlv(513, 2),
            Tag.RECEIPTED_MESSAGE_ID: cstring_tlv("AbC"),
            Tag.ADDITIONAL_STATUS_INFO_TEXT: b"no nul",
            Tag.NETWORK_ERROR_CODE: b"",
        },
    )
    assert tlv_int(pdu, Tag.MESSAGE_STATE) == 2
    assert tlv_int(pdu, Tag.USER_MESSAGE_REFERENCE) == 513
    assert tlv_int(pdu, Tag.NETWORK_ERROR_CODE) is None
    assert tlv_int(pdu, Tag.SAR_MSG_REF_NUM) is None
    assert tlv_cstring(pdu, Tag.RECEIPTED_MESSAGE_ID) == "AbC"
    assert tlv_cstring(pdu, Tag.ADDITIONAL_STATUS_INFO_TEXT) == "no nul"
    assert tlv_cstring(pdu, Tag.SOURCE_PORT) is None
    with pytest.raises(SmppCodecError):
        int_tlv(256, 1)


BAD_FRAMES = [
    pytest.param(b"\x00\x00\x00\x10\x00\x00", id="shorter than header"),
    pytest.param(struct.pack(">IIII", 20, 0x15, 0, 1), id="length larger than frame"),
    pytest.param(frame(9, 0, 1, b"sys\x00pw\x00"), id="bind body truncated"),
    pytest.param(frame(9, 0, 1, b"sys"), id="request cstring without NUL"),
    pytest.param(frame(4, 0, 1, SUBMIT_BODY[:-6] + b"\x09hello"), id="sm_length overruns"),
    pytest.param(frame(0x15, 0, 1, b"\x00\x1e\x00"), id="truncated TLV header"),
    pytest.param(frame(0x15, 0, 1, b"\x00\x1e\x00\x09abc"), id="TLV length overruns"),
]


@pytest.mark.parametrize("wire", BAD_FRAMES)
def test_bad_frames_raise_codec_error(wire: bytes) -> None:
    with pytest.raises(SmppCodecError) as info:
        decode_pdu(wire)
    assert isinstance(info.value, SmppError)


def test_codec_error_names_the_pdu() -> None:
    with pytest.raises(SmppCodecError) as info:
        decode_pdu(frame(0x15, 0, 77, b"\x00\x1e\x00\x09abc"))
    assert info.value.sequence_number == 77
    assert info.value.command_id == CommandId.ENQUIRE_LINK
    assert info.value.status == Status.ESME_RINVPARLEN


BAD_VALUES = [
    pytest.param(Pdu(CommandId.SUBMIT_SM, 1, body={"source_addr": "x" * 21}), id="too long"),
    pytest.param(Pdu(CommandId.SUBMIT_SM, 1, body={"source_addr": "a\x00b"}), id="NUL"),
    pytest.param(Pdu(CommandId.SUBMIT_SM, 1, body={"source_addr": "€"}), id="not octets"),
    pytest.param(Pdu(CommandId.SUBMIT_SM, 1, body={"source_addr": b"x"}), id="bytes for str"),
    pytest.param(Pdu(CommandId.SUBMIT_SM, 1, body={"esm_class": 256}), id="int range"),
    pytest.param(Pdu(CommandId.SUBMIT_SM, 1, body={"esm_class": "1"}), id="str for int"),
    pytest.param(Pdu(CommandId.SUBMIT_SM, 1, body={"short_message": b"x" * 255}), id="sm 255"),
    pytest.param(Pdu(CommandId.ENQUIRE_LINK, 2**32), id="sequence range"),
    pytest.param(Pdu(0x77, 1, body={"a": 1}), id="body for unknown command"),
    pytest.param(Pdu(CommandId.ENQUIRE_LINK, 1, tlvs={0x10000: b""}), id="tag range"),
    pytest.param(
        Pdu(CommandId.DATA_SM, 1, tlvs={Tag.MESSAGE_PAYLOAD: b"x" * 70000}), id="frame too big"
    ),
]


@pytest.mark.parametrize("pdu", BAD_VALUES)
def test_unencodable_values_raise_codec_error(pdu: Pdu) -> None:
    with pytest.raises(SmppCodecError):
        encode_pdu(pdu)


# --- properties --------------------------------------------------------------------------

_octet_text = st.text(st.characters(min_codepoint=1, max_codepoint=255))


def _field_value(kind: int, size: int) -> st.SearchStrategy[int | str | bytes]:
    if kind == 0:
        return st.text(st.characters(min_codepoint=1, max_codepoint=255), max_size=size - 1)
    if kind == 1:
        return st.integers(0, 255)
    return st.binary(max_size=size)


@st.composite
def pdus(draw: st.DrawFn) -> Pdu:
    command_id = draw(st.sampled_from(sorted(LAYOUTS)) | st.integers(0, 0xFFFFFFFF))
    sequence = draw(st.integers(0, 0xFFFFFFFF))
    status = draw(st.integers(0, 0xFFFFFFFF))
    layout = LAYOUTS.get(command_id)
    if layout is None:
        return Pdu(command_id, sequence, status)
    if command_id & RESPONSE_BIT and status and draw(st.booleans()):
        return Pdu(command_id, sequence, status)  # refused response without body
    body = {name: draw(_field_value(kind, size)) for name, kind, size in layout}
    tlvs = draw(st.dictionaries(st.integers(0, 0xFFFF), st.binary(max_size=300), max_size=4))
    return Pdu(command_id, sequence, status, body, tlvs)


@given(pdus())
def test_round_trip(pdu: Pdu) -> None:
    assert decode_pdu(encode_pdu(pdu)) == pdu


@given(st.lists(pdus(), min_size=1, max_size=8), st.data())
def test_frame_reader_any_chunking(batch: list[Pdu], data: st.DataObject) -> None:
    stream = b"".join(encode_pdu(p) for p in batch)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=20)))
    reader = FrameReader()
    frames: list[bytes] = []
    start = 0
    for cut in [*cuts, len(stream)]:
        frames += reader.feed(stream[start:cut])
        start = cut
    assert [decode_pdu(f) for f in frames] == batch
    assert reader.buffered == 0


@given(st.binary(max_size=200))
def test_decode_garbage_raises_only_codec_error(garbage: bytes) -> None:
    try:
        pdu = decode_pdu(garbage)
    except SmppCodecError as exc:
        assert exc.status != 0
    else:
        assert len(garbage) >= 16
        assert pdu.sequence_number == int.from_bytes(garbage[12:16], "big")


@pytest.mark.parametrize("length", [0, 15, 65537, 0xFFFFFFFF])
def test_frame_reader_rejects_bad_lengths(length: int) -> None:
    reader = FrameReader()
    with pytest.raises(SmppCodecError):
        reader.feed(struct.pack(">I", length) + b"\x00" * 12)


def test_frame_reader_waits_for_whole_frame() -> None:
    reader = FrameReader()
    wire = encode_pdu(Pdu(CommandId.ENQUIRE_LINK, 5))
    assert reader.feed(wire[:3]) == []
    assert reader.feed(wire[3:10]) == []
    assert reader.feed(wire[10:] + wire[:1]) == [wire]
    assert reader.buffered == 1
