"""Operator commands for connectors and routes: add, list, update, disable or enable a
connector; add (with failover priority and weight), list and remove routes. Running workers
follow every change within seconds."""

from __future__ import annotations

import argparse
from typing import Any

from broker import accounts, carriers
from broker.errors import InputError
from broker.resources import number
from broker.store import connectors as store
from broker.store.connectors import ConnectorChange, WhatsAppSpec
from cli.common import emit, fail, json_flag, with_db


def register(sub: Any) -> None:
    conn = sub.add_parser(
        "connector", help="connectors: SMPP carriers and WhatsApp numbers"
    ).add_subparsers(dest="action", required=True)
    p = conn.add_parser(
        "add",
        help="add an SMPP connector to a carrier, or a WhatsApp Cloud API number",
        description="--kind smpp (default) needs --host, --port, --system-id, --password;"
        " --kind whatsapp needs --url (the API base up to its version, e.g."
        " https://graph.facebook.com/v21.0), --phone-number-id, --token, --app-secret and"
        " --verify-token. Its status and inbound webhooks are POSTed by Meta to"
        " /webhooks/whatsapp/NAME on the API.",
    )
    p.add_argument("name")
    p.add_argument("--kind", choices=("smpp", "whatsapp"), default="smpp")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument("--system-id")
    p.add_argument("--password")
    p.add_argument("--url", help="whatsapp: the Cloud API base URL, up to the version")
    p.add_argument("--phone-number-id", help="whatsapp: the sending number's id")
    p.add_argument("--token", help="whatsapp: the access token (Bearer)")
    p.add_argument("--app-secret", help="whatsapp: the app secret that signs webhooks")
    p.add_argument("--verify-token", help="whatsapp: what Meta's webhook verification presents")
    p.add_argument("--system-type", default="")
    p.add_argument("--binds", type=int, default=1)
    p.add_argument("--window", type=int, default=10, help="submit_sm in flight per bind")
    p.add_argument("--tps", type=float, default=None, help="messages per second (default: no cap)")
    p.add_argument("--bind-mode", choices=("trx", "tx_rx"), default="trx")
    p.add_argument(
        "--dlr-id-format",
        choices=("as-is", "hex", "dec"),
        default="as-is",
        help="how the carrier writes a message's id: as-is (the same text in submit_sm_resp"
        " and receipts), hex (hex in submit_sm_resp, decimal in receipts), dec (decimal in"
        " submit_sm_resp, hex in receipts). Whatever is set, a receipt matching no message is"
        " also tried in the other base before it is parked (ids of 6+ characters).",
    )
    p.add_argument("--long-mode", choices=("udh8", "udh16", "sar", "payload"), default="udh8")
    p.add_argument("--gsm7-packed", action="store_true", help="pack GSM7 septets on the wire")
    p.add_argument(
        "--failover-after",
        type=int,
        default=None,
        help="seconds without a bound bind after which routes pass the connector over (default 30)",
    )
    json_flag(p)
    p.set_defaults(func=cmd_connector_add)
    p = conn.add_parser("list", help="connectors: settings, enabled, out or in, slots leased")
    json_flag(p)
    p.set_defaults(func=cmd_connector_list)
    p = conn.add_parser(
        "update",
        help="change a connector's settings; workers rebind within seconds, no restart",
    )
    p.add_argument("name")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument("--system-id")
    p.add_argument("--password")
    p.add_argument("--binds", type=int)
    p.add_argument("--window", type=int)
    p.add_argument("--tps", help="messages per second; 'none' removes the cap")
    p.add_argument("--dlr-id-format", choices=("as-is", "hex", "dec"))
    p.add_argument("--long-mode", choices=("udh8", "udh16", "sar", "payload"))
    p.add_argument("--failover-after", type=int)
    json_flag(p)
    p.set_defaults(func=cmd_connector_update)
    for action, verb in (
        ("disable", "stop routing to and binding"),
        ("enable", "route to and bind"),
    ):
        p = conn.add_parser(action, help=f"{verb} a connector (workers follow within seconds)")
        p.add_argument("name")
        json_flag(p)
        p.set_defaults(func=cmd_connector_enable, enabled=action == "enable")

    route = sub.add_parser("route", help="routes by number prefix").add_subparsers(
        dest="action", required=True
    )
    p = route.add_parser("add", help="route a prefix (empty: default route) to a connector")
    p.add_argument("--prefix", required=True, help="digits of the E.164 number; '' for default")
    p.add_argument("--connector", required=True)
    p.add_argument("--price", default="1", help="credits per segment (default 1)")
    p.add_argument(
        "--channel",
        choices=("sms", "whatsapp"),
        default="sms",
        help="the channel routed (whatsapp: to a whatsapp connector, priced per message)",
    )
    p.add_argument(
        "--priority",
        type=int,
        help="add the connector beside the prefix's others (failover): lower is tried first;"
        " without it the connector becomes the prefix's only route",
    )
    p.add_argument("--weight", type=int, default=1, help="share within a priority (default 1)")
    json_flag(p)
    p.set_defaults(func=cmd_route_add)
    p = route.add_parser("list", help="every route: prefix, channel, connector, price, priority")
    json_flag(p)
    p.set_defaults(func=cmd_route_list)
    p = route.add_parser("remove", help="remove a prefix's routes (or one connector's of them)")
    p.add_argument("--prefix", required=True, help="digits; '' for the default route")
    p.add_argument("--channel", choices=("sms", "whatsapp"), default="sms")
    p.add_argument("--connector", help="only this connector's route of the prefix")
    json_flag(p)
    p.set_defaults(func=cmd_route_remove)


