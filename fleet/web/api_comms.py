"""Communications endpoints: inter-agent message history and sending,
alerts with acknowledge, and channel notes (the fleet's scratchpads).
"""

from __future__ import annotations

from flask import Blueprint, jsonify

from fleet.db import CHANNELS

from .common import ApiError, actor, choice_arg, ctx, declared_body, doc, int_arg, json_body, str_arg
from .params import NON_BLANK

bp = Blueprint("comms", __name__)
SENDABLE_CHANNELS = tuple(ch for ch in CHANNELS if ch != "sup")  # "sup" is the control protocol's


@bp.get("/api/comms")
@doc("Inter-agent message history (oldest first)", tag="comms", query={
    "channel": {"type": "string", "enum": list(CHANNELS)},
    "limit": {"type": "integer", "minimum": 1, "maximum": 1000},
    "after_id": {"type": "integer", "minimum": 0},
    "before_id": {"type": "integer", "minimum": 0, "description": "only older messages (the next page back)"},
    "agent": {"type": "string", "maxLength": 200, "description": "only messages this agent sent or received"},
})
def comms():
    c = ctx()
    limit = int_arg("limit", 100, lo=1, hi=1000)
    # one more than asked: whether an older page exists
    msgs = c.store.messages(channel=choice_arg("channel", CHANNELS), limit=limit + 1,
                            after_id=int_arg("after_id", 0, lo=0), before_id=int_arg("before_id", None, lo=0),
                            agent=str_arg("agent"))
    return jsonify({"messages": msgs[-limit:], "more": len(msgs) > limit})


@bp.post("/api/comms")
@doc("Send a message to an agent (channel agent, fleet or pool)", tag="comms", body={
    "type": "object", "required": ["recipient", "body"], "properties": {
        "recipient": {"type": "string", "pattern": NON_BLANK}, "body": {"not": {"enum": [None, ""]}},
        "channel": {"type": "string", "enum": list(SENDABLE_CHANNELS)}}}, status=201)
def send():
    c = ctx()
    data = json_body()
    recipient, body = data.get("recipient"), data.get("body")
    channel = data.get("channel", "agent")
    if not isinstance(recipient, str) or not recipient.strip():
        raise ApiError(400, "recipient must be an agent name")
    if body is None or body == "":
        raise ApiError(400, "body must not be empty")
    if channel not in SENDABLE_CHANNELS:
        raise ApiError(400, f"channel must be one of {', '.join(SENDABLE_CHANNELS)}; "
                            "fleet control goes through /api/fleet/...")
    declared_body()
    mid = c.store.send_message(actor(), recipient.strip(), body, channel=channel)
    return jsonify({"id": mid}), 201


@bp.get("/api/alerts")
@doc("Alerts (info/warning/critical): active ones by default", tag="comms", query={
    "all": {"type": "boolean", "description": "include acknowledged alerts"},
    "limit": {"type": "integer", "minimum": 1, "maximum": 1000},
})
def alerts():
    c = ctx()
    include_all = choice_arg("all", ("true", "false", "1", "0"), "false") in ("true", "1")
    return jsonify({"alerts": c.store.list_alerts(active_only=not include_all,
                                                  limit=int_arg("limit", 100, lo=1, hi=1000))})


@bp.post("/api/alerts/ack/<int:alert_id>")
@doc("Acknowledge an alert", tag="comms", responses={"404": "no such alert"})
def ack(alert_id: int):
    return jsonify({"alert": ctx().store.ack_alert(alert_id, by=actor())})


@bp.get("/api/notes")
@doc("Note channels with counts, or the notes of one channel", tag="comms", query={
    "channel": {"type": "string", "maxLength": 100}, "limit": {"type": "integer", "minimum": 1, "maximum": 1000},
})
def notes():
    c = ctx()
    channel = str_arg("channel", max_len=100)
    if channel is None:
        return jsonify({"channels": c.store.note_channels()})
    return jsonify({"channel": channel, "notes": c.store.notes(channel, limit=int_arg("limit", 100, lo=1, hi=1000))})


@bp.post("/api/notes")
@doc("Post a note to a channel", tag="comms", body={
    "type": "object", "required": ["channel", "body"],
    "properties": {"channel": {"type": "string", "maxLength": 100, "pattern": NON_BLANK},
                   "body": {"type": "string", "pattern": NON_BLANK}}}, status=201)
def post_note():
    c = ctx()
    data = json_body()
    channel, body = data.get("channel"), data.get("body")
    if not isinstance(channel, str) or not channel.strip() or len(channel) > 100:
        raise ApiError(400, "channel must be a name of 1 to 100 characters")
    if not isinstance(body, str) or not body.strip():
        raise ApiError(400, "body must be non-empty text")
    declared_body()
    nid = c.store.post_note(channel.strip(), body, author=actor())
    return jsonify({"id": nid}), 201


def install(app, c) -> None:
    app.register_blueprint(bp)
