"""secret_rotate skill: checks keys_registry.toml (fleet.key_registry) for keys
past their rotation period and raises a warning alert naming them; or, with
{"action": "rotate", "key": K}, asks the operator to rotate K now. A check
that finds nothing overdue acknowledges its earlier warning. It reads
only the registry, never a secret's value (it cannot rotate by itself: a new
key comes from its provider, through `lead_client.py secret rotate KEY`).
"""

from __future__ import annotations

from fleet.skills._common import SkillError

DESCRIPTION = ("Report the API keys past their rotation period (keys_registry.toml) and raise a warning alert; "
               "or request the rotation of one key. Reads no secret value.")
REQUIRES_NETWORK = False
REQUIRES_MODEL = False
LOCAL_ONLY = True
IDEMPOTENT = True   # a repeat bumps the same open alert
TIMEOUT_S = 60
PAYLOAD_SCHEMA = {
    "type": "object",
    "properties": {
        "action": {"enum": ["check", "rotate"], "description": "check (default): report overdue keys; "
                                                               "rotate: ask for KEY to be rotated now"},
        "key": {"type": "string", "maxLength": 200, "description": "the secret's name (action rotate)"},
    },
    "additionalProperties": False,
}
ALERT_COMPONENT = "secret_rotate"


def _describe(entry: dict) -> str:
    late = f"{entry['overdue_days']:g} days overdue" if entry["overdue_days"] is not None else "never rotated"
    return f"{entry['key']} ({entry['provider']}, every {entry['rotation_days']:g} days; {late})"


def run(payload: dict, config: dict, log) -> dict:
    from fleet import key_registry
    from fleet.db import shared_store

    action = payload.get("action", "check")
    try:
        registry = key_registry.read_registry(config)
    except key_registry.RegistryError as exc:
        raise SkillError(str(exc)) from None
    store = shared_store(config)
    if action == "rotate":
        key = payload.get("key")
        if not key:
            raise SkillError('secret_rotate: action "rotate" needs "key", the secret\'s name')
        if key not in registry:
            raise SkillError(f"secret_rotate: {key} is not in {key_registry.registry_path(config)}; "
                             f"keys there: {', '.join(sorted(registry)) or '(none)'}")
        alert_id = store.raise_alert(
            "warning", ALERT_COMPONENT,
            f"rotation of {key} ({registry[key]['provider']}) requested: issue a new key at the provider, then "
            f"run `lead_client.py secret rotate {key}` and revoke the old one",
            dedup_key=f"{ALERT_COMPONENT}:rotate:{key}")
        log.info("rotation of %s requested (alert %s)", key, alert_id)
        return {"action": "rotate", "key": key, "alert_id": alert_id}
    overdue = key_registry.overdue_keys(config)
    alert_id = None
    if not overdue:  # every key rotated in time again: the warning has done its work
        for alert in store.list_alerts(active_only=True, limit=1000):
            if alert["dedup_key"] == f"{ALERT_COMPONENT}:overdue":
                store.ack_alert(alert["id"], by=ALERT_COMPONENT)
    if overdue:
        alert_id = store.raise_alert(
            "warning", ALERT_COMPONENT,
            f"{len(overdue)} key(s) past their rotation period: " + "; ".join(_describe(e) for e in overdue)
            + ". Rotate each with `lead_client.py secret rotate KEY`.",
            dedup_key=f"{ALERT_COMPONENT}:overdue")
    log.info("%d key(s) in the registry, %d overdue%s", len(registry), len(overdue),
             f" (alert {alert_id})" if alert_id else "")
    return {"action": "check", "checked": len(registry), "overdue": overdue, "alert_id": alert_id}
