"""skill_draft skill: a model drafts a new skill file into
knowledge/code_drafts/<name>_draft_<date>_<agent>.py. The draft is parsed with ast and
checked against the skill interface (run(payload, config, log), DESCRIPTION,
PAYLOAD_SCHEMA, honest flags); it is never imported, run or installed.
"""

from __future__ import annotations

import ast
import keyword
import re

from fleet.skills._common import (
    ModelOutputError,
    SkillError,
    agent_name,
    atomic_write_text,
    knowledge_path,
    today,
)
from fleet.skills._llm import ask_model

DESCRIPTION = ("Draft a new skill file with a model into knowledge/code_drafts/; the draft is syntax- and "
               "interface-checked (never imported, run or installed). Review it before copying to fleet/skills/.")
REQUIRES_MODEL = True
REQUIRES_NETWORK = False
LOCAL_ONLY = False
IDEMPOTENT = True
TIMEOUT_S = 600
PAYLOAD_SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "pattern": "^[a-z][a-z0-9_]{1,47}$", "description": "skill name (snake_case)"},
        "description": {"type": "string", "minLength": 10, "maxLength": 4000, "description": "what the skill must do"},
        "requires_network": {"type": "boolean"},
        "requires_model": {"type": "boolean"},
        "agent": {"type": "string", "maxLength": 64},
    },
    "required": ["name", "description"],
    "additionalProperties": False,
}
REQUIRED_CONSTANTS = ("DESCRIPTION", "PAYLOAD_SCHEMA", "REQUIRES_MODEL", "REQUIRES_NETWORK", "IDEMPOTENT", "TIMEOUT_S")
NETWORK_MODULES = {"httpx", "requests", "urllib.request", "http.client", "aiohttp", "socket", "urllib3"}
RISKY_CALLS = {"eval", "exec", "compile", "__import__", "os.system", "os.popen", "subprocess.call",
               "subprocess.run", "subprocess.Popen", "subprocess.check_output", "pickle.loads", "shutil.rmtree"}
_CODE = re.compile(r"```(?:python|py)?\s*\n(.*?)```", re.DOTALL)


def extract_code(text: str) -> str:
    """The Python source in a reply: the largest fenced block, else the whole reply."""
    blocks = _CODE.findall(text or "")
    code = max(blocks, key=len) if blocks else (text or "")
    return code.strip() + "\n"


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def check_interface(source: str, name: str) -> dict:
    """Parse (never import) a draft; list interface problems and risky constructs."""
    try:
        tree = ast.parse(source, filename=f"{name}.py")
    except SyntaxError as exc:
        raise ModelOutputError(f"skill_draft: the model's draft is not valid Python (line {exc.lineno}: {exc.msg}); "
                               "nothing was written (retry, or try another model)") from None
    problems, warnings = [], []
    consts: dict[str, object] = {}
    run_fn = None
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == "run":
            run_fn = node
        if isinstance(node, ast.Assign):
            for t in node.targets:
                if isinstance(t, ast.Name) and t.id in REQUIRED_CONSTANTS:
                    try:
                        consts[t.id] = ast.literal_eval(node.value)
                    except ValueError:
                        consts[t.id] = ...
    if ast.get_docstring(tree) is None:
        problems.append("no module docstring saying what the skill owns")
    if run_fn is None:
        problems.append("no top-level run(payload, config, log) function")
    else:
        args = [a.arg for a in run_fn.args.args]
        if len(args) != 3 or run_fn.args.vararg or run_fn.args.kwarg:
            problems.append(f"run() takes ({', '.join(args)}); the interface is run(payload, config, log)")
        if not any(isinstance(n, ast.Return) and n.value is not None for n in ast.walk(run_fn)):
            problems.append("run() never returns a value; it must return a dict")
    for const in REQUIRED_CONSTANTS:
        if const not in consts:
            problems.append(f"missing module constant {const}")
        elif consts[const] is ...:
            warnings.append(f"{const} is computed; the registry reads literals only")
    schema = consts.get("PAYLOAD_SCHEMA")
    if isinstance(schema, dict) and schema.get("type") != "object":
        problems.append("PAYLOAD_SCHEMA must describe a JSON object (type: object)")
    imports = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imports.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imports.add(node.module)
        elif isinstance(node, ast.Call) and _dotted(node.func) in RISKY_CALLS:
            warnings.append(f"line {node.lineno}: calls {_dotted(node.func)}() — review carefully")
    uses_net = sorted(m for m in imports if m in NETWORK_MODULES or m.split(".")[0] in {"httpx", "requests", "aiohttp"})
    if uses_net and consts.get("REQUIRES_NETWORK") is not True:
        problems.append(f"imports {', '.join(uses_net)} but does not declare REQUIRES_NETWORK = True")
    model_libs = sorted(m for m in imports if m.split(".")[0] in {"anthropic", "openai", "ollama"})
    if model_libs:
        problems.append(f"imports {', '.join(model_libs)}: skills reach models only through "
                        "fleet.skills._models.call_model")
    if "fleet.skills._models" in imports and consts.get("REQUIRES_MODEL") is not True:
        problems.append("calls the model router but does not declare REQUIRES_MODEL = True")
    return {"interface_ok": not problems, "problems": problems, "warnings": warnings,
            "constants": {k: v for k, v in consts.items() if v is not ...}, "lines": source.count("\n")}


