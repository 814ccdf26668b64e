"""The design file of ``ketasim analyze``: which subject is in which group, when each
session was, which file is which, and the comparisons to run.

Example::

    name: ketamine_spines_lab
    description: two-photon spines, ketamine vs saline
    species: mouse
    groups:
      saline: [m1, m2, m3]
      ketamine: [m4, m5, m6]
    sessions:            # labels a table or a file entry may use instead of times
      pre: -1d
      post: 1d
    files:               # kinds whose files carry no subject or session (dF/F, suite2p)
      - {path: m1_pre.csv, subject: m1, session: pre}
      - {pattern: "{subject}_{session}_dff.csv"}   # or many at once, from their names
    compare:
      - {readout: spine_density_per_10um, at: post, arms: [ketamine, saline]}
      - {readout: spine_density_per_10um, at: post, arms: [ketamine, saline], test: mixed_lm}
      - {readout: spine_density_per_10um, at: post, baseline: pre, arms: [ketamine, saline]}
    options: {frame_rate_hz: 30}

A subject belongs to exactly one group. ``at`` and session times are strings with a unit
(``90min``, ``-3d``), as in a scenario; ``at`` may also name a session, and so may
``baseline`` (compare each subject's change from its own value then). A key given twice
in one mapping (a group or a session named twice) is an error, as in a scenario, and so
is a path given in two ``files`` entries.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ketasim.scenario.loader import yaml_line
from ketasim.scenario.model import TWO_GROUP_TESTS
from ketasim.scenario.units import UnitError, parse_time

_CONFIG = ConfigDict(extra="forbid", frozen=True)
#: tests a design's comparison may ask for: the scenario's, and a linear mixed model
#: with a random intercept per subject on the nested rows (segments, branches, cells)
DESIGN_TESTS = ("welch_t", "student_t", "mann_whitney", "anova", "kruskal", "mixed_lm")


class DesignError(ValueError):
    """A design file that cannot be used: one line naming the file and the field."""


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key given twice in one mapping (``safe_load`` keeps
    the last silently: a group or a session named twice would lose the first), as the
    scenario loader does."""

    def construct_mapping(self, node, deep=False):
        seen: set[tuple[str, str]] = set()
        for key_node, _ in node.value:
            if (isinstance(key_node, yaml.ScalarNode)
                    and key_node.tag != "tag:yaml.org,2002:merge"):
                key = (key_node.tag, key_node.value)
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key_node.value!r}; give each key "
                        "once in a mapping", key_node.start_mark)
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _yaml_problem(e: yaml.YAMLError) -> str:
    """One line: where in the file and what PyYAML found."""
    mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
    what = getattr(e, "problem", None) or str(e).splitlines()[0]
    return (f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None
            else "") + what


class FileEntry(BaseModel):
    model_config = _CONFIG
    path: str | None = Field(default=None, description="an input path as given on the "
                             "command line")
    pattern: str | None = Field(default=None, description=(
        "or a file-name pattern for many inputs: shell wildcards (* and ?) and the fields "
        "{subject} and {session} (or {time}), read from each matching file's name, e.g. "
        "'{subject}_{session}DLC*.csv'; a pattern with / is matched against the path's "
        "last parts"))
    subject: str | None = Field(default=None, description=(
        "the subject the file belongs to (files that name their subjects in a column "
        "need none)"))
    session: str | None = Field(default=None, description="a session label")
    time: str | None = Field(default=None, description="or the session's time")


_FIELDS = ("subject", "session", "time")


