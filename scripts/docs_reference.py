"""Reference pages generated at build time, so they cannot drift from the code.

An MkDocs hook (``hooks:`` in ``mkdocs.yml``): ``on_files`` adds two pages that exist only in
the build, never in ``docs/``:

* ``reference/api.md`` from the gateway's OpenAPI document (`gateway.openapi.build_openapi`),
  rendered for the default settings: every path, operation, parameter, answer and schema.
* ``reference/configuration.md`` from the settings classes (`eventpulse.config`): every field of
  every section with its environment variable, type, default, bounds and description.

Both are built from defaults (``model_construct()``), never from the environment of whoever runs
the build, so the page is the same on every machine. ``tests/docs/test_docs_build.py`` checks that
the built pages list every route and every field.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import annotated_types
from pydantic import SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

API_PAGE = "reference/api.md"
CONFIG_PAGE = "reference/configuration.md"
_METHODS = ("get", "post", "put", "patch", "delete")
_REF_PREFIX = "#/components/schemas/"


# --- HTTP API ------------------------------------------------------------------------------------


def openapi_document() -> dict[str, Any]:
    """The gateway's OpenAPI document for the default gateway settings and event limits."""
    from eventpulse.config.events import EventLimits
    from eventpulse.config.gateway import GatewaySettings
    from gateway.openapi import build_openapi

    return build_openapi(GatewaySettings.model_construct(), EventLimits.model_construct())


def _text(text: Any) -> str:
    """Prose from a docstring or description as Markdown: ``<`` and ``>`` escaped outside code spans (so
    ``<key>`` is not taken for an HTML tag), reStructuredText double backticks made single."""
    parts = str(text).replace("``", "`").split("`")
    for i in range(0, len(parts), 2):  # even parts are outside code spans
        parts[i] = parts[i].replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return "`".join(parts)


def _cell(text: Any) -> str:
    """Text safe inside a Markdown table cell."""
    return _text(" ".join(str(text).split())).replace("|", "\\|")


def _schema_anchor(name: str) -> str:
    return f"schema-{name.lower()}"


def _schema_type(schema: dict[str, Any]) -> str:
    """A short human form of a JSON Schema: ``string``, ``array of [Event](#schema-event)``, ..."""
    if "$ref" in schema:
        name = schema["$ref"].removeprefix(_REF_PREFIX)
        return f"[{name}](#{_schema_anchor(name)})"
    if "anyOf" in schema or "oneOf" in schema:
        return " or ".join(_schema_type(s) for s in schema.get("anyOf", schema.get("oneOf", [])))
    kind = schema.get("type", "any")
    if isinstance(kind, list):
        return " or ".join(kind)
    if kind == "array":
        return f"array of {_schema_type(schema.get('items', {}))}"
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        return f"object of {_schema_type(schema['additionalProperties'])}"
    return kind


def _constraints(schema: dict[str, Any]) -> str:
    parts = []
    for key, label in (
        ("minimum", "≥ {}"),
        ("maximum", "≤ {}"),
        ("minLength", "≥ {} chars"),
        ("maxLength", "≤ {} chars"),
        ("maxItems", "≤ {} items"),
        ("exclusiveMaximum", "< {}"),
        ("maxProperties", "≤ {} keys"),
        ("x-maxDepth", "≤ {} levels deep"),
        ("pattern", "pattern `{}`"),
    ):
        if key in schema:
            parts.append(label.format(schema[key]))
    parts += [f"pattern `{p['pattern']}`" for p in schema.get("allOf", ()) if "pattern" in p]
    if "pattern" in schema.get("not", {}):
        parts.append(f"no match of `{schema['not']['pattern']}`")
    if "enum" in schema:
        parts.append("one of " + ", ".join(f"`{v}`" for v in schema["enum"]))
    if "default" in schema:
        parts.append(f"default `{json.dumps(schema['default'])}`")
    return "; ".join(parts)


def _operation_markdown(path: str, method: str, op: dict[str, Any], doc_security: list) -> list[str]:
    out = [f"### `{method.upper()} {path}`", "", f"**{op.get('summary', '')}**", ""]
    if op.get("description"):
        out += [_text(op["description"]), ""]
    security = op.get("security", doc_security)
    if security:
        schemes = " or ".join(f"`{name}`" for item in security for name in item)
        out += [f"Authentication: an API key ({schemes}, see [Authentication](#authentication)).", ""]
    elif op.get("x-authentication"):  # a route with its own scheme (the webhooks' signature)
        out += [f"Authentication: {_text(op['x-authentication'])}.", ""]
    else:
        out += ["Authentication: none.", ""]
    if op.get("parameters"):
        out += ["| parameter | in | type | description |", "| --- | --- | --- | --- |"]
        for p in op["parameters"]:
            kind = _schema_type(p.get("schema", {}))
            out.append(f"| `{p['name']}` | {p['in']} | {kind} | {_cell(p.get('description', ''))} |")
        out.append("")
    body = op.get("requestBody")
    if body:
        out.append("Request body" + (f": {_text(body['description'])}" if body.get("description") else ""))
        out.append("")
        for media, content in body.get("content", {}).items():
            schema = content.get("schema", {})
            extra = _constraints(schema)
            note = f" ({extra})" if extra else ""
            desc = f": {_text(schema['description'])}" if schema.get("description") else ""
            out.append(f"- `{media}`: {_schema_type(schema)}{note}{desc}")
        out.append("")
    out += ["| status | meaning | body | headers |", "| --- | --- | --- | --- |"]
    for status, answer in sorted(op.get("responses", {}).items()):
        bodies = ", ".join(
            f"{_schema_type(c.get('schema', {}))} (`{media}`)" for media, c in answer.get("content", {}).items()
        )
        headers = ", ".join(f"`{h}`" for h in answer.get("headers", {}))
        out.append(f"| {status} | {_cell(answer.get('description', ''))} | {bodies} | {headers} |")
    out.append("")
    return out


