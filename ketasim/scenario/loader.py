"""Loading scenario YAML with one clear message per problem.

:func:`load_scenario` reads a file (or a built-in scenario by name),
:func:`load_scenario_text` a string. Both return a validated
:class:`~ketasim.scenario.Scenario` or raise :class:`ScenarioError`, and
nothing else, whatever the input: unreadable files, invalid UTF-8, YAML
syntax errors, duplicate keys, recursive or exploding aliases and schema
problems all become a one-line message::

    my.yaml: arms[0].protocol[1].dose: got '-10 mg/kg'; expected a positive dose (line 9)

When validation finds several problems, the first in document order is
reported and the others counted.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
import reprlib
import types
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from ketasim.experiment.assays import ASSAYS as _ASSAY_CATALOGUE

from .model import _TAGGED_MODELS, ERROR_TYPE, Scenario

__all__ = [
    "MISSING",
    "ScenarioError",
    "builtin_scenarios",
    "load_scenario",
    "load_scenario_text",
    "locate_problem",
    "scenario_hash",
    "scenario_json_schema",
    "yaml_line",
]

BUILTIN_DIR = Path(__file__).resolve().parent / "builtin"

#: Largest scenario file read, in bytes.
MAX_FILE_BYTES = 16 * 1024 * 1024
#: Largest number of YAML nodes after expanding aliases.
MAX_NODES = 200_000
#: Deepest nesting of YAML collections.
MAX_DEPTH = 64

_TOP_EXPECTED = "a YAML mapping with the keys name, description, species, seed, arms, compare"


class _Missing:
    """Stands for a value that is absent from the file (one instance, :data:`MISSING`)."""

    def __repr__(self) -> str:
        return "<missing>"

    def __reduce__(self) -> str:
        return "MISSING"


#: The ``value`` of a :class:`ScenarioError` about a key that is absent.
MISSING = _Missing()

_short = reprlib.Repr()
_short.maxstring = 80
_short.maxother = 80
_short.maxlist = _short.maxtuple = _short.maxdict = _short.maxset = 6
_short.maxlevel = 3
_MAX_SHOWN = 120  # characters of a value shown in a message


def _one_line(text: str) -> str:
    return text.replace("\r", "\\r").replace("\n", "\\n")


class ScenarioError(Exception):
    """A scenario that cannot be loaded, with one problem in one line.

    Parameters
    ----------
    expected : str
        What would have been accepted.
    path : str, optional
        Field path such as ``arms[0].protocol[1].dose``; ``""`` for problems
        with the file as a whole.
    value : object, optional
        The offending value (:data:`MISSING` for an absent key).
    source : str, optional
        File name, or ``"<string>"``.
    line : int or None, optional
        1-based line in the source, when known.
    problem : str or None, optional
        For file-level problems, a phrase that replaces ``got {value!r}``.
    more : int, optional
        How many other problems validation found.

    Notes
    -----
    ``str(err)`` is ``"{source}: {path}: got {value!r}; expected {expected}"``
    (long values are shortened), followed by `` (line N)`` when the line is
    known and `` (and N more problems)`` when there were others. File-level
    problems read ``"{source}: {problem}; expected {expected}"``.
    """

    def __init__(
        self,
        expected: str,
        *,
        path: str = "",
        value: object = MISSING,
        source: str = "<string>",
        line: int | None = None,
        problem: str | None = None,
        more: int = 0,
    ) -> None:
        self.expected = expected
        self.path = path
        self.value = value
        self.source = source
        self.line = line
        self.problem = problem
        self.more = more
        super().__init__(self._message())

    def _message(self) -> str:
        parts = [self.source]
        if self.path:
            parts.append(self.path)
        if self.problem is not None:
            parts.append(self.problem)
        else:
            shown = _short.repr(self.value)
            if len(shown) > _MAX_SHOWN:
                shown = shown[: _MAX_SHOWN - 3] + "..."
            parts.append(f"got {shown}")
        text = ": ".join(parts) + f"; expected {self.expected}"
        if self.line is not None and self.problem is None:
            text += f" (line {self.line})"
        if self.more:
            text += f" (and {self.more} more problem{'s' if self.more > 1 else ''})"
        return _one_line(text)

    def __str__(self) -> str:
        return self._message()

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only arguments need help to survive pickling (Dask workers).
        state = {
            "path": self.path,
            "value": self.value,
            "source": self.source,
            "line": self.line,
            "problem": self.problem,
            "more": self.more,
        }
        return (_rebuild_error, (self.expected, state))


def _rebuild_error(expected: str, state: dict[str, Any]) -> ScenarioError:
    return ScenarioError(expected, **state)


# --------------------------------------------------------------------------- #
# Built-in scenarios and sources
# --------------------------------------------------------------------------- #


def builtin_scenarios() -> dict[str, Path]:
    """Return the built-in scenarios.

    Returns
    -------
    dict of str to pathlib.Path
        Scenario name (file stem) -> YAML file, sorted by name.
    """
    return {path.stem: path for path in sorted(BUILTIN_DIR.glob("*.yaml"))}


def _resolve_source(source: object) -> tuple[Path, str]:
    if not isinstance(source, (str, os.PathLike)):
        raise ScenarioError(
            "a path to a YAML file or a built-in scenario name",
            value=source,
            source=_one_line(repr(source)),
        )
    try:
        label = os.fspath(source)
    except TypeError:
        label = None
    if not isinstance(label, str):
        raise ScenarioError(
            "a path to a YAML file or a built-in scenario name",
            value=source,
            source=_one_line(repr(source)),
        )
    path = Path(label)
    builtins = builtin_scenarios()
    try:
        if path.is_file():
            return path, label
        is_dir = path.is_dir()
    except (OSError, ValueError):  # embedded NUL, name too long, ...
        is_dir = False
    if isinstance(source, str) and source in builtins:
        return builtins[source], str(builtins[source])
    names = ", ".join(builtins)
    what = "is a directory" if is_dir else "no such file, and not a built-in scenario"
    raise ScenarioError(
        f"a path to a YAML scenario file or a built-in scenario name ({names})",
        source=_one_line(label),
        problem=what,
    )


def _read_text(path: Path, label: str) -> str:
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ScenarioError(
                f"a scenario file under {MAX_FILE_BYTES // (1024 * 1024)} MiB",
                source=label,
                problem=f"file is {size} bytes",
            )
        data = path.read_bytes()
    except ScenarioError:
        raise
    except (OSError, ValueError) as err:
        raise ScenarioError(
            "a readable file", source=label, problem=f"cannot read it ({type(err).__name__})"
        ) from None
    return _decode(data, label)


def _decode(data: bytes, label: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise ScenarioError(
            "UTF-8 text",
            source=label,
            problem=f"line {line}: invalid UTF-8 byte {data[err.start]:#04x}",
        ) from None


# --------------------------------------------------------------------------- #
# YAML
# --------------------------------------------------------------------------- #


def _yaml_error(err: Exception, source: str, text: str) -> ScenarioError:
    if isinstance(err, yaml.reader.ReaderError):
        line = text.count("\n", 0, max(err.position, 0)) + 1
        what = f"line {line}: invalid YAML: character {err.character!r} is not allowed"
        return ScenarioError("valid YAML", source=source, problem=_one_line(what))
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    what = getattr(err, "problem", None) or getattr(err, "context", None) or str(err)
    where = ""
    if isinstance(mark, yaml.Mark):
        where = f"line {mark.line + 1}, column {mark.column + 1}: "
    return ScenarioError(
        "valid YAML", source=source, problem=_one_line(f"{where}invalid YAML: {what}")
    )


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [child for pair in node.value for child in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _check_nodes(root: yaml.Node, source: str) -> None:
    """Reject duplicate keys, recursive aliases and documents that are too big.

    Aliases are followed, so a small file whose aliases expand into a huge
    document (a "billion laughs") is caught before it is built.
    """
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    in_progress: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            children = _children(node)
            size[key] = 1 + sum(size[id(child)] for child in children)
            depth[key] = 1 + max((depth[id(child)] for child in children), default=0)
            in_progress.discard(key)
            line = node.start_mark.line + 1
            if size[key] > MAX_NODES:
                raise ScenarioError(
                    f"a scenario of at most {MAX_NODES} values after expanding aliases",
                    source=source,
                    problem=f"line {line}: document too large",
                )
            if depth[key] > MAX_DEPTH:
                raise ScenarioError(
                    f"at most {MAX_DEPTH} levels of nesting",
                    source=source,
                    problem=f"line {line}: document nested too deeply",
                )
            continue
        if key in size:
            continue
        if key in in_progress:
            raise ScenarioError(
                "aliases that do not contain themselves",
                source=source,
                problem=f"line {node.start_mark.line + 1}: recursive YAML alias",
            )
        in_progress.add(key)
        if isinstance(node, yaml.MappingNode):
            seen: set[tuple[str, str]] = set()
            for key_node, _ in node.value:
                if isinstance(key_node, yaml.ScalarNode):
                    ident = (key_node.tag, key_node.value)
                    if ident in seen and key_node.tag != "tag:yaml.org,2002:merge":
                        raise ScenarioError(
                            "each key at most once in a mapping",
                            source=source,
                            problem=_one_line(
                                f"line {key_node.start_mark.line + 1}: "
                                f"duplicate key {_short.repr(key_node.value)}"
                            ),
                        )
                    seen.add(ident)
        stack.append((node, True))
        stack.extend((child, False) for child in reversed(_children(node)))


def _parse_yaml(text: str, source: str) -> tuple[Any, yaml.Node | None]:
    loader: yaml.SafeLoader | None = None
    try:
        loader = yaml.SafeLoader(text)  # the reader checks characters here already
        root = loader.get_single_node()
        if root is None:
            return None, None
        _check_nodes(root, source)
        return loader.construct_document(root), root
    except yaml.YAMLError as err:
        raise _yaml_error(err, source, text) from None
    except (ValueError, TypeError, OverflowError) as err:
        # e.g. an impossible date ("2021-02-30") or an over-long integer
        raise ScenarioError(
            "valid YAML values",
            source=source,
            problem=_one_line(f"invalid YAML value: {err}"[:300]),
        ) from None
    except RecursionError:
        raise ScenarioError(
            f"at most {MAX_DEPTH} levels of nesting",
            source=source,
            problem="document nested too deeply",
        ) from None
    finally:
        if loader is not None:
            loader.dispose()


# --------------------------------------------------------------------------- #
# Turning pydantic errors into ScenarioError
# --------------------------------------------------------------------------- #


def _unwrap(tp: Any) -> Any:
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
            continue
        if origin in (Union, types.UnionType):
            args = [arg for arg in get_args(tp) if arg is not type(None)]
            if len(args) == 1:
                tp = args[0]
                continue
        return tp


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _walk_models(loc: tuple[Any, ...]) -> tuple[type[BaseModel] | None, FieldInfo | None]:
    """Follow a pydantic error location through the models.

    Returns the model found at the end of ``loc`` (if the location is a
    mapping validated by a model) and the field the location names (if it
    ends on a field).
    """
    tp: Any = Scenario
    field: FieldInfo | None = None
    for part in loc:
        tp = _unwrap(tp)
        if _is_model(tp):
            if isinstance(part, str) and part in tp.model_fields:
                field = tp.model_fields[part]
                tp = field.annotation
                continue
            return None, None
        origin = get_origin(tp)
        if origin in (list, tuple) and isinstance(part, int):
            tp, field = get_args(tp)[0], None
            continue
        if origin in (Union, types.UnionType) and part in _TAGGED_MODELS:
            tp, field = _TAGGED_MODELS[part], None
            continue
        return None, None
    tp = _unwrap(tp)
    return (tp if _is_model(tp) else None), field


def _clean_loc(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """Drop the union tags pydantic inserts after ``protocol[i]``."""
    out: list[Any] = []
    for i, part in enumerate(loc):
        if (
            i >= 2
            and part in _TAGGED_MODELS
            and isinstance(loc[i - 1], int)
            and loc[i - 2] == "protocol"
        ):
            continue
        out.append(part)
    return tuple(out)


def _format_path(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif isinstance(part, str) and part.isidentifier() and part.isascii():
            text += f".{part}" if text else part
        else:
            text += f"[{_short.repr(part)}]"
    return _one_line(text)


_NOT_FOUND = object()


def _lookup(data: Any, loc: tuple[Any, ...]) -> Any:
    for part in loc:
        if isinstance(data, dict):
            if part in data:
                data = data[part]
                continue
            return _NOT_FOUND
        if isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data):
            data = data[part]
            continue
        return _NOT_FOUND
    return data


def _locate(root: yaml.Node | None, loc: tuple[Any, ...]) -> tuple[tuple[int, int], int | None]:
    """Position of ``loc`` in the document: a sort key and a 1-based line.

    A location that is absent (a missing key) sorts at the end of the
    deepest mapping found and reports that mapping's first line.
    """
    if root is None:
        return (0, 0), None
    node = root
    mark = root.start_mark
    for part in loc:
        found = _step(node, part)
        if found is None:
            end = node.end_mark
            return (end.line, end.column), node.start_mark.line + 1
        mark, node = found
    return (mark.line, mark.column), mark.line + 1


def _step(node: yaml.Node, part: Any) -> tuple[Any, yaml.Node] | None:
    """One step of a location into a composed document: the child at ``part`` (a key of a
    mapping, an index of a sequence) with the mark that names it, or None if absent."""
    if isinstance(node, yaml.MappingNode):
        # Merge keys ("<<") are flattened in front of a mapping's own keys
        # during construction, and later keys win: search from the end.
        for key_node, value_node in reversed(node.value):
            if isinstance(key_node, yaml.ScalarNode) and key_node.value == str(part):
                return key_node.start_mark, value_node
    elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) \
            and 0 <= part < len(node.value):
        return node.value[part].start_mark, node.value[part]
    return None


def _allowed_keys(model: type[BaseModel]) -> list[str]:
    return list(model.model_fields)


def _expected_for(error: dict[str, Any], raw_loc: tuple[Any, ...], loc: tuple[Any, ...]) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == ERROR_TYPE and "expected" in ctx:
        return str(ctx["expected"])
    if kind == "extra_forbidden":
        parent, _ = _walk_models(raw_loc[:-1])
        if parent is not None:
            allowed = _allowed_keys(parent)
            hint = ""
            key = raw_loc[-1]
            if isinstance(key, str) and len(key) <= 100:
                close = difflib.get_close_matches(key, allowed, n=1)
                if close:
                    hint = f" (did you mean {close[0]!r}?)"
            what = getattr(parent, "what", "this mapping")
            return f"one of the keys of {what}: {', '.join(allowed)}{hint}"
        return "no such key"
    if kind == "invalid_key":
        return "keys that are text"
    model, field = _walk_models(raw_loc)
    if kind == "missing":
        name = loc[-1] if loc else "?"
        text = f"a value for the required key {name!r}"
        if field is not None and field.description:
            text += f": {field.description}"
        return text
    if kind in ("model_type", "model_attributes_type", "dict_type") and model is not None:
        keys = ", ".join(_allowed_keys(model))
        return f"{getattr(model, 'what', 'a mapping')}: a mapping with the keys {keys}"
    if field is not None and field.description:
        return field.description
    message = str(error.get("msg", "a valid value"))
    for prefix in ("Input should be ", "Value error, "):
        message = message.removeprefix(prefix)
    return message


def _convert(exc: ValidationError, data: Any, root: yaml.Node | None, source: str) -> ScenarioError:
    found: list[tuple[tuple[int, int], int, ScenarioError]] = []
    for order, error in enumerate(exc.errors(include_url=False)):
        ctx = error.get("ctx") or {}
        raw_loc = tuple(error["loc"])
        if error["type"] == ERROR_TYPE:
            raw_loc += tuple(ctx.get("subloc", ()))
        loc = _clean_loc(raw_loc)
        if error["type"] == "extra_forbidden":
            value: Any = loc[-1] if loc else error.get("input")
        elif error["type"] == "missing":
            value = MISSING
        elif error["type"] == ERROR_TYPE:
            value = _lookup(data, loc)
            if value is _NOT_FOUND:
                value = MISSING
        else:
            value = error.get("input", MISSING)
        position, line = _locate(root, loc)
        err = ScenarioError(
            _expected_for(error, raw_loc, loc),
            path=_format_path(loc),
            value=value,
            source=source,
            line=line,
        )
        found.append((position, order, err))
    found.sort(key=lambda item: (item[0], item[1]))
    first = found[0][2]
    first.more = len(found) - 1
    first.args = (first._message(),)
    return first


# --------------------------------------------------------------------------- #
# Public entry points
# --------------------------------------------------------------------------- #


def _load_text(text: object, source: str) -> Scenario:
    if isinstance(text, (bytes, bytearray)):
        text = _decode(bytes(text), source)
    if not isinstance(text, str):
        raise ScenarioError("YAML text", value=text, source=source)
    data, root = _parse_yaml(text, source)
    if not isinstance(data, dict):
        problem = "the document is empty" if data is None else None
        raise ScenarioError(_TOP_EXPECTED, value=data, source=source, problem=problem)
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise _convert(exc, data, root, source) from None


def _internal_error(exc: Exception, source: str) -> ScenarioError:
    # Should never happen; keeps the "only ScenarioError" promise and still
    # names the bug (the tests fail on this phrase).
    return ScenarioError(
        "a scenario the validator can check",
        source=source,
        problem=_one_line(f"internal validator error ({type(exc).__name__}: {exc})"[:300]),
    )


def load_scenario_text(text: str, source: str = "<string>") -> Scenario:
    """Validate a scenario given as YAML text.

    Parameters
    ----------
    text : str
        The YAML document (bytes are decoded as UTF-8).
    source : str, optional
        Name used in error messages.

    Returns
    -------
    Scenario
        The validated scenario.

    Raises
    ------
    ScenarioError
        For any problem, with one line naming the field, the value and what
        was expected. No other exception escapes.
    """
    source = _one_line(str(source))
    try:
        return _load_text(text, source)
    except ScenarioError:
        raise
    except Exception as exc:
        raise _internal_error(exc, source) from exc


def load_scenario(source: str | os.PathLike[str]) -> Scenario:
    """Load a scenario from a YAML file or by built-in name.

    Parameters
    ----------
    source : str or path-like
        Path to a YAML file, or the name of a built-in scenario (see
        :func:`builtin_scenarios`). An existing file wins over a built-in of
        the same name.

    Returns
    -------
    Scenario
        The validated scenario.

    Raises
    ------
    ScenarioError
        For a missing or unreadable file, invalid YAML, or any schema or
        semantic problem. No other exception escapes.
    """
    label = "<unknown>"
    try:
        path, label = _resolve_source(source)
        label = _one_line(label)
        return _load_text(_read_text(path, label), label)
    except ScenarioError:
        raise
    except Exception as exc:
        raise _internal_error(exc, label) from exc


def scenario_json_schema() -> dict[str, Any]:
    """Return the JSON Schema of the scenario YAML format.

    The schema follows draft 2020-12 as emitted by pydantic. Times, doses and
    body weights appear as strings with a ``pattern``; drugs, routes,
    stressors, interventions, assays and readouts as ``enum`` lists built
    from the current vocabulary; every mapping has
    ``additionalProperties: false``.

    Returns
    -------
    dict
        JSON-serialisable schema.
    """
    schema = Scenario.model_json_schema(mode="validation")
    # Keep the summary line of each model's docstring, not its numpydoc sections.
    for definition in [schema, *schema.get("$defs", {}).values()]:
        if isinstance(definition.get("description"), str):
            definition["description"] = definition["description"].split("\n\n")[0]
    _add_assay_options(schema)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "ketasim scenario",
        **{key: value for key, value in schema.items() if key != "title"},
    }


def _add_assay_options(schema: dict[str, Any]) -> None:
    """Each assay's ``options`` (names, types, ranges, defaults) from its declaration."""
    for definition in schema.get("$defs", {}).values():
        props = definition.get("properties", {})
        if "assay" in props and "options" in props and "at" in props:
            definition["allOf"] = [
                {"if": {"properties": {"assay": {"const": name}}, "required": ["assay"]},
                 "then": {"properties": {"options": assay.option_schema()}}}
                for name, assay in _ASSAY_CATALOGUE.items()]