class FilePattern:
    """A file-name pattern: shell wildcards (``*`` any characters but ``/``, ``?`` one)
    and the fields ``{subject}``, ``{session}`` and ``{time}`` (each at most once, at
    least one character, no ``/``); the rest literal. A pattern without ``/`` is matched
    against a path's last part, one with ``/`` against its last parts.
    :meth:`readings` gives the ways a name fits the pattern, so that the design can keep
    the readings whose subject and session it knows (``{subject}*_{session}.csv`` on
    ``12_cam3_pre.csv`` is subject 12 where 1 is not a subject of the design, and an
    error where both are)."""

    def __init__(self, pattern: str):
        self.pattern = pattern
        tokens: list[tuple[str, str]] = []
        i = 0
        for m in re.finditer(r"\{(\w+)\}|\*|\?", pattern):
            if m.start() > i:
                tokens.append(("lit", pattern[i:m.start()]))
            if m.group(0) in "*?":
                tokens.append((m.group(0), ""))
            else:
                name = m.group(1)
                if name not in _FIELDS:
                    raise ValueError(f"unknown field {{{name}}} (the fields: "
                                     + ", ".join(f"{{{f}}}" for f in _FIELDS) + ")")
                if ("field", name) in tokens:
                    raise ValueError(f"the field {{{name}}} appears twice")
                tokens.append(("field", name))
            i = m.end()
        if i < len(pattern):
            tokens.append(("lit", pattern[i:]))
        self.tokens = tokens
        self.fields = {v for k, v in tokens if k == "field"}
        self.parts = pattern.count("/") + 1

    def readings(self, path: Path, accept=None, limit: int | None = None
                 ) -> list[dict[str, str]]:
        """The distinct assignments of the fields under which ``path``'s last parts fit,
        keeping only values ``accept(field, value)`` allows (checked as each field is
        read, so a design's subjects and sessions prune the search), and stopping after
        ``limit`` of them."""
        name = "/".join(Path(path).as_posix().split("/")[-self.parts:])
        out: list[dict[str, str]] = []
        seen: set[tuple] = set()
        # the shortest text the tokens from k on can match: no reading can leave less
        need = [0] * (len(self.tokens) + 1)
        for k in range(len(self.tokens) - 1, -1, -1):
            kind, text = self.tokens[k]
            need[k] = need[k + 1] + (len(text) if kind == "lit" else 0 if kind == "*"
                                     else 1)

        def walk(k: int, pos: int, got: dict[str, str]) -> bool:
            """False once ``limit`` readings are found (stop)."""
            if k == len(self.tokens):
                key = tuple(sorted(got.items()))
                if pos == len(name) and key not in seen:
                    seen.add(key)
                    out.append(dict(got))
                return limit is None or len(out) < limit
            kind, text = self.tokens[k]
            if kind == "lit":
                return not name.startswith(text, pos) or walk(k + 1, pos + len(text), got)
            if kind == "?":
                return pos >= len(name) or name[pos] == "/" or walk(k + 1, pos + 1, got)
            stop = name.find("/", pos)
            stop = min(len(name) if stop < 0 else stop, len(name) - need[k + 1])
            for end in range(pos + (1 if kind == "field" else 0), stop + 1):
                if kind == "field":
                    value = name[pos:end]
                    if accept is not None and not accept(text, value):
                        continue
                    got[text] = value
                if not walk(k + 1, end, got):
                    return False
            got.pop(text, None)
            return True

        walk(0, 0, {})
        return out


class DesignComparison(BaseModel):
    model_config = _CONFIG
    readout: str
    at: str
    arms: list[str] = Field(min_length=2)
    test: Literal["welch_t", "student_t", "mann_whitney", "anova", "kruskal",
                  "mixed_lm"] = "welch_t"
    assay: str | None = None
    region: str | None = None
    baseline: str | None = Field(default=None, description=(
        "compare each subject's (and each nested unit's) change from its own value at this "
        "session or time"))


class Design(BaseModel):
    model_config = _CONFIG
    name: str = Field(min_length=1)
    description: str = ""
    species: Literal["mouse", "rat", "human"] | None = None
    groups: dict[str, list[str]] = Field(min_length=1)
    sessions: dict[str, str] = Field(default_factory=dict)
    files: list[FileEntry] = Field(default_factory=list)
    compare: list[DesignComparison] = Field(default_factory=list)
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("groups", mode="before")
    @classmethod
    def _ids_as_text(cls, v):
        if isinstance(v, dict):
            return {str(k): ([str(s) for s in ids] if isinstance(ids, list) else ids)
                    for k, ids in v.items()}
        return v

    @field_validator("files", mode="before")
    @classmethod
    def _file_subjects_as_text(cls, v):
        if isinstance(v, list):
            return [({**e, "subject": str(e["subject"])} if isinstance(e, dict)
                     and "subject" in e else e) for e in v]
        return v