def run(payload: dict, config: dict, log) -> dict:
    from fleet.skill_registry import discover

    name = payload["name"]
    if keyword.iskeyword(name):
        raise SkillError(f"skill_draft: {name!r} is a Python keyword; choose another name")
    existing = name in discover(config)
    prompt = (
        f"Write a complete Python module for a new skill named '{name}' of an AI-agent fleet.\n"
        f"What it must do: {payload['description']}\n\n"
        "The interface, exactly:\n"
        "- a module docstring of 2-3 lines saying what the skill owns;\n"
        "- def run(payload: dict, config: dict, log) -> dict: does the work and returns a JSON-serialisable dict; "
        "log with log.info/log.warning, never print;\n"
        "- module constants: DESCRIPTION (str), PAYLOAD_SCHEMA (a JSON Schema literal dict with type object, "
        "properties, required, additionalProperties False), REQUIRES_MODEL (bool), REQUIRES_NETWORK (bool), "
        "IDEMPOTENT (bool), TIMEOUT_S (int seconds);\n"
        "- model calls only through: from fleet.skills._models import call_model; result = call_model(prompt, "
        "config, skill='" + name + "'); text = result.text;\n"
        "- files it writes go under config['paths']['knowledge'];\n"
        "- raise an exception with a clear message (what happened, what to do) on bad input; no placeholders, "
        "no TODOs, no fake data.\n"
        + (f"It {'needs' if payload.get('requires_network') else 'must not use'} the network.\n"
           if "requires_network" in payload else "")
        + (f"It {'uses' if payload.get('requires_model') else 'must not use'} a model.\n"
           if "requires_model" in payload else "")
        + "Reply with the module in one ```python block and nothing else.")
    reply = ask_model(prompt, config, skill="skill_draft", max_tokens=4096, temperature=0.2)
    source = extract_code(reply.text)
    if len(source.strip()) < 20:
        raise ModelOutputError("skill_draft: the model returned no code; nothing was written")
    check = check_interface(source, name)
    agent = agent_name(payload, config)
    header = (f"# DRAFT by {agent} with {reply.provider}/{reply.model} on {today()} (skill_draft). Not installed.\n"
              f"# Interface check: {'OK' if check['interface_ok'] else 'PROBLEMS: ' + '; '.join(check['problems'])}\n"
              "# Review it, then copy it to fleet/skills/ yourself if you want it.\n")
    path = knowledge_path(config, "code_drafts", f"{name}_draft_{today()}_{agent}.py")
    atomic_write_text(path, header + source)
    log.info("skill_draft %s: %s (%d problems)", name, path, len(check["problems"]))
    return {"name": name, "draft": str(path), "replaces_existing_skill": existing, "installed": False,
            "model": reply.model, "provider": reply.provider, **check}
