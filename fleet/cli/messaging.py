"""Messaging commands: send, broadcast, inbox and notes (the channel scratchpad).
A message that parses as JSON is stored as JSON, anything else as text.
"""

from __future__ import annotations

import json

from .common import (
    EXIT_OK,
    SENDER,
    Ctx,
    UsageError,
    fmt_ts,
    parse_iso,
    positive_int,
    print_json,
    print_table,
    short,
)

CHANNELS = ("fleet", "sup", "agent", "pool")


def _body(text: str):
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return text
    return value if isinstance(value, (dict, list)) else text


def _decoded(rows: list[dict]) -> list[dict]:
    out = []
    for r in rows:
        r = dict(r)
        try:
            r["body"] = json.loads(r["body"]) if isinstance(r["body"], str) and r["body"][:1] in "{[" else r["body"]
        except json.JSONDecodeError:
            pass
        out.append(r)
    return out


def cmd_send(ctx: Ctx) -> int:
    a = ctx.args
    mid = ctx.store.send_message(SENDER, a.agent, _body(a.message), channel=a.channel)
    known = {x["name"] for x in ctx.store.list_agents()}
    if ctx.json:
        print_json({"message_id": mid, "recipient": a.agent, "channel": a.channel, "registered": a.agent in known})
    else:
        print(f"message {mid} sent to {a.agent} on {a.channel}"
              + ("" if a.agent in known else f" (note: no agent named {a.agent} is registered yet)"))
    return EXIT_OK


def cmd_broadcast(ctx: Ctx) -> int:
    a = ctx.args
    ids = ctx.store.broadcast(SENDER, _body(a.message), channel=a.channel)
    if ctx.json:
        print_json({"message_ids": ids, "channel": a.channel, "recipients": len(ids)})
    else:
        print(f"broadcast on {a.channel} to {len(ids)} agent(s)")
    return EXIT_OK


def cmd_inbox(ctx: Ctx) -> int:
    a = ctx.args
    # mark_read stays off: reading an agent's inbox must not take its messages.
    rows = _decoded(ctx.store.inbox(a.agent, unread_only=not a.all, limit=a.limit, channel=a.channel))
    if ctx.json:
        print_json({"agent": a.agent, "messages": rows})
        return EXIT_OK
    if not rows:
        print(f"no {'' if a.all else 'unread '}messages for {a.agent}")
        return EXIT_OK
    print_table(["id", "from", "channel", "sent", "read", "message"],
                [[r["id"], r["sender"], r["channel"], fmt_ts(r["created_at"]), "yes" if r.get("read_at") else "",
                  short(r["body"], 70)] for r in rows])
    return EXIT_OK


def cmd_notes(ctx: Ctx) -> int:
    a = ctx.args
    store = ctx.store
    if a.post is not None:
        try:
            body = json.loads(a.post)
        except json.JSONDecodeError as exc:
            raise UsageError(f"--post must be JSON ({exc.msg}); quote text as '\"like this\"'") from None
        nid = store.post_note(a.channel, body, author=SENDER)
        if ctx.json:
            print_json({"note_id": nid, "channel": a.channel})
        else:
            print(f"note {nid} posted to {a.channel}")
        return EXIT_OK
    since = parse_iso(a.since, "--since") if a.since else None
    rows = _decoded(store.notes(a.channel, since=since, limit=a.limit))
    if ctx.json:
        print_json({"channel": a.channel, "notes": rows})
        return EXIT_OK
    if not rows:
        print(f"no notes in {a.channel}")
        return EXIT_OK
    print_table(["id", "author", "posted", "note"],
                [[r["id"], r["author"], fmt_ts(r["created_at"]), short(r["body"], 80)] for r in rows])
    return EXIT_OK


def register(sub, json_parent) -> None:
    p = sub.add_parser("send", parents=[json_parent], help="message one agent")
    p.add_argument("agent")
    p.add_argument("message", help="text, or JSON such as '{\"type\": \"pause\"}'")
    p.add_argument("--channel", choices=CHANNELS, default="agent")
    p.set_defaults(func=cmd_send)

    p = sub.add_parser("broadcast", parents=[json_parent], help="message every registered agent")
    p.add_argument("message")
    p.add_argument("--channel", choices=CHANNELS, default="fleet")
    p.set_defaults(func=cmd_broadcast)

    p = sub.add_parser("inbox", parents=[json_parent], help="an agent's messages (unread by default; not marked read)")
    p.add_argument("agent")
    p.add_argument("--all", action="store_true", help="read messages too")
    p.add_argument("--limit", type=positive_int, default=50)
    p.add_argument("--channel", choices=CHANNELS)
    p.set_defaults(func=cmd_inbox)

    p = sub.add_parser("notes", parents=[json_parent], help="read or post to a channel scratchpad")
    p.add_argument("channel")
    p.add_argument("--post", metavar="JSON", help="add a note (JSON)")
    p.add_argument("--since", metavar="ISO", help="only notes from this UTC date/time on")
    p.add_argument("--limit", type=positive_int, default=50)
    p.set_defaults(func=cmd_notes)
