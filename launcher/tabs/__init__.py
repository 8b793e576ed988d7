"""The launcher's built-in tabs, one module each, in the issue's priority
order. Each tab is a class with the module contract's hooks (NAME, LABEL,
build_tab, on_refresh, on_close), so the app treats tabs and modules alike.
"""

BUILTIN_TABS = (
    ("fleet", "launcher.tabs.fleet_tab", "FleetTab"),
    ("tasks", "launcher.tabs.tasks_tab", "TasksTab"),
    ("comm", "launcher.tabs.comm_tab", "CommTab"),
    ("hardware", "launcher.tabs.hardware_tab", "HardwareTab"),
    ("usage", "launcher.tabs.usage_tab", "UsageTab"),
    ("logs", "launcher.tabs.logs_tab", "LogsTab"),
    ("settings", "launcher.tabs.settings_tab", "SettingsTab"),
    ("modules", "launcher.tabs.modules_tab", "ModulesTab"),
)
BUILTIN_NAMES = frozenset(name for name, _, _ in BUILTIN_TABS)  # a module never takes one of these names