def scenario_hash(scenario: Scenario) -> str:
    """Return a content hash of a validated scenario.

    Equivalent files give the same hash (``"24h"`` and ``"1d"`` are the same
    time, key order and comments do not matter); any change to a value
    changes it.

    Parameters
    ----------
    scenario : Scenario
        A validated scenario.

    Returns
    -------
    str
        SHA-256 hex digest of the canonical JSON dump (sorted keys, no
        spaces, ASCII).
    """
    if not isinstance(scenario, Scenario):
        raise TypeError(f"expected a Scenario, got {type(scenario).__name__}")
    # a scenario without a design (arms without a population) hashes as it did before
    # designs and populations existed
    payload = scenario.model_dump(mode="json",
                                  exclude={"design"} if scenario.design is None else None)
    for arm in payload["arms"]:
        if arm.get("population", 0) is None:
            del arm["population"]
    text = json.dumps(
        payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    )
    return hashlib.sha256(text.encode("ascii")).hexdigest()


_WHERE = re.compile(r"^arms\[(\d+)\](?:\.(protocol|assays)\[([^\]]+)\])?")


def locate_problem(source: str | os.PathLike[str], message: str) -> str:
    """A problem found after loading (a compound without PK for the species, an assay
    the arm cannot run), whose message starts with the place in the scenario it found
    (``arms[1]``, ``arms[1].protocol[ketamine at 0 h]``, ``arms[1].assays[2]``),
    prefixed with the scenario's file and followed by that place's line, as the loader's
    own problems are. Anything else, or a file that cannot be read again, comes back
    with the file prefixed only."""
    try:
        path, label = _resolve_source(source)
        label = _one_line(label)
    except ScenarioError:
        return message
    m = _WHERE.match(message)
    line = None
    if m is not None:
        try:
            root = yaml.compose(_read_text(path, label))
        except (ScenarioError, yaml.YAMLError):  # changed since loaded: no line
            root = None
        loc: list[Any] = ["arms", int(m.group(1))]
        if m.group(2) == "assays" and m.group(3).isdigit():
            loc += ["assays", int(m.group(3))]
        elif m.group(2) == "protocol":
            # protocol entries are named by what they give (the stored protocol is sorted
            # by time): the file's first entry giving it
            name = m.group(3).split(" at ")[0]
            protocol = _node_at(root, [*loc, "protocol"])
            entries = protocol.value if isinstance(protocol, yaml.SequenceNode) else []
            for i, entry in enumerate(entries):
                if isinstance(entry, yaml.MappingNode) and any(
                        isinstance(v, yaml.ScalarNode) and v.value == name
                        for _, v in entry.value):
                    loc += ["protocol", i]
                    break
        line = _locate(root, tuple(loc))[1] if root is not None else None
    return f"{label}: {message}" + (f" (line {line})" if line is not None else "")


def _node_at(root: yaml.Node | None, loc: list[Any]) -> yaml.Node | None:
    node = root
    for part in loc:
        found = None if node is None else _step(node, part)
        if found is None:
            return None
        node = found[1]
    return node


def yaml_line(text: str, loc) -> int | None:
    """The 1-based line of ``loc`` (keys and list indices, as pydantic reports a field)
    in the YAML ``text``, or of the nearest enclosing mapping when absent; None if the
    text does not compose."""
    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return None
    return _locate(root, tuple(loc))[1] if root is not None else None