class ResolvedDesign:
    """A checked design: subject id -> (group, integer subject index), session label ->
    hours, comparisons with times in hours."""

    def __init__(self, design: Design, where: str):
        self.design = design
        self.where = where
        self.group_of: dict[str, str] = {}
        self.index_of: dict[str, int] = {}
        for group, ids in design.groups.items():
            if not ids:
                raise DesignError(f"{where}: groups.{group}: expected at least one subject")
            for s in ids:
                if s in self.group_of:
                    raise DesignError(
                        f"{where}: groups.{group}: subject {s!r} is already in group "
                        f"{self.group_of[s]!r}; a subject belongs to one group")
                self.group_of[s] = group
                self.index_of[s] = len(self.index_of)
        self.session_h = {k: self._time(v, f"sessions.{k}") for k, v in design.sessions.items()}
        self.files = {}
        entry_of: dict[str, int] = {}  # a path's files entry
        self.patterns: list[tuple[int, FilePattern, FileEntry]] = []
        for i, f in enumerate(design.files):
            if f.subject is not None and f.subject not in self.group_of:
                raise DesignError(f"{where}: files[{i}].subject: {f.subject!r} is in no group")
            if (f.path is None) == (f.pattern is None):
                raise DesignError(f"{where}: files[{i}]: give exactly one of path and pattern")
            if f.pattern is not None:
                try:
                    rx = FilePattern(f.pattern)
                except ValueError as e:
                    raise DesignError(f"{where}: files[{i}].pattern: {e}") from None
                named = rx.fields
                if "subject" in named and f.subject is not None:
                    raise DesignError(f"{where}: files[{i}]: the subject is both in the "
                                      "pattern and given")
                given = [k for k in ("session", "time") if getattr(f, k) is not None]
                if len(given + sorted(named & {"session", "time"})) != 1:
                    raise DesignError(f"{where}: files[{i}]: give exactly one of session and "
                                      "time, in the pattern ({session} or {time}) or as a "
                                      "field")
                for k in given:  # a fixed session is checked now
                    self._entry_time(f, k, getattr(f, k), i)
                self.patterns.append((i, rx, f))
                continue
            if (f.session is None) == (f.time is None):
                raise DesignError(f"{where}: files[{i}]: give exactly one of session and time")
            k = "session" if f.session is not None else "time"
            key = str(Path(f.path))
            if key in entry_of:  # a copy-paste slip: which entry is right cannot be told
                raise DesignError(f"{where}: files[{i}].path: {f.path!r} is also "
                                  f"files[{entry_of[key]}]; give each file one entry")
            entry_of[key] = i
            self.files[key] = (f.subject, self._entry_time(f, k, getattr(f, k), i))
        groups = set(design.groups)
        self.compare = []
        for i, c in enumerate(design.compare):
            unknown = [a for a in c.arms if a not in groups]
            if unknown:
                raise DesignError(f"{where}: compare[{i}].arms: {unknown} are not groups "
                                  f"({sorted(groups)})")
            if len(set(c.arms)) != len(c.arms):
                raise DesignError(f"{where}: compare[{i}].arms: a group is named twice")
            if c.test in TWO_GROUP_TESTS and len(c.arms) != 2:
                # as a scenario's compare: the test would read the first two groups only
                raise DesignError(f"{where}: compare[{i}]: test {c.test!r} compares exactly "
                                  f"two groups, got {len(c.arms)} ({', '.join(c.arms)}); "
                                  "use 'anova', 'kruskal' or 'mixed_lm' for more")
            update = {"at": self.session(c.at, f"compare[{i}].at")}
            if c.baseline is not None:
                update["baseline"] = self.session(c.baseline, f"compare[{i}].baseline")
                if abs(update["baseline"] - update["at"]) < 1e-9:
                    raise DesignError(f"{where}: compare[{i}].baseline: the same time as at "
                                      "(the change from at to itself is 0)")
            self.compare.append(c.model_copy(update=update))

    def _time(self, v, field: str) -> float:
        try:
            return float(parse_time(v))
        except (UnitError, ValueError, TypeError) as e:
            raise DesignError(f"{self.where}: {field}: {e}") from None

    def session(self, v, field: str) -> float:
        """Hours of a session label or a time."""
        if isinstance(v, str) and v in self.session_h:
            return self.session_h[v]
        return self._time(v, field)

    def group(self, subject: str, where: str) -> str:
        if subject not in self.group_of:
            raise DesignError(f"{where}: subject {subject!r} is in no group of the design "
                              f"{self.where}")
        return self.group_of[subject]

    def _entry_time(self, f: FileEntry, key: str, value: str, i: int,
                    path: str | None = None) -> float:
        field = f"files[{i}].{key}" + (f" (from {path!r})" if path else "")
        return self.session(value, field) if key == "session" else self._time(value, field)

    def file_entry(self, path: Path) -> tuple[str | None, float]:
        """(subject or None, session time in hours) of an input: its ``path`` entry, else
        the first ``pattern`` entry under which its name reads as a subject of the design
        and a known session (or a time). Two different readings under one entry are an
        error, as is a name that fits patterns only with unknown subjects or sessions."""
        key = str(Path(path))
        if key in self.files:
            return self.files[key]
        first_problem = None

        def known(field: str, value: str) -> bool:
            """A field value the design can use: a subject of a group, a session label
            (or, without labels, a time), a time."""
            if field == "subject":
                return value in self.group_of
            if field == "session" and self.session_h:
                return value in self.session_h
            try:
                parse_time(value)
            except (UnitError, ValueError, TypeError):
                return False
            return True

        for i, rx, f in self.patterns:
            found: dict[tuple, dict] = {}
            readings = rx.readings(Path(path), known, limit=2)
            if not readings:
                raw = rx.readings(Path(path), limit=1)
                if raw and first_problem is None:
                    shown = ", ".join(f"{k} {v!r}" for k, v in sorted(raw[0].items()))
                    first_problem = (
                        f"{self.where}: files[{i}].pattern: {key!r} fits the pattern, but "
                        "no reading of it names a subject of the groups and a known "
                        f"session or time (it reads, for one, as {shown})")
                continue
            for fields in readings:
                subject = fields.get("subject", f.subject)
                k = "session" if "session" in fields or f.session is not None else "time"
                value = fields.get(k, getattr(f, k))
                if subject is not None and subject not in self.group_of:
                    first_problem = first_problem or (
                        f"{self.where}: files[{i}].pattern: {key!r} reads as subject "
                        f"{subject!r}, which is in no group")
                    continue
                try:
                    t = self._entry_time(f, k, value, i, key)
                except DesignError as e:
                    first_problem = first_problem or (f"{e} (read {value!r} from the "
                                                      "name)")
                    continue
                found[(subject, t)] = fields
            if len(found) > 1:
                (a, ta), (b, tb) = list(found)[:2]
                raise DesignError(f"{self.where}: files[{i}].pattern: {key!r} reads two ways "
                                  f"(subject {a!r} at {ta:g} h, or {b!r} at {tb:g} h); "
                                  "make the pattern more specific")
            if found:
                return next(iter(found))
        if first_problem is not None:
            raise DesignError(first_problem)
        raise DesignError(f"{self.where}: files: no entry for {key!r} (each input of this "
                          "kind needs its subject and session: a path or a pattern entry)")