def _schema_markdown(name: str, schema: dict[str, Any]) -> list[str]:
    out = [f"### {name} {{#{_schema_anchor(name)}}}", ""]
    if schema.get("description"):
        out += [_text(schema["description"]), ""]
    props = schema.get("properties", {})
    if props:
        required = set(schema.get("required", ()))
        out += ["| field | type | required | notes |", "| --- | --- | --- | --- |"]
        for prop, sub in props.items():
            notes = "; ".join(x for x in (sub.get("description", ""), _constraints(sub)) if x)
            yes = "yes" if prop in required else ""
            out.append(f"| `{prop}` | {_schema_type(sub)} | {yes} | {_cell(notes)} |")
        out.append("")
        if schema.get("additionalProperties") is True:
            out += ["Other fields are allowed and kept.", ""]
    return out


def api_markdown(doc: dict[str, Any]) -> str:
    """The HTTP API reference page for an OpenAPI 3.1 document."""
    info = doc.get("info", {})
    out = [
        "# HTTP API",
        "",
        "<!-- Generated at build time from gateway/openapi.py (build_openapi) by scripts/docs_reference.py. -->",
        "",
        f"{info.get('title', '')}, OpenAPI {doc.get('openapi', '')}, API version {info.get('version', '')}. "
        "Generated from the document the gateway serves at `GET /openapi.json`, for the default settings "
        "(limits such as the batch size follow `EVENTPULSE_GATEWAY_*` and `EVENTPULSE_EVENTS_*`, see "
        "[Configuration](configuration.md)).",
        "",
        _text(info.get("description", "")),
        "",
        "WebSocket ingestion, `/ws/ingest`, is outside OpenAPI 3.1 (no WebSocket operations): its protocol "
        "is in [WebSocket ingestion](../operations/websocket-ingest.md).",
        "",
        "## Endpoints",
        "",
        "| method | path | summary |",
        "| --- | --- | --- |",
    ]
    paths = doc.get("paths", {})
    for path, item in paths.items():
        for method in _METHODS:
            if method in item:
                out.append(f"| {method.upper()} | `{path}` | {_cell(item[method].get('summary', ''))} |")
    out += ["", "## Authentication", ""]
    for name, scheme in doc.get("components", {}).get("securitySchemes", {}).items():
        where = f"HTTP `{scheme.get('scheme')}`" if scheme["type"] == "http" else f"header `{scheme.get('name', '')}`"
        out.append(f"- `{name}`: {where}. {_text(scheme.get('description', ''))}".rstrip())
    out += [
        "",
        "Keys are created with `eventpulse keys create TENANT`; the tenant of every event is the key's.",
        "",
        "## Operations",
        "",
    ]
    for path, item in paths.items():
        for method in _METHODS:
            if method in item:
                out += _operation_markdown(path, method, item[method], doc.get("security", []))
    out += ["## Schemas", ""]
    for name, schema in doc.get("components", {}).get("schemas", {}).items():
        out += _schema_markdown(name, schema)
    out += [
        "## The document",
        "",
        '??? note "openapi.json (default settings)"',
        "",
        "    ```json",
        *("    " + line for line in json.dumps(doc, indent=2, ensure_ascii=False).splitlines()),
        "    ```",
        "",
    ]
    return "\n".join(out)


# --- Configuration -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SettingRow:
    """One documented setting."""

    env: str
    field: str
    type: str
    default: str
    bounds: str
    description: str


@dataclass(frozen=True)
class SectionDoc:
    """One settings class and its rows."""

    title: str
    cls: type
    rows: tuple[SettingRow, ...]


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return " \\| ".join(f"`{json.dumps(a)}`" for a in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(annotation))
    if origin is not None:
        args = typing.get_args(annotation)
        inner = ", ".join("..." if a is Ellipsis else _type_name(a) for a in args)
        return f"{getattr(origin, '__name__', str(origin))}[{inner}]"
    if annotation is type(None):
        return "None"
    return getattr(annotation, "__name__", str(annotation))


