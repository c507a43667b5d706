"""What `openapi/openapi.json` says beyond what FastAPI derives: readable operation ids and schema
names, and the error codes each operation can answer.

The codes are read from the code itself, so that the contract cannot forget one: an operation can
answer every code raised (`SomeError("code", …)`, `error_response(…, "code", …)`) in its route
function, in the dependencies its parameters declare, and in every function of the app those call,
transitively — resolved through each module's imports, as a reader would follow them. That is a
little more than a given request can meet (a branch not taken still counts), never less for what it
can follow: calls through a variable holding a function are not followed, which is why the suite
checks every error it sees against the list (tests/conftest.py, `contract_codes`). The codes the
middleware answers for any request (a body too large, a database down) are listed on every operation.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

APP_DIR = Path(__file__).resolve().parents[1]
ERROR_BASE = "DomainError"

# Answered before or around any route: the input guard, the request body's validation, the database's
# pool and outages, the HTTP layer's own (405, 415).
EVERY_OPERATION = (
    "validation_error", "payload_too_large", "invalid_encoding", "invalid_text", "number_out_of_range",
    "invalid_value", "too_deep", "busy", "database_unavailable", "rate_limited",
)
# … and the retry convention's (app.kit.idempotency), on the writes that take an Idempotency-Key.
RETRY_CODES = ("invalid_idempotency_key", "idempotency_key_reused", "request_in_progress")


def operation_id(route: APIRoute) -> str:
    """The contract's name of an operation: its route function's (`record_checkin`), unique across the
    API (tests/test_contract.py), and stable while the function keeps its name."""
    return route.name


# --- reading the code -------------------------------------------------------------------------------

Ref = tuple[str, str]  # (module, qualified name): a function, a method ("Class.name") or an alias


class _Module:
    def __init__(self, name: str, tree: ast.Module):
        self.name = name
        self.imports: dict[str, Ref | str] = {}  # local name → (module, name), or a module
        self.defs: dict[str, ast.AST] = {}  # qualified name → its node
        self.classes: dict[str, list[str]] = {}  # class → the names of its bases
        for node in tree.body:
            self._top(node)
        for node in ast.walk(tree):  # imports inside functions (lazy ones) name things too
            if isinstance(node, ast.Import | ast.ImportFrom) and node not in tree.body:
                before = dict(self.imports)
                self._top(node)
                self.imports |= before  # a module-level name wins

    def _top(self, node: ast.AST) -> None:
        if isinstance(node, ast.ImportFrom) and node.module:
            base = node.module if node.level == 0 else self._relative(node)
            for alias in node.names:
                self.imports[alias.asname or alias.name] = (base, alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                self.imports[alias.asname or alias.name.split(".")[0]] = alias.name if alias.asname else alias.name.split(".")[0]
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            self.defs[node.name] = node
        elif isinstance(node, ast.ClassDef):
            self.classes[node.name] = [b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases]
            self.defs[node.name] = node
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                    self.defs[f"{node.name}.{item.name}"] = item
        elif isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name):
                    self.defs[target.id] = node.value
        elif isinstance(node, ast.If | ast.Try):  # TYPE_CHECKING blocks and guarded imports
            for child in ast.iter_child_nodes(node):
                self._top(child)

    def _relative(self, node: ast.ImportFrom) -> str:
        parts = self.name.split(".")[: -node.level]
        return ".".join(parts + ([node.module] if node.module else []))


class _Codebase:
    def __init__(self) -> None:
        self.modules: dict[str, _Module] = {}
        for path in sorted(APP_DIR.rglob("*.py")):
            rel = path.relative_to(APP_DIR.parent).with_suffix("")
            name = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
            self.modules[name] = _Module(name, ast.parse(path.read_text(encoding="utf-8")))
        self.error_classes = self._error_classes()
        by_name: dict[str, list[Ref]] = {}
        for module in self.modules.values():
            for qualified in module.defs:
                if "." in qualified:
                    by_name.setdefault(qualified.split(".")[1], []).append((module.name, qualified))
        self.methods = {name: refs[0] for name, refs in by_name.items() if len(refs) == 1}
        self._codes: dict[Ref, frozenset[str]] = {}

    def _error_classes(self) -> set[str]:
        found = {ERROR_BASE}
        grew = True
        while grew:
            grew = False
            for module in self.modules.values():
                for cls, bases in module.classes.items():
                    if cls not in found and found.intersection(bases):
                        found.add(cls)
                        grew = True
        return found

    def resolve(self, module: _Module, name: str) -> Ref | None:
        """Where a name used in `module` is defined, following imports (and package re-exports)."""
        for _ in range(5):
            if name in module.defs:
                return (module.name, name)
            target = module.imports.get(name)
            if not isinstance(target, tuple) or target[0] not in self.modules:
                return None
            module, name = self.modules[target[0]], target[1]
        return None

    def _attribute(self, module: _Module, node: ast.Attribute, within: str) -> Ref | None:
        value = node.value
        if isinstance(value, ast.Name):
            target = module.imports.get(value.id)
            if isinstance(target, tuple):  # `from app.x import service` then `service.f()`
                dotted = f"{target[0]}.{target[1]}"
                if dotted in self.modules:
                    return self.resolve(self.modules[dotted], node.attr)
            elif isinstance(target, str) and target in self.modules:
                return self.resolve(self.modules[target], node.attr)
            if value.id in ("self", "cls") and "." in within:
                cls = within.split(".")[0]
                if f"{cls}.{node.attr}" in module.defs:
                    return (module.name, f"{cls}.{node.attr}")
            ref = self.resolve(module, value.id)
            if ref and f"{ref[1]}.{node.attr}" in self.modules[ref[0]].defs:  # Class.method
                return (ref[0], f"{ref[1]}.{node.attr}")
        return self.methods.get(node.attr)  # `obj.method()`: the app's only method of that name, if one

    def _callee(self, module: _Module, func: ast.AST, within: str) -> Ref | None:
        if isinstance(func, ast.Name):
            return self.resolve(module, func.id)
        if isinstance(func, ast.Attribute):
            return self._attribute(module, func, within)
        return None

    def edges(self, ref: Ref) -> tuple[set[str], set[Ref]]:
        """The codes `ref` raises itself and what it refers to (calls, dependencies, aliases)."""
        module = self.modules[ref[0]]
        node = module.defs[ref[1]]
        codes: set[str] = set()
        refs: set[Ref] = set()
        roots: list[ast.AST] = [node]
        if isinstance(node, ast.ClassDef):  # made (and, as a dependency, called): its methods, its bases, its body
            for method in ("__init__", "__post_init__", "__call__"):
                if f"{ref[1]}.{method}" in module.defs:
                    refs.add((module.name, f"{ref[1]}.{method}"))
            for base in module.classes.get(ref[1], []):
                target = self.resolve(module, base)
                if target:
                    refs.add(target)
            roots = [n for n in node.body if not isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
        for child in (c for root in roots for c in ast.walk(root)):
            if isinstance(child, ast.Call):
                callee = self._callee(module, child.func, ref[1])
                name = callee[1] if callee else getattr(child.func, "id", getattr(child.func, "attr", ""))
                if name in self.error_classes or _super_init(child) and ref[1].split(".")[0] in self.error_classes:
                    codes.update(_literal(child.args[:1]))
                if name == "error_response":
                    codes.update(_literal(child.args[2:3]))
                if callee:
                    refs.add(callee)
            elif isinstance(child, ast.Tuple) and any(  # a table of errors: ("code", zh, en, SomeError)
                isinstance(e, ast.Name) and e.id in self.error_classes for e in child.elts
            ):
                codes.update(_literal(child.elts[:1]))
            elif isinstance(child, ast.Name | ast.Attribute) and isinstance(child.ctx, ast.Load):
                target = self._callee(module, child, ref[1])  # a function passed on, an alias (CommunityManager)
                if target:
                    refs.add(target)
        return codes, refs

    def codes_of(self, ref: Ref) -> frozenset[str]:
        if ref in self._codes:
            return self._codes[ref]
        seen: set[Ref] = set()
        todo = [ref]
        codes: set[str] = set()
        while todo:
            current = todo.pop()
            if current in seen:
                continue
            seen.add(current)
            own, refs = self.edges(current)
            codes |= own
            todo.extend(refs - seen)
        self._codes[ref] = frozenset(codes)
        return self._codes[ref]

    def all_codes(self) -> set[str]:
        codes: set[str] = set()
        for module in self.modules.values():
            for name in module.defs:
                codes |= self.edges((module.name, name))[0]
        return codes


def _super_init(call: ast.Call) -> bool:
    func = call.func
    return isinstance(func, ast.Attribute) and func.attr == "__init__" and isinstance(func.value, ast.Call) \
        and getattr(func.value.func, "id", "") == "super"


def _literal(args: list[ast.expr]) -> Iterator[str]:
    for arg in args:
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and re.fullmatch(r"[a-z][a-z0-9_]*", arg.value):
            yield arg.value


@cache
def _codebase() -> _Codebase:
    return _Codebase()


def route_codes(route: APIRoute) -> list[str]:
    """The error codes an operation can answer (see the module's docstring)."""
    from app.kit.errors import HTTP_CODES

    base = _codebase()
    endpoint = route.endpoint
    ref = (endpoint.__module__, endpoint.__qualname__)
    found = set(base.codes_of(ref)) if ref[0] in base.modules and ref[1] in base.modules[ref[0]].defs else set()
    retry = set(RETRY_CODES) if _takes_header_key(route) else set()
    return sorted(found | retry | set(EVERY_OPERATION) | set(HTTP_CODES))


def _takes_header_key(route: APIRoute) -> bool:
    """A write that follows the shared retry convention (app.kit.idempotency), not a key of its own."""
    from app.kit.idempotency import WRITES, takes_own_key

    return bool(route.methods & WRITES) and route.path.startswith("/api/v1/") and not takes_own_key(route)


def all_codes() -> list[str]:
    from app.kit.errors import HTTP_CODES

    return sorted(_codebase().all_codes() | set(EVERY_OPERATION) | set(HTTP_CODES))


# --- the document -----------------------------------------------------------------------------------

def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def install(app: FastAPI) -> None:
    """Make `app.openapi()` return the contract with the additions above (built once per process)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        schemas = doc.get("components", {}).get("schemas", {})
        renames = {name: f"{_camel(name.removeprefix('Body_'))}Form" for name in schemas if name.startswith("Body_")}
        for old, new in renames.items():
            schemas[new] = schemas.pop(old) | {"title": new}
        routes = {r.name: r for r in _api_routes(app)}
        for path in doc.get("paths", {}).values():
            for operation in path.values():
                for content in operation.get("requestBody", {}).get("content", {}).values():
                    ref = content.get("schema", {}).get("$ref", "")
                    old = ref.rsplit("/", 1)[-1]
                    if old in renames:
                        content["schema"]["$ref"] = f"#/components/schemas/{renames[old]}"
                route = routes.get(operation.get("operationId", ""))
                if route is not None:
                    operation["x-error-codes"] = route_codes(route)
                    if _takes_header_key(route):
                        operation.setdefault("parameters", []).append({
                            "name": "Idempotency-Key", "in": "header", "required": False,
                            "description": "重试键：同一操作重发时沿用，返回首次的结果（24 小时内）",
                            "schema": {"type": "string", "minLength": 8, "maxLength": 80},
                        })
                    operation["description"] = describe(route, operation)
        if "ErrorBody" in schemas:
            schemas["ErrorBody"]["properties"]["code"] = {"title": "Code", "type": "string", "enum": all_codes()}
        app.openapi_schema = doc
        return doc

    app.openapi = openapi  # type: ignore[method-assign]


ROLE_NAMES = {
    "resident": "resident (居民)", "volunteer": "volunteer (志愿者)", "supervisor": "supervisor (督导员)",
    "clerk": "clerk (兑换员)", "compost_keeper": "compost keeper (堆肥技师)", "committee": "committee (居委会)",
    "org_admin": "organisation admin (社会组织)", "street_viewer": "street viewer (街道)", "platform_admin": "platform admin",
}


def _permission(dependant: Any) -> Any:
    from app.identity.auth import Permission

    for dependency in dependant.dependencies:
        if isinstance(dependency.call, Permission):
            return dependency.call
        found = _permission(dependency)
        if found is not None:
            return found
    return None


def describe(route: APIRoute, operation: dict[str, Any]) -> str:
    """An operation's description: its route function's docstring, then who may call it, how a retry
    is answered and where its errors are listed — read from the route, so they cannot drift."""
    parts = [route.description.strip()] if route.description else [operation.get("summary", "")]
    permission = _permission(route.dependant)
    if permission is not None:
        roles = ", ".join(ROLE_NAMES.get(r.value, r.value) for r in sorted(permission.admitted, key=lambda r: list(ROLE_NAMES).index(r.value)))
        parts.append(f"**Who may call**: {roles}, each in the scope the path names.")
    elif any(p.alias == "Authorization" for p in route.dependant.header_params) or route.dependant.dependencies:
        parts.append("**Who may call**: see the summary (the caller's own data, or no sign-in needed).")
    body = route.body_field.field_info.annotation if route.body_field is not None else None
    fields = getattr(body, "model_fields", {})
    headers = {p.alias for p in _all_params(route.dependant, "header_params")}
    if "client_id" in fields:
        parts.append("**Retry**: safe. Sent again with the same `client_id`, it is answered as the first time "
                     "(`replayed: true` where the answer has it), never written twice.")
    elif "Idempotency-Key" in headers or "idempotency_key" in fields:
        parts.append("**Retry**: safe with the same `Idempotency-Key`: answered as the first time, never done twice.")
    elif route.methods & {"GET", "HEAD"}:
        parts.append("**Retry**: safe (a read).")
    elif _takes_header_key(route):
        parts.append("**Retry**: safe with an `Idempotency-Key` header (8–80 characters, new for each action): sent again "
                     "with the same key and body, it is answered as the first time (`Idempotent-Replayed: true`), never done twice.")
    parts.append("**Errors**: the shape `ErrorResponse`; the codes this operation can answer are in `x-error-codes`.")
    return "\n\n".join(p for p in parts if p)


def _all_params(dependant: Any, kind: str) -> Iterator[Any]:
    yield from getattr(dependant, kind)
    for dependency in dependant.dependencies:
        yield from _all_params(dependency, kind)


def _api_routes(app: FastAPI) -> Iterator[APIRoute]:
    stack: list[Any] = list(app.router.routes)
    while stack:
        route = stack.pop()
        if isinstance(route, APIRoute):
            yield route
        elif hasattr(route, "original_router"):  # an included router (FastAPI keeps the original)
            stack.extend(route.original_router.routes)