def read_design_text(path: str | Path) -> str:
    """A design file's text (UTF-8, a byte-order mark dropped); :class:`DesignError`
    naming the file, the line and the byte for one that is not UTF-8 (Latin-1, say).
    :class:`OSError` when it cannot be read."""
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise DesignError(f"{path}: not a UTF-8 text file (invalid byte "
                          f"{data[e.start]:#04x} at byte {e.start}, line {line}); save it "
                          "as UTF-8") from None


def load_design(path: str | Path) -> ResolvedDesign:
    """Read and check a design file; :class:`DesignError` names the file and field (and,
    for YAML problems such as a key given twice in one mapping, the line)."""
    p = Path(path)
    try:
        text = read_design_text(p)
        raw = yaml.load(text, Loader=_StrictLoader)  # a SafeLoader
    except OSError as e:
        raise DesignError(f"{p}: cannot read the design file ({e.strerror})") from None
    except yaml.YAMLError as e:
        raise DesignError(f"{p}: not valid YAML ({_yaml_problem(e)})") from None
    if not isinstance(raw, dict):
        raise DesignError(f"{p}: expected a mapping with name, groups, ...")
    try:
        design = Design.model_validate(raw)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(x) for x in err["loc"])
        line = yaml_line(text, err["loc"])
        raise DesignError(f"{p}: {loc}: {err['msg']}"
                          + ("" if line is None else f" (line {line})")) from None
    return ResolvedDesign(design, str(p))
