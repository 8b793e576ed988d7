"""Launcher module commands: `module list|install|uninstall|update`, the
module hub of launcher/modules/hub.py (registry.json with SHA-256 per file),
shared with the launcher's Modules tab.
"""

from __future__ import annotations

from .common import EXIT_OK, CliError, Ctx, print_json, print_table


def _hub():
    from launcher.modules import hub

    return hub


def cmd_module(ctx: Ctx) -> int:
    hub = _hub()
    a = ctx.args
    try:
        if a.module_command == "list":
            installed = {i["name"]: i for i in hub.list_installed(ctx.cfg)}
            available = hub.load_registry(hub.registry_source(ctx.cfg, a.registry)) \
                if (a.registry or ctx.cfg["launcher"]["hub_registry"]) else []
            rows = [{"name": m["name"], "available": m["version"],
                     "installed": (installed.get(m["name"]) or {}).get("version"), "description": m["description"]}
                    for m in available]
            rows += [{"name": n, "available": None, "installed": i["version"], "description": ""}
                     for n, i in installed.items() if n not in {m["name"] for m in available}]
            if ctx.json:
                print_json({"modules": rows})
            elif not rows:
                print("no modules installed and no hub configured ([launcher] hub_registry)")
            else:
                print_table(["module", "installed", "available", "description"],
                            [[r["name"], r["installed"] or "-", r["available"] or "-", r["description"]]
                             for r in rows])
            return EXIT_OK
        if a.module_command == "install":
            res = hub.install(ctx.cfg, a.name, a.registry)
        elif a.module_command == "uninstall":
            res = hub.uninstall(ctx.cfg, a.name)
        else:
            names = [a.name] if a.name else [u["name"] for u in hub.updates(ctx.cfg, a.registry)]
            res = {"updated": [hub.install(ctx.cfg, n, a.registry) for n in names]}
    except hub.HubError as exc:
        raise CliError(str(exc)) from None
    if ctx.json:
        print_json(res)
    elif a.module_command == "install":
        print(f"installed {res['name']} {res['version']} (sha256 verified) to {res['path']}; {res['note']}")
    elif a.module_command == "uninstall":
        print(f"uninstalled {res['name']} ({res['removed']})")
    else:
        print("\n".join(f"updated {u['name']} to {u['version']}" for u in res["updated"]) or "all modules are current")
    return EXIT_OK


def register(sub, json_parent) -> None:
    p = sub.add_parser("module", help="launcher modules from the hub: list, install, uninstall, update")
    ms = p.add_subparsers(dest="module_command", metavar="list|install|uninstall|update", required=True)
    for name, text, needs_name in (("list", "installed modules and the hub's", None),
                                   ("install", "download, verify the SHA-256 and install a module", True),
                                   ("uninstall", "remove an installed module", True),
                                   ("update", "install newer versions (one module, or all)", False)):
        q = ms.add_parser(name, parents=[json_parent], help=text)
        if needs_name:
            q.add_argument("name")
        elif needs_name is False:
            q.add_argument("name", nargs="?")
        q.add_argument("--registry", metavar="URL|PATH", help="registry.json (default: [launcher] hub_registry)")
        q.set_defaults(func=cmd_module, _parser=q)