SMPP_REQUIRED = ("host", "port", "system_id", "password")
WHATSAPP_REQUIRED = ("url", "phone_number_id", "token", "app_secret", "verify_token")


def cmd_connector_add(args: argparse.Namespace) -> int:
    needed = SMPP_REQUIRED if args.kind == "smpp" else WHATSAPP_REQUIRED
    missing = [f"--{n.replace('_', '-')}" for n in needed if getattr(args, n) is None]
    if missing:
        return fail(InputError(f"a {args.kind} connector needs {', '.join(missing)}"), args.json)
    if args.kind == "whatsapp":
        spec = WhatsAppSpec(
            args.name, args.url, args.phone_number_id, args.token, args.app_secret,
            args.verify_token,
        )  # fmt: skip
        return with_db(
            args.json,
            lambda conn: accounts.add_whatsapp_connector(conn, spec),
            lambda _: emit(args.json, {"name": args.name}, f"connector {args.name} added"),
        )
    values = {
        "name": args.name,
        "host": args.host,
        "port": args.port,
        "system_id": args.system_id,
        "password": args.password,
        "system_type": args.system_type,
        "binds": args.binds,
        "window_size": args.window,
        "tps": args.tps,
        "bind_mode": args.bind_mode,
        "dlr_id_format": args.dlr_id_format,
        "long_mode": args.long_mode,
        "gsm7_packed": args.gsm7_packed,
    }

    async def add(conn: Any) -> None:
        async with conn.transaction():
            await accounts.add_connector(conn, values)
            if args.failover_after is not None:
                change = ConnectorChange(failover_after=args.failover_after)
                await carriers.update_connector(conn, args.name, change)

    return with_db(
        args.json,
        add,
        lambda _: emit(args.json, {"name": args.name}, f"connector {args.name} added"),
    )


def cmd_route_add(args: argparse.Namespace) -> int:
    try:
        price = accounts.parse_amount(args.price, field="price", allow_negative=False)
    except InputError as exc:
        return fail(exc, args.json)
    return with_db(
        args.json,
        lambda conn: accounts.add_route(
            conn,
            args.prefix,
            args.connector,
            price,
            args.channel,
            failover=None if args.priority is None else (args.priority, args.weight),
        ),
        lambda route_id: emit(
            args.json,
            {
                "id": route_id,
                "prefix": args.prefix,
                "connector": args.connector,
                "price": price,
                "channel": args.channel,
            },
            ("whatsapp " if args.channel == "whatsapp" else "")
            + f"route {args.prefix or '(default)'} -> {args.connector} at {price}"
            + ("/message" if args.channel == "whatsapp" else "/segment"),
        ),
    )