def _default(info: FieldInfo, cls: type) -> str:
    if info.default is PydanticUndefined and info.default_factory is None:
        return "required"
    value = info.default if info.default is not PydanticUndefined else info.default_factory()  # type: ignore[misc]
    if isinstance(value, SecretStr):
        return "(secret) empty" if not value.get_secret_value() else "(secret) set"
    if value is None:
        return "unset"
    if isinstance(value, Path):
        return f"`{value}`"
    if isinstance(value, tuple | list | dict | bool):
        return f"`{json.dumps(value)}`"  # the form the environment takes (JSON for tuples and bools)
    return f"`{value}`"


def _bounds(info: FieldInfo) -> str:
    parts = []
    for m in info.metadata:
        for attr, sign in (("gt", ">"), ("ge", "≥"), ("lt", "<"), ("le", "≤")):
            if isinstance(m, getattr(annotated_types, attr.capitalize())):
                parts.append(f"{sign} {getattr(m, attr)}")
    return ", ".join(parts)


def env_name(cls: type, name: str, info: FieldInfo) -> str:
    """The environment variable pydantic-settings reads for field ``name`` of ``cls``."""
    if isinstance(info.validation_alias, str):
        return info.validation_alias.upper()
    return f"{cls.model_config.get('env_prefix', '')}{name}".upper()


def _section_rows(cls: Any) -> tuple[SettingRow, ...]:
    from eventpulse.config.base import Section

    rows = []
    for name, info in cls.model_fields.items():
        if isinstance(info.annotation, type) and issubclass(info.annotation, Section):
            continue  # a nested section: documented on its own
        rows.append(
            SettingRow(
                env=env_name(cls, name, info),
                field=name,
                type=_type_name(info.annotation),
                default=_default(info, cls),
                bounds=_bounds(info),
                description=info.description or "",
            )
        )
    return tuple(rows)


def _config_classes() -> Iterator[type]:
    """Every `Section` subclass defined in a module of `eventpulse.config`, in module order."""
    import eventpulse.config
    from eventpulse.config.base import Section

    for module_info in sorted(pkgutil.iter_modules(eventpulse.config.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"eventpulse.config.{module_info.name}")
        for value in vars(module).values():
            defined_here = getattr(value, "__module__", None) == module.__name__
            if defined_here and isinstance(value, type) and issubclass(value, Section) and value is not Section:
                yield value


def settings_sections() -> list[SectionDoc]:
    """The documented sections: the top-level `Settings`, then its sections in their order, then any
    other section class of `eventpulse.config` (a section not wired into `Settings` yet still shows)."""
    from eventpulse.config.base import Section
    from eventpulse.settings import Settings

    ordered: list[type] = [Settings]
    for info in Settings.model_fields.values():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, Section) and annotation not in ordered:
            ordered.append(annotation)
    ordered += [cls for cls in _config_classes() if cls not in ordered]
    docs = []
    for cls in ordered:
        prefix = cls.model_config.get("env_prefix", "")
        area = prefix.removeprefix("EVENTPULSE_").strip("_").replace("_", " ").capitalize()
        docs.append(SectionDoc("Top level" if cls is Settings else area or cls.__name__, cls, _section_rows(cls)))
    return docs


def _doc_intro(cls: type) -> str:
    doc = (cls.__doc__ or "").strip()
    return _text(" ".join(doc.split("\n\n")[0].split()))


def configuration_markdown(sections: list[SectionDoc]) -> str:
    """The configuration reference page."""
    out = [
        "# Configuration",
        "",
        "<!-- Generated at build time from eventpulse/config/*.py by scripts/docs_reference.py. -->",
        "",
        "Every setting is an environment variable `EVENTPULSE_<SECTION>_<FIELD>`, read once when a process "
        "starts (`eventpulse.settings.Settings()`); an explicit constructor argument beats the environment. "
        "Tuples and lists are JSON (`EVENTPULSE_STREAM_WINDOW_SECONDS='[10, 60]'`), booleans `true`/`false`. "
        "Defaults point at the local stack on 127.0.0.1. This page is generated from the settings classes "
        "at build time.",
        "",
    ]
    for section in sections:
        module = section.cls.__module__.replace(".", "/") + ".py"
        prefix = section.cls.model_config.get("env_prefix", "")
        where = f"`{section.cls.__name__}` in `{module}`, variables `{prefix}*`."
        out += [f"## {section.title}", "", f"{where} {_doc_intro(section.cls)}", ""]
        out += ["| variable | type | default | bounds | description |", "| --- | --- | --- | --- | --- |"]
        for row in section.rows:
            out.append(f"| `{row.env}` | {row.type} | {_cell(row.default)} | {row.bounds} | {_cell(row.description)} |")
        out.append("")
    return "\n".join(out)


# --- MkDocs hook ---------------------------------------------------------------------------------


def generated_pages() -> dict[str, str]:
    """Path inside the docs → Markdown, for every generated page."""
    return {
        API_PAGE: api_markdown(openapi_document()),
        CONFIG_PAGE: configuration_markdown(settings_sections()),
    }


def on_files(files: Any, config: Any) -> Any:
    """MkDocs hook: add the generated pages to the build (nothing is written into ``docs/``)."""
    from mkdocs.structure.files import File

    for path, content in generated_pages().items():
        files.append(File.generated(config, path, content=content))
    return files
