"""The base of built-in tabs: the module contract's hooks with do-nothing
defaults, so a tab implements only what it uses. Owns no fleet state.
"""

from __future__ import annotations


class Tab:
    NAME = ""
    LABEL = ""
    VERSION = "builtin"
    DEFAULT_ENABLED = True
    DEPENDS_ON: list[str] = []
    DATA_SCHEMA = None

    def __init__(self, app):
        self.app = app
        self.client = app.client

    def build_tab(self, parent) -> None:
        raise NotImplementedError

    def on_refresh(self) -> None:
        pass

    def on_close(self) -> None:
        pass

    def get_settings(self) -> dict:
        return {}

    def apply_settings(self, cfg: dict) -> None:
        pass

    def export_data(self) -> list[dict]:
        return []

    def validate_record(self, data) -> tuple[bool, str]:
        return True, "OK"

    def run(self, key: str, fn, on_done=None, on_error=None) -> bool:
        """Background work owned by this tab: `fn` on a worker thread, `on_done(result)` back on the Tk thread."""
        return self.app.run(f"{self.NAME}:{key}", fn, on_done, on_error, owner=self)