def cmd_connector_list(args: argparse.Namespace) -> int:
    def show(rows: list[Any]) -> None:
        shown = [
            {
                "name": r["name"],
                "kind": r["kind"],
                "host": r["host"],
                "port": r["port"],
                "binds": r["binds"],
                "window": r["window_size"],
                "tps": number(r["tps"]),
                "enabled": r["enabled"],
                "failover_after": r["failover_after"],
                "out_since": r["out_since"].isoformat() if r["out_since"] else None,
                "out_reason": r["out_reason"],
                "slots_leased": r["slots_leased"],
            }
            for r in rows
        ]
        lines = [
            f"{c['name']:<20} {c['kind']:<8} {'enabled' if c['enabled'] else 'DISABLED':<8} "
            f"{'OUT since ' + c['out_since'] if c['out_since'] else 'in':<36} "
            f"binds {c['slots_leased']}/{c['binds']} window {c['window']} tps {c['tps'] or '-'}"
            for c in shown
        ]
        emit(args.json, {"data": shown}, "\n".join(lines) or "no connectors")

    return with_db(args.json, store.listing, show)


def _tps(raw: str | None) -> tuple[bool, float | None]:
    if raw is None:
        return False, None
    if raw.lower() == "none":
        return True, None
    try:
        return True, float(raw)
    except ValueError:
        raise InputError("--tps must be a number or 'none'", field="tps") from None


def cmd_connector_update(args: argparse.Namespace) -> int:
    try:
        set_tps, tps = _tps(args.tps)
    except InputError as exc:
        return fail(exc, args.json)
    change = ConnectorChange(
        host=args.host,
        port=args.port,
        system_id=args.system_id,
        password=args.password,
        binds=args.binds,
        window_size=args.window,
        set_tps=set_tps,
        tps=tps,
        dlr_id_format=args.dlr_id_format,
        long_mode=args.long_mode,
        failover_after=args.failover_after,
    )
    if change == ConnectorChange():
        return fail(InputError("give at least one setting to change"), args.json)
    return with_db(
        args.json,
        lambda conn: carriers.update_connector(conn, args.name, change),
        lambda _: emit(args.json, {"name": args.name}, f"connector {args.name} updated"),
    )


def cmd_connector_enable(args: argparse.Namespace) -> int:
    state = "enabled" if args.enabled else "disabled"
    return with_db(
        args.json,
        lambda conn: carriers.set_enabled(conn, args.name, args.enabled),
        lambda _: emit(
            args.json,
            {"name": args.name, "enabled": args.enabled},
            f"connector {args.name} {state}",
        ),
    )


def cmd_route_list(args: argparse.Namespace) -> int:
    def show(rows: list[Any]) -> None:
        shown = [
            {
                "prefix": r["prefix"],
                "channel": r["channel"],
                "connector": r["connector"],
                "price": number(r["price"]),
                "priority": r["priority"],
                "weight": r["weight"],
                "connector_enabled": r["enabled"],
                "connector_out": r["out_since"] is not None,
            }
            for r in rows
        ]
        lines = [
            f"{r['channel']:<9} {r['prefix'] or '(default)':<16} -> {r['connector']:<20} "
            f"price {r['price']} priority {r['priority']} weight {r['weight']}"
            + ("" if r["connector_enabled"] else " (connector disabled)")
            + (" (connector out)" if r["connector_out"] else "")
            for r in shown
        ]
        emit(args.json, {"data": shown}, "\n".join(lines) or "no routes")

    return with_db(args.json, store.route_list, show)


def cmd_route_remove(args: argparse.Namespace) -> int:
    return with_db(
        args.json,
        lambda conn: carriers.remove_route(conn, args.prefix, args.channel, args.connector),
        lambda n: emit(args.json, {"removed": n}, f"{n} route(s) removed"),
    )
